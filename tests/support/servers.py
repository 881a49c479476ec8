"""Several real server processes sharing PostgreSQL and Redis, for the scale-out tests and benchmarks.

- ``ServerProcess``: one ``chatbot serve`` child process on its own port; ``kill9()`` ends it the way
  a crash does (no shutdown hook runs) and ``start()`` brings it back on the same port.
- ``scaleout_env``: the environment every process of one deployment shares (database, Redis, signing
  key, data dir with the converted generator, index and intent classifier).
- ``WsClient``: a blocking WebSocket client with timeouts (the test must fail, never hang).
- ``hub_app``: a minimal app around one ``RedisHub``, so the hub can be driven through real
  WebSockets (in a TestClient or in a child process) without loading any model.

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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.sync.client import ClientConnection, connect

from chatbot.agents.hub import Connection
from chatbot.agents.redis_hub import RedisHub
from chatbot.config import PROJECT_ROOT, Settings
from tests.services import free_port

__all__ = ["ServerProcess", "WsClient", "free_port", "hub_app", "scaleout_env"]


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

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
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
            timeout=120,
            check=False,
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

    def start(self, timeout: float = 300) -> None:
        self.launch()
        self.wait_healthy(timeout)

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
                self.process.wait(timeout=30)
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


def hub_app(url: str, heartbeat_s: float = 0.3, ttl_s: float = 1.5, prefix: str = "kestrel") -> FastAPI:
    """One RedisHub behind real WebSockets: ``/customer/{conversation}`` and ``/agent/{agent}`` register
    a socket and send ``{"type": "registered"}``; ``POST /publish`` calls ``to_customer`` / ``to_agents``;
    a socket may send ``{"conversation_id", "frame"}`` to publish excluding itself; ``GET /presence``."""
    hub = RedisHub(url, heartbeat_s=heartbeat_s, ttl_s=ttl_s, prefix=prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.hub = hub

    async def serve(websocket: WebSocket, owner: str, customer: bool) -> None:
        await websocket.accept()
        connection = Connection(websocket, owner)
        connection.start()
        (hub.add_customer if customer else hub.add_agent)(owner, connection)
        connection.send({"type": "registered"})
        try:
            while True:
                frame = await websocket.receive_json()
                hub.to_customer(frame["conversation_id"], frame["frame"], exclude=connection)
        except WebSocketDisconnect:
            pass
        finally:
            (hub.remove_customer if customer else hub.remove_agent)(owner, connection)
            await connection.stop()

    @app.websocket("/customer/{conversation_id}")
    async def customer(websocket: WebSocket, conversation_id: str) -> None:
        await serve(websocket, conversation_id, customer=True)

    @app.websocket("/agent/{agent_id}")
    async def agent(websocket: WebSocket, agent_id: str) -> None:
        await serve(websocket, agent_id, customer=False)

    @app.post("/publish")
    async def publish(body: dict[str, Any]) -> dict[str, str]:
        if body.get("conversation_id"):
            hub.to_customer(body["conversation_id"], body["frame"])
        else:
            hub.to_agents(body["frame"], body.get("agent_id"))
        return {"status": "queued"}

    @app.get("/presence")
    async def presence(conversation_id: str = "") -> dict[str, Any]:
        return {"agents_online": hub.agents_online(), "customer_online": hub.customer_online(conversation_id)}

    return app


def run_hub_app(url: str, port: int, heartbeat_s: float, ttl_s: float, prefix: str) -> None:
    """Entry point for a hub in a child process (``python -m tests.scaleout_support URL PORT HB TTL PREFIX``)."""
    import uvicorn

    uvicorn.run(hub_app(url, heartbeat_s, ttl_s, prefix), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    run_hub_app(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
