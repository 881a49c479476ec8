"""Generation on an OpenAI-compatible server (``CHATBOT_LLM_BASE_URL``) instead of the in-process model.

Banks scale generation on its own GPU machines (vLLM, llama.cpp's server, or ``chatbot serve-llm``)
while the assistant's processes stay on CPUs. ``RemoteGenerator`` has the interface the engine uses
of the in-process ``GenerationWorker`` — ``stream(messages, max_new_tokens)`` yields text pieces,
``queue_depth``, ``loaded``, ``start``/``stop`` — so the engine's per-sentence grounding check,
its fallbacks and every channel work unchanged.

What is sent: exactly the chat messages the in-process model gets (``chatbot/llm/prompts.py``):
the fixed system prompt, the bank's published passages and the customer's question after the
engine has redacted it (``chatbot/guard/pii.py``). Nothing else about the customer leaves.

Failures never reach a customer: a timeout, a connection error, an error status or a malformed
stream raises ``GenerationUnavailable``, which the engine turns into the extractive answer (the
best source's own sentences), as it does when the model's text fails the grounding check. The
failure is logged with the server's address and the reason, never with the API key, the URL's
credentials or the prompt.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from chatbot.config import Settings

log = logging.getLogger(__name__)


class GenerationUnavailable(RuntimeError):
    """The remote server did not produce an answer; ``reason`` is safe to log (no secrets, no text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RemoteModel:
    """What ``/healthz`` and the evaluation read from ``engine.worker.loaded``."""

    name: str
    adapter: str | None
    device: str


def safe_address(url: str) -> str:
    """``scheme://host:port`` of a URL: what may be logged (no credentials, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class RemoteGenerator:
    def __init__(self, base_url: str, api_key: str = "", model: str = "", timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.model = model
        self.timeout_s = timeout_s
        self.address = safe_address(self.base_url)
        self._in_flight = 0
        self.requests_sent = 0
        self.failures = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteGenerator:
        return cls(settings.llm_base_url, settings.llm_api_key, settings.llm_model, settings.llm_timeout_s)

    # ------------------------------------------------------------------ the worker's interface
    def start(self) -> None:
        """Nothing to start: every request opens its own connection (no state tied to an event loop)."""

    def stop(self) -> None:
        """Nothing to stop: requests still in flight end with their callers."""

    @property
    def queue_depth(self) -> int:
        """Requests sent and not yet finished (the remote server does the queueing and batching)."""
        return self._in_flight

    @property
    def loaded(self) -> RemoteModel:
        return RemoteModel(
            name=self.model or "(the server's first model)", adapter=None, device=f"remote {self.address}"
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def _model_name(self, client: httpx.AsyncClient) -> str:
        """``llm_model``, or the first model the server lists (llama.cpp and ``serve-llm`` serve one)."""
        if self.model:
            return self.model
        response = await client.get(f"{self.base_url}/models")
        if response.status_code >= 400:
            raise GenerationUnavailable(f"listing models answered {response.status_code}")
        models = response.json().get("data") or []
        if not models or not isinstance(models[0].get("id"), str):
            raise GenerationUnavailable("the server lists no model")
        self.model = models[0]["id"]
        return self.model

    async def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> AsyncGenerator[str, None]:
        """Yield the generated text piece by piece; closing the generator closes the connection,
        which makes vLLM and llama.cpp stop decoding."""
        self._in_flight += 1
        self.requests_sent += 1
        deadline = time.monotonic() + self.timeout_s
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), headers=self._headers()) as client:
                body = {
                    "model": await self._model_name(client),
                    "messages": messages,
                    "max_tokens": max_new_tokens,
                    "temperature": 0,  # greedy, as the in-process worker decodes
                    "stream": True,
                    **self.request_options(),
                }
                async with client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise GenerationUnavailable(f"the server answered {response.status_code}")
                    async for line in response.aiter_lines():
                        if time.monotonic() > deadline:
                            raise GenerationUnavailable(f"no complete answer within {self.timeout_s:g} s")
                        if not line.startswith("data:"):
                            continue  # blank separators, comments and event names
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        for piece in _pieces(json.loads(data)):
                            yield piece
        except GenerationUnavailable as error:
            self._failed(error.reason)
            raise
        except httpx.TimeoutException:
            self._failed("timeout")
            raise GenerationUnavailable("timeout") from None
        except httpx.HTTPError as error:
            self._failed(f"connection failed ({type(error).__name__})")
            raise GenerationUnavailable("connection failed") from None
        except (ValueError, TypeError, AttributeError, KeyError) as error:  # not JSON, or not OpenAI's shape
            self._failed(f"malformed response ({type(error).__name__})")
            raise GenerationUnavailable("malformed response") from None
        finally:
            self._in_flight -= 1

    async def complete(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        return "".join([piece async for piece in self.stream(messages, max_new_tokens)])

    def request_options(self) -> Mapping[str, object]:
        """Fields added to every request body; none for an arbitrary OpenAI-compatible server."""
        return {}

    def _failed(self, reason: str) -> None:
        self.failures += 1
        where = {"llm_server": self.address, "reason": reason}  # never the key, the URL's credentials or text
        log.warning("remote generation failed; answering extractively", extra=where)


def _pieces(payload: object) -> list[str]:
    """The text of one streamed chunk; an ``error`` object in the stream is a failure."""
    if not isinstance(payload, dict):
        raise ValueError("a stream chunk is not an object")
    if payload.get("error"):
        raise GenerationUnavailable("the server reported an error in the stream")
    pieces = []
    for choice in payload.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if isinstance(content, str) and content:
            pieces.append(content)
    return pieces
