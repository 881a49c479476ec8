"""REST v1: conversations and their messages, plus the health check.

Customer routes need the conversation's own token (``Authorization: Bearer <token>``, given once by
``POST /v1/conversations``): a customer reads and writes only their own conversation.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.guard.pii import redact
from chatbot.integration.conversations import IntegrationConversations
from chatbot.integration.idempotency import idempotent
from chatbot.integration.keys import ApiKeyRecord
from chatbot.integration.openapi import errors
from chatbot.integration.pagination import decode_seq, encode_seq, page_limit
from chatbot.integration.webhooks import emit
from chatbot.schema import AnswerObject
from chatbot.server.bodies import RequestBody
from chatbot.server.dependencies import customer_conversation, optional_api_key, ready_engine, store, verify_identity
from chatbot.server.errors import ApiError
from chatbot.store import ConversationNotFound, MessageNotFound, Store
from chatbot.tokens import new_customer_token

router = APIRouter()

ConversationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
MessageId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
AfterId = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class ConversationOut(BaseModel):
    id: str
    created_at: datetime
    status: str = "bot"
    token: str | None = Field(None, description="The customer's token for this conversation; shown only once.")
    customer_id: str | None = Field(None, description="The verified customer id (conversations made with an API key).")


class NewConversationIn(RequestBody):
    customer_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$", description="Your customer's id (API key only)."
    )
    customer_hash: str | None = Field(
        None, max_length=128, description="Hex HMAC-SHA256 of customer_id with the key's identity secret."
    )


class MessageIn(RequestBody):
    text: str = Field(description="What the customer wrote (2,000 characters at most).")


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    role: str
    text: str
    kind: str | None
    intent: dict[str, Any] | None
    sources: list[dict[str, Any]]
    handoff: bool
    latency_ms: int | None
    created_at: str
    quick_replies: list[str] = Field(default_factory=list)
    agent_name: str | None = None


class FeedbackIn(RequestBody):
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=1000)


class HistoryOut(BaseModel):
    conversation_id: str
    messages: list[MessageOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last page.")


@router.get("/healthz", tags=["operations"], responses=errors(503, descriptions={503: "Loading, or failed to start."}))
async def healthz(request: Request) -> JSONResponse:
    """200 once the models and index are loaded (with the generator's model and device), 503 before."""
    engine: Engine = request.app.state.engine
    if request.app.state.warmup_error:
        return JSONResponse({"status": "error", "detail": "the engine failed to start"}, status_code=503)
    if not engine.ready:
        return JSONResponse({"status": "loading"}, status_code=503)
    assert engine.index is not None
    body: dict[str, Any] = {"status": "ok", "passages": len(engine.index.passages)}
    if engine.worker is not None:
        body["generator"] = {
            "model": engine.worker.loaded.name,
            "adapter": engine.worker.loaded.adapter,
            "device": str(engine.worker.loaded.device),
        }
    return JSONResponse(body)


@router.post(
    "/v1/conversations",
    status_code=201,
    response_model=ConversationOut,
    tags=["conversations"],
    responses=errors(401, 403, 409, 422, 429),
)
async def create_conversation(
    request: Request,
    db: Annotated[Store, Depends(store)],
    key: Annotated[ApiKeyRecord | None, Depends(optional_api_key("chat"))],
    body: Annotated[NewConversationIn | None, Body()] = None,
) -> JSONResponse:
    """A new conversation and its customer token (shown once). Anonymous (the widget) or with an API key
    (scope chat), which may attach a verified ``customer_id``; ``Idempotency-Key`` needs the API key."""
    wanted = body or NewConversationIn()
    if wanted.customer_hash is not None and wanted.customer_id is None:
        raise ApiError(422, "invalid_request", "customer_hash needs customer_id.")
    if key is None and wanted.customer_id is not None:
        raise ApiError(401, "invalid_identity", "A customer_id needs an API key (Authorization: Bearer kst_…).")
    if key is None and request.headers.get("idempotency-key") is not None:
        raise ApiError(422, "invalid_idempotency_key", "Idempotency-Key on this route needs an API key.")
    if key is not None:
        verify_identity(request, key, wanted.customer_id, wanted.customer_hash)

    async def run() -> tuple[int, Any]:
        token, token_hash = new_customer_token()
        if key is None:
            conversation_id, created_at = await asyncio.to_thread(db.create_conversation, "api", token_hash)
            return 201, ConversationOut(id=conversation_id, created_at=created_at, token=token).model_dump(mode="json")
        made = IntegrationConversations(db.engine)
        summary = await asyncio.to_thread(made.create, token_hash, key.id, wanted.customer_id)
        customer = summary.customer_id
        out = ConversationOut(id=summary.id, created_at=summary.created_at, token=token, customer_id=customer)
        return 201, out.model_dump(mode="json")

    scope = f"key:{key.id}" if key is not None else "anonymous"
    no_token = lambda content: {**content, "token": None}  # noqa: E731 (a replay does not show the token again)
    return await idempotent(request, scope, wanted.model_dump(), run, for_storage=no_token)


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    response_model=AnswerObject,
    tags=["conversations"],
    responses={
        202: {"description": "Stored for the agents (the conversation is waiting or assigned)."},
        **errors(401, 403, 404, 409, 422, 429, 503),
    },
)
async def post_message(
    conversation_id: ConversationId,
    body: MessageIn,
    request: Request,
    engine: Annotated[Engine, Depends(ready_engine)],
) -> AnswerObject | JSONResponse:
    """The customer's message is stored first; the assistant answers only while no human has the conversation.
    With an ``Idempotency-Key`` header a retry returns the first response instead of storing the message twice."""
    await customer_conversation(request, conversation_id)
    turns: TurnService = request.app.state.turns

    async def run() -> tuple[int, Any]:
        accepted = await turns.accept(conversation_id, body.text)  # InvalidInput: 422, RateLimited: 429
        if accepted.status in ("waiting", "assigned"):
            message = MessageOut(**accepted.message.as_dict()).model_dump(mode="json")
            return 202, {"status": accepted.status, "message": message}
        answer = await turns.answer(conversation_id, accepted.message.text)
        return 200, answer.model_dump(mode="json")

    return await idempotent(request, f"conv:{conversation_id}", body.model_dump(), run)


@router.get(
    "/v1/conversations/{conversation_id}/messages",
    response_model=HistoryOut,
    tags=["conversations"],
    responses=errors(401, 403, 404, 422, 429),
)
async def get_messages(
    conversation_id: ConversationId,
    request: Request,
    db: Annotated[Store, Depends(store)],
    after: AfterId = None,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int | None, Query(description="Page size, 1..page_size_max (default: page_size_max).")] = None,
) -> HistoryOut:
    """The conversation's messages, oldest first, a page at a time (``next_cursor``); ``after=<message id>``
    starts after that message."""
    await customer_conversation(request, conversation_id)
    size = page_limit(limit, request.app.state.settings.page_size_max)
    after_seq = decode_seq(cursor) if cursor else None
    pages = IntegrationConversations(db.engine)
    try:
        messages, last_seq = await asyncio.to_thread(pages.message_page, conversation_id, after, after_seq, size)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    except MessageNotFound:
        raise ApiError(404, "message_not_found", f"No message {after!r} in this conversation.") from None
    return HistoryOut(
        conversation_id=conversation_id,
        messages=[MessageOut(**m.as_dict()) for m in messages],
        next_cursor=encode_seq(last_seq) if last_seq is not None else None,
    )


@router.post(
    "/v1/conversations/{conversation_id}/handoff", tags=["conversations"], responses=errors(401, 403, 404, 429)
)
async def request_handoff(conversation_id: ConversationId, request: Request) -> dict[str, Any]:
    """Ask for a person: the conversation waits for an agent (idempotent); the body says what to tell the customer."""
    await customer_conversation(request, conversation_id)
    frame, _ = await request.app.state.handoff.start_handoff(conversation_id, "customer_request")
    return {k: v for k, v in frame.items() if k != "type"}


@router.post("/v1/messages/{message_id}/feedback", tags=["conversations"], responses=errors(401, 403, 404, 422, 429))
async def message_feedback(
    message_id: MessageId, body: FeedbackIn, request: Request, db: Annotated[Store, Depends(store)]
) -> dict[str, Any]:
    """Thumbs up or down on one assistant answer, by the customer of its conversation; a new rating replaces."""
    message = await asyncio.to_thread(db.message, message_id)
    if message is None:
        raise ApiError(404, "message_not_found", f"No message with id {message_id!r}.")
    await customer_conversation(request, message.conversation_id)
    if message.role != "assistant":
        raise ApiError(422, "not_an_answer", "Only the assistant's answers can be rated.")
    comment = body.comment.strip() if body.comment and body.comment.strip() else None
    settings = request.app.state.settings
    if comment is not None:
        comment = redact(comment, settings.pii_public_numbers).text
    await asyncio.to_thread(db.set_feedback, message_id, message.conversation_id, body.rating, comment)
    await emit(settings, db, "feedback.created", message.conversation_id, message_id=message_id, rating=body.rating,
               comment=comment)  # fmt: skip
    return {"message_id": message_id, "rating": body.rating, "comment": comment}
