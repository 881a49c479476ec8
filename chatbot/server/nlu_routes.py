"""``POST /v1/nlu/parse``: the intent classifier on its own, in the Rasa NLU response shape.

Useful to integrators (route a message before opening a conversation, analytics) and to anyone
debugging why the assistant treated a message as it did. Input is validated exactly like a chat
message (same ``clean_text``, same error codes), so one message is never valid on one route and
invalid on another.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from chatbot.conversations.text import clean_text
from chatbot.dialogue.engine import Engine
from chatbot.server.bodies import RequestBody
from chatbot.server.errors import ApiError

nlu_router = APIRouter()


class ParseIn(RequestBody):
    text: Any = Field(description="The message to classify (a string, 2,000 characters at most).")


class IntentOut(BaseModel):
    name: str
    confidence: float


class ParseOut(BaseModel):
    intent: IntentOut
    ranking: list[IntentOut]


@nlu_router.post("/v1/nlu/parse", response_model=ParseOut, tags=["nlu"])
async def parse(body: ParseIn, request: Request) -> dict[str, object]:
    """The best intent with its confidence (0..1) and the top-5 ranking, best first."""
    engine: Engine = request.app.state.engine
    classifier = getattr(engine, "nlu", None)
    if classifier is None or not engine.ready or not classifier.ready:
        raise ApiError(503, "not_ready", "The assistant is still starting; try again in a few seconds.")
    text = clean_text(body.text, request.app.state.settings.max_message_chars)  # InvalidInput: 422
    result = await asyncio.to_thread(classifier.parse, text)
    return result.as_dict()
