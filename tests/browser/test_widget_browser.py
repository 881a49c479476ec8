"""The chat widget in a real browser (Debian's headless Chromium) against a real server process.

A customer opens the demo page, asks a question, sees the answer and its source link; then the
server is restarted under the widget's feet and the widget reconnects to the same conversation.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from chatbot.config import Settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Server, free_port

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = tmp_path_factory.mktemp("browser") / "chat.db"
    running = Server(built_index, free_port(), database, CHATBOT_MAX_NEW_TOKENS="32")
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
