"""The server's protective and operational layers, as pure ASGI middleware (nothing is buffered).

Outermost first, as ``install_middleware`` stacks them:

1. ``RequestIdMiddleware`` — takes a valid ``X-Request-ID`` or makes one, echoes it, and puts it in
   every log record written while serving the request or WebSocket (chatbot/log_filters.py).
2. ``MetricsMiddleware`` — chatbot/server/prometheus.py.
3. ``SecurityHeadersMiddleware`` — nosniff, no-referrer, no framing, a strict CSP on HTML pages,
   HSTS over https, ``Cache-Control: no-store`` on API responses.
4. Starlette's ``CORSMiddleware`` — the allow-list ``settings.cors_origins`` (empty: no cross-origin
   calls). Outside the limits, so a 429 or 413 is still readable by an allowed browser origin.
5. ``RateLimitMiddleware`` — chatbot/server/ratelimit.py.
6. ``BodySizeLimitMiddleware`` — 413 ``payload_too_large`` above ``settings.max_body_bytes``, by
   Content-Length and by counting the bytes of chunked bodies as they stream in.
7. ``WebSocketGuardMiddleware`` — frames above ``settings.max_frame_bytes`` close the socket with
   1009; a socket whose client sends nothing for ``settings.ws_idle_timeout_s`` gets an ``error``
   frame ``idle_timeout`` and is closed with 1001. (``chatbot serve`` also gives uvicorn
   ``ws_max_size``; this check makes the limit hold under any ASGI server.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.config import Settings
from chatbot.log_filters import request_id_var
from chatbot.server.errors import error_body_for
from chatbot.server.prometheus import MetricsMiddleware, top_level_route
from chatbot.server.ratelimit import RateLimitMiddleware

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")

# Our own pages (the demo bank page, the agent console) load only same-origin files: no inline code.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from jsDelivr with an inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
ALLOWED_HEADERS = [
    "Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID", "Kestrel-Customer-Id", "Kestrel-Customer-Hash"
]  # fmt: skip
HSTS = "max-age=63072000; includeSubDomains"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestIdMiddleware:
    """One id per HTTP request and per WebSocket: the client's ``X-Request-ID`` if it is safe
    (64 characters at most: letters, digits, ``._:-``), else a new one; echoed in the response
    (and in the WebSocket handshake's response), and in ``request_id`` of every log record."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = given if given and VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        start_type = "http.response.start" if scope["type"] == "http" else "websocket.accept"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == start_type:
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_id_var.reset(token)


class SecurityHeadersMiddleware:
    """Headers every response gets, and the CSP pages get. The widget script stays embeddable from
    other origins: a ``<script src>`` is not subject to CORS and no Cross-Origin-Resource-Policy is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = isinstance(top_level_route(scope), Mount)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                if headers.get("content-type", "").startswith("text/html"):
                    path = scope.get("path", "")
                    headers.setdefault("Content-Security-Policy", DOCS_CSP if path in DOCS_PATHS else PAGE_CSP)
                if scope.get("scheme") == "https":
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if not static:  # API answers; static files keep their caching
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_wrapper)


class PayloadTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodySizeLimitMiddleware:
    """413 for bodies above the limit: at once when Content-Length says so, otherwise as soon as the
    streamed (chunked) bytes pass it — the route's body read then raises PayloadTooLarge, which the
    error handlers turn into ``{"error": {"code": "payload_too_large"}}``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > self.max_bytes:
                await self._reject(scope, receive, send, bad=declared < 0)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except PayloadTooLarge:  # read outside a route's error handling (e.g. by another middleware)
            if started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, bad: bool = False) -> None:
        path = scope.get("path", "")
        if bad:
            status, body = 400, error_body_for(path, 400, "bad_request", "Content-Length is not a valid number.")
        else:
            message = f"The request body is larger than {self.max_bytes} bytes."
            status, body = 413, error_body_for(path, 413, "payload_too_large", message)
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class WebSocketGuardMiddleware:
    """Frame size and idle limits for every WebSocket, whichever handler serves it.

    The handler sees a ``websocket.disconnect`` after the guard closed the socket, so it cleans up
    as if the client had left; whatever it sends afterwards is dropped.
    """

    def __init__(self, app: ASGIApp, max_frame_bytes: int, idle_timeout_s: float) -> None:
        self.app, self.max_frame_bytes, self.idle_timeout_s = app, max_frame_bytes, idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        accepted = False
        closed = False

        async def guarded_send(message: Message) -> None:
            nonlocal accepted, closed
            if closed:
                return  # we closed the socket already; the handler has not noticed yet
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close":
                closed = True
            await send(message)

        async def close(code: int, frame: dict[str, str] | None = None) -> Message:
            nonlocal closed
            if not closed:
                try:
                    if frame is not None:
                        await send({"type": "websocket.send", "text": json.dumps(frame)})
                    await send({"type": "websocket.close", "code": code})
                except Exception:  # the client is gone already
                    log.debug("closing a websocket failed", exc_info=True)
                closed = True
            return {"type": "websocket.disconnect", "code": code}

        async def guarded_receive() -> Message:
            if closed:
                return {"type": "websocket.disconnect", "code": 1000}
            if not accepted:
                return await receive()
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    message = await receive()
            except TimeoutError:
                log.info("closing an idle websocket", extra={"path": scope.get("path")})
                frame = {
                    "type": "error",
                    "code": "idle_timeout",
                    "message": "This connection was idle for too long and is being closed; reconnect to continue.",
                }
                return await close(1001, frame)
            if message["type"] == "websocket.receive" and self._too_big(message):
                log.info("closing a websocket that sent an oversized frame", extra={"path": scope.get("path")})
                return await close(1009)
            return message

        await self.app(scope, guarded_receive, guarded_send)

    def _too_big(self, message: Message) -> bool:
        data = message.get("bytes")
        if data is not None:
            return len(data) > self.max_frame_bytes
        text = message.get("text") or ""
        if len(text) * 4 <= self.max_frame_bytes:  # fast path: even all 4-byte characters would fit
            return False
        return len(text.encode("utf-8", "surrogatepass")) > self.max_frame_bytes


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Stack the layers (innermost first: Starlette makes the last one added the outermost)."""
    app.add_middleware(
        WebSocketGuardMiddleware, max_frame_bytes=settings.max_frame_bytes, idle_timeout_s=settings.ws_idle_timeout_s
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, settings=settings)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=["Retry-After", "X-Request-ID"],
        allow_credentials=False,  # Bearer tokens, never cookies
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
