"""The only code that talks to the database: small, explicit operations on conversations."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from chatbot.schema import AnswerObject
from chatbot.store.audit import AuditRepository
from chatbot.store.handoff import HandoffRepository
from chatbot.store.migrate import engine_url, migrate
from chatbot.store.models import Conversation, Message, aware


class ConversationNotFound(LookupError):
    pass


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class StoredMessage:
    id: str
    conversation_id: str
    role: str
    text: str
    kind: str | None
    intent: str | None
    confidence: float | None
    sources: list[dict[str, Any]]
    handoff: bool
    latency_ms: int | None
    created_at: datetime
    quick_replies: list[str] = field(default_factory=list)
    agent_name: str | None = None  # set on role "agent" messages

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = self.created_at.isoformat()  # aware: _stored makes it so
        data["intent"] = {"name": self.intent, "confidence": self.confidence} if self.intent is not None else None
        data.pop("confidence")
        return data


def _stored(row: Message) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        text=row.text,
        kind=row.kind,
        intent=row.intent,
        confidence=row.confidence,
        sources=list(row.sources or []),
        handoff=bool(row.handoff),
        latency_ms=row.latency_ms,
        created_at=aware(row.created_at) or row.created_at,
        quick_replies=list(row.quick_replies or []),
        agent_name=row.agent.name if row.agent_id is not None and row.agent is not None else None,
    )


class Store(HandoffRepository, AuditRepository):
    def __init__(self, url: str) -> None:
        url = engine_url(url)  # postgresql:// means psycopg 3
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # PostgreSQL returns timestamptz in the session's time zone: UTC, so every time reads as stored.
        options = {"connect_args": {"options": "-c timezone=UTC"}} if url.startswith("postgresql") else {}
        self.engine: SqlEngine = create_engine(url, future=True, pool_pre_ping=True, **options)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        migrate(self.engine)  # Alembic upgrade to head; adopts databases of releases before migrations
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def create_conversation(self, channel: str = "web", token_hash: str | None = None) -> tuple[str, datetime]:
        with self._sessions.begin() as session:
            conversation = Conversation(id=new_id("conv"), channel=channel, token_hash=token_hash)
            session.add(conversation)
            session.flush()
            return conversation.id, conversation.created_at

    def conversation_exists(self, conversation_id: str) -> bool:
        with self._sessions() as session:
            return session.get(Conversation, conversation_id) is not None

    def _require(self, session: Session, conversation_id: str) -> Conversation:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            raise ConversationNotFound(conversation_id)
        return conversation

    def add_user_message(self, conversation_id: str, text: str) -> StoredMessage:
        with self._sessions.begin() as session:
            self._require(session, conversation_id)
            row = Message(id=new_id("msg"), conversation_id=conversation_id, role="user", text=text)
            session.add(row)
            session.flush()
            return _stored(row)

    def add_answer(self, answer: AnswerObject) -> StoredMessage:
        assert answer.conversation_id is not None
        with self._sessions.begin() as session:
            self._require(session, answer.conversation_id)
            row = Message(
                id=answer.id,
                conversation_id=answer.conversation_id,
                role="assistant",
                text=answer.text,
                kind=answer.kind,
                intent=answer.intent.name if answer.intent else None,
                confidence=answer.intent.confidence if answer.intent else None,
                sources=[s.model_dump() for s in answer.sources],
                handoff=answer.handoff,
                latency_ms=answer.latency_ms,
                quick_replies=list(answer.quick_replies),
            )
            session.add(row)
            session.flush()
            return _stored(row)

    def messages(self, conversation_id: str, limit: int | None = None) -> list[StoredMessage]:
        with self._sessions() as session:
            self._require(session, conversation_id)
            query = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = list(session.scalars(query))
            return [_stored(r) for r in reversed(rows)]


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
