"""API-key authentication for FastAPI routes, and the conversation access rule for keys.

``Authorization: Bearer kst_…`` is an API key (a JWT has two dots, anything else is a customer
token). 401 for a missing, unknown or revoked key; 403 for a valid key without the scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request

from chatbot.agents.auth import bearer
from chatbot.integration.conversations import IntegrationConversations
from chatbot.integration.keys import ApiKeyRecord, ApiKeys, identity_secret, identity_valid, is_api_key
from chatbot.server.errors import ApiError
from chatbot.store import ConversationNotFound, Store

CUSTOMER_ID_HEADER = "Kestrel-Customer-Id"
CUSTOMER_HASH_HEADER = "Kestrel-Customer-Hash"


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


async def authenticate_key(request: Request, key: str, scope: str) -> ApiKeyRecord:
    """The key's record, its use recorded; ApiError 401 (unknown, revoked) or 403 (scope missing)."""
    keys = ApiKeys(_store(request).engine)
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
    """For ``customer_conversation``: a chat-scoped key reaches conversations it created, and those of a
    customer the request verifies (headers Kestrel-Customer-Id / Kestrel-Customer-Hash); else 403."""
    key = await authenticate_key(request, token, "chat")
    conversations = IntegrationConversations(_store(request).engine)
    try:
        summary = await asyncio.to_thread(conversations.summary, conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    if summary.api_key_id is not None and summary.api_key_id == key.id:
        return key
    customer_id = request.headers.get(CUSTOMER_ID_HEADER)
    if customer_id is not None and summary.customer_id is not None and summary.api_key_id is not None:
        verify_identity(request, key, customer_id, request.headers.get(CUSTOMER_HASH_HEADER))
        if customer_id == summary.customer_id:
            return key
    raise ApiError(403, "not_your_conversation", "This API key did not create this conversation.")
