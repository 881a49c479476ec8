"""The FastAPI dependencies, in one place: who is calling, and what they may reach.

- API keys: ``Authorization: Bearer kst_…`` is an API key (a JWT has two dots, anything else is a
  customer token). 401 for a missing, unknown or revoked key; 403 for a valid key without the scope.
- Agents: ``authenticate`` (token → active agent), ``current_agent``, ``current_admin`` and
  ``key_scope`` (an agent token, or an API key reading the back office).
- Customers: ``customer_conversation`` (the conversation's own token, or the app's API key), and
  the ready engine and the store from the app's state.

Routers import from here; the domain below never sees a ``Request``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from chatbot.agents.auth import TokenError, token_current, verify_agent_token
from chatbot.dialogue.engine import Engine
from chatbot.integration.conversations import IntegrationConversations
from chatbot.integration.keys import ApiKeyRecord, ApiKeys, identity_secret, identity_valid, is_api_key
from chatbot.server.errors import ApiError
from chatbot.store import AgentRecord, ConversationNotFound, ConversationRecord, Store
from chatbot.tokens import bearer, customer_token_matches

CUSTOMER_ID_HEADER = "Kestrel-Customer-Id"
CUSTOMER_HASH_HEADER = "Kestrel-Customer-Hash"


def store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


async def authenticate_key(request: Request, key: str, scope: str) -> ApiKeyRecord:
    """The key's record, its use recorded; ApiError 401 (unknown, revoked) or 403 (scope missing)."""
    keys = ApiKeys(store(request).engine)
    record = await asyncio.to_thread(keys.authenticate, key)
    if record is None:
        raise ApiError(401, "invalid_api_key", "The API key is not valid.")
    if record.revoked:
        raise ApiError(401, "revoked_api_key", "This API key has been revoked.")
    if scope not in record.scopes:
        raise ApiError(403, "insufficient_scope", f"This API key lacks the {scope!r} scope.")
    await asyncio.to_thread(keys.touch, record)
    request.state.api_key = record
    return record


def api_key(scope: str) -> Callable[[Request], Awaitable[ApiKeyRecord]]:
    """A dependency: the request's API key, which must carry ``scope``."""

    async def dependency(request: Request) -> ApiKeyRecord:
        token = bearer(request.headers.get("authorization"))
        if token is None:
            raise ApiError(401, "missing_token", "Send an API key: Authorization: Bearer kst_….")
        if not is_api_key(token):
            raise ApiError(401, "invalid_api_key", "The API key is not valid.")
        return await authenticate_key(request, token, scope)

    return dependency


def optional_api_key(scope: str) -> Callable[[Request], Awaitable[ApiKeyRecord | None]]:
    """A dependency: the request's API key if it sends one (then it must be valid, with ``scope``), else None."""

    async def dependency(request: Request) -> ApiKeyRecord | None:
        token = bearer(request.headers.get("authorization"))
        if not is_api_key(token):
            return None
        assert token is not None
        return await authenticate_key(request, token, scope)

    return dependency


def verify_identity(request: Request, key: ApiKeyRecord, customer_id: str | None, given_hash: str | None) -> None:
    """401 ``invalid_identity`` unless ``given_hash`` is the customer id signed with this key's identity secret."""
    if customer_id is None:
        return
    secret = identity_secret(request.app.state.secret_key, key.id)
    if not identity_valid(secret, customer_id, given_hash):
        raise ApiError(401, "invalid_identity", "customer_hash does not match customer_id for this API key.")


async def key_conversation_access(request: Request, token: str, conversation_id: str) -> ApiKeyRecord:
    """For ``customer_conversation``: a chat-scoped key reaches only the conversations it created; else 403.

    A verified customer id belongs to the key whose identity secret signed it, so proving "cust-42"
    with another key's secret reaches nothing here (two partners may both have a "cust-42"). A request
    may still send ``Kestrel-Customer-Id`` / ``Kestrel-Customer-Hash`` to say which of the key's customers
    it acts for: a forged hash is 401, and another customer's conversation of the same key is 403.
    """
    key = await authenticate_key(request, token, "chat")
    conversations = IntegrationConversations(store(request).engine)
    try:
        summary = await asyncio.to_thread(conversations.summary, conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    customer_id = request.headers.get(CUSTOMER_ID_HEADER)
    if customer_id is not None:
        verify_identity(request, key, customer_id, request.headers.get(CUSTOMER_HASH_HEADER))
    if summary.api_key_id is None or summary.api_key_id != key.id:
        raise ApiError(403, "not_your_conversation", "This API key did not create this conversation.")
    if customer_id is not None and customer_id != summary.customer_id:
        raise ApiError(403, "not_your_conversation", "This conversation is not this customer's.")
    return key


# ---------------------------------------------------------------- agents
async def authenticate(store: Store, key: str, token: str | None) -> AgentRecord:
    """The agent behind a token: signature and expiry checked, then the account (it may have been disabled)
    and the token's version (logout, a password change or disabling the account revoke earlier tokens)."""
    try:
        claims = verify_agent_token(key, token)
    except TokenError as error:
        raise ApiError(401, error.code, error.message) from None
    agent = await asyncio.to_thread(store.agent_by_id, claims.agent_id)
    if agent is None or not agent.active:
        raise ApiError(401, "invalid_token", "The agent token is not valid.")
    try:
        token_current(claims, agent.token_version)
    except TokenError as error:
        raise ApiError(401, error.code, error.message) from None
    return agent


async def current_agent(request: Request) -> AgentRecord:
    token = bearer(request.headers.get("authorization"))
    return await authenticate(request.app.state.store, request.app.state.secret_key, token)


async def current_admin(agent: Annotated[AgentRecord, Depends(current_agent)]) -> AgentRecord:
    if agent.role != "admin":
        raise ApiError(403, "forbidden", "This needs an admin account.")
    return agent


def key_scope(scope: str) -> Callable[[Request], Awaitable[AgentRecord]]:
    """An agent token, or an API key with ``scope`` acting as a read-only back-office integration.

    Keys open only the routes that read (queue, transcripts, analytics, audit log): every change to a
    conversation is made by a named agent, so the audit log and the customer see who acted.
    """

    async def dependency(request: Request) -> AgentRecord:
        token = bearer(request.headers.get("authorization"))
        if token is not None and is_api_key(token):
            key = await authenticate_key(request, token, scope)
            return AgentRecord(id=key.id, name=key.name, role="api_key", active=True, created_at=key.created_at)
        agent = await current_agent(request)
        if scope == "admin" and agent.role != "admin":
            raise ApiError(403, "forbidden", "This needs an admin account.")
        return agent

    return dependency


# ---------------------------------------------------------------- customers
def ready_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    if not engine.ready:
        raise ApiError(503, "not_ready", "The assistant is still starting; try again in a few seconds.")
    return engine


async def customer_conversation(request: Request, conversation_id: str) -> ConversationRecord:
    """The conversation, if the request carries its customer token: 404 for an unknown id, else 401."""
    db: Store = request.app.state.store
    try:
        record = await asyncio.to_thread(db.conversation, conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise ApiError(401, "missing_token", "Send the conversation's token: Authorization: Bearer <token>.")
    if is_api_key(token):  # an app's API key (scope chat) that created the conversation
        await key_conversation_access(request, token, conversation_id)
        return record
    if not customer_token_matches(record.token_hash, token):
        raise ApiError(401, "invalid_token", "That token does not belong to this conversation.")
    return record
