"""One generation worker per process, batching concurrent requests from every session.

The model runs on a dedicated thread so the event loop never waits on it. Requests that arrive
within ``batch_wait_ms`` of each other are decoded together (left-padded, one forward pass per
token for the whole batch), which raises throughput on a GPU and on a CPU alike. Tokens are
pushed back to each request's asyncio queue as text pieces as soon as they are decoded.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import torch

from chatbot.config import Settings
from chatbot.llm.loading import LoadedModel, load_generator

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class _Request:
    input_ids: list[int]
    max_new_tokens: int
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[object]
    cancelled: threading.Event = field(default_factory=threading.Event)


class GenerationWorker:
    def __init__(
        self,
        loaded: LoadedModel,
        max_batch_size: int = 8,
        batch_wait_ms: int = 10,
        repetition_penalty: float = 1.15,
    ) -> None:
        self.loaded = loaded
        self.max_batch_size = max_batch_size
        self.batch_wait = batch_wait_ms / 1000
        self.repetition_penalty = repetition_penalty
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches_run = 0
        self.largest_batch = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> GenerationWorker:
        """The settings' generator (adapter merged) on the settings' device, batched as they say; not started."""
        loaded = settings_generator(settings)
        return cls(loaded, max_batch_size=settings.max_batch_size, batch_wait_ms=settings.batch_wait_ms)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="generation-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ public API
    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(encoded, dict) or hasattr(encoded, "keys"):
            encoded = encoded["input_ids"]
        return [int(t) for t in encoded]

    async def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> AsyncGenerator[str, None]:
        """Yield the generated text piece by piece; cancelling the consumer stops decoding."""
        self.start()
        request = _Request(self.encode_chat(messages), max_new_tokens, asyncio.get_running_loop(), asyncio.Queue())
        self._queue.put(request)
        try:
            while True:
                item = await request.out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            request.cancelled.set()

    async def complete(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        return "".join([piece async for piece in self.stream(messages, max_new_tokens)])

    # ------------------------------------------------------------------ worker thread
    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                self.generate_batch(batch)
            except Exception as error:  # the worker must survive any one bad batch
                log.exception("generation batch failed")
                for request in batch:
                    _send(request, error)
                    _send(request, _DONE)

    @torch.inference_mode()
    def generate_batch(self, batch: list[_Request]) -> None:
        model, tokenizer, device = self.loaded.model, self.loaded.tokenizer, self.loaded.device
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        width = max(len(r.input_ids) for r in batch)
        pad = int(tokenizer.pad_token_id)
        input_ids = torch.tensor([[pad] * (width - len(r.input_ids)) + r.input_ids for r in batch], device=device)
        attention = torch.tensor(
            [[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in batch], device=device
        )
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        eos_ids = _token_ids(model.generation_config.eos_token_id or tokenizer.eos_token_id)
        generated: list[list[int]] = [[] for _ in batch]
        emitted = [""] * len(batch)
        done = [False] * len(batch)
        past = None
        step_input = input_ids
        step_positions = positions
        for _ in range(max(r.max_new_tokens for r in batch)):
            output = model(
                input_ids=step_input,
                attention_mask=attention,
                position_ids=step_positions,
                past_key_values=past,
                use_cache=True,
            )
            past = output.past_key_values
            logits = output.logits[:, -1, :].float()
            if self.repetition_penalty != 1.0:
                for row, tokens in enumerate(generated):
                    if tokens:
                        seen = torch.tensor(sorted(set(tokens)), device=logits.device)
                        values = logits[row, seen]
                        logits[row, seen] = torch.where(
                            values > 0, values / self.repetition_penalty, values * self.repetition_penalty
                        )
            next_tokens = logits.argmax(dim=-1)
            for row, request in enumerate(batch):
                if done[row]:
                    continue
                token = int(next_tokens[row])
                if request.cancelled.is_set() or token in eos_ids:
                    done[row] = True
                else:
                    generated[row].append(token)
                    text = decoded(tokenizer, generated[row], emitted[row])
                    if text != emitted[row]:
                        piece = text[len(emitted[row]) :]
                        emitted[row] = text
                        _send(request, piece)
                    if len(generated[row]) >= request.max_new_tokens:
                        done[row] = True
                if done[row]:
                    _send(request, _DONE)
            if all(done):
                return
            step_input = next_tokens.unsqueeze(-1)
            attention = torch.cat([attention, attention.new_ones((len(batch), 1))], dim=-1)
            step_positions = step_positions[:, -1:] + 1
        for row, request in enumerate(batch):
            if not done[row]:
                _send(request, _DONE)


def settings_generator(settings: Settings) -> LoadedModel:
    """The settings' generator model (adapter merged) on the settings' device, for either worker."""
    return load_generator(
        settings.generator_model, settings.data_dir, adapter=settings.generator_adapter, device=settings.device
    )


def decoded(tokenizer: Any, tokens: list[int], emitted: str) -> str:
    """The text of ``tokens`` when it has grown past ``emitted`` by whole characters, else ``emitted``:
    a token that ends inside a multi-byte character decodes to U+FFFD until the next one arrives."""
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return text if len(text) > len(emitted) and not text.endswith("\ufffd") else emitted


def _send(request: _Request, item: object) -> None:
    """Hand an item to the request's event loop; a loop that has gone away no longer listens."""
    try:
        request.loop.call_soon_threadsafe(request.out.put_nowait, item)
    except RuntimeError:  # the caller's loop is closed (client gone, CLI exiting)
        request.cancelled.set()


def _token_ids(value: int | list[int] | None) -> set[int]:
    """Generation configs name one end-of-sequence token or several."""
    if value is None:
        return set()
    return {int(t) for t in value} if isinstance(value, list | tuple | set) else {int(value)}
