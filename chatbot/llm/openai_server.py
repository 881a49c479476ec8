"""``chatbot serve-llm``: the in-process generator behind an OpenAI-compatible HTTP API.

This is what a bank runs on a GPU machine so that generation scales apart from the assistant:
the same converted GGUF model and LoRA adapter, the same batching ``GenerationWorker``, served at
``/v1/chat/completions`` (with ``stream: true`` as server-sent events) and ``/v1/models`` — the
API of vLLM and llama.cpp's server, so the assistant's ``CHATBOT_LLM_BASE_URL`` can point at any
of the three. It is a plain text generator: no retrieval, no grounding check, no storage (the
assistant does all of that); it never logs prompts or generated text.

Decoding is greedy with the worker's repetition penalty (as in the assistant), so ``temperature``,
``top_p``, ``seed`` and the penalties are accepted and ignored; ``max_tokens`` (or
``max_completion_tokens``) caps the answer, by default at ``CHATBOT_MAX_NEW_TOKENS``. When
``CHATBOT_LLM_API_KEY`` is set the server requires it as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatbot.config import Settings
from chatbot.llm import openai_wire as wire
from chatbot.llm.generators import transformers_worker
from chatbot.llm.worker import GenerationWorker
from chatbot.tokens import bearer

log = logging.getLogger(__name__)

CONTEXT_TOKENS = 8192  # SmolLM2's context window: prompt plus answer must fit
MAX_TOKENS_CAP = 2048


class _ServerError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def default_model_id(settings: Settings) -> str:
    """``kestrel-<model>[+lora]``: names what is served, e.g. ``kestrel-SmolLM2-135M-Instruct.Q4_1+lora``."""
    name = settings.generator_model.rstrip("/").split("/")[-1].removesuffix(".gguf") or "generator"
    adapter = settings.generator_adapter and (Path(settings.generator_adapter) / "adapter_config.json").exists()
    return f"kestrel-{name}" + ("+lora" if adapter else "")


class _Stats:
    """Counts a client (or a test) can read at ``/healthz`` to see that requests arrived."""

    def __init__(self) -> None:
        self.requests = 0
        self.completion_tokens = 0
        self.prompt_tokens = 0


def create_llm_app(settings: Settings, model_id: str | None = None) -> FastAPI:
    served = model_id or default_model_id(settings)
    stats = _Stats()
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.worker = None
        worker = await asyncio.to_thread(transformers_worker, settings)
        worker.start()
        app.state.worker = worker
        log.info("generation server ready", extra={"model": served, "device": str(worker.loaded.device)})
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(
        title="Kestrel Assist generation server",
        version="0.1.0",
        description="The in-process generator behind an OpenAI-compatible API (`chatbot serve-llm`).",
        lifespan=lifespan,
    )

    @app.exception_handler(_ServerError)
    async def server_error(_: Request, error: _ServerError) -> JSONResponse:
        return wire.error_response(error.status, error.code, error.message, error.param)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return wire.validation_error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request failed"
        return wire.error_response(error.status_code, "http_error", message)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("generation request failed")
        return wire.error_response(500, "internal_error", "The generation server failed on this request.")

    def authorise(request: Request) -> GenerationWorker:
        if settings.llm_api_key:
            token = bearer(request.headers.get("authorization"))
            if not token or not hmac.compare_digest(token.encode(), settings.llm_api_key.encode()):
                raise _ServerError(401, "invalid_api_key", "Send this server's key: Authorization: Bearer <key>.")
        worker: GenerationWorker | None = request.app.state.worker
        if worker is None:
            raise _ServerError(503, "not_ready", "The model is still loading.")
        return worker

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        worker: GenerationWorker | None = request.app.state.worker
        return {
            "status": "ok" if worker is not None else "loading",
            "model": served,
            "requests": stats.requests,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "queue_depth": worker.queue_depth if worker is not None else 0,
        }

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorise(request)
        return wire.model_list([served], "kestrel", started)

    @app.get("/v1/models/{model}")
    async def model(model: str, request: Request) -> dict[str, Any]:
        authorise(request)
        if model != served:
            raise _ServerError(
                404, "model_not_found", f"The model {model!r} does not exist; this server has {served!r}."
            )
        return wire.model_card(served, "kestrel", started)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: wire.ChatCompletionRequest, request: Request) -> Any:
        worker = authorise(request)
        if body.model != served:
            message = f"The model {body.model!r} does not exist; this server has {served!r}."
            raise _ServerError(404, "model_not_found", message, "model")
        if not body.messages:
            raise _ServerError(422, "invalid_request", "messages must contain at least one message.", "messages")
        messages = [{"role": _template_role(m.role), "content": m.text()} for m in body.messages]
        prompt_tokens = len(await asyncio.to_thread(worker.encode_chat, messages))
        limit = min(body.token_limit or settings.max_new_tokens, MAX_TOKENS_CAP)
        if prompt_tokens + limit > CONTEXT_TOKENS:
            message = f"The prompt has {prompt_tokens} tokens; with max_tokens {limit} it exceeds {CONTEXT_TOKENS}."
            raise _ServerError(400, "context_length_exceeded", message, "messages")
        stats.requests += 1
        stats.prompt_tokens += prompt_tokens
        completion_id = f"chatcmpl-{int(time.time() * 1000):x}{stats.requests}"
        created = int(time.time())

        def finish(text: str) -> tuple[wire.Usage, str]:
            completion = len(worker.loaded.tokenizer.encode(text, add_special_tokens=False)) if text else 0
            stats.completion_tokens += completion
            return wire.usage(prompt_tokens, completion), "length" if completion >= limit else "stop"

        if not body.stream:
            text = await worker.complete(messages, limit)
            counts, reason = finish(text)
            return {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": served,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": reason,
                    }
                ],
                "usage": counts.model_dump(),
            }

        async def events() -> AsyncIterator[bytes]:
            yield wire.sse(wire.chunk(completion_id, served, created, {"role": "assistant", "content": ""}))
            pieces: list[str] = []
            stream = worker.stream(messages, limit)
            try:
                async for piece in stream:
                    pieces.append(piece)
                    yield wire.sse(wire.chunk(completion_id, served, created, {"content": piece}))
            except Exception:  # the worker failed on this batch: say so in OpenAI's shape, then end
                log.exception("generation failed")
                yield wire.sse(wire.error_body(500, "internal_error", "Generation failed on this request."))
                return
            finally:
                await stream.aclose()  # a client that went away stops the decoding of its row
            counts, reason = finish("".join(pieces))
            yield wire.sse(wire.chunk(completion_id, served, created, {}, reason))
            if body.include_usage:
                yield wire.sse(wire.usage_chunk(completion_id, served, created, counts))
            yield wire.DONE

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


def _template_role(role: str) -> str:
    """OpenAI's newer ``developer`` role is a system message to every chat template."""
    return "system" if role == "developer" else role


def run(settings: Settings, host: str, port: int, model_id: str | None = None) -> None:
    import uvicorn

    from chatbot.log_setup import configure_logging

    configure_logging(settings.log_level, settings.pii_public_numbers)
    uvicorn.run(create_llm_app(settings, model_id), host=host, port=port, log_config=None)
