"""Conversations of the integration API: created with a key and a verified customer, listed and paged.

Ownership: a key reads and writes the conversations it created; a request that also proves a
customer's identity (``customer_id`` + ``customer_hash`` signed with the key's identity secret)
reaches every conversation of that verified customer. The per-conversation customer token of the
web widget keeps working alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from chatbot.store.handoff import MessageNotFound
from chatbot.store.models import Conversation, Message, aware
from chatbot.store.repository import ConversationNotFound, StoredMessage, _stored, new_id


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    status: str
    channel: str
    created_at: datetime
    updated_at: datetime
    customer_id: str | None
    api_key_id: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "channel": self.channel,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "customer_id": self.customer_id,
        }


def _summary(row: Conversation) -> ConversationSummary:
    return ConversationSummary(
        id=row.id,
        status=row.status,
        channel=row.channel,
        created_at=aware(row.created_at) or row.created_at,
        updated_at=aware(row.updated_at) or row.updated_at,
        customer_id=row.customer_id,
        api_key_id=row.api_key_id,
    )


class IntegrationConversations:
    def __init__(self, engine: SqlEngine) -> None:
        self._sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)

    def create(self, token_hash: str, api_key_id: str | None, customer_id: str | None) -> ConversationSummary:
        """One INSERT with the owner columns set, so no conversation ever exists without its owner."""
        with self._sessions.begin() as session:
            row = Conversation(
                id=new_id("conv"), channel="api", token_hash=token_hash, api_key_id=api_key_id, customer_id=customer_id
            )
            session.add(row)
            session.flush()
            return _summary(row)

    def summary(self, conversation_id: str) -> ConversationSummary:
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            if row is None:
                raise ConversationNotFound(conversation_id)
            return _summary(row)

    def for_customer(
        self, customer_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[ConversationSummary], bool]:
        """A verified customer's conversations, newest first; and whether more follow."""
        with self._sessions() as session:
            query = select(Conversation).where(
                Conversation.customer_id == customer_id, Conversation.api_key_id.is_not(None)
            )
            if before is not None:
                moment, last_id = before
                query = query.where(
                    or_(
                        Conversation.created_at < moment,
                        and_(Conversation.created_at == moment, Conversation.id < last_id),
                    )
                )
            query = query.order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(limit + 1)
            rows = [_summary(r) for r in session.scalars(query)]
            return rows[:limit], len(rows) > limit

    def message_page(
        self, conversation_id: str, after_id: str | None, after_seq: int | None, limit: int
    ) -> tuple[list[StoredMessage], int | None]:
        """Up to ``limit`` messages stored after a message id and/or a cursor's seq, oldest first; and the
        seq to continue from when more follow (None at the end)."""
        with self._sessions() as session:
            if session.get(Conversation, conversation_id) is None:
                raise ConversationNotFound(conversation_id)
            start = after_seq or 0
            if after_id:
                seq = session.scalar(
                    select(Message.seq).where(Message.id == after_id, Message.conversation_id == conversation_id)
                )
                if seq is None:
                    raise MessageNotFound(after_id)
                start = max(start, seq)
            rows = list(
                session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation_id, Message.seq > start)
                    .order_by(Message.seq)
                    .limit(limit + 1)
                )
            )
            more = len(rows) > limit
            rows = rows[:limit]
            return [_stored(r) for r in rows], (rows[-1].seq if more and rows else None)
