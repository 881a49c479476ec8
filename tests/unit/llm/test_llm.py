import asyncio
import os
import time
from pathlib import Path

import pytest
import torch

from chatbot.config import Settings
from chatbot.llm.loading import CONVERSION_MARKER, choose_device, choose_dtype, convert_gguf, load_generator
from chatbot.llm.prompts import SYSTEM_PROMPT, ContextPassage, chat_messages
from chatbot.llm.worker import GenerationWorker
from chatbot.model_specs import resolve_model_spec


@pytest.mark.slow  # about a minute on 2 cores: CI runs it in the slow suite, `make test` keeps under 20 min
def test_gguf_is_converted_once_and_reused(tmp_path: Path) -> None:
    gguf = Path(resolve_model_spec(Settings().generator_model))
    folder = convert_gguf(gguf, tmp_path)
    assert (folder / "model.safetensors").exists() and (folder / CONVERSION_MARKER).exists()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    assert convert_gguf(gguf, tmp_path) == folder
    assert time.perf_counter() - started < 5  # a cache hit reads a marker, it does not convert
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def test_cpu_runs_in_float32() -> None:
    assert choose_device("cpu").type == "cpu"
    assert choose_dtype(torch.device("cpu")) == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            choose_device("cuda")


def test_prompt_always_carries_our_system_prompt(converted_generator: str) -> None:
    loaded = load_generator(converted_generator, Path("unused"), adapter="", device="cpu")
    worker = GenerationWorker(loaded)
    ids = worker.encode_chat(chat_messages("Fee?", [ContextPassage("Fees", "A wire costs $45.")]))
    text = loaded.tokenizer.decode(ids)
    assert SYSTEM_PROMPT in text and "[1] Fees" in text
    assert "You are a helpful AI assistant named SmolLM" not in text


def test_concurrent_requests_are_batched_and_each_gets_its_own_stream(converted_generator: str) -> None:
    loaded = load_generator(converted_generator, Path("unused"), adapter="", device="cpu")
    worker = GenerationWorker(loaded, max_batch_size=4, batch_wait_ms=200)
    questions = ["How much is a wire?", "When is the cut-off?", "Who do I call?"]
    context = [ContextPassage("Wires", "A wire costs $45. The cut-off is 5:00 p.m. Call 1-800-555-0142.")]

    async def run() -> tuple[list[str], str]:
        batched = await asyncio.gather(*[worker.complete(chat_messages(q, context), 24) for q in questions])
        alone = await worker.complete(chat_messages(questions[0], context), 24)
        return batched, alone

    try:
        batched, alone = asyncio.run(run())
    finally:
        worker.stop()
    assert worker.largest_batch == 3
    assert all(text.strip() for text in batched)
    # Left padding and position ids are right: a padded row decodes like the same prompt alone.
    assert batched[0].split()[:6] == alone.split()[:6]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generator_runs_on_cuda_in_bfloat16(converted_generator: str) -> None:
    loaded = load_generator(converted_generator, Path("unused"), adapter="", device="auto")
    assert loaded.device.type == "cuda" and loaded.dtype == torch.bfloat16
    worker = GenerationWorker(loaded)
    try:
        text = asyncio.run(worker.complete(chat_messages("Fee?", [ContextPassage("Fees", "A wire costs $45.")]), 16))
    finally:
        worker.stop()
    assert text.strip()


def test_model_loading_never_uses_the_network() -> None:
    from chatbot.model_specs import force_offline

    force_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
