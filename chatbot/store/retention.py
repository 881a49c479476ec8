"""Retention: delete or anonymise transcripts nobody has touched for N days (``chatbot purge``).

Banks must not keep customer conversations longer than their policy says, but they do want the
numbers (how many answers of each kind, how fast, how often a person was needed). So there are
two modes:

* ``delete``: the conversation and everything hanging off it go (messages, notes, suggestions,
  feedback, handoff events, webhook deliveries, idempotency responses);
* ``anonymise``: the rows stay for analytics, but every message text becomes
  ``REMOVED_TEXT``, notes, suggestion texts and feedback comments are blanked, the customer id and
  the customer token's hash are cleared (the customer can no longer open it) and ``anonymised_at``
  is set; kinds, intents, latencies, ratings and handoff reasons are kept. Webhook deliveries and
  stored idempotency responses, which may quote the transcript, are deleted.

A conversation's last activity is the later of its ``updated_at`` and its newest message. Open
conversations (waiting for or assigned to an agent) are never purged, however old. The work runs
in batches (one transaction each), so a purge of millions of rows neither holds one huge
transaction nor loses what it did when interrupted; every batch re-checks the conditions in its
own transaction (rows locked on PostgreSQL), so a conversation that became active again since the
purge started is kept. The audit log is kept (it holds no transcript text) and records every purge
(a dry run changes nothing, the audit log included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, String, delete, exists, func, literal, select, update
from sqlalchemy.orm import Session

from chatbot.store.base import changed_rows
from chatbot.store.models import (
    Conversation,
    Feedback,
    HandoffEvent,
    IdempotencyRecord,
    Message,
    Note,
    Suggestion,
    WebhookDelivery,
)
from chatbot.store.repository import Store

Mode = Literal["delete", "anonymise"]
MODES: tuple[Mode, ...] = ("delete", "anonymise")
REMOVED_TEXT = "[removed by retention policy]"
OPEN_STATUSES = ("waiting", "assigned")
BATCH_SIZE = 500


@dataclass
class PurgeReport:
    """What a purge did (or, with ``dry_run``, would do): counts only, as the audit event stores them."""

    mode: Mode
    days: int
    cutoff: datetime
    dry_run: bool
    conversations: int = 0
    messages: int = 0
    notes: int = 0
    suggestions: int = 0
    feedback: int = 0
    handoff_events: int = 0
    webhook_deliveries: int = 0
    idempotency_keys: int = 0
    batches: int = 0
    kept_open: int = 0  # old conversations kept because they wait for, or are with, an agent

    def counts(self) -> dict[str, int]:
        keys = ("conversations", "messages", "notes", "suggestions", "feedback", "handoff_events")
        return {k: getattr(self, k) for k in (*keys, "webhook_deliveries", "idempotency_keys", "kept_open")}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        return data


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    if days < 1:
        raise ValueError("retention needs at least 1 day")
    return (now or datetime.now(UTC)) - timedelta(days=days)


def _inactive(cutoff: datetime) -> ColumnElement[bool]:
    """No activity since ``cutoff``: neither the conversation row nor any of its messages is newer."""
    recent_message = exists().where(Message.conversation_id == Conversation.id, Message.created_at >= cutoff)
    return (Conversation.updated_at < cutoff) & ~recent_message


def _candidates(cutoff: datetime, mode: Mode) -> Select[Any]:
    query = select(Conversation.id).where(_inactive(cutoff), Conversation.status.not_in(OPEN_STATUSES))
    if mode == "anonymise":
        query = query.where(Conversation.anonymised_at.is_(None))
    return query


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def count_candidates(store: Store, days: int, mode: Mode, now: datetime | None = None) -> int:
    with store.sessions() as session:
        return _count(session, _candidates(cutoff_for(days, now), mode))


def _dry_run(session: Session, report: PurgeReport, cutoff: datetime, mode: Mode) -> None:
    ids = _candidates(cutoff, mode).scalar_subquery()
    report.conversations = _count(session, _candidates(cutoff, mode))
    for name, model in (
        ("messages", Message),
        ("notes", Note),
        ("suggestions", Suggestion),
        ("feedback", Feedback),
        ("handoff_events", HandoffEvent),
        ("webhook_deliveries", WebhookDelivery),
    ):
        column = model.conversation_id  # type: ignore[attr-defined]
        setattr(report, name, _count(session, select(column).where(column.in_(ids))))
    if mode == "anonymise":
        report.handoff_events = 0  # kept as they are
    report.idempotency_keys = _count(session, _idempotency_rows(session, cutoff, ids))


def _idempotency_rows(session: Session, cutoff: datetime, ids: Any) -> Select[Any]:
    """Stored responses of these conversations' messages, and any response older than the cutoff."""
    scopes = select(literal("conv:", String) + Conversation.id).where(Conversation.id.in_(ids))
    return select(IdempotencyRecord.key).where(
        IdempotencyRecord.scope.in_(scopes.scalar_subquery()) | (IdempotencyRecord.created_at < cutoff)
    )


def _purge_batch(session: Session, report: PurgeReport, ids: Sequence[str], mode: Mode) -> None:
    scopes = [f"conv:{i}" for i in ids]
    report.webhook_deliveries += changed_rows(
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.conversation_id.in_(ids)))
    )
    report.idempotency_keys += changed_rows(
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.scope.in_(scopes)))
    )
    if mode == "delete":
        for name, model in (
            ("feedback", Feedback),
            ("suggestions", Suggestion),
            ("notes", Note),
            ("handoff_events", HandoffEvent),
            ("messages", Message),
        ):
            column = model.conversation_id  # type: ignore[attr-defined]
            deleted = changed_rows(session.execute(delete(model).where(column.in_(ids))))
            setattr(report, name, getattr(report, name) + deleted)
        report.conversations += changed_rows(session.execute(delete(Conversation).where(Conversation.id.in_(ids))))
        return
    now = datetime.now(UTC)
    report.messages += changed_rows(
        session.execute(update(Message).where(Message.conversation_id.in_(ids)).values(text=REMOVED_TEXT))
    )
    report.notes += changed_rows(session.execute(update(Note).where(Note.conversation_id.in_(ids)).values(text="")))
    report.suggestions += changed_rows(
        session.execute(update(Suggestion).where(Suggestion.conversation_id.in_(ids)).values(text=""))
    )
    report.feedback += changed_rows(
        session.execute(
            update(Feedback)
            .where(Feedback.conversation_id.in_(ids))
            .values(comment=None, created_at=Feedback.created_at)
        )
    )
    report.conversations += changed_rows(
        session.execute(
            update(Conversation)
            .where(Conversation.id.in_(ids))
            # updated_at kept as it was (not the model's onupdate): anonymising is not customer activity.
            .values(customer_id=None, token_hash=None, anonymised_at=now, updated_at=Conversation.updated_at)
            .execution_options(synchronize_session=False)
        )
    )


def purge(
    store: Store,
    days: int,
    mode: Mode,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    actor_id: str | None = None,
) -> PurgeReport:
    """Delete or anonymise the conversations inactive for ``days`` days; write one audit event (not when dry).

    ``progress(done, total)`` is called after every batch (the CLI draws a progress bar with it).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = cutoff_for(days, now)
    report = PurgeReport(mode=mode, days=days, cutoff=cutoff, dry_run=dry_run)
    with store.sessions() as session:
        total = _count(session, _candidates(cutoff, mode))
        report.kept_open = _count(
            session, select(Conversation.id).where(_inactive(cutoff), Conversation.status.in_(OPEN_STATUSES))
        )
        if dry_run:
            _dry_run(session, report, cutoff, mode)
    if not dry_run:
        last_id = ""
        while True:
            with store.sessions.begin() as session:
                # Re-checked in this transaction, rows locked (PostgreSQL): activity since the count keeps a
                # conversation, and a write racing the batch waits for it instead of interleaving.
                query = (
                    _candidates(cutoff, mode)
                    .where(Conversation.id > last_id)
                    .order_by(Conversation.id)
                    .limit(batch_size)
                    .with_for_update(of=Conversation)
                )
                ids = list(session.scalars(query))
                if not ids:
                    break
                _purge_batch(session, report, ids, mode)
                report.batches += 1
                last_id = ids[-1]
            if progress is not None:
                progress(report.conversations, total)
        # responses older than the cutoff, whoever they belonged to
        report.idempotency_keys += store.idempotency.delete_before(cutoff)
    if dry_run:
        return report  # a dry run changes nothing, the audit log included
    store.audit_log.record(
        "operator",
        actor_id,
        "retention.purge",
        detail={"mode": mode, "days": days, "dry_run": dry_run, **report.counts()},
    )
    return report
