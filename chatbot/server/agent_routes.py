"""REST for support agents (Bearer agent token) and admins: login, queue, transcript, lifecycle, analytics.

The routes are thin: chatbot/conversations/handoff.py runs the lifecycle, chatbot/store/lifecycle.py the
atomic status changes. docs/agent-api.md lists every route, body and error code.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import Field

from chatbot.agents import analytics
from chatbot.agents.auth import (
    LoginThrottle,
    hash_password,
    issue_agent_token,
    needs_rehash,
    verify_password,
)
from chatbot.agents.suggestions import suggest
from chatbot.conversations.handoff import HandoffService, message_out, note_out
from chatbot.dialogue.engine import Engine
from chatbot.integration.openapi import errors
from chatbot.server.bodies import RequestBody
from chatbot.server.dependencies import current_admin, current_agent, key_scope
from chatbot.server.errors import ApiError
from chatbot.server.routes import ConversationId
from chatbot.store import AgentRecord, ConversationNotFound, Store

agent_router = APIRouter(tags=["agents"], responses=errors(401))  # every route: 401 without a valid token
STATUSES = ("bot", "waiting", "assigned", "closed")


class LoginIn(RequestBody):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class AgentMessageIn(RequestBody):
    text: str = Field(description="The reply to the customer (max_message_chars at most).")
    suggestion_id: str | None = Field(None, max_length=64, description="The suggestion this reply started from.")


class NoteIn(RequestBody):
    text: str


def service(request: Request) -> HandoffService:
    return request.app.state.handoff  # type: ignore[no-any-return]


def client_ip(request: Request) -> str | None:
    """The caller's address for the audit log (behind a trusted proxy, from X-Forwarded-For)."""
    return request.client.host if request.client else None


Agent = Annotated[AgentRecord, Depends(current_agent)]
Admin = Annotated[AgentRecord, Depends(current_admin)]
Service = Annotated[HandoffService, Depends(service)]
AgentReader = Annotated[AgentRecord, Depends(key_scope("agent"))]  # an agent, or an API key with scope agent
AdminReader = Annotated[AgentRecord, Depends(key_scope("admin"))]  # an admin, or an API key with scope admin


@agent_router.post("/v1/agent/login", responses=errors(422, 429))
async def login(body: LoginIn, request: Request) -> dict[str, Any]:
    """Sign in with name and password: an agent token (JWT, valid agent_token_ttl_s) and the account."""
    store: Store = request.app.state.store
    settings = request.app.state.settings
    address = request.client.host if request.client else "unknown"
    if not hasattr(request.app.state, "login_throttle"):  # login_max_failures per (address, name) in login_window_s
        request.app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
    throttle: LoginThrottle = request.app.state.login_throttle
    wait = await asyncio.to_thread(throttle.retry_after, address, body.username)  # may ask Redis
    if wait:
        raise ApiError(429, "too_many_attempts", f"Too many failed sign-ins; try again in {wait} seconds.")
    agent = await asyncio.to_thread(store.agent_by_name, body.username)
    valid = await asyncio.to_thread(verify_password, agent.password_hash if agent else None, body.password)
    if agent is None or not valid or not agent.active:
        await asyncio.to_thread(throttle.failed, address, body.username)
        known = {"name_known": agent is not None}  # the typed name is never logged: it may be a password
        await asyncio.to_thread(
            store.audit, agent.role if agent else "agent", agent.id if agent else None, "agent.login_failed",
            "agent", agent.id if agent else None, client_ip(request), known,
        )  # fmt: skip
        raise ApiError(401, "invalid_credentials", "Wrong username or password.")
    await asyncio.to_thread(throttle.succeeded, address, body.username)
    await asyncio.to_thread(store.audit, agent.role, agent.id, "agent.login", "agent", agent.id, client_ip(request))
    if needs_rehash(agent.password_hash):
        await asyncio.to_thread(store.set_password_hash, agent.id, hash_password(body.password))
    token, expires = issue_agent_token(
        request.app.state.secret_key, agent.id, agent.role, settings.agent_token_ttl_s, version=agent.token_version
    )
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(expires))
    limits = {"max_message_chars": settings.max_message_chars}  # the console's counter reads it
    return {"token": token, "expires_at": expires_at, "agent": agent.public(), **limits}


@agent_router.post("/v1/agent/logout", status_code=204, responses=errors(401, 429))
async def logout(agent: Agent, request: Request) -> Response:
    """Sign out: this token and every other token of the agent stop working at once (the token version goes up),
    on every device and socket, instead of staying valid until they expire."""
    store: Store = request.app.state.store
    await asyncio.to_thread(store.agents.revoke_tokens, agent.id)
    await asyncio.to_thread(store.audit, agent.role, agent.id, "agent.logout", "agent", agent.id, client_ip(request))
    return Response(status_code=204)


@agent_router.get("/v1/agent/me", responses=errors(429))
async def me(agent: Agent, request: Request) -> dict[str, Any]:
    """The signed-in agent: id, name, role; and the server's ``max_message_chars`` for the console."""
    return {**agent.public(), "max_message_chars": request.app.state.settings.max_message_chars}


@agent_router.get("/v1/agent/conversations", responses=errors(422, 429))
async def list_conversations(
    agent: AgentReader,
    handoff: Service,
    status: Annotated[str, Query(max_length=100)] = "waiting,assigned",
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Conversations by status: waiting ones first (oldest request first), then the rest."""
    wanted = tuple(s.strip() for s in status.split(",") if s.strip())
    unknown = [s for s in wanted if s not in STATUSES]
    if not wanted or unknown:
        raise ApiError(422, "invalid_status", f"status must be a comma-separated list of {', '.join(STATUSES)}.")
    conversations = await handoff.list_conversations(wanted, agent.id if mine else None, limit)
    return {"conversations": conversations}


@agent_router.get("/v1/agent/conversations/{conversation_id}", responses=errors(404, 422, 429))
async def conversation_detail(
    conversation_id: ConversationId, agent: AgentReader, handoff: Service, request: Request
) -> dict[str, Any]:
    """A conversation with its whole transcript and internal notes."""
    record = await handoff.record(conversation_id)
    await handoff.audit(agent, "conversation.view", "conversation", conversation_id, client_ip(request))
    store = handoff.store
    messages = await asyncio.to_thread(store.messages_after, conversation_id, None)
    notes = await asyncio.to_thread(store.notes, conversation_id)
    return {
        "conversation": handoff.conversation_out(record),
        "messages": [message_out(m) for m in messages],
        "notes": [note_out(n) for n in notes],
    }


@agent_router.post("/v1/agent/conversations/{conversation_id}/claim", responses=errors(404, 409, 422, 429))
async def claim(conversation_id: ConversationId, agent: Agent, handoff: Service, request: Request) -> dict[str, Any]:
    """Take the conversation (waiting, or a takeover from the bot); exactly one of two racing agents wins."""
    return await handoff.claim(conversation_id, agent, ip=client_ip(request))


@agent_router.post(
    "/v1/agent/conversations/{conversation_id}/messages", status_code=201, responses=errors(404, 409, 422, 429)
)
async def send_message(
    conversation_id: ConversationId, body: AgentMessageIn, agent: Agent, handoff: Service, request: Request
) -> dict[str, Any]:
    """Reply to the customer in a conversation you hold (redacted, stored, then delivered)."""
    return await handoff.agent_message(conversation_id, agent, body.text, body.suggestion_id, ip=client_ip(request))


@agent_router.post("/v1/agent/conversations/{conversation_id}/return", responses=errors(404, 409, 422, 429))
async def return_to_bot(
    conversation_id: ConversationId, agent: Agent, handoff: Service, request: Request
) -> dict[str, Any]:
    """Hand the conversation back to the assistant."""
    return await handoff.return_to_bot(conversation_id, agent, ip=client_ip(request))


@agent_router.post("/v1/agent/conversations/{conversation_id}/close", responses=errors(404, 409, 422, 429))
async def close(conversation_id: ConversationId, agent: Agent, handoff: Service, request: Request) -> dict[str, Any]:
    """Close the conversation; the customer writing again reopens it with the assistant."""
    return await handoff.close(conversation_id, agent, ip=client_ip(request))


@agent_router.post("/v1/agent/conversations/{conversation_id}/notes", status_code=201, responses=errors(404, 422, 429))
async def add_note(
    conversation_id: ConversationId, body: NoteIn, agent: Agent, handoff: Service, request: Request
) -> dict[str, Any]:
    """An internal note: agents see it, the customer never does."""
    return await handoff.add_note(conversation_id, agent, body.text, ip=client_ip(request))


@agent_router.post("/v1/agent/conversations/{conversation_id}/suggestions", responses=errors(404, 409, 422, 429, 503))
async def suggestions(
    conversation_id: ConversationId, agent: Agent, handoff: Service, request: Request
) -> dict[str, Any]:
    """Up to three suggested replies to the customer's latest message, each with its sources."""
    engine: Engine = request.app.state.engine
    if not engine.ready:
        raise ApiError(503, "not_ready", "The assistant is still starting; try again in a few seconds.")
    record = await handoff.record(conversation_id)
    if record.status == "closed":
        raise ApiError(409, "conversation_closed", "This conversation is closed.")
    latest = await asyncio.to_thread(handoff.store.last_user_message, conversation_id)
    if latest is None:
        return {"message_id": None, "suggestions": []}
    items = await suggest(engine, latest.text)
    try:
        stored = await asyncio.to_thread(
            handoff.store.add_suggestions,
            conversation_id,
            latest.id,
            agent.id,
            [(item.kind, item.text, [s.model_dump() for s in item.sources]) for item in items],
        )
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    return {
        "message_id": latest.id,
        "suggestions": [{"id": s.id, "kind": s.kind, "text": s.text, "sources": s.sources} for s in stored],
    }


@agent_router.get("/v1/analytics", responses=errors(403, 422, 429))
async def get_analytics(
    admin: AdminReader, request: Request, days: Annotated[int, Query(ge=1, le=3650)] = 30
) -> dict[str, Any]:
    """Admin: containment, handoffs, feedback, suggestion use, answer kinds, latency, top unanswered."""
    keep = request.app.state.settings.pii_public_numbers
    report = await analytics.compute(request.app.state.store, days, keep=keep)
    await service(request).audit(admin, "analytics.view", "analytics", "summary", client_ip(request), days=days)
    return report


@agent_router.get("/v1/analytics/unanswered.csv", responses=errors(403, 422, 429))
async def unanswered_csv(
    admin: AdminReader, request: Request, days: Annotated[int, Query(ge=1, le=3650)] = 30
) -> Response:
    """Admin: the top unanswered or thumbs-down questions as CSV (text,count,kind)."""
    keep = request.app.state.settings.pii_public_numbers
    report = await analytics.compute(request.app.state.store, days, top=500, keep=keep)
    rows = len(report["top_unanswered"])
    await service(request).audit(
        admin, "analytics.export", "analytics", "unanswered.csv", client_ip(request), days=days, rows=rows
    )
    return Response(
        analytics.unanswered_csv(report["top_unanswered"]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="unanswered.csv"'},
    )
