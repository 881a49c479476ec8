"""Continuous batching in the transformers worker (chatbot/llm/continuous.py), on the CPU with the real
model; the CUDA test runs on a GPU machine and is skipped elsewhere."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch

from chatbot.config import Settings
from chatbot.llm.continuous import ContinuousGenerationWorker
from chatbot.llm.generators import continuous_batching, transformers_worker
from chatbot.llm.loading import LoadedModel, load_generator
from chatbot.llm.prompts import ContextPassage, chat_messages
from chatbot.llm.remote import GenerationUnavailable
from chatbot.llm.worker import GenerationWorker

CONTEXT = [ContextPassage("Wires", "A wire costs $45. The cut-off is 5:00 p.m. ET. Call 1-800-555-0142.")]
QUESTIONS = ["How much is a wire?", "When is the cut-off?", "Who do I call about a wire?"]


@pytest.fixture(scope="module")
def loaded(converted_generator: str) -> LoadedModel:
    return load_generator(converted_generator, Path("unused"), adapter="", device="cpu")


def test_concurrent_requests_decode_as_each_would_alone(loaded: LoadedModel) -> None:
    """Rows of different lengths in one running batch: each is the greedy answer to its own prompt."""
    static = GenerationWorker(loaded, repetition_penalty=1.0)  # the manager decodes without a penalty
    worker = ContinuousGenerationWorker(loaded, max_batch_size=4)
    lengths = [8, 20, 32]

    async def run() -> tuple[list[str], list[str]]:
        alone = [await static.complete(chat_messages(q, CONTEXT), n) for q, n in zip(QUESTIONS, lengths, strict=True)]
        together = await asyncio.gather(
            *[worker.complete(chat_messages(q, CONTEXT), n) for q, n in zip(QUESTIONS, lengths, strict=True)]
        )
        return alone, list(together)

    try:
        alone, together = asyncio.run(run())
    finally:
        static.stop()
        worker.stop()
    assert all(text.strip() for text in together)
    assert together == alone


def test_a_request_joins_the_running_batch_and_leaves_before_a_longer_one(loaded: LoadedModel) -> None:
    """A static batch runs until its longest row ends; here a short request arriving while a long one
    decodes is answered first."""
    worker = ContinuousGenerationWorker(loaded, max_batch_size=4)
    finished: list[str] = []

    async def read(name: str, question: str, tokens: int, started: asyncio.Event | None = None) -> None:
        async for _ in worker.stream(chat_messages(question, CONTEXT), tokens):
            if started is not None:
                started.set()
        finished.append(name)

    async def run() -> None:
        started = asyncio.Event()
        long = asyncio.create_task(read("long", QUESTIONS[0], 96, started))
        await started.wait()  # the long request is decoding
        await read("short", QUESTIONS[1], 4)
        await long

    # EOS would end the long answer early: the test needs it to run for its 96 tokens.
    config = loaded.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = -1
    try:
        asyncio.run(run())
    finally:
        config.eos_token_id = saved
        worker.stop()
    assert finished == ["short", "long"]


def test_a_full_queue_refuses_a_request_at_once(loaded: LoadedModel) -> None:
    worker = ContinuousGenerationWorker(loaded, max_batch_size=1, max_waiting=0)

    async def run() -> float:
        first = worker.stream(chat_messages(QUESTIONS[0], CONTEXT), 64)
        await anext(first)  # running: the only place in the batch is taken
        started = time.perf_counter()
        try:
            with pytest.raises(GenerationUnavailable, match="queue full"):
                await worker.complete(chat_messages(QUESTIONS[1], CONTEXT), 8)
            return time.perf_counter() - started
        finally:
            await first.aclose()

    try:
        waited = asyncio.run(run())
    finally:
        worker.stop()
    assert waited < 1.0  # refused, not queued behind the running request


def test_a_cancelled_stream_frees_its_place_for_the_next_request(loaded: LoadedModel) -> None:
    worker = ContinuousGenerationWorker(loaded, max_batch_size=1, max_waiting=0)

    async def run() -> str:
        first = worker.stream(chat_messages(QUESTIONS[0], CONTEXT), 200)
        await anext(first)
        await first.aclose()  # the customer left: the request is cancelled
        return await worker.complete(chat_messages(QUESTIONS[1], CONTEXT), 8)

    try:
        text = asyncio.run(run())
    finally:
        worker.stop()
    assert text.strip()
    assert worker.queue_depth == 0 and worker._active == 0


def test_auto_batches_continuously_on_cuda_and_statically_on_a_cpu() -> None:
    assert not continuous_batching(Settings(device="cpu"))
    assert continuous_batching(Settings(device="cuda"))
    assert continuous_batching(Settings(device="cpu", generation_batching="continuous"))
    assert not continuous_batching(Settings(device="cuda", generation_batching="static"))
    assert continuous_batching(Settings(device="auto")) == torch.cuda.is_available()


def test_the_engine_and_serve_llm_get_the_worker_the_settings_name(converted_generator: str) -> None:
    settings = Settings(generator_model=converted_generator, generator_adapter="", device="cpu")
    continuous = transformers_worker(settings.model_copy(update={"generation_batching": "continuous"}))
    static = transformers_worker(settings.model_copy(update={"generation_batching": "static"}))
    assert isinstance(continuous, ContinuousGenerationWorker)
    assert type(static) is GenerationWorker


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_continuous_batching_on_cuda(converted_generator: str) -> None:
    loaded = load_generator(converted_generator, Path("unused"), adapter="", device="cuda")
    worker = ContinuousGenerationWorker(loaded, max_batch_size=16)

    async def run() -> list[str]:
        requests = [worker.complete(chat_messages(QUESTIONS[i % 3], CONTEXT), 8 + 4 * i) for i in range(12)]
        return list(await asyncio.gather(*requests))

    try:
        texts = asyncio.run(run())
    finally:
        worker.stop()
    assert len(texts) == 12 and all(text.strip() for text in texts)


def test_finished_and_cancelled_requests_leave_no_handler_behind(loaded: LoadedModel) -> None:
    worker = ContinuousGenerationWorker(loaded, max_batch_size=2)

    async def run() -> None:
        await worker.complete(chat_messages(QUESTIONS[0], CONTEXT), 4)
        stream = worker.stream(chat_messages(QUESTIONS[1], CONTEXT), 200)
        await anext(stream)
        await stream.aclose()

    try:
        asyncio.run(run())
        assert worker._manager is not None
        assert worker._manager.output_router.result_handlers == {}
    finally:
        worker.stop()
