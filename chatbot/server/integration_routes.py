"""Integration API routes for apps and partners that need an API key (docs/integration-api.md).

``GET /v1/conversations`` lists one verified customer's conversations, newest first, a page at a
time. Conversation creation, messages and history stay in chatbot/server/routes.py, which accept
an API key wherever they accept a customer token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from chatbot.integration.conversations import IntegrationConversations
from chatbot.integration.keys import ApiKeyRecord
from chatbot.integration.openapi import errors
from chatbot.integration.pagination import decode_position, encode_position, page_limit
from chatbot.server.dependencies import api_key, verify_identity

integration_router = APIRouter(tags=["integration"])


class ConversationSummaryOut(BaseModel):
    id: str
    status: str = Field(description="bot | waiting | assigned | closed")
    channel: str
    created_at: str
    updated_at: str
    customer_id: str | None


class ConversationPageOut(BaseModel):
    conversations: list[ConversationSummaryOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


@integration_router.get(
    "/v1/conversations",
    response_model=ConversationPageOut,
    summary="List a verified customer's conversations",
    responses=errors(401, 403, 422, 429),
)
async def list_customer_conversations(
    request: Request,
    key: Annotated[ApiKeyRecord, Depends(api_key("chat"))],
    customer_id: Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")],
    customer_hash: Annotated[str, Query(min_length=1, max_length=128)],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int | None, Query(description="Page size, 1..page_size_max (default: page_size_max).")] = None,
) -> ConversationPageOut:
    """Newest first; needs an API key with scope ``chat`` and the customer's ``customer_hash`` (hex
    HMAC-SHA256 of ``customer_id`` with the key's identity secret): a forged hash is 401 ``invalid_identity``.
    Only conversations this key created are listed: the same customer id under another key is another customer."""
    verify_identity(request, key, customer_id, customer_hash)
    size = page_limit(limit, request.app.state.settings.page_size_max)
    before = decode_position(cursor) if cursor else None
    conversations = IntegrationConversations(request.app.state.store.engine)
    rows, more = await asyncio.to_thread(conversations.for_customer, key.id, customer_id, before, size)
    next_cursor = encode_position(rows[-1].created_at, rows[-1].id) if more and rows else None
    return ConversationPageOut(
        conversations=[ConversationSummaryOut(**r.as_dict()) for r in rows],  # type: ignore[arg-type]
        next_cursor=next_cursor,
    )
