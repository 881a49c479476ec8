"""``Idempotency-Key`` on message and conversation creation: a retried POST does not act twice.

A mobile app on a flaky network cannot tell "the request was lost" from "the response was lost";
it retries with the same key. The first request *claims* the key with an INSERT of a row whose
status is still empty: the primary key ``(scope, key)`` makes the database, not a process, decide
which of two concurrent requests (in one process or several) runs. The winner runs and stores its
status and response; a retry with the same body gets that stored response back (header
``Idempotent-Replayed: true``), a retry while the first still runs a 409, and the same key with
another body a 422. Only successful (2xx) responses are kept: after an error the claim is released
so the client may retry. Rows expire after ``idempotency_ttl_s`` and are deleted opportunistically.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine as SqlEngine

from chatbot.errors import Conflict, InvalidInput
from chatbot.store.idempotency import IdempotencyEntry, IdempotencyRepository
from chatbot.store.models import utcnow

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_TEXT = re.compile(r"^[\x20-\x7e]{1,128}$")  # printable ASCII
IN_FLIGHT_STALE = timedelta(minutes=10)  # a claim this old without a response: its process died; reclaim it
CLEANUP_EVERY_S = 60.0


class KeyReused(Exception):
    pass


class InFlight(Exception):
    pass


@dataclass(frozen=True)
class Stored:
    status_code: int
    response: Any


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class IdempotencyStore:
    """The claim/replay rules over the store's ``IdempotencyRepository``, for one time-to-live."""

    _last_cleanup: ClassVar[dict[str, float]] = {}

    def __init__(self, engine: SqlEngine, ttl_s: int) -> None:
        self._engine_key = str(engine.url)
        self._records = IdempotencyRepository(engine)
        self.ttl = timedelta(seconds=ttl_s)

    def claim(self, scope: str, key: str, fingerprint: str, now: datetime | None = None) -> Stored | None:
        """None: this request claimed the key and must run. Stored: replay it. Raises KeyReused, InFlight."""
        moment = now or utcnow()
        self._maybe_cleanup(moment)
        for _ in range(3):
            if self._records.insert_claim(scope, key, fingerprint, moment):
                return None
            entry = self._records.get(scope, key)
            if entry is None:
                continue  # expired and deleted meanwhile: claim again
            expired = entry.created_at < moment - self.ttl
            abandoned = entry.status_code is None and entry.created_at < moment - IN_FLIGHT_STALE
            if expired or abandoned:
                self._records.delete_entry(entry)
                continue
            if entry.request_hash != fingerprint:
                raise KeyReused(key)
            if entry.status_code is None:
                raise InFlight(key)
            return Stored(entry.status_code, entry.response)
        raise InFlight(key)

    def complete(self, scope: str, key: str, status_code: int, response: Any) -> None:
        self._records.complete(scope, key, status_code, response)

    def release(self, scope: str, key: str) -> None:
        """Forget an unfinished claim (the request failed), so a retry runs again."""
        self._records.release(scope, key)

    def cleanup(self, now: datetime | None = None) -> int:
        """Delete expired records; returns how many."""
        return self._records.delete_before((now or utcnow()) - self.ttl)

    def _maybe_cleanup(self, now: datetime) -> None:
        """At most once a minute per process and database: the cleanup rides on ordinary requests."""
        last = self._last_cleanup.get(self._engine_key, 0.0)
        if time.monotonic() - last >= CLEANUP_EVERY_S:
            self._last_cleanup[self._engine_key] = time.monotonic()
            self.cleanup(now)

    def record(self, scope: str, key: str) -> IdempotencyEntry | None:
        return self._records.get(scope, key)


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, validated (1-128 printable characters; else 422)."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not KEY_TEXT.fullmatch(key):
        raise InvalidInput("invalid_idempotency_key", "Idempotency-Key must be 1-128 printable ASCII characters.")
    return key


async def idempotent(
    request: Request,
    scope: str,
    body: Any,
    run: Callable[[], Awaitable[tuple[int, Any]]],
    for_storage: Callable[[Any], Any] | None = None,
) -> JSONResponse:
    """Run ``run`` (which returns status and JSON content) at most once per (scope, Idempotency-Key).

    ``for_storage`` strips what must not be kept in the database (a customer token: only its hash is
    stored anywhere) from the response that later retries get back."""
    key = idempotency_key(request)
    if key is None:
        status_code, content = await run()
        return JSONResponse(content, status_code=status_code)
    store = IdempotencyStore(request.app.state.store.engine, request.app.state.settings.idempotency_ttl_s)
    fingerprint = request_hash(request.method, request.url.path, body)
    try:
        stored = await asyncio.to_thread(store.claim, scope, key, fingerprint)
    except KeyReused:
        raise InvalidInput(
            "idempotency_key_reused", "This Idempotency-Key was used with a different request body."
        ) from None
    except InFlight:
        raise Conflict(
            "idempotency_in_flight", "A request with this Idempotency-Key is still being processed; retry later."
        ) from None
    if stored is not None:
        return JSONResponse(stored.response, status_code=stored.status_code, headers={REPLAYED_HEADER: "true"})
    try:
        status_code, content = await run()
    except BaseException:
        await asyncio.shield(asyncio.to_thread(store.release, scope, key))
        raise
    if 200 <= status_code < 300:
        kept = for_storage(content) if for_storage is not None else content
        await asyncio.to_thread(store.complete, scope, key, status_code, kept)
    else:
        await asyncio.to_thread(store.release, scope, key)
    return JSONResponse(content, status_code=status_code)
