"""OpenAI's chat-completions wire format, in one place.

Three parts of the project speak it: the assistant's OpenAI-compatible routes
(``chatbot/server/openai_routes.py``), the generation server ``chatbot serve-llm``
(``chatbot/llm/openai_server.py``) and the remote generation client (``chatbot/llm/remote.py``).
Defining the request models, the chunk and completion objects and the error shape once keeps the
three compatible with each other and with OpenAI's client libraries, vLLM and llama.cpp's server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "developer", "user", "assistant"]

# OpenAI's error ``type`` per status. Clients pick the exception class by status code; ``type`` is
# what people and log pipelines read, ``code`` is the machine-readable reason (the same codes as
# the rest of the API, e.g. ``rate_limited``, ``invalid_api_key``).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

DONE = b"data: [DONE]\n\n"


class ContentPart(BaseModel):
    """One part of a message's content; only text parts carry anything the assistant can read."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_content(cls, value: object) -> object:
        """One readable error for content that is not text, instead of pydantic's per-union-member list."""
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError("content must be a string or a list of text parts")
        for part in value:
            if not isinstance(part, dict):
                raise ValueError('content parts must be objects such as {"type": "text", "text": "…"}')
            if part.get("type") != "text":
                raise ValueError(f"content parts of type {part.get('type')!r} are not supported; send text parts")
            if not isinstance(part.get("text"), str):
                raise ValueError("a text content part needs a 'text' string")
        return value

    def text(self) -> str:
        """The message's text: a string as is, text parts joined by newlines, no content as empty."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields OpenAI's clients send. Unknown fields are accepted and ignored, as OpenAI-compatible
    servers do, so a client sending a newer parameter keeps working."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    user: str | None = Field(None, max_length=256)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "code": code, "param": param}}


def error_response(
    status: int, code: str, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, param), status_code=status, headers=headers)


def validation_error_response(error: RequestValidationError) -> JSONResponse:
    """A 422 in OpenAI's shape; ``param`` names the first offending field (``messages.0.role``)."""
    problems: list[str] = []
    param: str | None = None
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        if item.get("type") == "json_invalid":
            problems.append("the request body is not valid JSON")
            continue
        param = param or location or None
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(f"{location or 'body'}: {message}")
    # a body model may name its own error type as the code (the web layer's ``invalid_text``)
    code = next((str(i["type"]) for i in error.errors() if i.get("type") == "invalid_text"), "invalid_request")
    return error_response(422, code, "; ".join(problems) or "invalid request", param)


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event, as OpenAI streams them: ``data: <json>`` and a blank line."""
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice; ``extra`` adds non-OpenAI fields at the top level."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    body.update(extra)
    return body


def usage_chunk(completion_id: str, model: str, created: int, counts: Usage) -> dict[str, Any]:
    """The last chunk when ``stream_options.include_usage`` is set: no choices, only usage."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": counts.model_dump(),
    }


def model_list(model_ids: list[str], owned_by: str, created: int | None = None) -> dict[str, Any]:
    stamp = created if created is not None else int(time.time())
    return {"object": "list", "data": [model_card(m, owned_by, stamp) for m in model_ids]}


def model_card(model_id: str, owned_by: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def estimate_tokens(text: str) -> int:
    """About four characters per token (OpenAI's rule of thumb), for when no tokenizer is at hand."""
    return (len(text) + 3) // 4 if text else 0
