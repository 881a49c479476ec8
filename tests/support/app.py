"""The real app in FastAPI's TestClient, for the tests in tests/api/ (not a test module).

Each module starts the real app (real engine, real SQLite file of its own) with FastAPI's
TestClient, as tests/api/test_server.py does. ``module_settings`` / ``started`` wait for the engine
(the handoff, agent-API, auth and analytics tests); ``app_settings`` / ``start`` leave the generator
off and wait only when asked (``wait_ready``: the security and operations tests).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from chatbot.agents.auth import hash_password
from chatbot.config import Settings
from chatbot.server.app import create_app
from chatbot.store import Store

PASSWORD = "correct horse battery staple"


def module_settings(base: Settings, directory: Path, **changes: Any) -> Settings:
    """The session's settings with a database of this module's own (and any other changes)."""
    return base.model_copy(update={"database_url": f"sqlite:///{directory / 'handoff.db'}", **changes})


def app_settings(base: Settings, directory: Path, **changes: Any) -> Settings:
    """The session's settings with a database of the module's own; no generator unless asked (faster start)."""
    update: dict[str, Any] = {"database_url": f"sqlite:///{directory / 'ops.db'}", "generation_enabled": False}
    return base.model_copy(update=update | changes)


def start(settings: Settings, ready: bool = False) -> TestClient:
    client = TestClient(create_app(settings))
    client.__enter__()
    if ready:
        wait_ready(client)
    return client


def started(settings: Settings) -> TestClient:
    return start(settings, ready=True)


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 600  # models load in the background; slow on a busy shared 2-core machine
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "engine did not become ready"
        time.sleep(0.2)


def create_agent(settings: Settings, name: str, role: str = "agent", password: str = PASSWORD) -> str:
    store = Store(settings.resolved_database_url)
    try:
        return store.create_agent(name, role, hash_password(password)).id
    finally:
        store.close()


def login(client: TestClient, name: str, password: str = PASSWORD) -> tuple[str, dict[str, str]]:
    response = client.post("/v1/agent/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    token = str(response.json()["token"])
    return token, {"Authorization": f"Bearer {token}"}


def new_conversation(client: TestClient) -> tuple[str, dict[str, str]]:
    response = client.post("/v1/conversations")
    assert response.status_code == 201, response.text
    body = response.json()
    return str(body["id"]), {"Authorization": f"Bearer {body['token']}"}


def receive_until(ws: Any, *types: str, limit: int = 200) -> list[dict[str, Any]]:
    """Frames up to and including the first of one of ``types``."""
    frames = []
    for _ in range(limit):
        frame = ws.receive_json()
        frames.append(frame)
        if frame["type"] in types:
            return frames
    raise AssertionError(f"no {types} frame in {limit} frames: {[f['type'] for f in frames]}")


def ask(ws: Any, text: str, client_id: str | None = None) -> list[dict[str, Any]]:
    """Send a customer message and read up to the bot's final answer (or an error)."""
    ws.send_json({"type": "message", "text": text, **({"client_id": client_id} if client_id else {})})
    return receive_until(ws, "message", "error")
