"""The chat widget in a real browser (Debian's headless Chromium) against a real server process.

A customer opens the demo page, asks a question, sees the answer and its source link; then the
server is restarted under the widget's feet and the widget reconnects to the same conversation.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot.config import Settings

pytestmark = pytest.mark.browser

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
    def __init__(self, settings: Settings, port: int, database: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = dict(
            os.environ,
            CHATBOT_DATA_DIR=str(settings.data_dir),
            CHATBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
            CHATBOT_GENERATOR_MODEL=settings.generator_model,
            CHATBOT_DATABASE_URL=f"sqlite:///{database}",
            CHATBOT_MAX_NEW_TOKENS="32",
        )
        if settings.nlu_dir is not None:  # the intent classifier `make` built, not one trained per server
            self.env["CHATBOT_NLU_DIR"] = str(settings.nlu_dir)
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()  # never leave a half-started server behind
        raise RuntimeError("server did not become healthy")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture(scope="module")
def server(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = tmp_path_factory.mktemp("browser") / "chat.db"
    running = Server(built_index, free_port(), database)
    running.start()
    yield running
    running.stop()


def test_customer_asks_sees_answer_with_source_and_survives_a_server_restart(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(server.url + "/")
        page.get_by_test_id("kc-launcher").click()
        expect(page.get_by_test_id("kc-status")).to_have_attribute("data-state", "open", timeout=15000)

        page.get_by_test_id("kc-input").fill("How much does it cost to send an international wire?")
        page.get_by_test_id("kc-send").click()
        expect(page.get_by_test_id("kc-user-message")).to_have_count(1)
        answer = page.locator('[data-testid="kc-bot-message"][data-final="true"]').first
        expect(answer).to_contain_text("$45", timeout=30000)
        expect(answer).to_have_attribute("data-kind", "faq")
        source = answer.get_by_test_id("kc-source")
        expect(source).to_have_attribute("href", "https://bank.example/help/wires")
        conversation = page.evaluate("sessionStorage.getItem('kestrel-chat-conversation')")
        assert conversation and conversation.startswith("conv_")

        # Text is rendered as text: markup typed by a customer is never interpreted.
        page.get_by_test_id("kc-input").fill("<img src=x onerror=alert(1)> what is the wire cut-off time?")
        page.get_by_test_id("kc-send").click()
        expect(page.locator('[data-testid="kc-bot-message"][data-final="true"]')).to_have_count(2, timeout=60000)
        assert page.locator("#kestrel-chat img").count() == 0

        server.stop()
        expect(page.get_by_test_id("kc-status")).not_to_have_attribute("data-state", "open", timeout=15000)
        server.start()
        expect(page.get_by_test_id("kc-status")).to_have_attribute("data-state", "open", timeout=30000)
        page.get_by_test_id("kc-input").fill("My card was stolen, what should I do?")
        page.get_by_test_id("kc-send").click()
        expect(page.locator('[data-testid="kc-bot-message"][data-final="true"]')).to_have_count(3, timeout=60000)
        assert page.evaluate("sessionStorage.getItem('kestrel-chat-conversation')") == conversation
        token = page.evaluate("sessionStorage.getItem('kestrel-chat-token')")  # customers read only their own
        browser.close()

    request = urllib.request.Request(
        f"{server.url}/v1/conversations/{conversation}/messages", headers={"Authorization": f"Bearer {token}"}
    )
    history = urllib.request.urlopen(request, timeout=10).read()
    assert history.count(b'"role":"user"') == 3  # all three questions stored in one conversation
