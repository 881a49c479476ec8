"""REST v1: conversations and their messages, plus the health check.

Customer routes need the conversation's own token (``Authorization: Bearer <token>``, given once by
``POST /v1/conversations``): a customer reads and writes only their own conversation.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chatbot.agents.auth import bearer, customer_token_matches, new_customer_token
from chatbot.dialogue.engine import Engine, InputError
from chatbot.guard.pii import redact
from chatbot.schema import AnswerObject
from chatbot.server.errors import ApiError
from chatbot.store import ConversationNotFound, Store
from chatbot.store.handoff import ConversationRecord, MessageNotFound

router = APIRouter()

ConversationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
MessageId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
AfterId = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class ConversationOut(BaseModel):
    id: str
    created_at: datetime
    status: str = "bot"
    token: str | None = Field(None, description="The customer's token for this conversation; shown only once.")


class MessageIn(BaseModel):
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


class FeedbackIn(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=1000)


class HistoryOut(BaseModel):
    conversation_id: str
    messages: list[MessageOut]


def ready_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    if not engine.ready:
        raise ApiError(503, "not_ready", "The assistant is still starting; try again in a few seconds.")
    return engine


def store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


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
    if not customer_token_matches(record.token_hash, token):
        raise ApiError(401, "invalid_token", "That token does not belong to this conversation.")
    return record


@router.get("/healthz", tags=["operations"])
async def healthz(request: Request) -> JSONResponse:
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


@router.post("/v1/conversations", status_code=201, response_model=ConversationOut, tags=["conversations"])
async def create_conversation(db: Annotated[Store, Depends(store)]) -> ConversationOut:
    token, token_hash = new_customer_token()
    conversation_id, created_at = await asyncio.to_thread(db.create_conversation, "api", token_hash)
    return ConversationOut(id=conversation_id, created_at=created_at, token=token)


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    response_model=AnswerObject,
    tags=["conversations"],
    responses={202: {"description": "Stored for the agents (the conversation is waiting or assigned)."}},
)
async def post_message(
    conversation_id: ConversationId,
    body: MessageIn,
    request: Request,
    engine: Annotated[Engine, Depends(ready_engine)],
) -> AnswerObject | JSONResponse:
    """The customer's message is stored first; the assistant answers only while no human has the conversation."""
    await customer_conversation(request, conversation_id)
    handoff = request.app.state.handoff
    try:
        stored, status = await handoff.customer_message(conversation_id, body.text)
    except InputError as error:
        raise ApiError(422, error.code, error.message) from None
    if status in ("waiting", "assigned"):
        message = MessageOut(**stored.as_dict()).model_dump(mode="json")
        return JSONResponse({"status": status, "message": message}, status_code=202)
    answer = await engine.answer(stored.text, conversation_id, user_message_stored=True)
    await handoff.answered(answer)
    return answer


@router.get("/v1/conversations/{conversation_id}/messages", response_model=HistoryOut, tags=["conversations"])
async def get_messages(
    conversation_id: ConversationId, request: Request, db: Annotated[Store, Depends(store)], after: AfterId = None
) -> HistoryOut:
    """The conversation's messages in order; ``after=<message id>`` returns only those stored after it."""
    await customer_conversation(request, conversation_id)
    try:
        messages = await asyncio.to_thread(db.messages_after, conversation_id, after)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    except MessageNotFound:
        raise ApiError(404, "message_not_found", f"No message {after!r} in this conversation.") from None
    return HistoryOut(conversation_id=conversation_id, messages=[MessageOut(**m.as_dict()) for m in messages])


@router.post("/v1/conversations/{conversation_id}/handoff", tags=["conversations"])
async def request_handoff(conversation_id: ConversationId, request: Request) -> dict[str, Any]:
    """Ask for a person: the conversation waits for an agent (idempotent); the body says what to tell the customer."""
    await customer_conversation(request, conversation_id)
    frame, _ = await request.app.state.handoff.start_handoff(conversation_id, "customer_request")
    return {k: v for k, v in frame.items() if k != "type"}


@router.post("/v1/messages/{message_id}/feedback", tags=["conversations"])
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
    if comment is not None:
        comment = redact(comment).text
    await asyncio.to_thread(db.set_feedback, message_id, message.conversation_id, body.rating, comment)
    return {"message_id": message_id, "rating": body.rating, "comment": comment}
