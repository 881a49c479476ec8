"""``/metrics`` in the Prometheus text format, and the middleware that feeds it (docs/operations.md).

The series are defined in chatbot/telemetry.py, so layers below the server record into them
without importing the web layer. Series:

- ``http_requests_total{method,route,status}`` and ``http_request_duration_seconds{route}``: ``route``
  is the route's template (``/v1/conversations/{conversation_id}/messages``), never the raw path,
  so ids do not explode the number of series; static files are ``/widget/*`` or ``static``, and a
  path no route matches is ``unmatched``.
- ``answer_latency_seconds{kind}``: each finished answer (``TurnService.answered``) by kind.
- ``generation_queue_depth``: requests waiting for the generation worker (read at scrape time).
- ``websocket_connections{kind}``: open customer and agent sockets.
- ``handoffs_waiting``: conversations waiting for an agent (read from the store, cached 5 s).
- ``rate_limited_total{scope}``: refusals by the ip, key and conversation limits.

Access: open to loopback clients; from elsewhere it needs an admin API key (``kst_…`` with the
``admin`` scope) or an admin agent's token, unless ``settings.metrics_public`` is true (for a
network where only Prometheus can reach the port).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.integration.openapi import errors
from chatbot.server.dependencies import authenticate, authenticate_key
from chatbot.server.errors import ApiError
from chatbot.telemetry import HANDOFFS_WAITING, HTTP_DURATION, HTTP_REQUESTS, QUEUE_DEPTH, REGISTRY, WEBSOCKETS
from chatbot.tokens import bearer

log = logging.getLogger(__name__)

WEBSOCKET_KINDS = {"/ws/chat": "customer", "/ws/agent": "agent"}
WAITING_CACHE_S = 5.0

metrics_router = APIRouter()


def top_level_route(scope: Scope) -> BaseRoute | None:
    """The app's own route (or mount) for this request, matched before the app runs.

    FastAPI records the endpoint in ``scope["route"]`` for its API routes but not for mounted
    static files, and a mount changes the scope's paths, so the match is taken up front.
    """
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except Exception:  # a route type that cannot match this scope type
            continue
        if match is Match.FULL:
            return route  # type: ignore[no-any-return]
    return None


def route_template(scope: Scope, matched: BaseRoute | None) -> str:
    """``/v1/conversations/{conversation_id}/messages``, ``/widget/*``, ``static`` or ``unmatched``."""
    route = scope.get("route")
    if route is None or isinstance(route, Mount) or not isinstance(getattr(route, "path", None), str):
        route = matched
    if route is None:
        return "unmatched"
    if isinstance(route, Mount):
        return f"{route.path}/*" if route.path else "static"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request; counts open WebSockets. Pure ASGI, nothing buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        matched = top_level_route(scope)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope, matched)
            HTTP_REQUESTS.labels(method=scope.get("method", "GET"), route=route, status=str(status)).inc()
            HTTP_DURATION.labels(route=route).observe(time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = WEBSOCKET_KINDS.get(scope.get("path", ""), "other")
        accepted = False

        async def send_wrapper(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                WEBSOCKETS.labels(kind=kind).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if accepted:
                WEBSOCKETS.labels(kind=kind).dec()


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def authorize(request: Request) -> None:
    """Loopback, ``metrics_public``, an admin API key or an admin agent's token; else 401/403."""
    settings = request.app.state.settings
    if getattr(settings, "metrics_public", False) or _loopback(request.client.host if request.client else None):
        return
    token = bearer(request.headers.get("authorization"))
    if not token:
        raise ApiError(401, "missing_token", "Metrics need an admin API key or an admin token (Authorization: Bearer).")
    if token.startswith("kst_"):
        await authenticate_key(request, token, "admin")
        return
    agent = await authenticate(request.app.state.store, request.app.state.secret_key, token)
    if agent.role != "admin":
        raise ApiError(403, "forbidden", "Metrics need an admin account.")


async def _refresh_gauges(request: Request) -> None:
    state = request.app.state
    engine = getattr(state, "engine", None)
    worker = getattr(engine, "worker", None)
    depth: Any = getattr(worker, "queue_depth", 0) if worker is not None else 0
    QUEUE_DEPTH.set(float(depth) if isinstance(depth, int | float) else 0.0)
    cached: tuple[float, int] | None = getattr(state, "metrics_waiting", None)
    if cached is None or time.monotonic() - cached[0] > WAITING_CACHE_S:
        try:
            waiting = await asyncio.to_thread(state.store.conversations.count_waiting)
        except Exception:  # a database hiccup must not break the scrape
            log.warning("counting waiting handoffs failed", exc_info=True)
            waiting = cached[1] if cached else 0
        cached = (time.monotonic(), waiting)
        state.metrics_waiting = cached
    HANDOFFS_WAITING.set(cached[1])


@metrics_router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition format."},
        **errors(401, 403, descriptions={401: "Not loopback, and no admin API key or admin token."}),
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text format; see docs/operations.md for each series and who may read them."""
    await authorize(request)
    await _refresh_gauges(request)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
