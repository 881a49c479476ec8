"""Bounds on slow and numerous clients, at the socket level, where uvicorn has none of its own.

What uvicorn gives us, and ``chatbot serve`` uses: ``timeout_keep_alive`` (an idle connection between
two requests is closed), ``limit_concurrency`` (requests beyond it get a 503) and ``ws_max_size``.
What it lacks, and this module adds by wrapping uvicorn's own HTTP protocol class (passed as
``http=``; the same wrapper fits the h11 and the httptools implementation):

* **a header deadline.** uvicorn starts no timer on a new connection, nor once the first byte of a
  next request arrives, so a client that never finishes its headers — or sends one header line
  every 29 s — holds its socket (a file descriptor) for ever. 21,000 of them exhausted the
  process's open-file limit and ``/healthz`` failed while they were held. Here the headers must be
  complete ``header_timeout_s`` after the connection opens (or after the first byte of the next
  request on a kept-alive one), else the server answers 408 and closes.
* **a body deadline.** Once the headers are in, the body must be complete within ``body_timeout_s``.
* **connections per client address and in total.** A new socket over either cap gets a 503 and is
  closed at once, before it can cost more than the accept. Addresses in ``exempt`` (the reverse
  proxies: every customer behind one shares its address) have no per-address cap; the proxy
  applies its own (docs/operations.md). WebSockets count until they close.

``raise_open_file_limit`` lifts the soft RLIMIT_NOFILE to the hard limit at start, and the total cap
stays below it, so the process keeps descriptors for its database, models and logs.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RESERVED_FILES = 256  # descriptors kept for the database, model files, logs and outgoing connections
REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n"
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def raise_open_file_limit() -> int:
    """Set the soft RLIMIT_NOFILE to the hard limit (as far as the kernel allows); return the soft limit now.

    Many systems start processes at a soft limit of 1,024 with a hard limit far above it: the
    server would run out of descriptors long before the connection caps below mattered.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:  # e.g. above fs.nr_open; keep what we have
            log.warning("could not raise the open-file limit to %s: %s", target, error)
    return int(soft)


@dataclass
class ConnectionLimits:
    """The caps and deadlines, and the live count of sockets per client address (one per server process)."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_per_ip: int
    exempt: frozenset[str] = frozenset()
    open_total: int = 0
    per_ip: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    timed_out: int = 0

    def admit(self, address: str) -> bool:
        if self.open_total >= self.max_connections:
            return False
        if address not in self.exempt and self.per_ip[address] >= self.max_per_ip:
            return False
        self.open_total += 1
        self.per_ip[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open_total -= 1
        self.per_ip[address] -= 1
        if self.per_ip[address] <= 0:
            del self.per_ip[address]


def limits_from(settings: Any, open_file_limit: int | None = None) -> ConnectionLimits:
    """The limits of ``settings`` (a ``Settings``), the total kept below the open-file limit when given."""
    total = settings.max_connections
    if open_file_limit is not None:
        total = max(1, min(total, open_file_limit - RESERVED_FILES))
    return ConnectionLimits(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        max_connections=total,
        max_per_ip=settings.max_connections_per_ip,
        exempt=frozenset(settings.connection_limit_exempt_ips),
    )


def uvicorn_options(settings: Any, open_file_limit: int | None = None) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that bound clients: what ``chatbot serve`` (and the tests) pass.

    uvicorn's own ``timeout_keep_alive`` and ``limit_concurrency`` (503 past it; it counts request
    tasks too), and its HTTP protocol class wrapped by ``guarded_protocol``.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol  # httptools when installed, else h11

    limits = limits_from(settings, open_file_limit)
    return {
        "http": guarded_protocol(AutoHTTPProtocol, limits),
        "timeout_keep_alive": max(1, round(settings.keep_alive_timeout_s)),
        "limit_concurrency": limits.max_connections + 1,
    }


def guarded_protocol(base: type[asyncio.Protocol], limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's HTTP protocol class ``base`` that enforces ``limits``.

    It relies only on what both of uvicorn's HTTP implementations have: ``transport``, ``cycle``
    (created when a request's headers are complete; ``more_body`` false once its body is in,
    ``response_complete`` once answered) and ``handle_websocket_upgrade``, after which the
    WebSocket protocol owns the transport (its ``connection_lost`` releases the slot).
    """

    class Guarded(base):  # type: ignore[valid-type, misc]
        _address = ""
        _admitted = False
        _released = False
        _upgraded = False
        _deadline: asyncio.TimerHandle | None = None
        _seen_cycle: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            self._address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            self._admitted = limits.admit(self._address)
            if not self._admitted:
                limits.refused += 1
                self.transport.write(REFUSED)  # uvicorn's transport (asyncio's or uvloop's)
                self.transport.close()
                return
            self._arm(limits.header_timeout_s, headers=True)

        def data_received(self, data: bytes) -> None:
            if not self._admitted:
                return
            if self._deadline is None and self._awaiting_headers():
                self._arm(limits.header_timeout_s, headers=True)  # the first byte of the next request
            super().data_received(data)
            if self._upgraded:
                return
            cycle = self.cycle
            if cycle is not None and cycle is not self._seen_cycle:  # this request's headers are complete
                self._seen_cycle = cycle
                self._cancel()
                if cycle.more_body:
                    self._arm(limits.body_timeout_s, headers=False)
            elif cycle is not None and not cycle.more_body and self._deadline and not self._awaiting_headers():
                self._cancel()  # the body is complete

        def handle_websocket_upgrade(self, *args: Any) -> None:
            self._cancel()
            self._upgraded = True
            super().handle_websocket_upgrade(*args)
            protocol = self.transport.get_protocol()
            if protocol is self or not self._admitted:
                self._release()
                return
            lost: Callable[[Exception | None], None] = protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                try:
                    lost(exc)
                finally:
                    self._release()

            protocol.connection_lost = connection_lost  # the socket now belongs to the WebSocket

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            if not self._upgraded:
                self._release()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            cycle = self.cycle
            return cycle is None or (cycle is self._seen_cycle and cycle.response_complete)

        def _arm(self, delay: float, headers: bool) -> None:
            self._cancel()
            self._deadline = asyncio.get_running_loop().call_later(delay, self._expired, headers)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self, headers: bool) -> None:
            self._deadline = None
            if self.transport.is_closing() or self._upgraded:
                return
            limits.timed_out += 1
            if headers:  # nothing of a response has been written: say why before closing
                self.transport.write(TIMED_OUT)
            self.transport.close()

        def _release(self) -> None:
            if self._admitted and not self._released:
                self._released = True
                limits.release(self._address)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
