"""Contracts shared by every channel: the AnswerObject and the streamed events.

The widget, the REST API, the CLI and the evaluation harness all consume these, so they are
defined once, as pydantic models, and serialised the same way everywhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

AnswerKind = Literal["faq", "generated", "extractive", "flow", "refusal", "fallback", "handoff", "clarification"]


class SourceRef(BaseModel):
    id: str
    title: str
    url: str | None = None
    score: float = 0.0
    passage: str | None = Field(
        default=None, description="The passage quoted first from this source (a section or FAQ entry id)."
    )


class IntentRef(BaseModel):
    name: str
    confidence: float


class AnswerObject(BaseModel):
    id: str
    conversation_id: str | None = None
    role: Literal["assistant"] = "assistant"
    text: str
    kind: AnswerKind
    intent: IntentRef | None = None
    sources: list[SourceRef] = Field(default_factory=list)
    handoff: bool = False
    quick_replies: list[str] = Field(
        default_factory=list, description="Short options the widget shows as buttons; sending one sends its text."
    )
    latency_ms: int = 0


class StartEvent(BaseModel):
    type: Literal["start"] = "start"
    id: str
    conversation_id: str | None = None


class DeltaEvent(BaseModel):
    type: Literal["delta"] = "delta"
    id: str
    text: str


class MessageEvent(BaseModel):
    type: Literal["message"] = "message"
    message: AnswerObject


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


EngineEvent = StartEvent | DeltaEvent | MessageEvent | ErrorEvent
