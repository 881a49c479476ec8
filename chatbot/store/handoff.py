"""Database operations of the human handoff: agents, the conversation lifecycle, notes, suggestions, feedback.

A mixin of ``Store`` (the only code that talks to the database). Every status change is one
``UPDATE … WHERE status IN (…)``: the database, not the Python process, decides which of two
concurrent requests wins, so two agents claiming the same conversation (in one process or in
several) get exactly one success, in SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import chatbot.store.repository as repository
from chatbot.store.models import (
    Agent,
    Conversation,
    Feedback,
    HandoffEvent,
    Message,
    Note,
    Suggestion,
    aware,
    utcnow,
)

OPEN_HANDOFF = ("waiting", "assigned")


class AgentExists(ValueError):
    pass


class MessageNotFound(LookupError):
    pass


class LifecycleConflict(Exception):
    """A status change that the conversation's current state forbids; ``code`` is the API error code."""

    def __init__(self, code: str, status: str) -> None:
        super().__init__(code)
        self.code, self.status = code, status


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    role: str
    active: bool
    created_at: datetime
    password_hash: str = ""

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "role": self.role}


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
    last_message: repository.StoredMessage | None = None


@dataclass(frozen=True)
class NoteRecord:
    id: str
    conversation_id: str
    agent_name: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class SuggestionRecord:
    id: str
    conversation_id: str
    message_id: str | None
    kind: str
    text: str
    sources: list[dict[str, Any]]
    outcome: str


@dataclass(frozen=True)
class AnalyticsData:
    """Plain rows for chatbot/agents/analytics.py, so the numbers are computed (and tested) in one place."""

    conversation_ids: list[str]
    requested: list[tuple[str, str | None]]  # (conversation id, reason) of every handoff request
    agent_conversations: set[str]  # conversations where an agent wrote or claimed
    answers: list[tuple[str, str | None, int | None]]  # (message id, kind, latency_ms) of assistant messages
    feedback: list[tuple[str, str]]  # (message id, rating)
    suggestion_outcomes: list[str]
    unanswered: list[tuple[str, str]]  # (customer question, "fallback" | "refusal" | "thumbs_down")


def _agent(row: Agent, with_hash: bool = False) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        active=bool(row.active),
        created_at=row.created_at,
        password_hash=row.password_hash if with_hash else "",
    )


def _conversation(row: Conversation, agent_name: str | None, last: Message | None = None) -> ConversationRecord:
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
        last_message=repository._stored(last) if last is not None else None,
    )


def _suggestion(row: Suggestion) -> SuggestionRecord:
    return SuggestionRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        kind=row.kind,
        text=row.text,
        sources=list(row.sources or []),
        outcome=row.outcome,
    )


def _rows(result: Any) -> int:
    """Rows an UPDATE changed (a CursorResult's rowcount; the generic Result type does not declare it)."""
    return int(result.rowcount)


class HandoffRepository:
    _sessions: sessionmaker[Session]

    # ------------------------------------------------------------------ agents
    def create_agent(self, name: str, role: str, password_hash: str) -> AgentRecord:
        try:
            with self._sessions.begin() as session:
                if session.scalar(select(Agent).where(Agent.name == name)) is not None:
                    raise AgentExists(name)
                row = Agent(id=repository.new_id("agt"), name=name, role=role, password_hash=password_hash)
                session.add(row)
                session.flush()
                return _agent(row)
        except IntegrityError:  # a concurrent create of the same name
            raise AgentExists(name) from None

    def agent_by_name(self, name: str) -> AgentRecord | None:
        with self._sessions() as session:
            row = session.scalar(select(Agent).where(Agent.name == name))
            return _agent(row, with_hash=True) if row is not None else None

    def agent_by_id(self, agent_id: str) -> AgentRecord | None:
        with self._sessions() as session:
            row = session.get(Agent, agent_id)
            return _agent(row) if row is not None else None

    def list_agents(self) -> list[AgentRecord]:
        with self._sessions() as session:
            return [_agent(r) for r in session.scalars(select(Agent).order_by(Agent.name))]

    def set_agent_active(self, name: str, active: bool) -> bool:
        """Enable or disable an account; a disabled agent's tokens stop working at once. False: no such name."""
        with self._sessions.begin() as session:
            return _rows(session.execute(update(Agent).where(Agent.name == name).values(active=active))) == 1

    def set_password_hash(self, agent_id: str, password_hash: str) -> None:
        with self._sessions.begin() as session:
            session.execute(update(Agent).where(Agent.id == agent_id).values(password_hash=password_hash))

    # ------------------------------------------------------------------ conversations
    def _record(self, session: Session, conversation_id: str) -> ConversationRecord:
        row = session.get(Conversation, conversation_id, populate_existing=True)
        if row is None:
            raise repository.ConversationNotFound(conversation_id)
        name = None
        if row.assigned_agent_id is not None:
            agent = session.get(Agent, row.assigned_agent_id)
            name = agent.name if agent is not None else None
        last = session.scalar(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.seq.desc()).limit(1)
        )
        return _conversation(row, name, last)

    def conversation(self, conversation_id: str) -> ConversationRecord:
        with self._sessions() as session:
            return self._record(session, conversation_id)

    def _event(
        self, session: Session, conversation_id: str, event: str, reason: str | None = None, agent_id: str | None = None
    ) -> None:
        session.add(HandoffEvent(conversation_id=conversation_id, event=event, reason=reason, agent_id=agent_id))

    @staticmethod
    def _transition(session: Session, conversation_id: str, allowed: Any, **values: Any) -> bool:
        """One conditional UPDATE: the conversation changes only if ``allowed`` holds for it now.

        This is what makes the lifecycle safe under concurrency (two agents claiming at once: the
        second UPDATE matches no row), in SQLite and PostgreSQL alike.
        """
        statement = (
            update(Conversation)
            .where(Conversation.id == conversation_id, allowed)
            .values(**values, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return _rows(session.execute(statement)) > 0

    def request_handoff(self, conversation_id: str, reason: str) -> tuple[bool, ConversationRecord]:
        """bot (or closed) → waiting; ``False`` when the conversation was already waiting or assigned."""
        with self._sessions.begin() as session:
            changed = self._transition(
                session,
                conversation_id,
                Conversation.status.in_(("bot", "closed")),
                status="waiting",
                handoff_reason=reason,
                handoff_requested_at=utcnow(),
                flagged=False,
                assigned_agent_id=None,
                closed_at=None,
                closed_by=None,
            )
            if changed:
                self._event(session, conversation_id, "requested", reason)
            return changed, self._record(session, conversation_id)

    def claim(self, conversation_id: str, agent_id: str) -> tuple[str, ConversationRecord]:
        """waiting → assigned ("claimed"), or bot → assigned ("taken_over"); one atomic UPDATE each.

        Returns ``("already_mine", …)`` when this agent holds it already; raises LifecycleConflict
        ``already_assigned`` / ``conversation_closed`` otherwise.
        """
        with self._sessions.begin() as session:
            for source, outcome in (("waiting", "claimed"), ("bot", "taken_over")):
                values: dict[str, Any] = {"status": "assigned", "assigned_agent_id": agent_id}
                if source == "bot":
                    values |= {"handoff_reason": "agent_takeover", "handoff_requested_at": utcnow(), "flagged": False}
                if self._transition(session, conversation_id, Conversation.status == source, **values):
                    if source == "bot":
                        self._event(session, conversation_id, "requested", "agent_takeover", agent_id)
                    self._event(session, conversation_id, "claimed", None, agent_id)
                    return outcome, self._record(session, conversation_id)
            record = self._record(session, conversation_id)
            if record.status == "assigned" and record.assigned_agent_id == agent_id:
                return "already_mine", record
            if record.status == "closed":
                raise LifecycleConflict("conversation_closed", record.status)
            raise LifecycleConflict("already_assigned", record.status)

    def _holder_condition(self, agent_id: str, is_admin: bool) -> Any:
        mine = Conversation.assigned_agent_id == agent_id
        return Conversation.status == "assigned" if is_admin else and_(Conversation.status == "assigned", mine)

    def return_to_bot(self, conversation_id: str, agent_id: str, is_admin: bool = False) -> ConversationRecord:
        """waiting → bot, or assigned (to this agent, or any agent for an admin) → bot."""
        with self._sessions.begin() as session:
            allowed = or_(Conversation.status == "waiting", self._holder_condition(agent_id, is_admin))
            if not self._transition(session, conversation_id, allowed, status="bot", assigned_agent_id=None):
                self._explain(session, conversation_id, "not_in_handoff")
            self._event(session, conversation_id, "returned", None, agent_id)
            self._ignore_pending(session, conversation_id)
            return self._record(session, conversation_id)

    def close_conversation(
        self, conversation_id: str, agent_id: str | None, is_admin: bool = False, closed_by: str = "agent"
    ) -> ConversationRecord:
        """Any status but closed → closed; an assigned conversation only by its agent (or an admin)."""
        with self._sessions.begin() as session:
            allowed: Any = Conversation.status.in_(("bot", "waiting"))
            if agent_id is not None:
                allowed = or_(allowed, self._holder_condition(agent_id, is_admin))
            closed = {"status": "closed", "closed_at": utcnow(), "closed_by": closed_by}
            if not self._transition(session, conversation_id, allowed, **closed):
                self._explain(session, conversation_id, "conversation_closed")
            self._event(session, conversation_id, "closed", closed_by, agent_id)
            self._ignore_pending(session, conversation_id)
            return self._record(session, conversation_id)

    def reopen(self, conversation_id: str) -> bool:
        """closed → bot, when the customer writes again after an agent closed the conversation."""
        with self._sessions.begin() as session:
            changed = self._transition(
                session, conversation_id, Conversation.status == "closed", status="bot", assigned_agent_id=None
            )
            if changed:
                self._event(session, conversation_id, "reopened")
            return changed

    def _explain(self, session: Session, conversation_id: str, default: str) -> None:
        record = self._record(session, conversation_id)  # raises ConversationNotFound
        if record.status == "closed":
            raise LifecycleConflict("conversation_closed", record.status)
        if record.status == "assigned":
            raise LifecycleConflict("not_assigned_to_you", record.status)
        raise LifecycleConflict(default, record.status)

    def flag_overdue(self, requested_before: datetime) -> list[str]:
        """Flag waiting conversations nobody took in time; return the ones flagged now."""
        with self._sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(Conversation.id).where(
                        Conversation.status == "waiting",
                        Conversation.flagged == False,  # noqa: E712 (SQL expression)
                        Conversation.handoff_requested_at < requested_before,
                    )
                )
            )
            # One conditional UPDATE per conversation decides who flags it: with several server
            # processes watching, only the one whose UPDATE changed the row reports (and broadcasts) it.
            # In id order, so two watchers lock rows in the same order and cannot deadlock.
            return [
                cid
                for cid in sorted(ids)
                if _rows(
                    session.execute(
                        update(Conversation)
                        .where(
                            Conversation.id == cid,
                            Conversation.status == "waiting",
                            Conversation.flagged == False,  # noqa: E712 (SQL expression)
                        )
                        .values(flagged=True)
                        .execution_options(synchronize_session=False)
                    )
                )
                > 0
            ]

    def list_conversations(
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
            records = [_conversation(r, names.get(r.assigned_agent_id or ""), last.get(r.id)) for r in rows]
            waiting = sorted(
                (r for r in records if r.status == "waiting"), key=lambda r: r.handoff_requested_at or r.created_at
            )
            rest = sorted((r for r in records if r.status != "waiting"), key=lambda r: r.updated_at, reverse=True)
            return waiting + rest

    # ------------------------------------------------------------------ messages
    def add_message(
        self, conversation_id: str, role: str, text: str, kind: str | None = None, agent_id: str | None = None
    ) -> repository.StoredMessage:
        """A customer, agent or system message (assistant answers go through ``add_answer``)."""
        with self._sessions.begin() as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                raise repository.ConversationNotFound(conversation_id)
            row = Message(
                id=repository.new_id("msg"),
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
            return repository._stored(row)

    def message(self, message_id: str) -> repository.StoredMessage | None:
        with self._sessions() as session:
            row = session.scalar(select(Message).where(Message.id == message_id))
            return repository._stored(row) if row is not None else None

    def messages_after(self, conversation_id: str, after: str | None) -> list[repository.StoredMessage]:
        """Messages stored after ``after`` (a message id of this conversation), in the order they were stored."""
        with self._sessions() as session:
            if session.get(Conversation, conversation_id) is None:
                raise repository.ConversationNotFound(conversation_id)
            query = select(Message).where(Message.conversation_id == conversation_id)
            if after:
                seq = session.scalar(
                    select(Message.seq).where(Message.id == after, Message.conversation_id == conversation_id)
                )
                if seq is None:
                    raise MessageNotFound(after)
                query = query.where(Message.seq > seq)
            return [repository._stored(r) for r in session.scalars(query.order_by(Message.seq))]

    def last_user_message(self, conversation_id: str) -> repository.StoredMessage | None:
        with self._sessions() as session:
            row = session.scalar(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.role == "user")
                .order_by(Message.seq.desc())
                .limit(1)
            )
            return repository._stored(row) if row is not None else None

    # ------------------------------------------------------------------ notes
    def add_note(self, conversation_id: str, agent_id: str, text: str) -> NoteRecord:
        with self._sessions.begin() as session:
            if session.get(Conversation, conversation_id) is None:
                raise repository.ConversationNotFound(conversation_id)
            row = Note(id=repository.new_id("note"), conversation_id=conversation_id, agent_id=agent_id, text=text)
            session.add(row)
            session.flush()
            session.refresh(row)
            return NoteRecord(row.id, row.conversation_id, row.agent.name, row.text, aware(row.created_at) or utcnow())

    def notes(self, conversation_id: str) -> list[NoteRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(Note).where(Note.conversation_id == conversation_id).order_by(Note.seq))
            return [
                NoteRecord(r.id, r.conversation_id, r.agent.name, r.text, aware(r.created_at) or utcnow()) for r in rows
            ]

    # ------------------------------------------------------------------ suggestions
    def _ignore_pending(self, session: Session, conversation_id: str, keep: str | None = None) -> None:
        query = update(Suggestion).where(Suggestion.conversation_id == conversation_id, Suggestion.outcome == "pending")
        if keep is not None:
            query = query.where(Suggestion.id != keep)
        session.execute(query.values(outcome="ignored").execution_options(synchronize_session=False))

    def add_suggestions(
        self, conversation_id: str, message_id: str | None, agent_id: str, items: Iterable[tuple[str, str, list[Any]]]
    ) -> list[SuggestionRecord]:
        """Store a new set of suggestions (kind, text, sources); earlier pending ones were not used: ignored."""
        with self._sessions.begin() as session:
            self._ignore_pending(session, conversation_id)
            rows = [
                Suggestion(
                    id=repository.new_id("sug"),
                    conversation_id=conversation_id,
                    message_id=message_id,
                    agent_id=agent_id,
                    kind=kind,
                    text=text,
                    sources=sources,
                )
                for kind, text, sources in items
            ]
            session.add_all(rows)
            session.flush()
            return [_suggestion(r) for r in rows]

    def suggestion(self, suggestion_id: str) -> SuggestionRecord | None:
        with self._sessions() as session:
            row = session.scalar(select(Suggestion).where(Suggestion.id == suggestion_id))
            return _suggestion(row) if row is not None else None

    def resolve_suggestions(self, conversation_id: str, used: str | None, outcome: str, message_id: str) -> None:
        """After an agent message: the suggestion it used is sent/edited, every other pending one ignored."""
        with self._sessions.begin() as session:
            if used is not None:
                session.execute(
                    update(Suggestion)
                    .where(Suggestion.id == used)
                    .values(outcome=outcome, used_message_id=message_id)
                    .execution_options(synchronize_session=False)
                )
            self._ignore_pending(session, conversation_id, keep=used)

    # ------------------------------------------------------------------ feedback
    def set_feedback(self, message_id: str, conversation_id: str, rating: str, comment: str | None) -> None:
        with self._sessions.begin() as session:
            row = session.scalar(select(Feedback).where(Feedback.message_id == message_id))
            if row is None:
                session.add(
                    Feedback(message_id=message_id, conversation_id=conversation_id, rating=rating, comment=comment)
                )
            else:
                row.rating, row.comment, row.created_at = rating, comment, utcnow()

    # ------------------------------------------------------------------ analytics
    def analytics_data(self, since: datetime) -> AnalyticsData:
        with self._sessions() as session:
            asked = (
                select(Message.conversation_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.created_at >= since, Message.role == "user")
                .distinct()
            )
            conversation_ids = list(session.scalars(asked))
            in_window = Conversation.created_at >= since
            requested = [
                (c, r)
                for c, r in session.execute(
                    select(HandoffEvent.conversation_id, HandoffEvent.reason)
                    .join(Conversation, Conversation.id == HandoffEvent.conversation_id)
                    .where(in_window, HandoffEvent.event == "requested")
                ).all()
            ]
            humans = set(
                session.scalars(
                    select(HandoffEvent.conversation_id)
                    .join(Conversation, Conversation.id == HandoffEvent.conversation_id)
                    .where(in_window, HandoffEvent.event == "claimed")
                )
            ) | set(
                session.scalars(
                    select(Message.conversation_id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(in_window, Message.role == "agent")
                )
            )
            messages = list(
                session.execute(
                    select(
                        Message.id,
                        Message.conversation_id,
                        Message.role,
                        Message.text,
                        Message.kind,
                        Message.latency_ms,
                    )
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(in_window)
                    .order_by(Message.seq)
                ).all()
            )
            feedback = [
                (m, r)
                for m, r in session.execute(
                    select(Feedback.message_id, Feedback.rating)
                    .join(Conversation, Conversation.id == Feedback.conversation_id)
                    .where(in_window)
                ).all()
            ]
            outcomes = list(
                session.scalars(
                    select(Suggestion.outcome)
                    .join(Conversation, Conversation.id == Suggestion.conversation_id)
                    .where(in_window)
                )
            )
        answers: list[tuple[str, str | None, int | None]] = []
        question_of: dict[str, str] = {}
        last_question: dict[str, str] = {}
        for message_id, conversation_id, role, text, kind, latency in messages:
            if role == "user":
                last_question[conversation_id] = text
            elif role == "assistant":
                answers.append((message_id, kind, latency))
                if conversation_id in last_question:
                    question_of[message_id] = last_question[conversation_id]
        unanswered = [
            (question_of[m], str(k)) for m, k, _ in answers if k in ("fallback", "refusal") and m in question_of
        ]
        unanswered += [(question_of[m], "thumbs_down") for m, r in feedback if r == "down" and m in question_of]
        return AnalyticsData(
            conversation_ids=conversation_ids,
            requested=requested,
            agent_conversations=humans,
            answers=answers,
            feedback=feedback,
            suggestion_outcomes=outcomes,
            unanswered=unanswered,
        )
