"""The chat widget in a real browser (Debian's headless Chromium) against a real server process.

A customer opens the demo page, asks a question, sees the answer and its source link; then the
server is restarted under the widget's feet and the widget reconnects to the same conversation.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from chatbot.config import Settings
from chatbot.dialogue.policy import HANDOFF_REPLY
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Server, csp_violations, free_port, watch_page
from tests.unit.dialogue.test_flows import flow_settings  # noqa: F401  (a fixture: the fixture KB plus urgent-help.md)

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


PHONE = {"width": 390, "height": 844}  # an iPhone 12-15 viewport, CSS pixels
TOUCH_MIN = 44  # px: WCAG 2.5.5 / Apple's minimum touch target


def test_on_a_phone_touch_targets_handoff_notice_and_quick_reply(
    flow_settings: Settings,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Phone viewport: thumbs, handoff button, quick reply and close are at least 44 px; with no agent
    online the handoff notice gives the 24/7 card and fraud line; "Talk to an agent" goes once a
    handoff has started; no CSP violation and no console error on the way."""
    from playwright.sync_api import expect, sync_playwright

    server = Server(flow_settings, free_port(), tmp_path_factory.mktemp("phone") / "chat.db")
    server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
            page = context.new_page()
            errors = watch_page(page)
            page.goto(server.url + "/")
            page.get_by_test_id("kc-launcher").click()
            expect(page.get_by_test_id("kc-status")).to_have_attribute("data-state", "open", timeout=15000)
            page.get_by_test_id("kc-input").fill("my debit card was stolen")
            page.get_by_test_id("kc-send").click()
            answer = page.locator('[data-testid="kc-bot-message"][data-final="true"]').first
            expect(answer).to_have_attribute("data-kind", "flow", timeout=30000)
            expect(answer.get_by_test_id("kc-quick-reply")).to_have_text(HANDOFF_REPLY)

            for test_id in ("kc-feedback-up", "kc-feedback-down", "kc-quick-reply", "kc-handoff", "kc-close"):
                box = page.get_by_test_id(test_id).first.evaluate(
                    "(node) => { const r = node.getBoundingClientRect(); return [r.width, r.height]; }"
                )
                assert min(box) >= TOUCH_MIN, f"{test_id} is {box[0]:.0f} x {box[1]:.0f} px on a phone"

            page.get_by_test_id("kc-handoff").click()  # the button, not the quick reply: which must then go
            notice = page.locator('[data-testid="kc-handoff-notice"][data-status="waiting"]')
            expect(notice).to_contain_text("No one from our team is online", timeout=15000)
            expect(notice).to_contain_text("24/7 card and fraud line")
            expect(notice).to_contain_text("1-800-555-0199")  # knowledge_base: lost-or-stolen-cards.md, security.md
            expect(page.get_by_test_id("kc-quick-reply")).to_have_count(0)
            expect(page.get_by_test_id("kc-handoff")).to_be_hidden()

            assert csp_violations(page) == []
            assert errors == []
            browser.close()
    finally:
        server.stop()
