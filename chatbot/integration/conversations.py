"""Conversations of the integration API: created with a key and a verified customer, listed and paged.

Ownership: a key reads and writes the conversations it created, and nothing else. A verified
customer id (``customer_id`` + ``customer_hash`` signed with the key's identity secret) names a
customer *of that key*: another key signing the same id with its own secret names another
customer, so it reaches none of the first key's conversations (docs/integration-api.md,
"Partner isolation"). The per-conversation customer token of the web widget keeps working alongside.

The queries are the store's (``ConversationRepository``, ``MessageRepository``); this class is the
API's view of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine as SqlEngine

from chatbot.store.conversations import ConversationRepository, ConversationSummary
from chatbot.store.messages import MessageRepository, StoredMessage


class IntegrationConversations:
    def __init__(self, engine: SqlEngine) -> None:
        self._conversations = ConversationRepository(engine)
        self._messages = MessageRepository(engine)

    def create(self, token_hash: str, api_key_id: str | None, customer_id: str | None) -> ConversationSummary:
        """One INSERT with the owner columns set, so no conversation ever exists without its owner."""
        return self._conversations.create_owned(token_hash, api_key_id, customer_id)

    def summary(self, conversation_id: str) -> ConversationSummary:
        return self._conversations.summary(conversation_id)

    def for_customer(
        self, api_key_id: str, customer_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[ConversationSummary], bool]:
        """The key's verified customer's conversations, newest first; and whether more follow."""
        return self._conversations.for_customer(customer_id, before, limit, api_key_id=api_key_id)

    def message_page(
        self, conversation_id: str, after_id: str | None, after_seq: int | None, limit: int
    ) -> tuple[list[StoredMessage], int | None]:
        """Up to ``limit`` messages stored after a message id and/or a cursor's seq, oldest first; and the
        seq to continue from when more follow (None at the end)."""
        return self._messages.page(conversation_id, after_id, after_seq, limit)
