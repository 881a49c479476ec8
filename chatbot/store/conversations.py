"""Conversations: creating them (web, integration API, OpenAI channel), reading them, the agents' queue.

Status changes (handoff requested, claimed, returned, closed) are in ``lifecycle.py``; this module
only creates and reads. ``ConversationRecord`` is what the agents' side sees (assignment, last
message); ``ConversationSummary`` is what the integration API shows an app (owner columns, no token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatbot.store.base import Repository, new_id
from chatbot.store.errors import ConversationNotFound
from chatbot.store.messages import StoredMessage, stored_message
from chatbot.store.models import Agent, Conversation, Message, aware


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    status: str
    channel: str
    token_hash: str | None
    assigned_agent_id: str | None
    assigned_agent_name: str | None
    handoff_reason: str | None
    handoff_requested_at: datetime | None
    flagged: bool
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    last_message: StoredMessage | None = None


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


def _record(row: Conversation, agent_name: str | None, last: Message | None = None) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        status=row.status,
        channel=row.channel,
        token_hash=row.token_hash,
        assigned_agent_id=row.assigned_agent_id,
        assigned_agent_name=agent_name,
        handoff_reason=row.handoff_reason,
        handoff_requested_at=aware(row.handoff_requested_at),
        flagged=bool(row.flagged),
        created_at=aware(row.created_at) or row.created_at,
        updated_at=aware(row.updated_at) or row.updated_at,
        closed_at=aware(row.closed_at),
        closed_by=row.closed_by,
        last_message=stored_message(last) if last is not None else None,
    )


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


def conversation_record(session: Session, conversation_id: str) -> ConversationRecord:
    """The record as this session sees it now (re-read, not cached): lifecycle changes return it after UPDATEs."""
    row = session.get(Conversation, conversation_id, populate_existing=True)
    if row is None:
        raise ConversationNotFound(conversation_id)
    name = None
    if row.assigned_agent_id is not None:
        agent = session.get(Agent, row.assigned_agent_id)
        name = agent.name if agent is not None else None
    last = session.scalar(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc()).limit(1)
    )
    return _record(row, name, last)


class ConversationRepository(Repository):
    """The ``conversations`` table, apart from status changes."""

    def create(self, channel: str = "web", token_hash: str | None = None) -> tuple[str, datetime]:
        """A conversation of the web widget or the CLI: its id and creation time."""
        with self._sessions.begin() as session:
            conversation = Conversation(id=new_id("conv"), channel=channel, token_hash=token_hash)
            session.add(conversation)
            session.flush()
            return conversation.id, conversation.created_at

    def create_reserved(self, conversation_id: str, channel: str, token_hash: str) -> bool:
        """Store a conversation whose id was handed out earlier (the customer socket reserves one on connect
        and stores it with the first message). False when it is already stored: two sockets of the same
        customer raced, and the other one created it."""
        try:
            with self._sessions.begin() as session:
                session.add(Conversation(id=conversation_id, channel=channel, token_hash=token_hash))
                session.flush()
                return True
        except IntegrityError:
            return False

    def create_owned(self, token_hash: str, api_key_id: str | None, customer_id: str | None) -> ConversationSummary:
        """One INSERT with the owner columns set, so no conversation ever exists without its owner."""
        with self._sessions.begin() as session:
            row = Conversation(
                id=new_id("conv"), channel="api", token_hash=token_hash, api_key_id=api_key_id, customer_id=customer_id
            )
            session.add(row)
            session.flush()
            return _summary(row)

    def create_with_history(
        self, channel: str, api_key_id: str, customer_id: str | None, turns: Sequence[tuple[str, str]]
    ) -> str:
        """One transaction: the conversation, owned by the key (and the verified customer), with its history.

        ``turns`` are (role, redacted text). Assistant turns a client sends are stored as assistant
        messages of kind ``history``: this engine did not produce them, and analytics lists them
        under that kind.
        """
        with self._sessions.begin() as session:
            conversation = Conversation(
                id=new_id("conv"), channel=channel, api_key_id=api_key_id, customer_id=customer_id
            )
            session.add(conversation)
            session.flush()
            for role, text in turns:
                kind = "history" if role == "assistant" else None
                session.add(Message(id=new_id("msg"), conversation_id=conversation.id, role=role, text=text, kind=kind))
            return conversation.id

    def exists(self, conversation_id: str) -> bool:
        with self._sessions() as session:
            return session.get(Conversation, conversation_id) is not None

    def get(self, conversation_id: str) -> ConversationRecord:
        with self._sessions() as session:
            return conversation_record(session, conversation_id)

    def summary(self, conversation_id: str) -> ConversationSummary:
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            if row is None:
                raise ConversationNotFound(conversation_id)
            return _summary(row)

    def for_customer(
        self, customer_id: str, before: tuple[datetime, str] | None, limit: int, *, api_key_id: str
    ) -> tuple[list[ConversationSummary], bool]:
        """A verified customer's conversations made with one API key, newest first; and whether more follow.

        A customer id is only meaningful within the key that signed it: two partners may both have a
        "cust-42", so the key is part of every lookup (partner isolation).
        """
        with self._sessions() as session:
            query = select(Conversation).where(
                Conversation.customer_id == customer_id, Conversation.api_key_id == api_key_id
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

    def queue(
        self, statuses: Sequence[str], assigned_to: str | None = None, limit: int = 50
    ) -> list[ConversationRecord]:
        """Waiting conversations first, oldest request first; then the rest, most recently updated first."""
        with self._sessions() as session:
            query = select(Conversation).where(Conversation.status.in_(list(statuses)))
            if assigned_to is not None:
                query = query.where(Conversation.assigned_agent_id == assigned_to)
            # The request time orders the waiting ones only: elsewhere it is NULL or stale, and NULLs sort
            # first in SQLite but last in PostgreSQL, which picked different rows under the limit.
            waiting_since = case((Conversation.status == "waiting", Conversation.handoff_requested_at))
            query = query.order_by(
                (Conversation.status != "waiting"), waiting_since.asc(), Conversation.updated_at.desc()
            ).limit(limit)
            rows = list(session.scalars(query))
            if not rows:
                return []
            ids = [r.id for r in rows]
            last_seq = dict(
                session.execute(
                    select(Message.conversation_id, func.max(Message.seq))
                    .where(Message.conversation_id.in_(ids))
                    .group_by(Message.conversation_id)
                ).all()
            )
            last = {
                m.conversation_id: m
                for m in session.scalars(select(Message).where(Message.seq.in_(list(last_seq.values()))))
            }
            agent_ids = {r.assigned_agent_id for r in rows if r.assigned_agent_id}
            names = dict(session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(agent_ids))).all())
            records = [_record(r, names.get(r.assigned_agent_id or ""), last.get(r.id)) for r in rows]
            waiting = sorted(
                (r for r in records if r.status == "waiting"), key=lambda r: r.handoff_requested_at or r.created_at
            )
            rest = sorted((r for r in records if r.status != "waiting"), key=lambda r: r.updated_at, reverse=True)
            return waiting + rest

    def count_waiting(self) -> int:
        """One COUNT on the indexed status (for the ``handoffs_waiting`` gauge), not the queue's full records."""
        with self._sessions() as session:
            query = select(func.count()).select_from(Conversation).where(Conversation.status == "waiting")
            return int(session.execute(query).scalar_one())
