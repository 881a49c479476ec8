"""The per-IP and per-API-key rate limits as ASGI middleware, and the 429 response (docs/security.md).

The counters (memory or Redis) and the per-conversation limit are in chatbot/limits.py; this module
applies them to every HTTP request and WebSocket connect before any route runs.
"""

from __future__ import annotations

import json
import logging

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.config import Settings
from chatbot.errors import RateLimited
from chatbot.limits import Limiter, key_bucket
from chatbot.server.errors import error_body_for
from chatbot.telemetry import count_refusal

log = logging.getLogger(__name__)

EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})  # load balancers and Prometheus poll these


def client_ip(scope: Scope) -> str:
    """The peer address uvicorn reports; with ``--proxy-headers`` and ``--forwarded-allow-ips`` the real client's."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def too_many(retry_after: int, scope_name: str, path: str = "") -> JSONResponse:
    error = RateLimited(retry_after, scope_name)
    return JSONResponse(
        error_body_for(path, 429, error.code, error.message),
        status_code=429,
        headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
    )


class RateLimitMiddleware:
    """Per-IP limit on every HTTP request and WebSocket connect, plus the per-key limit for API keys.

    Pure ASGI (no buffering). The limiter comes from ``app.state.limiter`` (made in the lifespan, so
    a Redis connection belongs to the server's event loop); without one, nothing is limited.
    A refused WebSocket is accepted, told ``{"type": "error", "code": "rate_limited", "retry_after"}``
    and closed with 1013 (try again later): browsers cannot read the HTTP status of a refused handshake.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.settings.rate_limit_enabled:
            await self.app(scope, receive, send)
            return
        limiter: Limiter | None = getattr(scope["app"].state, "limiter", None) if "app" in scope else None
        if limiter is None or scope.get("path") in EXEMPT_PATHS or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        refusal: tuple[int, str] | None = None
        decision = await limiter.hit("ip", client_ip(scope), self.settings.rate_limit_ip_per_minute)
        if not decision.allowed:
            refusal = (decision.retry_after, "ip")
        else:
            token = _bearer(scope)
            if token is None and scope["type"] == "websocket":
                token = dict(_query(scope)).get("token")
            if token and token.startswith("kst_"):
                decision = await limiter.hit("key", key_bucket(token), self.settings.rate_limit_key_per_minute)
                if not decision.allowed:
                    refusal = (decision.retry_after, "key")
        if refusal is None:
            await self.app(scope, receive, send)
            return
        retry_after, scope_name = refusal
        count_refusal(scope_name)
        log.info("rate limited", extra={"scope": scope_name, "path": scope.get("path")})
        if scope["type"] == "http":
            await too_many(retry_after, scope_name, scope.get("path", ""))(scope, receive, send)
        else:
            await _refuse_websocket(receive, send, retry_after, RateLimited(retry_after, scope_name).message)


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope.get("query_string", b"").decode("latin-1"))


async def _refuse_websocket(receive: Receive, send: Send, retry_after: int, message: str) -> None:
    connect: Message = await receive()
    if connect.get("type") != "websocket.connect":
        return
    frame = {"type": "error", "code": "rate_limited", "message": message, "retry_after": retry_after}
    try:
        await send({"type": "websocket.accept", "headers": []})
        await send({"type": "websocket.send", "text": json.dumps(frame)})
        await send({"type": "websocket.close", "code": 1013})
    except Exception:  # the client left first
        return
