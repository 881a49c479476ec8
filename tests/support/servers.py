"""Real `chatbot serve` processes (several sharing PostgreSQL and Redis), for the tests and benchmarks.

- ``ServerProcess``: one ``chatbot serve`` child process on its own port; ``kill9()`` ends it the way
  a crash does (no shutdown hook runs) and ``start()`` brings it back on the same port.
- ``scaleout_env``: the environment every process of one deployment shares (database, Redis, signing
  key, data dir with the converted generator, index and intent classifier).
- ``WsClient``: a blocking WebSocket client with timeouts (the test must fail, never hang).
(``hub_app``, a minimal app around one ``RedisHub``, is in tests/support/hub_app.py.) The benchmarks'
server process (benchmarks/_support.py) is this ``ServerProcess`` with longer timeouts.

Not a test module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from chatbot.config import PROJECT_ROOT, Settings
from tests.support.services import free_port

__all__ = ["ServerProcess", "WsClient", "free_port", "scaleout_env"]


def scaleout_env(settings: Settings, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """What every process of one deployment shares. ``settings`` is the tests' ``built_index``: its data
    dir holds the index, its generator is the converted one, its NLU dir the classifier `make` built."""
    env = dict(
        os.environ,
        CHATBOT_DATA_DIR=str(settings.data_dir),
        CHATBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
        CHATBOT_GENERATOR_MODEL=settings.generator_model,
        CHATBOT_DATABASE_URL=database_url,
        CHATBOT_REDIS_URL=redis_url,
        CHATBOT_SECRET_KEY="scale-out test key: every process must share it",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    if settings.nlu_dir is not None:
        env["CHATBOT_NLU_DIR"] = str(settings.nlu_dir)
    env.update(extra)
    return env


class ServerProcess:
    """`chatbot serve --port PORT` in a child process; its output goes to ``log``."""

    cli_timeout: float = 120  # seconds a `chatbot` command may take
    stop_timeout: float = 30  # seconds to wait for a graceful stop before SIGKILL

    def __init__(self, env: Mapping[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = dict(env), port, log
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chatbot.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.cli_timeout,
            check=False,
            cwd=PROJECT_ROOT,
        )

    def launch(self) -> None:
        """Start the process without waiting (start several, then ``wait_healthy`` each)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatbot.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
            )

    def wait_healthy(self, timeout: float = 300) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout  # models load in the background; slow on a busy 2-core machine
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()  # never leave a server behind
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"server on port {self.port} did not become healthy; its log ends with:\n{tail}")

    def start(self, timeout: float = 300) -> float:
        """Start and wait for ``/healthz`` 200; returns the seconds it took."""
        started = time.monotonic()
        self.launch()
        self.wait_healthy(timeout)
        return time.monotonic() - started

    def kill9(self) -> None:
        """SIGKILL: what a crash or an OOM kill does; no lifespan shutdown, no Redis clean-up."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, Any]:
        """(status, JSON body); 4xx and 5xx are returned, not raised."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def login(self, name: str, password: str) -> str:
        status, body = self.request("POST", "/v1/agent/login", {"username": name, "password": password})
        assert status == 200, body
        return str(body["token"])

    def websocket(self, path: str) -> WsClient:
        return WsClient(self.ws_url + path)


class WsClient:
    """A WebSocket with JSON frames and a timeout on every read."""

    def __init__(self, url: str, open_timeout: float = 20) -> None:
        opened = connect(url, open_timeout=open_timeout, proxy=None, max_size=2**22)
        self.connection: ClientConnection = opened.__enter__()  # closed by close()
        self.seen: list[dict[str, Any]] = []  # every frame read, in order

    def send(self, frame: dict[str, Any]) -> None:
        self.connection.send(json.dumps(frame))

    def receive(self, timeout: float = 20) -> dict[str, Any]:
        frame = json.loads(self.connection.recv(timeout=timeout))
        self.seen.append(frame)
        return dict(frame)

    def until(self, accept: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        """Read frames until one satisfies ``accept``; fail with what was read if none does in time."""
        deadline = time.monotonic() + timeout
        read: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no expected frame within {timeout} s; read {read}")
            try:
                frame = self.receive(timeout=left)
            except TimeoutError:
                continue
            read.append(str(frame.get("type")))
            if accept(frame):
                return frame

    def close(self) -> None:
        self.connection.close()
