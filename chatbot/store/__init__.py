"""Persistence (SQLite by default, any SQLAlchemy URL otherwise): ``Store`` and the records it returns.

The only package that writes SQL. ``Store`` composes one repository per aggregate (see
``repository.py``); callers import ``Store``, the records and the exceptions from here.
"""

from chatbot.store.agents import AgentRecord
from chatbot.store.analytics import AnalyticsData
from chatbot.store.api_keys import ApiKeyRecord
from chatbot.store.audit import AuditRecord
from chatbot.store.conversations import ConversationRecord, ConversationSummary
from chatbot.store.errors import AgentExists, ConversationNotFound, KeyExists, LifecycleConflict, MessageNotFound
from chatbot.store.idempotency import IdempotencyEntry
from chatbot.store.messages import StoredMessage
from chatbot.store.notes import NoteRecord
from chatbot.store.repository import Store
from chatbot.store.suggestions import SuggestionRecord

__all__ = [
    "AgentExists",
    "AgentRecord",
    "AnalyticsData",
    "ApiKeyRecord",
    "AuditRecord",
    "ConversationNotFound",
    "ConversationRecord",
    "ConversationSummary",
    "IdempotencyEntry",
    "KeyExists",
    "LifecycleConflict",
    "MessageNotFound",
    "NoteRecord",
    "Store",
    "StoredMessage",
    "SuggestionRecord",
]
