"""Messages: a conversation's transcript (customer, assistant, agent and system messages).

Every read returns ``StoredMessage`` records, never ORM rows, so callers cannot lazy-load across a
closed session. Messages are ordered by ``seq`` (the insertion order the database assigns), not by
``created_at``: two messages stored in the same millisecond still have a definite order, which the
``after`` cursors of the API and WebSocket rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.schema import AnswerObject
from chatbot.store.base import Repository, new_id
from chatbot.store.errors import ConversationNotFound, MessageNotFound
from chatbot.store.models import Conversation, Message, aware, utcnow


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
        data["created_at"] = self.created_at.isoformat()  # aware: stored_message makes it so
        data["intent"] = {"name": self.intent, "confidence": self.confidence} if self.intent is not None else None
        data.pop("confidence")
        return data


def stored_message(row: Message) -> StoredMessage:
    """The record of a message row (times made aware: SQLite returns them naive)."""
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


def require_conversation(session: Session, conversation_id: str) -> Conversation:
    """The conversation's row, or ConversationNotFound: writing to or reading a missing one is the caller's error."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise ConversationNotFound(conversation_id)
    return conversation


def _seq_of(session: Session, conversation_id: str, message_id: str) -> int:
    """The position of one of this conversation's messages (MessageNotFound for another conversation's)."""
    seq = session.scalar(
        select(Message.seq).where(Message.id == message_id, Message.conversation_id == conversation_id)
    )
    if seq is None:
        raise MessageNotFound(message_id)
    return int(seq)


class MessageRepository(Repository):
    """The ``messages`` table: writes of every role, and the reads of the transcript."""

    def add_user_message(self, conversation_id: str, text: str) -> StoredMessage:
        with self._sessions.begin() as session:
            require_conversation(session, conversation_id)
            row = Message(id=new_id("msg"), conversation_id=conversation_id, role="user", text=text)
            session.add(row)
            session.flush()
            return stored_message(row)

    def add_answer(self, answer: AnswerObject) -> StoredMessage:
        """The assistant's answer, under the id the engine already gave it (the client saw that id streamed)."""
        assert answer.conversation_id is not None
        with self._sessions.begin() as session:
            require_conversation(session, answer.conversation_id)
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
            return stored_message(row)

    def add(
        self, conversation_id: str, role: str, text: str, kind: str | None = None, agent_id: str | None = None
    ) -> StoredMessage:
        """A customer, agent or system message (assistant answers go through ``add_answer``).

        It also touches the conversation's ``updated_at``: the agents' queue orders by it.
        """
        with self._sessions.begin() as session:
            conversation = require_conversation(session, conversation_id)
            row = Message(
                id=new_id("msg"),
                conversation_id=conversation_id,
                role=role,
                text=text,
                kind=kind,
                agent_id=agent_id,
            )
            session.add(row)
            conversation.updated_at = utcnow()
            session.flush()
            session.refresh(row)
            return stored_message(row)

    def get(self, message_id: str) -> StoredMessage | None:
        with self._sessions() as session:
            row = session.scalar(select(Message).where(Message.id == message_id))
            return stored_message(row) if row is not None else None

    def recent(self, conversation_id: str, limit: int | None = None) -> list[StoredMessage]:
        """The last ``limit`` messages (all without one), oldest first."""
        with self._sessions() as session:
            require_conversation(session, conversation_id)
            query = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = list(session.scalars(query))
            return [stored_message(r) for r in reversed(rows)]

    def after(self, conversation_id: str, after: str | None) -> list[StoredMessage]:
        """Messages stored after ``after`` (a message id of this conversation), in the order they were stored."""
        with self._sessions() as session:
            require_conversation(session, conversation_id)
            query = select(Message).where(Message.conversation_id == conversation_id)
            if after:
                query = query.where(Message.seq > _seq_of(session, conversation_id, after))
            return [stored_message(r) for r in session.scalars(query.order_by(Message.seq))]

    def page(
        self, conversation_id: str, after_id: str | None, after_seq: int | None, limit: int
    ) -> tuple[list[StoredMessage], int | None]:
        """Up to ``limit`` messages stored after a message id and/or a cursor's seq, oldest first; and the
        seq to continue from when more follow (None at the end)."""
        with self._sessions() as session:
            require_conversation(session, conversation_id)
            start = after_seq or 0
            if after_id:
                start = max(start, _seq_of(session, conversation_id, after_id))
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
            return [stored_message(r) for r in rows], (rows[-1].seq if more and rows else None)

    def last_user_message(self, conversation_id: str) -> StoredMessage | None:
        with self._sessions() as session:
            row = session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.role == "user")
                .order_by(Message.seq.desc())
                .limit(1)
            )
            return stored_message(row) if row is not None else None
