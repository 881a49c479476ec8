"""A real `chatbot serve` process and Debian's headless Chromium, shared by the browser tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from chatbot.config import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`chatbot serve` in a child process, with its own SQLite database."""

    def __init__(self, settings: Settings, port: int, database: Path, **env: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = dict(
            os.environ,
            CHATBOT_DATA_DIR=str(settings.data_dir),
            CHATBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
            CHATBOT_GENERATOR_MODEL=settings.generator_model,
            CHATBOT_DATABASE_URL=f"sqlite:///{database}",
            **env,
        )
        if settings.nlu_dir is not None:  # the intent classifier `make` built, not one trained per server
            self.env["CHATBOT_NLU_DIR"] = str(settings.nlu_dir)
        self.port = port
        self.log = database.with_suffix(".server.log")
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

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chatbot.cli", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 240  # the models load in the background; slow on a busy 2-core machine
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if urllib.request.urlopen(self.url + "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()  # never leave a server behind
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"server did not become healthy; its log ends with:\n{tail}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")
