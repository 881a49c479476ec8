"""REST v1: conversations and their messages, plus the health check."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chatbot.dialogue.engine import Engine, InputError
from chatbot.schema import AnswerObject
from chatbot.server.errors import ApiError
from chatbot.store import ConversationNotFound, Store

router = APIRouter()

ConversationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class ConversationOut(BaseModel):
    id: str
    created_at: datetime
    status: str = "bot"


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
    conversation_id, created_at = await asyncio.to_thread(db.create_conversation, "api")
    return ConversationOut(id=conversation_id, created_at=created_at)


@router.post("/v1/conversations/{conversation_id}/messages", response_model=AnswerObject, tags=["conversations"])
async def post_message(
    conversation_id: ConversationId,
    body: MessageIn,
    engine: Annotated[Engine, Depends(ready_engine)],
    db: Annotated[Store, Depends(store)],
) -> AnswerObject:
    if not await asyncio.to_thread(db.conversation_exists, conversation_id):
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.")
    try:
        return await engine.answer(body.text, conversation_id)
    except InputError as error:
        raise ApiError(422, error.code, error.message) from None


@router.get("/v1/conversations/{conversation_id}/messages", response_model=HistoryOut, tags=["conversations"])
async def get_messages(conversation_id: ConversationId, db: Annotated[Store, Depends(store)]) -> HistoryOut:
    try:
        messages = await asyncio.to_thread(db.messages, conversation_id)
    except ConversationNotFound:
        raise ApiError(404, "conversation_not_found", f"No conversation with id {conversation_id!r}.") from None
    return HistoryOut(conversation_id=conversation_id, messages=[MessageOut(**m.as_dict()) for m in messages])
