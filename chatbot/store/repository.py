"""``Store``: the database, opened once, and the repository of each aggregate over it.

Each aggregate has its own module and repository class (``conversations.py``, ``messages.py``,
``lifecycle.py``, ``agents.py``, ``notes.py``, ``suggestions.py``, ``feedback.py``,
``analytics.py``, ``api_keys.py``, ``idempotency.py``, ``outbox.py``, ``audit.py``); ``Store`` opens
the engine (and migrates it), builds one session factory and hands it to all of them, so they share
one connection pool. New code reaches an aggregate through its attribute (``store.agents.by_name``);
the flat methods below (``store.agent_by_name``) delegate to the same code and stay for the callers
written before the split. Three attributes are not named after their module because a flat method
has that name: ``transcript`` (messages), ``internal_notes`` (notes) and ``audit_log`` (audit).
Nothing outside ``chatbot/store/`` writes SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine as SqlEngine

from chatbot.schema import AnswerObject
from chatbot.store.agents import AgentRecord, AgentRepository
from chatbot.store.analytics import AnalyticsData, AnalyticsQueries
from chatbot.store.api_keys import ApiKeyRepository
from chatbot.store.audit import AuditRecord, AuditRepository
from chatbot.store.base import Sessions, new_id, session_factory
from chatbot.store.conversations import ConversationRecord, ConversationRepository
from chatbot.store.errors import ConversationNotFound
from chatbot.store.feedback import FeedbackRepository
from chatbot.store.idempotency import IdempotencyRepository
from chatbot.store.lifecycle import LifecycleRepository
from chatbot.store.messages import MessageRepository, StoredMessage
from chatbot.store.migrate import SQLITE_BUSY_TIMEOUT_S, engine_url, migrate
from chatbot.store.notes import NoteRecord, NoteRepository
from chatbot.store.outbox import WebhookOutbox
from chatbot.store.suggestions import SuggestionRecord, SuggestionRepository

__all__ = ["ConversationNotFound", "Store", "StoredMessage", "new_id"]


class Store:
    def __init__(self, url: str) -> None:
        url = engine_url(url)  # postgresql:// means psycopg 3
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # PostgreSQL returns timestamptz in the session's time zone: UTC, so every time reads as stored.
        options: dict[str, Any] = {}
        if url.startswith("postgresql"):
            options = {"connect_args": {"options": "-c timezone=UTC"}}
        elif url.startswith("sqlite"):
            # A process that starts while another migrates a new file waits for it, not 5 s (the
            # driver's default), which a migration on a loaded machine outlasts: "database is locked".
            options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        self.engine: SqlEngine = create_engine(url, future=True, pool_pre_ping=True, **options)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        migrate(self.engine)  # Alembic upgrade to head; adopts databases of releases before migrations
        self._sessions: Sessions = session_factory(self.engine)
        sessions = self._sessions
        self.conversations = ConversationRepository(sessions)
        self.lifecycle = LifecycleRepository(sessions)
        self.transcript = MessageRepository(sessions)
        self.agents = AgentRepository(sessions)
        self.internal_notes = NoteRepository(sessions)
        self.suggestions = SuggestionRepository(sessions)
        self.feedback = FeedbackRepository(sessions)
        self.analytics = AnalyticsQueries(sessions)
        self.api_keys = ApiKeyRepository(sessions)
        self.idempotency = IdempotencyRepository(sessions)
        self.outbox = WebhookOutbox(sessions)
        self.audit_log = AuditRepository(sessions)

    @property
    def sessions(self) -> Sessions:
        """The shared session factory, for store modules that work across aggregates (``retention.py``)."""
        return self._sessions

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ conversations
    def create_conversation(self, channel: str = "web", token_hash: str | None = None) -> tuple[str, datetime]:
        return self.conversations.create(channel, token_hash)

    def conversation_exists(self, conversation_id: str) -> bool:
        return self.conversations.exists(conversation_id)

    def conversation(self, conversation_id: str) -> ConversationRecord:
        return self.conversations.get(conversation_id)

    def list_conversations(
        self, statuses: Sequence[str], assigned_to: str | None = None, limit: int = 50
    ) -> list[ConversationRecord]:
        return self.conversations.queue(statuses, assigned_to, limit)

    # ------------------------------------------------------------------ lifecycle
    def request_handoff(self, conversation_id: str, reason: str) -> tuple[bool, ConversationRecord]:
        return self.lifecycle.request_handoff(conversation_id, reason)

    def claim(self, conversation_id: str, agent_id: str) -> tuple[str, ConversationRecord]:
        return self.lifecycle.claim(conversation_id, agent_id)

    def return_to_bot(self, conversation_id: str, agent_id: str, is_admin: bool = False) -> ConversationRecord:
        return self.lifecycle.return_to_bot(conversation_id, agent_id, is_admin)

    def close_conversation(
        self, conversation_id: str, agent_id: str | None, is_admin: bool = False, closed_by: str = "agent"
    ) -> ConversationRecord:
        return self.lifecycle.close(conversation_id, agent_id, is_admin, closed_by)

    def reopen(self, conversation_id: str) -> bool:
        return self.lifecycle.reopen(conversation_id)

    def flag_overdue(self, requested_before: datetime) -> list[str]:
        return self.lifecycle.flag_overdue(requested_before)

    # ------------------------------------------------------------------ messages
    def add_user_message(self, conversation_id: str, text: str) -> StoredMessage:
        return self.transcript.add_user_message(conversation_id, text)

    def add_answer(self, answer: AnswerObject) -> StoredMessage:
        return self.transcript.add_answer(answer)

    def add_message(
        self, conversation_id: str, role: str, text: str, kind: str | None = None, agent_id: str | None = None
    ) -> StoredMessage:
        return self.transcript.add(conversation_id, role, text, kind, agent_id)

    def message(self, message_id: str) -> StoredMessage | None:
        return self.transcript.get(message_id)

    def messages(self, conversation_id: str, limit: int | None = None) -> list[StoredMessage]:
        return self.transcript.recent(conversation_id, limit)

    def messages_after(self, conversation_id: str, after: str | None) -> list[StoredMessage]:
        return self.transcript.after(conversation_id, after)

    def last_user_message(self, conversation_id: str) -> StoredMessage | None:
        return self.transcript.last_user_message(conversation_id)

    # ------------------------------------------------------------------ agents
    def create_agent(self, name: str, role: str, password_hash: str) -> AgentRecord:
        return self.agents.create(name, role, password_hash)

    def agent_by_name(self, name: str) -> AgentRecord | None:
        return self.agents.by_name(name)

    def agent_by_id(self, agent_id: str) -> AgentRecord | None:
        return self.agents.by_id(agent_id)

    def list_agents(self) -> list[AgentRecord]:
        return self.agents.list()

    def set_agent_active(self, name: str, active: bool) -> bool:
        return self.agents.set_active(name, active)

    def set_password_hash(self, agent_id: str, password_hash: str) -> None:
        self.agents.set_password_hash(agent_id, password_hash)

    # ------------------------------------------------------------------ notes, suggestions, feedback
    def add_note(self, conversation_id: str, agent_id: str, text: str) -> NoteRecord:
        return self.internal_notes.add(conversation_id, agent_id, text)

    def notes(self, conversation_id: str) -> list[NoteRecord]:
        return self.internal_notes.for_conversation(conversation_id)

    def add_suggestions(
        self, conversation_id: str, message_id: str | None, agent_id: str, items: Iterable[tuple[str, str, list[Any]]]
    ) -> list[SuggestionRecord]:
        return self.suggestions.add(conversation_id, message_id, agent_id, items)

    def suggestion(self, suggestion_id: str) -> SuggestionRecord | None:
        return self.suggestions.get(suggestion_id)

    def resolve_suggestions(self, conversation_id: str, used: str | None, outcome: str, message_id: str) -> None:
        self.suggestions.resolve(conversation_id, used, outcome, message_id)

    def set_feedback(self, message_id: str, conversation_id: str, rating: str, comment: str | None) -> None:
        self.feedback.set(message_id, conversation_id, rating, comment)

    # ------------------------------------------------------------------ analytics, audit
    def analytics_data(self, since: datetime) -> AnalyticsData:
        return self.analytics.data(since)

    def audit(
        self,
        actor_type: str,
        actor_id: str | None,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.audit_log.record(actor_type, actor_id, action, target_type, target_id, ip, detail)

    def audit_events(
        self, before_seq: int | None = None, limit: int = 100, action: str | None = None, actor_id: str | None = None
    ) -> list[AuditRecord]:
        return self.audit_log.events(before_seq, limit, action, actor_id)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
