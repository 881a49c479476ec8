"""Continuous batching for the in-process transformers generator, with transformers' own scheduler.

``GenerationWorker`` batches statically: requests that arrive within ``batch_wait_ms`` are decoded
together and the batch runs until its longest row ends, so a short answer waits for a long one and
a request arriving a moment later waits for the whole batch. On a GPU that leaves most of the
device idle (34 tok/s at batch 1, 281 at batch 8 on an H100). Here requests join and leave the
running batch at token granularity instead, over a paged KV cache: transformers'
``ContinuousBatchingManager`` (``model.init_continuous_batching``), the same scheduler its
``generate_batch`` and ``transformers serve`` use, rather than one written here.

What this module adds is the product's contract on top of it:

- the interface of ``GenerationWorker`` (``stream`` yields text pieces, ``complete``, ``start``,
  ``stop``, ``queue_depth``), so the engine, its grounding check, time budget and fallbacks, and
  ``chatbot serve-llm`` do not care which worker runs;
- a bounded queue: at most ``max_waiting`` requests wait for a place in the batch; one more is
  refused at once with ``GenerationUnavailable`` (back-pressure: the engine answers extractively
  instead of making the customer wait behind a queue it cannot see the end of);
- cancellation: a consumer that stops reading (the customer left, the time budget ran out) cancels
  its request, which frees its pages for the next one;
- greedy decoding without a repetition penalty: the manager does not support one (it drops the
  processor), and llama.cpp's path runs without one too (``LlamaCppGenerator.request_options``).
  The static worker keeps its penalty of 1.15, so the two can word an answer differently.

Chosen by ``CHATBOT_GENERATION_BATCHING`` (``generators.transformers_worker``): ``auto`` runs
this on CUDA and the static worker on a CPU, where the default generator is llama.cpp (batching
continuously itself) and this worker measured earlier first tokens but about a tenth less aggregate
throughput than the static one at 4 and 8 requests (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from chatbot.config import Settings
from chatbot.llm.loading import LoadedModel
from chatbot.llm.remote import GenerationUnavailable
from chatbot.llm.worker import GenerationWorker, _token_ids, decoded, settings_generator

log = logging.getLogger(__name__)

PAGE_SIZE = 32  # tokens per KV page: a short chat prompt wastes at most one page


class ContinuousGenerationWorker(GenerationWorker):
    """``GenerationWorker``'s interface over transformers' continuous-batching manager."""

    def __init__(
        self,
        loaded: LoadedModel,
        max_batch_size: int = 8,
        max_waiting: int = 64,
        context_tokens: int = 2048,
    ) -> None:
        """``max_batch_size``: requests decoded together; ``max_waiting``: requests queued beyond them
        before new ones are refused; ``context_tokens``: prompt plus answer, per request, that the
        KV cache is sized for (``max_batch_size`` of them at once)."""
        super().__init__(loaded, max_batch_size=max_batch_size, repetition_penalty=1.0)
        self.max_waiting = max_waiting
        self.context_tokens = context_tokens
        self._manager: Any = None
        self._lock = threading.Lock()
        self._active = 0  # requests added and not finished: running or waiting for a place

    @classmethod
    def from_settings(cls, settings: Settings) -> ContinuousGenerationWorker:
        return cls(
            settings_generator(settings),
            max_batch_size=settings.max_batch_size,
            max_waiting=settings.generation_queue_limit,
            context_tokens=settings.generation_context_tokens,
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._lock:
            if self._manager is not None:
                return
            from transformers import GenerationConfig
            from transformers.generation.configuration_utils import ContinuousBatchingConfig

            model, tokenizer = self.loaded.model, self.loaded.tokenizer
            eos = model.generation_config.eos_token_id or tokenizer.eos_token_id
            generation = GenerationConfig(
                do_sample=False,
                max_new_tokens=256,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
                bos_token_id=model.generation_config.bos_token_id,
            )
            pages_per_request = -(-self.context_tokens // PAGE_SIZE)
            batching = ContinuousBatchingConfig(
                page_size=PAGE_SIZE,
                num_blocks=self.max_batch_size * pages_per_request,
                max_blocks_per_request=pages_per_request,
                max_requests_per_batch=self.max_batch_size,
                max_batch_tokens=max(self.context_tokens, 256),
            )
            manager = model.init_continuous_batching(generation_config=generation, continuous_batching_config=batching)
            manager.start()
            self._manager = manager
            log.info(
                "continuous batching started",
                extra={"device": str(self.loaded.device), "batch": self.max_batch_size, "pages": batching.num_blocks},
            )

    def stop(self) -> None:
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.stop(block=True, timeout=30)

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a place in the running batch."""
        return max(self._active - self.max_batch_size, 0)

    # ------------------------------------------------------------------ public API
    async def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> AsyncGenerator[str, None]:
        """Yield the generated text piece by piece; closing the generator cancels the request."""
        self.start()
        manager = self._manager
        if manager is None:
            raise GenerationUnavailable("the generation worker is stopped")
        with self._lock:
            if self._active >= self.max_batch_size + self.max_waiting:
                raise GenerationUnavailable(f"generation queue full ({self.max_waiting} waiting)")
            self._active += 1
        request_id: str | None = None
        finished = False
        wanted = f"kestrel-{uuid.uuid4().hex}"
        try:
            outputs: asyncio.Queue[Any] = asyncio.Queue()
            # The handler first: an output produced before it is registered would go to the manager's
            # shared queue, and this stream would wait for it forever.
            manager.register_result_handler(wanted, outputs.put_nowait)
            request_id = await asyncio.to_thread(
                manager.add_request,
                self.encode_chat(messages),
                request_id=wanted,
                max_new_tokens=max_new_tokens,
                streaming=True,
            )
            if request_id is None:
                raise GenerationUnavailable("the generation worker refused the request (stopping)")
            tokenizer = self.loaded.tokenizer
            eos = _token_ids(manager.generation_config.eos_token_id)
            emitted = ""
            while not finished:
                result = await outputs.get()
                finished = result.is_finished()
                if result.error:
                    raise GenerationUnavailable(f"generation failed: {result.error}")
                tokens = [t for t in result.generated_tokens if t not in eos]
                text = decoded(tokenizer, tokens, emitted)
                if text != emitted:
                    piece, emitted = text[len(emitted) :], text
                    yield piece
        finally:
            with self._lock:
                self._active -= 1
            if not finished:
                if request_id is not None:
                    manager.cancel_request(request_id)  # frees its pages for the next request
                # The manager drops a handler only when its request finishes; this one never will.
                router = manager.output_router
                with router._lock:
                    router.result_handlers.pop(wanted, None)
