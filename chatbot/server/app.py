"""Application factory. Models load once per process, in the background, after the port opens.

``/healthz`` answers 503 until the engine is warm, so a load balancer (or ``make serve``'s
caller) knows when to send traffic; every other route answers 503 ``not_ready`` meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import URL
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from chatbot.agents.auth import install_token_redaction
from chatbot.agents.redis_hub import make_hub
from chatbot.agents.redis_throttle import make_login_throttle
from chatbot.config import PROJECT_ROOT, Settings, get_settings
from chatbot.conversations.handoff import HandoffService
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.integration.webhooks import WebhookWorker
from chatbot.limits import ConversationLimits, close_limiter, make_limiter
from chatbot.server.agent_routes import agent_router
from chatbot.server.agent_ws import agent_ws_router
from chatbot.server.audit_routes import audit_router
from chatbot.server.errors import install_error_handlers
from chatbot.server.integration_routes import integration_router
from chatbot.server.middleware import install_middleware
from chatbot.server.nlu_routes import nlu_router
from chatbot.server.openai_routes import openai_router
from chatbot.server.prometheus import metrics_router
from chatbot.server.routes import router
from chatbot.server.websocket import ws_router
from chatbot.shutdown import AnswerTracker
from chatbot.store import Store
from chatbot.tokens import secret_key

log = logging.getLogger(__name__)

WEB_ROOT = PROJECT_ROOT / "web"


class WebFiles(StaticFiles):
    """StaticFiles whose directory redirect (``/console`` → ``/console/``) is relative.

    Starlette builds that ``Location`` from the request's ``Host`` header, so ``Host: evil.example``
    made us redirect to ``http://evil.example/console/`` (a cache in front could then send every
    visitor there). A path-only ``Location`` stays on whatever host the browser asked.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if isinstance(response, RedirectResponse):
            target = URL(scope=scope)
            path = "/" + target.path.lstrip("/")  # never "//host/…", which a browser reads as another host
            location = quote(path + "/", safe="/") + (f"?{target.query}" if target.query else "")
            response.headers["location"] = location
        return response


def create_app(settings: Settings | None = None, web_root: Path = WEB_ROOT) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.resolved_database_url)
        engine = Engine(settings)
        app.state.settings, app.state.store, app.state.engine = settings, store, engine
        app.state.warmup_error = None
        # Human handoff: live delivery (this process, or all of them through Redis), lifecycle, token key.
        app.state.hub = make_hub(settings)
        await app.state.hub.start()
        app.state.login_throttle = make_login_throttle(settings)  # shared by all processes with Redis
        app.state.handoff = HandoffService(settings, store, app.state.hub)
        app.state.secret_key = secret_key(settings)
        app.state.handoff.start()
        # Rate limits (memory, or Redis with redis_url) and the answers-in-flight count for graceful shutdown.
        app.state.limiter = make_limiter(settings)
        limits = ConversationLimits(settings, app.state.limiter)
        app.state.turns = TurnService(settings, engine, store, app.state.handoff, limits)  # every customer turn
        app.state.answers = AnswerTracker()
        app.state.webhooks = WebhookWorker.started(settings, store, app.state.secret_key)  # signed event outbox

        async def warm() -> None:
            try:
                await asyncio.to_thread(engine.warm_up)
                log.info("engine ready")
            except Exception as error:  # reported by /healthz; the process keeps serving errors
                log.exception("engine failed to start")
                app.state.warmup_error = str(error)

        task = asyncio.create_task(warm())
        try:
            yield
        finally:
            task.cancel()
            await app.state.answers.drain(settings.shutdown_grace_s)  # answers in flight finish first
            await close_limiter(app.state.limiter)
            await app.state.handoff.stop()
            await app.state.webhooks.stop()
            await app.state.hub.stop()
            app.state.login_throttle.close()
            engine.close()
            store.close()

    app = FastAPI(
        title="Kestrel Assist",
        version="0.1.0",
        description="Grounded banking customer-service assistant: REST, WebSocket and the chat widget.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_middleware(app, settings)  # request ids, metrics, security headers, CORS, limits (docs/security.md)
    app.include_router(metrics_router)
    install_token_redaction()  # the WebSockets' ?token= must not reach the access logs
    app.include_router(router)
    app.include_router(ws_router)
    app.include_router(agent_router)
    app.include_router(agent_ws_router)
    app.include_router(audit_router)  # GET /v1/audit (admins)
    app.include_router(nlu_router)
    app.include_router(integration_router)
    app.include_router(openai_router)
    if (web_root / "widget").is_dir():
        app.mount("/widget", WebFiles(directory=web_root / "widget"), name="widget")
    if web_root.is_dir():
        app.mount("/", WebFiles(directory=web_root, html=True), name="web")
    return app
