"""Helpers for the security and operations tests (rate limits, limits, headers, metrics, logs).

Each module starts the real app (real engine, its own SQLite file) with FastAPI's TestClient, as
tests/agent_support.py does; ``wait_ready`` only where a test needs answers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.server.app import create_app


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


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 600  # models load in the background; slow on a busy shared 2-core machine
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "engine did not become ready"
        time.sleep(0.2)


def new_conversation(client: TestClient) -> tuple[str, dict[str, str]]:
    response = client.post("/v1/conversations")
    assert response.status_code == 201, response.text
    body = response.json()
    return str(body["id"]), {"Authorization": f"Bearer {body['token']}"}
