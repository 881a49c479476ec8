"""Human handoff end to end in a real browser: the widget, the agent console and the admin analytics.

Debian's headless Chromium drives a real server process (real models on the fixture knowledge base,
real SQLite). Agents are created with the real `chatbot agents create` command. A customer asks a
question in the widget, asks for a person, and leaves a message; an agent signs in to the console,
claims the conversation, inserts a suggested reply, edits it and sends it; the customer sees it
without reloading and rates the bot's earlier answer; the agent closes; an admin's analytics count
the handoff, the feedback and the edited suggestion.

Set KESTREL_SCREENSHOTS=1 to also write the screenshots in docs/screenshots/ (the README uses them).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatbot.config import PROJECT_ROOT, Settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Server, csp_violations, free_port, watch_page

pytestmark = pytest.mark.browser

SCREENSHOTS = os.environ.get("KESTREL_SCREENSHOTS") == "1"
SCREENSHOT_DIR = PROJECT_ROOT / "docs" / "screenshots"
FLAG_AFTER_S = 6  # a waiting conversation older than this is flagged in the queue

AGENT = ("Dana", "teal-harbor-lantern-42")
ADMIN = ("Morgan", "quiet-copper-meadow-77")


@pytest.fixture(scope="module")
def server(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = tmp_path_factory.mktemp("console") / "chat.db"
    running = Server(built_index, free_port(), database, CHATBOT_HANDOFF_FLAG_AFTER_S=str(FLAG_AFTER_S))
    for (name, password), role in ((AGENT, "agent"), (ADMIN, "admin")):
        created = running.cli("agents", "create", name, "--role", role, "--password-stdin", stdin=password + "\n")
        assert created.returncode == 0, created.stderr + created.stdout
    running.start()
    try:
        yield running
    finally:
        running.stop()


def shoot(target: Any, name: str) -> None:
    """Save a screenshot for the docs, only when asked (KESTREL_SCREENSHOTS=1)."""
    if SCREENSHOTS:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        target.screenshot(path=str(SCREENSHOT_DIR / name), animations="disabled")


def sign_in(page: Any, url: str, name: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto(url + "/console/")
    page.get_by_test_id("ac-username").fill(name)
    page.get_by_test_id("ac-password").fill(password)
    page.get_by_test_id("ac-login").click()
    expect(page.get_by_test_id("ac-agent")).to_contain_text(name, timeout=15000)


def test_console_rejects_wrong_passwords_and_forged_tokens(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url + "/console/")
        page.get_by_test_id("ac-username").fill(AGENT[0])
        page.get_by_test_id("ac-password").fill("not-the-password")
        page.get_by_test_id("ac-login").click()
        expect(page.get_by_test_id("ac-login-error")).to_be_visible(timeout=15000)
        expect(page.get_by_test_id("ac-login-error")).to_contain_text("Wrong username or password")
        assert page.evaluate("sessionStorage.getItem('kestrel-console-session')") is None

        # A token the server did not sign (or one that expired) sends the agent back to the sign-in form.
        forged = {"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.forged", "agent": {"id": 1, "name": "Eve"}}
        page.evaluate("s => sessionStorage.setItem('kestrel-console-session', s)", json.dumps(forged))
        page.reload()
        expect(page.get_by_test_id("ac-login-error")).to_contain_text("sign in again", timeout=15000)
        expect(page.get_by_test_id("ac-analytics")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('kestrel-console-session')") is None

        # Signed in as an agent (not an admin): no analytics tab, and the API refuses analytics.
        sign_in(page, server.url, *AGENT)
        expect(page.get_by_test_id("ac-tab-analytics")).to_be_hidden()
        status = page.evaluate(
            """async () => {
                const token = JSON.parse(sessionStorage.getItem('kestrel-console-session')).token;
                const response = await fetch('/v1/analytics', {headers: {Authorization: 'Bearer ' + token}});
                return response.status;
            }"""
        )
        assert status == 403
        browser.close()


def test_sign_out_revokes_the_token_on_the_server(server: Server) -> None:
    """Issue 12: the console's Sign out only forgot the token, which stayed valid for 8 hours."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, server.url, *AGENT)
        token = page.evaluate("JSON.parse(sessionStorage.getItem('kestrel-console-session')).token")
        with page.expect_response(lambda r: r.url.endswith("/v1/agent/logout")) as logout:
            page.get_by_test_id("ac-logout").click()
        assert logout.value.status == 204
        expect(page.get_by_test_id("ac-login-error")).to_contain_text("signed out", timeout=15000)
        status = page.evaluate(
            """async token => (await fetch('/v1/agent/me', {headers: {Authorization: 'Bearer ' + token}})).status""",
            token,
        )
        assert status == 401  # the copied token is dead, not just forgotten by this tab
        sign_in(page, server.url, *AGENT)  # and signing in again works
        browser.close()


def test_customer_hands_off_agent_replies_with_edited_suggestion_and_admin_sees_it(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Another customer asked for a person over REST a little earlier: the queue lists waiting ones oldest first.
    status, earlier = server.request("POST", "/v1/conversations")
    assert status == 201, earlier
    status, _ = server.request(
        "POST",
        f"/v1/conversations/{earlier['id']}/messages",
        {"text": "Can I open a joint savings account with my partner?"},
        token=earlier["token"],
    )
    assert status == 200
    status, _ = server.request("POST", f"/v1/conversations/{earlier['id']}/handoff", {}, token=earlier["token"])
    assert status == 200
    earlier_at = time.monotonic()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        scale = 2 if SCREENSHOTS else 1
        customer_context = browser.new_context(viewport={"width": 420, "height": 900}, device_scale_factor=scale)
        agent_context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=scale)
        customer = customer_context.new_page()
        agent = agent_context.new_page()

        # --- The customer asks the assistant, then asks for a person while no agent is online.
        customer.goto(server.url + "/")
        customer.get_by_test_id("kc-launcher").click()
        expect(customer.get_by_test_id("kc-status")).to_have_attribute("data-state", "open", timeout=15000)
        customer.get_by_test_id("kc-input").fill("How much does it cost to send an international wire?")
        customer.get_by_test_id("kc-send").click()
        answer = customer.locator('[data-testid="kc-bot-message"][data-final="true"]').first
        expect(answer).to_contain_text("$45", timeout=30000)
        expect(answer.get_by_test_id("kc-feedback-up")).to_be_visible()
        conversation = customer.evaluate("sessionStorage.getItem('kestrel-chat-conversation')")
        assert conversation and conversation.startswith("conv_")
        assert customer.evaluate("sessionStorage.getItem('kestrel-chat-token')")

        customer.get_by_test_id("kc-handoff").click()
        waiting = customer.locator('[data-testid="kc-handoff-notice"][data-status="waiting"]')
        expect(waiting).to_be_visible(timeout=15000)
        expect(waiting).to_have_attribute("data-agents-online", "0")
        expect(waiting).to_contain_text(re.compile(r"online right now", re.I))
        expect(waiting).to_contain_text(re.compile(r"leave a message", re.I))
        expect(customer.get_by_test_id("kc-handoff")).to_be_hidden()
        customer.get_by_test_id("kc-input").fill("What is the cut-off time for wire transfers today?")
        customer.get_by_test_id("kc-send").click()

        # --- An agent signs in: both waiting conversations, oldest first; the older one is flagged.
        time.sleep(max(0.0, earlier_at + FLAG_AFTER_S + 0.5 - time.monotonic()))
        sign_in(agent, server.url, *AGENT)
        waiting_items = agent.locator('[data-testid="ac-queue-waiting"] [data-testid="ac-queue-item"]')
        expect(waiting_items).to_have_count(2, timeout=15000)
        expect(waiting_items.nth(0)).to_have_attribute("data-conversation-id", earlier["id"])
        expect(waiting_items.nth(0)).to_have_attribute("data-flagged", "true")
        item = agent.locator(f'[data-testid="ac-queue-item"][data-conversation-id="{conversation}"]')
        expect(item).to_have_attribute("data-status", "waiting")
        item.click()

        transcript = agent.get_by_test_id("ac-transcript-message")
        bot_answer = agent.locator('[data-testid="ac-transcript-message"][data-role="assistant"]').first
        expect(bot_answer).to_contain_text("$45", timeout=15000)
        expect(bot_answer.get_by_test_id("ac-answer-kind")).to_have_attribute("data-kind", "faq")
        expect(bot_answer.get_by_test_id("ac-answer-intent")).to_be_visible()
        expect(bot_answer.get_by_test_id("ac-source").first).to_have_attribute(
            "href", "https://bank.example/help/wires"
        )
        expect(agent.locator('[data-testid="ac-transcript-message"][data-role="user"]').last).to_contain_text(
            "cut-off time"
        )
        # The bot stayed silent after the handoff: still one answer in the widget.
        expect(customer.locator('[data-testid="kc-bot-message"]')).to_have_count(1)
        expect(agent.get_by_test_id("ac-customer-state")).to_have_attribute("data-online", "true", timeout=15000)
        expect(agent.get_by_test_id("ac-reply-input")).to_be_disabled()

        agent.get_by_test_id("ac-claim").click()
        expect(agent.get_by_test_id("ac-reply-input")).to_be_enabled(timeout=15000)
        assigned = customer.locator('[data-testid="kc-handoff-notice"][data-status="assigned"]')
        expect(assigned).to_contain_text(AGENT[0], timeout=15000)
        expect(agent.locator('[data-testid="ac-queue-mine"] [data-testid="ac-queue-item"]')).to_have_count(1)

        # The customer types; the agent sees it.
        customer.get_by_test_id("kc-input").fill("Still there")
        expect(agent.get_by_test_id("ac-customer-state")).to_have_attribute("data-typing", "true", timeout=10000)
        customer.get_by_test_id("kc-input").fill("")

        # --- Suggested replies: insert one, edit it by hand, send it.
        agent.get_by_test_id("ac-suggestions-load").click()
        cards = agent.get_by_test_id("ac-suggestion")
        expect(cards.first).to_be_visible(timeout=90000)
        assert 1 <= cards.count() <= 3
        expect(cards.first.get_by_test_id("ac-source").first).to_be_visible()
        suggestion_text = cards.first.get_by_test_id("ac-suggestion-text").inner_text()
        cards.first.get_by_test_id("ac-suggestion-insert").click()
        reply = agent.get_by_test_id("ac-reply-input")
        expect(reply).to_have_value(suggestion_text)
        expect(agent.get_by_test_id("ac-suggestion-banner")).to_contain_text("sent as is")
        edited = "Hi, thanks for waiting! " + suggestion_text
        reply.fill(edited)
        expect(agent.get_by_test_id("ac-suggestion-banner")).to_contain_text("edited")
        agent.get_by_test_id("ac-note-input").fill("Asked about wire fees and the cut-off; answered from the FAQ.")
        agent.get_by_test_id("ac-note-add").click()
        expect(agent.get_by_test_id("ac-note")).to_have_count(1, timeout=10000)
        shoot(agent, "console-conversation.png")
        agent.get_by_test_id("ac-reply-send").click()
        expect(agent.locator('[data-testid="ac-transcript-message"][data-role="agent"]')).to_contain_text(
            "Hi, thanks for waiting!", timeout=15000
        )
        expect(reply).to_have_value("")

        # --- The customer sees the agent's message live, and rates the bot's earlier answer.
        agent_message = customer.get_by_test_id("kc-agent-message")
        expect(agent_message).to_contain_text("Hi, thanks for waiting!", timeout=15000)
        expect(agent_message.get_by_test_id("kc-agent-name")).to_have_text(AGENT[0])
        answer.get_by_test_id("kc-feedback-down").click()
        comment = answer.get_by_test_id("kc-feedback-comment")
        expect(comment).to_be_visible(timeout=10000)
        comment.fill("I wanted the fee for a domestic wire")
        answer.get_by_test_id("kc-feedback-submit").click()
        expect(answer.get_by_test_id("kc-feedback-done")).to_be_visible(timeout=10000)
        customer.get_by_test_id("kc-messages").evaluate("box => { box.scrollTop = 0; }")
        shoot(customer, "widget-handoff.png")

        # --- The customer leaves; the agent replies meanwhile; back on the page, the reply is there, once.
        customer.goto("about:blank")
        expect(agent.get_by_test_id("ac-customer-state")).to_have_attribute("data-online", "false", timeout=15000)
        reply.fill("One more thing: you can track a wire in online banking under Transfers.")
        agent.get_by_test_id("ac-reply-send").click()
        expect(agent.locator('[data-testid="ac-transcript-message"][data-role="agent"]')).to_have_count(2)
        customer.goto(server.url + "/")
        expect(customer.get_by_test_id("kc-status")).to_have_attribute("data-state", "open", timeout=15000)
        agent_messages = customer.get_by_test_id("kc-agent-message")
        expect(agent_messages.last).to_contain_text("track a wire", timeout=15000)
        expect(agent.get_by_test_id("ac-customer-state")).to_have_attribute("data-online", "true", timeout=15000)
        customer.wait_for_timeout(1000)  # the REST history and the `history` frame have both arrived by now
        expect(agent_messages).to_have_count(2)
        expect(customer.get_by_test_id("kc-user-message")).to_have_count(2)
        expect(customer.get_by_test_id("kc-bot-message")).to_have_count(1)
        assert customer.evaluate("sessionStorage.getItem('kestrel-chat-conversation')") == conversation

        # --- Back to the bot, which answers again; then the agent takes the live conversation over.
        agent.get_by_test_id("ac-return").click()
        expect(customer.locator('[data-testid="kc-handoff-notice"][data-status="bot"]')).to_be_visible(timeout=15000)
        expect(customer.get_by_test_id("kc-handoff")).to_be_visible()
        customer.get_by_test_id("kc-input").fill("My card was stolen, what should I do?")
        customer.get_by_test_id("kc-send").click()
        expect(customer.locator('[data-testid="kc-bot-message"][data-final="true"]')).to_have_count(2, timeout=60000)
        expect(agent.get_by_test_id("ac-conversation-status")).to_have_attribute("data-status", "bot", timeout=15000)
        expect(agent.locator('[data-testid="ac-transcript-message"][data-role="assistant"]')).to_have_count(2)
        agent.get_by_test_id("ac-claim").click()
        notices = customer.get_by_test_id("kc-handoff-notice")
        expect(notices.last).to_have_attribute("data-status", "assigned", timeout=15000)
        expect(notices.last).to_contain_text(AGENT[0])
        expect(agent.get_by_test_id("ac-conversation-status")).to_have_attribute("data-status", "assigned")

        # --- The agent closes; the customer is told.
        agent.get_by_test_id("ac-close").click()
        expect(customer.locator('[data-testid="kc-handoff-notice"][data-status="closed"]')).to_be_visible(timeout=15000)
        expect(agent.locator('[data-testid="ac-queue-mine"] [data-testid="ac-queue-item"]')).to_have_count(0)
        assert transcript.count() >= 4

        # --- An admin's analytics count the handoff, the thumbs-down and the edited suggestion.
        admin_context = browser.new_context(viewport={"width": 1440, "height": 780}, device_scale_factor=scale)
        admin = admin_context.new_page()
        sign_in(admin, server.url, *ADMIN)
        admin.get_by_test_id("ac-tab-analytics").click()
        analytics = admin.get_by_test_id("ac-analytics")
        expect(analytics).to_be_visible()

        def metric(name: str) -> float:
            node = analytics.locator(f'[data-testid="ac-metric"][data-metric="{name}"]')
            expect(node).to_have_count(1, timeout=15000)
            return float(node.get_attribute("data-value") or "nan")

        assert metric("handoff_reason:customer_request") >= 2
        assert metric("handoff_rate") > 0
        assert metric("feedback_down") == 1
        assert metric("suggestions_edited") == 1
        assert metric("suggestions_sent") == 0
        assert metric("conversations") >= 2
        csv_link = admin.get_by_test_id("ac-csv")
        expect(csv_link).to_have_attribute("href", re.compile(r"^blob:"), timeout=15000)
        with admin.expect_download() as download_info:
            csv_link.click()
        csv_text = Path(download_info.value.path()).read_text(encoding="utf-8")
        assert "international wire" in csv_text
        shoot(admin, "console-analytics.png")
        browser.close()


def test_analytics_bars_keep_to_the_consoles_csp(server: Server) -> None:
    """The bars' widths are set through CSSOM: no `style=` attribute, so no CSP violation or console error."""
    import urllib.request

    from playwright.sync_api import expect, sync_playwright

    def post(path: str, body: dict[str, str] | None = None, token: str | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(server.url + path, data=data, headers=headers, method="POST")
        return dict(json.loads(urllib.request.urlopen(request, timeout=60).read()))

    created = post("/v1/conversations")  # one answered message, so that the answer-kind bars have a row
    post(f"/v1/conversations/{created['id']}/messages", {"text": "what is the wire cut-off time?"}, created["token"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        admin = browser.new_page()
        errors = watch_page(admin)
        sign_in(admin, server.url, *ADMIN)
        admin.get_by_test_id("ac-tab-analytics").click()
        fills = admin.locator(".bar-row .bar > span")
        expect(fills.first).to_be_attached(timeout=15000)
        width = fills.first.evaluate("(node) => node.getBoundingClientRect().width")
        assert width > 0, "the bar has its width"
        admin.wait_for_timeout(500)
        assert csp_violations(admin) == []
        assert errors == []
        browser.close()
