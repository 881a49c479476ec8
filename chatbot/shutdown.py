"""Graceful shutdown: on SIGTERM, finish the answers in flight, then close sockets with 1012.

uvicorn alone, on SIGTERM, stops accepting, lets in-flight HTTP requests finish (up to
``timeout_graceful_shutdown``) — but closes every WebSocket with 1012 at once, cutting off an
answer that is streaming. ``GracefulServer`` (used by ``chatbot serve``) inserts one step: after
the listening sockets close, it waits until no WebSocket answer is in flight (at most
``settings.shutdown_grace_s``), and only then lets uvicorn close the sockets with 1012 (service
restart) so clients reconnect to another process, and wait for the remaining HTTP requests.

``AnswerTracker`` counts the answers in flight; the customer WebSocket wraps each answer in
``tracker.answering()``. The app's lifespan also drains it, for servers other than ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
import weakref
from collections.abc import Iterator
from types import FrameType

import uvicorn

log = logging.getLogger(__name__)

_TRACKERS: weakref.WeakSet[AnswerTracker] = weakref.WeakSet()


class AnswerTracker:
    """How many answers are being produced right now, and whether the process is draining."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False
        _TRACKERS.add(self)

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def drain(self, timeout: float) -> bool:
        """Wait until no answer is in flight (True) or ``timeout`` passed (False)."""
        self.draining = True
        deadline = time.monotonic() + timeout
        while self.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.in_flight == 0


async def drain_all(timeout: float) -> None:
    trackers = list(_TRACKERS)
    busy = sum(t.in_flight for t in trackers)
    if busy:
        log.info("waiting for answers in flight", extra={"answers": busy, "grace_s": timeout})
    results = await asyncio.gather(*(t.drain(timeout) for t in trackers))
    if not all(results):
        log.warning("shutdown grace exceeded; closing with answers still in flight")


class GracefulServer(uvicorn.Server):
    """uvicorn's server, draining answers in flight before it closes WebSockets; exits 0 on SIGTERM."""

    def __init__(self, config: uvicorn.Config, grace_s: float) -> None:
        super().__init__(config)
        self.grace_s = grace_s

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        for server in self.servers:  # stop accepting first, as uvicorn would
            server.close()
        for sock in sockets or []:
            sock.close()
        if not self.force_exit:
            await drain_all(self.grace_s)
        # What is left of the grace goes to uvicorn's wait for HTTP requests and socket tasks.
        self.config.timeout_graceful_shutdown = max(1, int(self.grace_s - (time.monotonic() - started)) + 1)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:  # a requested, graceful stop: exit 0 afterwards, not "killed by SIGTERM"
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]
