"""The webhook outbox: one ``webhook_deliveries`` row per conversation event, until it is delivered.

Signing, sending and the retry policy are ``chatbot/integration/webhooks.py``'s work. Here are the
rows: an event is written with its envelope, and a worker *claims* a due row with one conditional
UPDATE of ``locked_until`` (only a row whose lock is empty or expired matches), so with several
server processes each attempt is made by exactly one of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from chatbot.store.base import Repository, changed_rows, new_id
from chatbot.store.models import Conversation, WebhookDelivery, aware, utcnow


class WebhookOutbox(Repository):
    """The ``webhook_deliveries`` table."""

    def enqueue(self, event: str, conversation_id: str | None, data: dict[str, Any]) -> str:
        """Write one event, due now; returns its id (the receivers' ``Kestrel-Delivery``).

        The envelope is built here because it carries the conversation's verified ``customer_id``
        (the partner's own id, when there is one), read in the same transaction as the insert.
        """
        event_id = new_id("evt")
        created = utcnow()
        with self._sessions.begin() as session:
            payload_data = dict(data)
            if conversation_id is not None:
                customer = session.scalar(select(Conversation.customer_id).where(Conversation.id == conversation_id))
                if customer is not None:
                    payload_data.setdefault("customer_id", customer)
            payload = {
                "id": event_id,
                "event": event,
                "created_at": created.isoformat(),
                "conversation_id": conversation_id,
                "data": payload_data,
            }
            session.add(
                WebhookDelivery(
                    id=event_id, event=event, conversation_id=conversation_id, payload=payload, next_attempt_at=created
                )
            )
        return event_id

    def claim_due(self, moment: datetime, lease_until: datetime, limit: int) -> list[tuple[str, int, dict[str, Any]]]:
        """Lock up to ``limit`` rows due at ``moment`` until ``lease_until``: (id, attempts so far, payload) of
        each one this call won (another process may win some of the candidates)."""
        unlocked = or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < moment)
        due = (WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= moment, unlocked)
        with self._sessions() as session:
            candidates = list(
                session.execute(
                    select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.payload)
                    .where(*due)
                    .order_by(WebhookDelivery.seq)
                    .limit(limit)
                )
            )
        won = []
        for delivery_id, attempts, payload in candidates:
            with self._sessions.begin() as session:
                result = session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id, *due)
                    .values(locked_until=lease_until)
                    .execution_options(synchronize_session=False)
                )
                if changed_rows(result) == 1:
                    won.append((delivery_id, attempts, dict(payload)))
        return won

    def record_attempt(self, delivery_id: str, **values: Any) -> None:
        """Store one attempt's outcome (``attempts``, ``status``, ``last_error``, ``next_attempt_at``,
        ``delivered_at``: the columns the delivery policy decides) and release the row's lock."""
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(**values, locked_until=None)
                .execution_options(synchronize_session=False)
            )

    def pending_due_times(self, moment: datetime, limit: int) -> list[datetime]:
        """When each of the ``limit`` earliest pending rows is due: its next attempt, or later when another
        process holds its lock (it is due again when the lock expires, not before)."""
        with self._sessions() as session:
            rows = list(
                session.execute(
                    select(WebhookDelivery.next_attempt_at, WebhookDelivery.locked_until)
                    .where(WebhookDelivery.status == "pending")
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                )
            )
        return [max(aware(n) or moment, aware(locked) or moment) for n, locked in rows]
