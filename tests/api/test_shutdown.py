"""Graceful shutdown of a real `chatbot serve` process: SIGTERM while answers are in flight.

The HTTP answer and the WebSocket answer in flight both arrive; then the WebSocket is closed with
1012 (service restart), the process exits 0, and its log holds no customer token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chatbot.config import Settings
from tests.support.services import free_port

pytestmark = pytest.mark.slow  # starts a real server process with the models

QUESTION = "how fast can I get a new card if I pay for faster shipping, and what does it cost in each case"


def post(base: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


def test_sigterm_finishes_answers_in_flight_then_exits_0(built_index: Settings, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    env = dict(
        os.environ,
        CHATBOT_DATA_DIR=str(built_index.data_dir),
        CHATBOT_KNOWLEDGE_DIR=str(built_index.knowledge_dir),
        CHATBOT_GENERATOR_MODEL=built_index.generator_model,
        CHATBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'shutdown.db'}",
        CHATBOT_MAX_NEW_TOKENS="160",  # a long answer: still generating when the signal comes
        CHATBOT_SHUTDOWN_GRACE_S="120",
    )
    if built_index.nlu_dir is not None:
        env["CHATBOT_NLU_DIR"] = str(built_index.nlu_dir)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not become healthy"
            try:
                if urllib.request.urlopen(base + "/healthz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.3)

        _, created = post(base, "/v1/conversations")
        conversation, token = created["id"], created["token"]
        _, other = post(base, "/v1/conversations")
        http_result: dict[str, Any] = {}

        def http_answer() -> None:
            try:
                status, body = post(
                    base, f"/v1/conversations/{other['id']}/messages", {"text": QUESTION}, other["token"]
                )
                http_result.update(status=status, body=body, at=time.monotonic())
            except Exception as error:  # reported by the assertion below
                http_result["error"] = repr(error)

        url = f"ws://127.0.0.1:{port}/ws/chat?conversation_id={conversation}&token={token}"
        frames: list[dict[str, Any]] = []
        with connect(url, open_timeout=30) as ws:
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
            ws.send(json.dumps({"type": "message", "text": QUESTION}))
            thread = threading.Thread(target=http_answer)
            thread.start()
            while (frame := json.loads(ws.recv(timeout=60)))["type"] != "start":
                frames.append(frame)
            process.send_signal(signal.SIGTERM)  # the WebSocket answer has started, the HTTP one is queued
            signalled = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frames.append(json.loads(ws.recv(timeout=120)))
            answered_at = time.monotonic()
        thread.join(timeout=150)

        final = [f for f in frames if f["type"] == "message"]
        assert final and final[-1]["message"]["text"], f"no answer before the close: {[f['type'] for f in frames]}"
        assert final[-1]["message"]["conversation_id"] == conversation
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart: reconnect
        assert answered_at > signalled
        assert http_result.get("status") == 200, http_result
        assert http_result["body"]["conversation_id"] == other["id"] and http_result["body"]["text"]
        assert process.wait(timeout=150) == 0
        text = log_path.read_text()
        assert token not in text and other["token"] not in text
        assert "waiting for answers in flight" in text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
