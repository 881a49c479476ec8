"""The conversation lifecycle: bot → waiting → assigned → bot or closed, and back.

Every status change is one ``UPDATE … WHERE status IN (…)``: the database, not the Python process,
decides which of two concurrent requests wins, so two agents claiming the same conversation (in
one process or in several) get exactly one success, in SQLite and PostgreSQL alike. Each change
also writes a ``handoff_events`` row (the audit trail and analytics read them) in the same
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from chatbot.store.base import Repository, changed_rows
from chatbot.store.conversations import ConversationRecord, conversation_record
from chatbot.store.errors import LifecycleConflict
from chatbot.store.models import Conversation, HandoffEvent, utcnow
from chatbot.store.suggestions import ignore_pending


def _event(
    session: Session, conversation_id: str, event: str, reason: str | None = None, agent_id: str | None = None
) -> None:
    session.add(HandoffEvent(conversation_id=conversation_id, event=event, reason=reason, agent_id=agent_id))


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
    return changed_rows(session.execute(statement)) > 0


def _holder_condition(agent_id: str, is_admin: bool) -> Any:
    mine = Conversation.assigned_agent_id == agent_id
    return Conversation.status == "assigned" if is_admin else and_(Conversation.status == "assigned", mine)


def _explain(session: Session, conversation_id: str, default: str) -> None:
    """Raise the conflict that explains why a transition matched no row (ConversationNotFound if none exists)."""
    record = conversation_record(session, conversation_id)
    if record.status == "closed":
        raise LifecycleConflict("conversation_closed", record.status)
    if record.status == "assigned":
        raise LifecycleConflict("not_assigned_to_you", record.status)
    raise LifecycleConflict(default, record.status)


class LifecycleRepository(Repository):
    """Status changes of the ``conversations`` table, each with its ``handoff_events`` row."""

    def request_handoff(self, conversation_id: str, reason: str) -> tuple[bool, ConversationRecord]:
        """bot (or closed) → waiting; ``False`` when the conversation was already waiting or assigned."""
        with self._sessions.begin() as session:
            changed = _transition(
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
                _event(session, conversation_id, "requested", reason)
            return changed, conversation_record(session, conversation_id)

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
                if _transition(session, conversation_id, Conversation.status == source, **values):
                    if source == "bot":
                        _event(session, conversation_id, "requested", "agent_takeover", agent_id)
                    _event(session, conversation_id, "claimed", None, agent_id)
                    return outcome, conversation_record(session, conversation_id)
            record = conversation_record(session, conversation_id)
            if record.status == "assigned" and record.assigned_agent_id == agent_id:
                return "already_mine", record
            if record.status == "closed":
                raise LifecycleConflict("conversation_closed", record.status)
            raise LifecycleConflict("already_assigned", record.status)

    def return_to_bot(self, conversation_id: str, agent_id: str, is_admin: bool = False) -> ConversationRecord:
        """waiting → bot, or assigned (to this agent, or any agent for an admin) → bot."""
        with self._sessions.begin() as session:
            allowed = or_(Conversation.status == "waiting", _holder_condition(agent_id, is_admin))
            if not _transition(session, conversation_id, allowed, status="bot", assigned_agent_id=None):
                _explain(session, conversation_id, "not_in_handoff")
            _event(session, conversation_id, "returned", None, agent_id)
            ignore_pending(session, conversation_id)
            return conversation_record(session, conversation_id)

    def close(
        self, conversation_id: str, agent_id: str | None, is_admin: bool = False, closed_by: str = "agent"
    ) -> ConversationRecord:
        """Any status but closed → closed; an assigned conversation only by its agent (or an admin)."""
        with self._sessions.begin() as session:
            allowed: Any = Conversation.status.in_(("bot", "waiting"))
            if agent_id is not None:
                allowed = or_(allowed, _holder_condition(agent_id, is_admin))
            closed = {"status": "closed", "closed_at": utcnow(), "closed_by": closed_by}
            if not _transition(session, conversation_id, allowed, **closed):
                _explain(session, conversation_id, "conversation_closed")
            _event(session, conversation_id, "closed", closed_by, agent_id)
            ignore_pending(session, conversation_id)
            return conversation_record(session, conversation_id)

    def reopen(self, conversation_id: str) -> bool:
        """closed → bot, when the customer writes again after an agent closed the conversation."""
        with self._sessions.begin() as session:
            changed = _transition(
                session, conversation_id, Conversation.status == "closed", status="bot", assigned_agent_id=None
            )
            if changed:
                _event(session, conversation_id, "reopened")
            return changed

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
                if changed_rows(
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
