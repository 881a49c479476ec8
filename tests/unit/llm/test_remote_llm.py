"""Remote generation (``CHATBOT_LLM_BASE_URL``) against a real ``chatbot serve-llm`` process.

The generation server is the CLI command a bank runs on a GPU box, started here as a child process
on a free port with the same converted model and LoRA adapter as the in-process engine. Failures
are real too: a port nobody listens on, a socket that accepts and never answers, a model name the
server does not have. The tests that need the server are marked slow; the failure tests are not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from chatbot.config import Settings
from chatbot.dialogue.engine import Engine
from chatbot.dialogue.grounding import check_grounding
from chatbot.llm.remote import RemoteGenerator
from chatbot.schema import AnswerObject, DeltaEvent, MessageEvent
from tests.support.services import free_port

QUESTION = "When do wires have to be requested to go out the same day?"  # the fixture KB answers it by generation
SECRET = "sk-remote-Secret-4242"
# A child process that imports torch and loads the model: over a minute here with the rest of the module.
SLOW = pytest.mark.slow


class LlmServer:
    """`chatbot serve-llm` in a child process."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = dict(
            os.environ,
            CHATBOT_DATA_DIR=str(settings.data_dir),
            CHATBOT_GENERATOR_MODEL=settings.generator_model,
            CHATBOT_DEVICE=settings.device,
        )
        env.pop("CHATBOT_LLM_API_KEY", None)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatbot.cli", "serve-llm", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 300  # torch import and model load; slow on a busy 2-core machine
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).json().get("status") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            "serve-llm did not start; its log ends with:\n" + self.log.read_text(errors="replace")[-3000:]
        )

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/healthz", timeout=5).json())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def llm_server(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmServer]:
    server = LlmServer(built_index, tmp_path_factory.mktemp("serve-llm") / "serve-llm.log")
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote_engine(built_index: Settings, llm_server: LlmServer) -> Iterator[Engine]:
    """An engine configured as an operator would: CHATBOT_LLM_BASE_URL, and no in-process model."""
    settings = built_index.model_copy(update={"llm_base_url": f"{llm_server.url}/v1", "llm_timeout_s": 120.0})
    engine = Engine(settings)
    engine.warm_up()
    yield engine
    engine.close()


def answer(engine: Engine, text: str) -> AnswerObject:
    return asyncio.run(engine.answer(text))


def grounded(engine: Engine, result: AnswerObject) -> bool:
    assert engine.index is not None
    cited = {s.id for s in result.sources}
    texts = [p.text + " " + (p.answer or "") for p in engine.index.passages if p.source_id in cited]
    return check_grounding(result.text, texts).supported


@SLOW
def test_the_engine_generates_on_the_remote_server(
    remote_engine: Engine, llm_server: LlmServer, engine: Engine
) -> None:
    assert isinstance(remote_engine.worker, RemoteGenerator)
    before = llm_server.stats()

    async def collect() -> list[object]:
        return [event async for event in remote_engine.respond(QUESTION)]

    events = asyncio.run(collect())
    after = llm_server.stats()
    final = events[-1]
    assert isinstance(final, MessageEvent)
    result = final.message
    # It came from the server: one more request there, and tokens decoded there.
    assert after["requests"] == before["requests"] + 1
    assert after["completion_tokens"] > before["completion_tokens"]
    assert result.kind == "generated" and grounded(remote_engine, result), result.text
    deltas = [e for e in events if isinstance(e, DeltaEvent)]
    assert len(deltas) >= 2 and "".join(d.text for d in deltas) == result.text  # streamed sentence by sentence
    # Same model, same prompt, greedy decoding: the in-process engine writes the same answer.
    assert answer(engine, QUESTION).text == result.text
    assert remote_engine.worker.queue_depth == 0 and remote_engine.worker.requests_sent >= 1


@SLOW
def test_serve_llm_speaks_openai_to_the_openai_client(llm_server: LlmServer) -> None:
    client = openai.OpenAI(base_url=f"{llm_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    [model] = [m.id for m in client.models.list()]
    assert model.startswith("kestrel-") and model.endswith("+lora")
    messages: Any = [{"role": "user", "content": "Say hello to a bank customer."}]
    completion = client.chat.completions.create(model=model, messages=messages, max_tokens=8)
    assert completion.choices[0].message.content and completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 8
    chunks = list(
        client.chat.completions.create(
            model=model, messages=messages, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content  # greedy: the same text, streamed
    assert chunks[-1].usage is not None and chunks[-2].choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=messages)


@SLOW
def test_a_model_the_server_lacks_degrades_to_the_extractive_answer(
    remote_engine: Engine, llm_server: LlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    original = remote_engine.worker
    remote_engine.worker = RemoteGenerator(f"{llm_server.url}/v1", api_key=SECRET, model="no-such-model")
    try:
        with caplog.at_level(logging.INFO):
            result = answer(remote_engine, QUESTION)
    finally:
        remote_engine.worker = original
    assert result.kind == "extractive" and result.sources and grounded(remote_engine, result)
    assert "the server answered 404" in reasons(caplog)
    assert SECRET not in logged(caplog)


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(getattr(r, "reason", "")) for r in caplog.records if r.name == "chatbot.llm.remote"]


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record with its structured fields, as the JSON log formatter would write them."""
    return "\n".join(str(record.__dict__) for record in caplog.records)


@pytest.fixture
def local_engine(built_index: Settings) -> Iterator[Engine]:
    """An engine whose generator is a remote server that is down (nothing listens on the port)."""
    settings = built_index.model_copy(
        update={"llm_base_url": f"http://user:{SECRET}@127.0.0.1:{free_port()}/v1", "llm_api_key": SECRET}
    )
    engine = Engine(settings)
    engine.warm_up()
    yield engine
    engine.close()


def test_a_server_that_is_down_or_silent_degrades_without_an_exception(
    local_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    assert isinstance(local_engine.worker, RemoteGenerator)
    with caplog.at_level(logging.INFO):
        down = answer(local_engine, QUESTION)
    assert down.kind == "extractive" and "5:00 p.m." in down.text and grounded(local_engine, down)
    assert local_engine.worker.failures == 1 and local_engine.worker.queue_depth == 0
    assert any(r.startswith("connection failed") for r in reasons(caplog))
    assert SECRET not in logged(caplog) and "user:" not in logged(caplog)  # not the key, not the URL's credentials

    with socket.socket() as silent:  # accepts connections, never answers: the timeout must fire
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        local_engine.worker = RemoteGenerator(f"http://127.0.0.1:{silent.getsockname()[1]}/v1", timeout_s=1.0)
        started = time.monotonic()
        stalled = answer(local_engine, QUESTION)
    assert stalled.kind == "extractive" and grounded(local_engine, stalled)
    assert time.monotonic() - started < 30 and local_engine.worker.failures == 1
    assert "timeout" in reasons(caplog)


def test_serve_llm_requires_its_key_when_one_is_set(built_index: Settings) -> None:
    """The key is checked before the model is touched, so this needs no model (no lifespan is run)."""
    from fastapi.testclient import TestClient

    from chatbot.llm.openai_server import create_llm_app

    app = create_llm_app(built_index.model_copy(update={"llm_api_key": SECRET}))
    client = TestClient(app)  # not entered: the model never loads
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = client.post("/v1/chat/completions", json=body, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert SECRET not in refused.text
    assert client.get("/v1/models").status_code == 401
