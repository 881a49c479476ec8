"""Webhooks: conversation events POSTed, signed, to ``settings.webhook_url``, with retries.

Events: ``handoff.requested``, ``conversation.assigned``, ``conversation.closed``,
``feedback.created``. ``enqueue`` writes a row to the ``webhook_deliveries`` outbox right after the
change it reports; a ``WebhookWorker`` in every server process delivers due rows. Each worker
*claims* a row with one conditional UPDATE of ``locked_until`` (only a row whose lock is empty or
expired matches), so with several processes every attempt is made by exactly one of them. A failed
attempt (non-2xx, timeout, refused connection) is retried after an exponential backoff with jitter;
after ``webhook_max_attempts`` the row is ``failed``. Delivery is at least once: receivers dedupe
on the ``Kestrel-Delivery`` header (the event id).

Each request carries ``Kestrel-Event``, ``Kestrel-Delivery`` and ``Kestrel-Signature:
t=<unix time>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``; receivers check it with
``verify_signature``. Payloads hold ids, statuses and redacted text only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from chatbot.config import Settings
from chatbot.store import Store
from chatbot.store.models import utcnow

log = logging.getLogger(__name__)

EVENTS = ("handoff.requested", "conversation.assigned", "conversation.closed", "feedback.created")
SIGNATURE_HEADER = "Kestrel-Signature"
MAX_BACKOFF_S = 3600.0
BATCH = 20


def webhook_secret(settings: Settings, server_secret: str) -> str:
    """``webhook_secret``, or one derived from the server's secret key (never the key itself, which signs
    agent tokens): HMAC-SHA256(secret key, "webhook"). ``chatbot keys webhook-secret`` prints it."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return hmac.new(server_secret.encode(), b"webhook", hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Kestrel-Signature`` header value for ``body``."""
    moment = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={mac}"


def verify_signature(
    secret: str, header: str | None, body: bytes | str, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """For receivers: True when ``header`` (``Kestrel-Signature``) signs exactly ``body`` (the raw request
    bytes) with ``secret`` and its timestamp is within ``tolerance_s`` of now (replays are refused)."""
    if not header:
        return False
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


def backoff_s(attempts: int, base_s: float, rng: random.Random | None = None) -> float:
    """Wait before the next attempt after ``attempts`` failures: base·2^(n-1), capped, with jitter in [½, 1]."""
    ceiling = min(MAX_BACKOFF_S, base_s * (2 ** max(0, attempts - 1)))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def enqueue(
    settings: Settings, store: Store, event: str, conversation_id: str | None, data: dict[str, Any]
) -> str | None:
    """Write one event to the outbox (nothing when no webhook_url is set); returns its id.

    ``data`` must hold ids, statuses and redacted text only. The conversation's verified
    ``customer_id`` (the partner's own id) is added when there is one.
    """
    if not settings.webhook_url:
        return None
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    event_id = store.outbox.enqueue(event, conversation_id, data)
    WebhookWorker.wake_all()
    return event_id


async def emit(settings: Settings, store: Store, event: str, conversation_id: str | None, **data: Any) -> None:
    """``enqueue`` from async code; an outbox failure is logged, never fails the customer's or agent's action."""
    if not settings.webhook_url:
        return
    try:
        await asyncio.to_thread(enqueue, settings, store, event, conversation_id, data)
    except Exception:
        log.exception("webhook event not recorded", extra={"event": event, "conversation": conversation_id})


class WebhookWorker:
    """Delivers due outbox rows of one database; one per server process (started in the app's lifespan)."""

    _instances: set[WebhookWorker] = set()  # noqa: RUF012 (a registry, so enqueue can wake local workers)

    def __init__(
        self,
        settings: Settings,
        store: Store,
        secret: str,
        poll_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings, self.store, self.secret, self.poll_s = settings, store, secret, poll_s
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport = transport
        self.lease = timedelta(seconds=settings.webhook_timeout_s + 30)

    @classmethod
    def started(cls, settings: Settings, store: Store, server_secret: str) -> WebhookWorker:
        """A worker, running when a webhook_url is set (call from the app's lifespan)."""
        worker = cls(settings, store, webhook_secret(settings, server_secret))
        if settings.webhook_url:
            worker.start()
        return worker

    @classmethod
    def wake_all(cls) -> None:
        for worker in list(cls._instances):
            worker.wake()

    def wake(self) -> None:
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())
        self._instances.add(self)

    async def stop(self) -> None:
        self._instances.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ------------------------------------------------------------------ claiming (any process)
    def claim_due(self, now: datetime | None = None, limit: int = BATCH) -> list[tuple[str, int, dict[str, Any]]]:
        """Lock up to ``limit`` due rows for this worker: (id, attempts so far, payload) of each one won."""
        moment = now or utcnow()
        return self.store.outbox.claim_due(moment, moment + self.lease, limit)

    def finish(self, delivery_id: str, attempts: int, error: str | None, now: datetime | None = None) -> str:
        """Record one attempt's outcome; returns the row's new status."""
        moment = now or utcnow()
        done = attempts + 1
        values: dict[str, Any] = {"attempts": done}
        if error is None:
            values |= {"status": "delivered", "delivered_at": moment, "last_error": None}
        elif done >= self.settings.webhook_max_attempts:
            values |= {"status": "failed", "last_error": error[:300]}
        else:
            wait = backoff_s(done, self.settings.webhook_backoff_s)
            values |= {"last_error": error[:300], "next_attempt_at": moment + timedelta(seconds=wait)}
        self.store.outbox.record_attempt(delivery_id, **values)
        return str(values.get("status", "pending"))

    def next_due_in(self, now: datetime | None = None) -> float | None:
        """Seconds until the earliest pending row is due (0 if one is due now); None when none is pending."""
        moment = now or utcnow()
        due = self.store.outbox.pending_due_times(moment, BATCH)
        if not due:
            return None
        return max(0.0, (min(due) - moment).total_seconds())

    # ------------------------------------------------------------------ delivering
    async def deliver(self, client: httpx.AsyncClient, delivery_id: str, payload: dict[str, Any]) -> str | None:
        """One POST; None on a 2xx, else a short reason (status or exception class: never the URL or body)."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Kestrel-Assist-Webhooks/1",
            "Kestrel-Event": str(payload.get("event", "")),
            "Kestrel-Delivery": delivery_id,
            SIGNATURE_HEADER: sign(self.secret, body),
        }
        try:
            response = await client.post(self.settings.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return type(error).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def run_once(self, client: httpx.AsyncClient) -> int:
        """Claim and attempt every due row once; returns how many were attempted."""
        claimed = await asyncio.to_thread(self.claim_due)
        for delivery_id, attempts, payload in claimed:
            error = await self.deliver(client, delivery_id, payload)
            status = await asyncio.to_thread(self.finish, delivery_id, attempts, error)
            if error is not None:
                log.warning(
                    "webhook attempt failed",
                    extra={"delivery": delivery_id, "attempt": attempts + 1, "error": error, "status": status},
                )
        return len(claimed)

    async def _run(self) -> None:
        assert self._wake is not None
        timeout = httpx.Timeout(self.settings.webhook_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport, follow_redirects=False) as client:
            while True:
                try:
                    if await self.run_once(client):
                        continue
                    due_in = await asyncio.to_thread(self.next_due_in)
                except Exception:  # a database hiccup must not end delivery
                    log.exception("webhook delivery loop failed")
                    due_in = None
                wait = self.poll_s if due_in is None else min(self.poll_s, due_in)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, wait)):
                        await self._wake.wait()
