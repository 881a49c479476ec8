"""The CPU generator on llama.cpp: a real ``llama-server`` child process serving the merged GGUF.

The server is the binary ``make`` builds (scripts/build-llama-server.sh); where it is missing (no
C++ compiler, KESTREL_NO_LLAMA_CPP=1) the tests that need it skip and say so. Choosing the
backend and its failures are tested without it.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from chatbot.config import Settings
from chatbot.dialogue.engine import Engine
from chatbot.llm.generators import create_generator
from chatbot.llm.llamacpp import (
    LlamaCppGenerator,
    LlamaCppUnavailable,
    LlamaServerProcess,
    find_llama_server,
    llama_cpp_chosen,
)
from chatbot.llm.loading import LoadedModel, load_generator
from chatbot.llm.prompts import ContextPassage, chat_messages
from chatbot.llm.remote import GenerationUnavailable
from chatbot.llm.worker import GenerationWorker
from chatbot.schema import AnswerObject

BINARY = find_llama_server()
ADAPTER = Settings().generator_adapter
needs_server = pytest.mark.skipif(
    BINARY is None, reason="llama-server is not built: run `make llama-server` (needs a C++ compiler)"
)
CONTEXT = [
    ContextPassage(
        "Overdraft fees",
        "The Kestrel overdraft fee is $29 per item, with no more than 3 fees per day. "
        "There's no fee if you're overdrawn by $50 or less at the end of the business day.",
    )
]


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppGenerator]:
    if BINARY is None:
        pytest.skip("llama-server is not built: run `make llama-server` (needs a C++ compiler)")
    data_dir = tmp_path_factory.mktemp("llamacpp")
    settings = Settings(data_dir=data_dir, generator_backend="llama.cpp", llama_parallel=2)
    started = LlamaCppGenerator.from_settings(settings)
    started.start()
    yield started
    started.stop()


def test_auto_chooses_llama_cpp_only_for_a_gguf_on_the_cpu_with_the_binary(converted_generator: str) -> None:
    assert not llama_cpp_chosen(Settings(generator_backend="transformers"))
    assert llama_cpp_chosen(Settings(generator_backend="llama.cpp"))
    # The suite's converted safetensors folder is not a GGUF: transformers, binary or not.
    assert not llama_cpp_chosen(Settings(generator_model=converted_generator))
    assert not llama_cpp_chosen(Settings(llama_server_binary="/nonexistent/llama-server"))
    assert llama_cpp_chosen(Settings(device="cpu")) == (BINARY is not None)


def test_missing_binary_is_an_error_by_name_and_a_fallback_under_auto(tmp_path: Path) -> None:
    asked = Settings(data_dir=tmp_path, generator_backend="llama.cpp", llama_server_binary=str(tmp_path / "none"))
    with pytest.raises(LlamaCppUnavailable, match="make llama-server"):
        create_generator(asked)


@pytest.mark.slow  # about a minute on 2 cores: CI runs it in the slow suite, `make test` keeps under 20 min
def test_a_server_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "llama-server"
    broken.write_text("#!/bin/sh\necho 'error: cannot load model' >&2\nexit 3\n")
    broken.chmod(0o755)
    process = LlamaServerProcess(broken, tmp_path / "model.gguf", log_file=tmp_path / "llama.log", start_timeout_s=10)
    with pytest.raises(LlamaCppUnavailable, match="status 3"):
        process.start()
    assert "cannot load model" in (tmp_path / "llama.log").read_text()
    assert not process.running
    # Under auto, the engine's generator falls back to transformers instead of failing to start.
    settings = Settings(data_dir=tmp_path, llama_server_binary=str(broken), device="cpu")
    if llama_cpp_chosen(settings):
        fallback = create_generator(settings)
        try:
            assert isinstance(fallback, GenerationWorker)
        finally:
            fallback.stop()


def _first_token_probabilities(loaded: LoadedModel, messages: list[dict[str, str]]) -> dict[str, float]:
    ids = torch.tensor([GenerationWorker(loaded).encode_chat(messages)])
    with torch.inference_mode():
        probabilities = loaded.model(ids).logits[0, -1].softmax(-1)
    values, tokens = probabilities.topk(5)
    return {loaded.tokenizer.decode([int(t)]): float(v) for v, t in zip(values, tokens, strict=True)}


@needs_server
def test_llama_cpp_predicts_like_the_fine_tuned_model(generator: LlamaCppGenerator, converted_generator: str) -> None:
    """The merged GGUF in llama.cpp gives the first token the probabilities the fine-tuned model
    gives it in transformers, and not those of the base model: the adapter is in effect."""
    messages = chat_messages("how much is the overdraft fee?", CONTEXT)
    body = {"messages": messages, "max_tokens": 1, "logprobs": True, "top_logprobs": 5, "temperature": 0}
    response = httpx.post(
        f"{generator.server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {generator.server.api_key}"},
        timeout=60,
    )
    top = response.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    served = {entry["token"]: math.exp(entry["logprob"]) for entry in top}
    tuned = _first_token_probabilities(load_generator(converted_generator, Path("unused"), ADAPTER, "cpu"), messages)
    base = _first_token_probabilities(load_generator(converted_generator, Path("unused"), "", "cpu"), messages)
    best = max(tuned, key=tuned.__getitem__)
    assert max(served, key=served.__getitem__) == best
    assert abs(served[best] - tuned[best]) < 0.03
    assert abs(served[best] - base.get(best, 0.0)) > 0.2  # the base model alone predicts otherwise
    assert generator.loaded.adapter and generator.loaded.device == "cpu (llama.cpp)"
    assert "+generator-lora" in generator.server.model.name


@needs_server
def test_the_server_refuses_requests_without_this_process_key(generator: LlamaCppGenerator) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    response = httpx.post(f"{generator.server.base_url}/chat/completions", json=body, timeout=30)
    assert response.status_code == 401
    assert generator.server.api_key not in " ".join(generator.server.command())  # not visible in `ps`


@needs_server
def test_concurrent_requests_share_the_running_batch(generator: LlamaCppGenerator) -> None:
    """Two slots, five requests: all finish, each with the answer it gets alone (greedy decoding)."""
    questions = ["how much is the overdraft fee?", "is there a fee if i'm overdrawn by $20?"]

    async def run() -> tuple[list[str], list[str]]:
        alone = [await generator.complete(chat_messages(q, CONTEXT), 32) for q in questions]
        together = await asyncio.gather(*(generator.complete(chat_messages(q, CONTEXT), 32) for q in questions * 3))
        return alone, list(together)

    alone, together = asyncio.run(run())
    assert together[:2] == alone and together[2:4] == alone and together[4:] == alone
    metrics = httpx.get(
        f"http://127.0.0.1:{generator.server.port}/slots",
        headers={"Authorization": f"Bearer {generator.server.api_key}"},
        timeout=10,
    )
    assert metrics.status_code == 200 and len(metrics.json()) == 2


@needs_server
def test_a_cancelled_stream_frees_its_slot(generator: LlamaCppGenerator) -> None:
    async def run() -> str:
        for _ in range(2):  # more abandoned streams than slots
            stream = generator.stream(chat_messages("tell me everything about overdraft", CONTEXT), 200)
            await anext(stream)
            await stream.aclose()
        started = time.monotonic()
        answer = await generator.complete(chat_messages("how much is the overdraft fee?", CONTEXT), 16)
        assert time.monotonic() - started < 30
        return answer

    assert asyncio.run(run())


@needs_server
def test_a_stopped_server_is_a_generation_failure_not_a_crash(tmp_path: Path) -> None:
    assert BINARY is not None
    settings = Settings(data_dir=tmp_path, generator_backend="llama.cpp", llama_parallel=1)
    generator = LlamaCppGenerator.from_settings(settings)
    generator.start()
    generator.stop()
    with pytest.raises(GenerationUnavailable):
        asyncio.run(generator.complete(chat_messages("hi", CONTEXT), 4))


@needs_server
def test_the_engine_generates_through_llama_cpp(built_index: Settings) -> None:
    settings = built_index.model_copy(
        update={"generator_model": Settings().generator_model, "generator_backend": "llama.cpp", "llama_parallel": 1}
    )
    engine = Engine(settings)
    engine.warm_up()
    try:
        assert isinstance(engine.worker, LlamaCppGenerator)
        answer = asyncio.run(engine.answer("When do wires have to be requested to go out the same day?"))
        assert isinstance(answer, AnswerObject) and answer.text
        assert answer.kind in ("generated", "extractive")
    finally:
        engine.close()
    assert not engine.worker.server.running  # closing the engine stops its server


@needs_server
def test_a_killed_assistant_leaves_no_server_behind(generator: LlamaCppGenerator, tmp_path: Path) -> None:
    """SIGKILL runs no Python cleanup: the supervising shell notices its owner is gone and ends the server."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from chatbot.llm.llamacpp import LlamaServerProcess\n"
        "server = LlamaServerProcess(Path(sys.argv[1]), Path(sys.argv[2]), parallel=1)\n"
        "server.start()\n"
        "print(server.port, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(BINARY), str(generator.server.model)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        port = int(owner.stdout.readline())
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code in (200, 401)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.ConnectError:
            return
        time.sleep(0.2)
    pytest.fail("llama-server still answers after its owner was killed")


@needs_server
def test_an_adapter_llama_cpp_cannot_take_is_refused_by_name(tmp_path: Path) -> None:
    """Raised as LlamaCppUnavailable, so that under auto the engine falls back to transformers."""
    dora = tmp_path / "dora"
    shutil.copytree(ADAPTER, dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps(config | {"use_dora": True}))
    settings = Settings(data_dir=tmp_path, generator_backend="llama.cpp", generator_adapter=str(dora))
    with pytest.raises(LlamaCppUnavailable, match=r"cannot be folded.*DoRA"):
        LlamaCppGenerator.from_settings(settings)
