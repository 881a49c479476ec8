"""OpenAI-compatible API: ``POST /v1/chat/completions`` (with ``stream``) and ``GET /v1/models``.

Any OpenAI client library can talk to the assistant unchanged (base URL ``…/v1``, an API key with
the ``chat`` scope as the "OpenAI key"). It is one more channel onto the one path every customer
message takes: ``TurnService`` (chatbot/conversations/turns.py) stores the message (redacted), tells
the agents and answers it — exactly as for the REST route and the WebSocket.

How OpenAI's stateless shape maps onto conversations (docs/openai-api.md):

- The answer is to the last ``user`` message. ``system``/``developer`` messages are ignored: the
  bank's own instructions and grounding rules cannot be replaced by a client.
- Without ``conversation_id`` (an extra body field; OpenAI clients send it with ``extra_body``) a
  new conversation (channel ``openai``, owned by the key) is created and the earlier user and
  assistant turns of ``messages`` are stored first, redacted, as its history, so follow-ups
  ("and for a business account?") resolve. With it, the stored history is used and only the last
  user message is new.
- The reply is an OpenAI ``chat.completion`` (or ``chat.completion.chunk`` events), plus extra
  fields: ``conversation_id``, ``message_id``, ``kind``, ``sources``, ``handoff``, ``status``,
  ``agent_messages``. The content ends with a "Sources:" line citing the sources by number.
- While a person has the conversation the message is stored for them and the reply is a normal
  completion saying so (``kind`` ``handoff``): OpenAI's format has no 202.

Errors are OpenAI's ``{"error": {"message", "type", "code", "param"}}`` (``code`` as elsewhere in the
API), for every failure of these routes, authentication and validation included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatbot.config import Settings
from chatbot.conversations.handoff import HandoffService, duration_text
from chatbot.conversations.text import clean_text
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.errors import DomainError, InvalidInput
from chatbot.guard.pii import redact
from chatbot.integration.keys import ApiKeyRecord
from chatbot.llm import openai_wire as wire
from chatbot.llm.openai_wire import ChatCompletionRequest, ChatMessage, ErrorOut, Usage
from chatbot.llm.worker import GenerationWorker
from chatbot.schema import AnswerObject, DeltaEvent, ErrorEvent, MessageEvent, SourceRef, StartEvent
from chatbot.server.bodies import RequestBody
from chatbot.server.dependencies import (
    CUSTOMER_HASH_HEADER,
    CUSTOMER_ID_HEADER,
    api_key,
    key_conversation_access,
    verify_identity,
)
from chatbot.server.errors import STATUS_CODES, ApiError, as_api_error
from chatbot.store import Store
from chatbot.store.messages import StoredMessage
from chatbot.tokens import bearer

log = logging.getLogger(__name__)

MODEL_ID = "kestrel-assist"
OWNED_BY = "kestrel"
CHANNEL = "openai"


class OpenAIRoute(APIRoute):
    """Every failure of these routes in OpenAI's error shape, whatever raised it (dependency, body, handler)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, DomainError) as raised:
                error = as_api_error(raised) if isinstance(raised, DomainError) else raised
                return wire.error_response(error.status, error.code, error.message, headers=error.headers)
            except RequestValidationError as error:
                return wire.validation_error_response(error)
            except StarletteHTTPException as error:
                code = STATUS_CODES.get(error.status_code, "http_error")  # e.g. payload_too_large
                message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
                return wire.error_response(error.status_code, code, message, headers=error.headers)
            except Exception:
                log.exception("openai-compatible request failed")
                return wire.error_response(500, "internal_error", "Something went wrong on our side.")

        return route


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (401, "Missing, unknown or revoked API key (`type` authentication_error)."),
        (403, "The key lacks the `chat` scope, or the conversation is not the key's (`type` permission_error)."),
        (404, "Unknown conversation_id or model."),
        (422, "Invalid request: no messages, no user message, a bad role, bad text (`type` invalid_request_error)."),
        (429, "Rate limited; `Retry-After` says when to retry (`type` rate_limit_error)."),
        (503, "The assistant is still starting (`code` not_ready)."),
    )
}

openai_router = APIRouter(route_class=OpenAIRoute, tags=["openai"])
ChatKey = Annotated[ApiKeyRecord, Depends(api_key("chat"))]


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: CompletionMessage
    logprobs: None = None
    finish_reason: Literal["stop"] = "stop"


class AgentMessage(BaseModel):
    id: str
    agent_name: str | None
    text: str
    created_at: str


class ChatCompletion(BaseModel):
    """OpenAI's ``chat.completion``; the fields after ``usage`` are Kestrel's extras."""

    id: str = Field(description="chatcmpl-<the stored answer's message id>")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    conversation_id: str = Field(description="Send it back (extra_body) to continue this conversation.")
    message_id: str | None = Field(description="The stored answer (for feedback); null while a person has the chat.")
    user_message_id: str = Field(description="The customer's message as stored (redacted).")
    kind: str = Field(description="The AnswerObject's kind; `handoff` when the message went to a person.")
    sources: list[SourceRef]
    handoff: bool
    status: str = Field(description="The conversation's status after this message: bot, waiting or assigned.")
    agent_messages: list[AgentMessage] = Field(
        default_factory=list, description="Replies of support agents since the customer's previous message."
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


STARTED = int(time.time())


# ---------------------------------------------------------------------- routes
@openai_router.get("/v1/models", response_model=ModelList, responses=ERRORS)
async def list_models(key: ChatKey) -> ModelList:
    """The assistant as OpenAI's model list: one model, ``kestrel-assist``."""
    return ModelList(data=[ModelCard(id=MODEL_ID, created=STARTED, owned_by=OWNED_BY)])


@openai_router.get("/v1/models/{model}", response_model=ModelCard, responses=ERRORS)
async def retrieve_model(model: str, key: ChatKey) -> ModelCard:
    """One model of the list (OpenAI's ``models.retrieve``); 404 ``model_not_found`` for any other name."""
    if model != MODEL_ID:
        raise ApiError(404, "model_not_found", f"The model {model!r} does not exist; this server has {MODEL_ID!r}.")
    return ModelCard(id=MODEL_ID, created=STARTED, owned_by=OWNED_BY)


class CompletionBody(RequestBody, ChatCompletionRequest):
    conversation_id: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Kestrel extra: continue this conversation (one the key created).",
    )


@openai_router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "With stream: chunks (SSE)."}},
)
async def chat_completions(body: CompletionBody, request: Request, key: ChatKey) -> ChatCompletion | Response:
    """An answer from the assistant to the last user message, as OpenAI's chat completion (or its stream)."""
    engine: Engine = request.app.state.engine
    handoff: HandoffService = request.app.state.handoff
    service: TurnService = request.app.state.turns
    store: Store = request.app.state.store
    question, history = _split(body.messages)
    try:  # checked before a conversation is created for it; the turn service checks it again
        service.clean(question)
    except InvalidInput as error:
        raise ApiError(422, error.code, f"the last user message: {error.message}") from None
    if not engine.ready:
        raise ApiError(503, "not_ready", "The assistant is still starting; try again in a few seconds.")
    customer_id = request.headers.get(CUSTOMER_ID_HEADER)
    previous: StoredMessage | None = None
    if body.conversation_id is not None:
        await key_conversation_access(request, bearer(request.headers.get("authorization")) or "", body.conversation_id)
        conversation_id = body.conversation_id
        previous = await asyncio.to_thread(store.last_user_message, conversation_id)
    else:
        verify_identity(request, key, customer_id, request.headers.get(CUSTOMER_HASH_HEADER))
        turns = _history_turns(history, engine.settings)
        conversation_id = await asyncio.to_thread(_create_conversation, store, key.id, customer_id, turns)
        ip = request.client.host if request.client else None
        detail = {"channel": CHANNEL, "history_messages": len(turns)}
        await asyncio.to_thread(
            store.audit, "api_key", key.id, "conversation.create", "conversation", conversation_id, ip, detail
        )
    try:
        accepted = await service.accept(conversation_id, question)
    except InvalidInput as error:
        raise ApiError(422, error.code, f"the last user message: {error.message}") from None
    stored, status = accepted.message, accepted.status
    agents = await _agent_messages(store, conversation_id, previous, stored)
    prompt_tokens = sum(_tokens(engine, m.text()) for m in body.messages)
    reply = _Reply(body, conversation_id, stored, agents, prompt_tokens, engine)
    if status in ("waiting", "assigned"):
        record = await handoff.record(conversation_id)
        notice = _handoff_notice(record.status, record.assigned_agent_name, handoff)
        return reply.stream_handoff(notice, record.status) if body.stream else reply.handoff(notice, record.status)
    if body.stream:
        events = reply.stream_answer(service, handoff, _answering(request))
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    with _answering(request):
        answer = await service.answer(conversation_id, stored.text)
    after = (await handoff.record(conversation_id)).status if answer.handoff else "bot"
    return reply.completion(answer, after)


def _answering(request: Request) -> contextlib.AbstractContextManager[object]:
    """Counts the answer as in flight, so a graceful shutdown waits for it (chatbot/shutdown.py)."""
    tracker = getattr(request.app.state, "answers", None)
    return tracker.answering() if tracker is not None else contextlib.nullcontext()


# ---------------------------------------------------------------------- request → conversation
def _split(messages: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """The last user message's text, and the user/assistant turns before it; 422 when there is none."""
    if not messages:
        raise ApiError(422, "invalid_request", "messages must contain at least one message.")
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise ApiError(422, "no_user_message", "messages must contain a user message: the assistant answers the last.")
    last = users[-1]
    if any(m.role == "assistant" for m in messages[last + 1 :]):
        raise ApiError(422, "invalid_request", "The last user message must come after the last assistant message.")
    earlier = [m for m in messages[:last] if m.role in ("user", "assistant")]
    return messages[last].text(), earlier


def _history_turns(history: list[ChatMessage], settings: Settings) -> list[tuple[str, str]]:
    """(role, redacted text) of the earlier turns to store; empty assistant turns (tool calls) are skipped.

    The last ``openai_history_messages`` turns are kept (follow-up resolution reads far fewer); each
    may be four times ``max_message_chars``, since answers run longer than questions.
    """
    max_chars = 4 * settings.max_message_chars
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(history[len(history) - settings.openai_history_messages :]):
        text = message.text()
        if not text.strip() and message.role == "assistant":
            continue
        try:
            cleaned = clean_text(text, max_chars)
        except InvalidInput as error:
            raise ApiError(422, error.code, f"history message {index}: {error.message}") from None
        turns.append((message.role, redact(cleaned, settings.pii_public_numbers).text))
    return turns


def _create_conversation(store: Store, key_id: str, customer_id: str | None, turns: list[tuple[str, str]]) -> str:
    """One transaction: the conversation, owned by the key (and the verified customer), with its history.

    Assistant turns the client sends are stored as assistant messages of kind ``history`` (they were
    not produced by this engine; analytics lists them under that kind).
    """
    return store.conversations.create_with_history(CHANNEL, key_id, customer_id, turns)


async def _agent_messages(
    store: Store, conversation_id: str, previous: StoredMessage | None, current: StoredMessage
) -> list[AgentMessage]:
    """Agents' replies stored since the customer's previous message: an OpenAI client has no other feed."""
    if previous is None:
        return []
    after = await asyncio.to_thread(store.messages_after, conversation_id, previous.id)
    return [
        AgentMessage(id=m.id, agent_name=m.agent_name, text=m.text, created_at=m.as_dict()["created_at"])
        for m in after
        if m.role == "agent" and m.id != current.id
    ]


def _handoff_notice(status: str, agent_name: str | None, handoff: HandoffService) -> str:
    if status == "assigned":
        who = agent_name or "A member of our team"
        return f"Your message was passed to {who}, who is handling this conversation and will reply here."
    wait = handoff.settings.expected_wait_s if handoff.hub.agents_online() else handoff.settings.offline_wait_s
    return (
        "Your message was passed to our team: a member of our team will reply in this conversation "
        f"(expected wait: {duration_text(wait)})."
    )


# ---------------------------------------------------------------------- response
def cited(text: str, sources: list[SourceRef]) -> str:
    """The answer with its sources cited by number, since an OpenAI client shows only the content."""
    if not sources:
        return text
    refs = "; ".join(f"[{n}] {s.title}" + (f" ({s.url})" if s.url else "") for n, s in enumerate(sources, 1))
    return f"{text}\n\nSources: {refs}"


def _tokens(engine: Engine, text: str) -> int:
    """Tokens by the in-process generator's tokenizer; with a remote generator, OpenAI's 4-characters estimate."""
    if isinstance(engine.worker, GenerationWorker) and text:
        return len(engine.worker.loaded.tokenizer.encode(text, add_special_tokens=False))
    return wire.estimate_tokens(text)


class _Reply:
    """Builds the completion (or its chunks) for one request."""

    def __init__(
        self,
        body: CompletionBody,
        conversation_id: str,
        stored: StoredMessage,
        agents: list[AgentMessage],
        prompt_tokens: int,
        engine: Engine,
    ) -> None:
        self.body, self.conversation_id, self.stored, self.agents = body, conversation_id, stored, agents
        self.prompt_tokens, self.engine = prompt_tokens, engine
        self.created = int(time.time())

    def _extras(
        self, message_id: str | None, kind: str, sources: list[SourceRef], handoff: bool, status: str
    ) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "message_id": message_id,
            "user_message_id": self.stored.id,
            "kind": kind,
            "sources": [s.model_dump() for s in sources],
            "handoff": handoff,
            "status": status,
            "agent_messages": [a.model_dump() for a in self.agents],
        }

    def _agent_lines(self) -> str:
        return "".join(f"{a.agent_name or 'Our team'}: {a.text}\n\n" for a in self.agents)

    def _completion(self, completion_id: str, content: str, extras: dict[str, Any]) -> ChatCompletion:
        return ChatCompletion(
            id=completion_id,
            created=self.created,
            model=MODEL_ID,
            choices=[Choice(message=CompletionMessage(content=content))],
            usage=wire.usage(self.prompt_tokens, _tokens(self.engine, content)),
            **extras,
        )

    def completion(self, answer: AnswerObject, status: str) -> ChatCompletion:
        content = self._agent_lines() + cited(answer.text, answer.sources)
        extras = self._extras(answer.id, answer.kind, answer.sources, answer.handoff, status)
        return self._completion(f"chatcmpl-{answer.id}", content, extras)

    def handoff(self, notice: str, status: str) -> ChatCompletion:
        extras = self._extras(None, "handoff", [], True, status)
        return self._completion(f"chatcmpl-{self.stored.id}", self._agent_lines() + notice, extras)

    # ------------------------------------------------------------------ streaming
    def _chunk(self, completion_id: str, delta: dict[str, Any]) -> bytes:
        return wire.sse(wire.chunk(completion_id, MODEL_ID, self.created, delta))

    def _end(self, completion_id: str, content: str, extras: dict[str, Any]) -> bytes:
        """The final chunk (finish_reason and the extras), the usage chunk if asked for, then [DONE]."""
        out = wire.sse(wire.chunk(completion_id, MODEL_ID, self.created, {}, "stop", **extras))
        if self.body.include_usage:
            counts = wire.usage(self.prompt_tokens, _tokens(self.engine, content))
            out += wire.sse(wire.usage_chunk(completion_id, MODEL_ID, self.created, counts))
        return out + wire.DONE

    def stream_handoff(self, notice: str, status: str) -> StreamingResponse:
        completion_id = f"chatcmpl-{self.stored.id}"
        content = self._agent_lines() + notice

        async def events() -> AsyncIterator[bytes]:
            yield self._chunk(completion_id, {"role": "assistant", "content": ""})
            yield self._chunk(completion_id, {"content": content})
            yield self._end(completion_id, content, self._extras(None, "handoff", [], True, status))

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def stream_answer(
        self, turns: TurnService, handoff: HandoffService, answering: contextlib.AbstractContextManager[object]
    ) -> AsyncIterator[bytes]:
        """The answer's chunks; an error after the headers went out is reported in the stream, in OpenAI's shape."""
        try:
            with answering:
                async for item in self._answer_chunks(turns, handoff):
                    yield item
        except Exception:
            log.exception("openai-compatible stream failed")
            yield wire.sse(wire.error_body(500, "internal_error", "Something went wrong on our side."))

    async def _answer_chunks(self, turns: TurnService, handoff: HandoffService) -> AsyncIterator[bytes]:
        """The engine's verified deltas as content chunks, as they come; then the citation line and the extras.

        The engine's final text is the one to show. It differs from the streamed deltas only when a
        later sentence of a generated answer fails the grounding check: the sentences already sent
        were each verified, and the replacement (the best source's own sentences) follows them after
        a blank line, so the assembled content always ends with the answer the engine stored.
        """
        completion_id = f"chatcmpl-{self.stored.id}"
        streamed = self._agent_lines()
        final: AnswerObject | None = None
        async for event in turns.reply(self.conversation_id, self.stored.text):  # stored, published, handed off
            if isinstance(event, StartEvent):
                completion_id = f"chatcmpl-{event.id}"
                yield self._chunk(completion_id, {"role": "assistant", "content": streamed})
            elif isinstance(event, DeltaEvent):
                streamed += event.text
                yield self._chunk(completion_id, {"content": event.text})
            elif isinstance(event, MessageEvent):
                final = event.message
            elif isinstance(event, ErrorEvent):
                yield wire.sse(wire.error_body(422, event.code, event.message))
                return
        assert final is not None
        status = (await handoff.record(self.conversation_id)).status if final.handoff else "bot"
        answer = self._agent_lines() + final.text
        rest = answer[len(streamed) :] if answer.startswith(streamed) else "\n\n" + final.text
        if final.sources:
            rest = cited(rest, final.sources)
        if rest:
            yield self._chunk(completion_id, {"content": rest})
        extras = self._extras(final.id, final.kind, final.sources, final.handoff, status)
        yield self._end(completion_id, streamed + rest, extras)
