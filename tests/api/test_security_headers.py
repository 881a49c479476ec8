"""CORS allow-list and security headers, through the real app (real engine, SQLite)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.server.app import create_app
from tests.support.app import app_settings, new_conversation, start

BANK = "https://bank.example"
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def client(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = app_settings(built_index, tmp_path_factory.mktemp("headers"), cors_origins=[BANK])
    app_client = start(settings)
    yield app_client
    app_client.__exit__(None, None, None)


def test_an_allowed_origin_may_call_the_api(client: TestClient) -> None:
    response = client.post("/v1/conversations", headers={"Origin": BANK})
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == BANK
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "retry-after" in exposed and "x-request-id" in exposed
    assert "access-control-allow-credentials" not in response.headers  # Bearer tokens, never cookies


def test_another_origin_gets_no_cors_grant(client: TestClient) -> None:
    response = client.post("/v1/conversations", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in response.headers


def test_preflight_for_an_allowed_origin_lists_methods_and_headers(client: TestClient) -> None:
    response = client.options(
        "/v1/conversations/abc/messages",
        headers={
            "Origin": BANK,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == BANK
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "idempotency-key" in allowed


def test_preflight_for_another_origin_is_refused(client: TestClient) -> None:
    response = client.options("/v1/conversations", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_an_empty_allow_list_grants_no_origin(built_index: Settings) -> None:
    app = create_app(built_index.model_copy(update={"cors_origins": []}))
    bare = TestClient(app)  # no lifespan needed: CORS answers preflights itself
    response = bare.options("/v1/conversations", headers={"Origin": BANK, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 400 and "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", ["/", "/console/"])
def test_pages_get_a_strict_csp_and_cannot_be_framed(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("path", "location"), [("/console", "/console/"), ("/console?tab=queue", "/console/?tab=queue"), ("/widget", None)]
)
def test_directory_redirects_are_relative_whatever_the_host_header(
    client: TestClient, path: str, location: str | None
) -> None:
    """Issue 12: ``Host: evil.example`` made ``/console`` redirect to ``http://evil.example/console/``."""
    response = client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    if location is None:  # not a directory of the web root: nothing to redirect
        assert response.status_code == 404
        return
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"] == location
    assert "evil.example" not in response.text


def test_api_responses_are_not_cached_and_have_no_page_csp(client: TestClient) -> None:
    conversation, auth = new_conversation(client)
    response = client.get(f"/v1/conversations/{conversation}/messages", headers=auth)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
    error = client.get("/v1/conversations/nope/messages")
    assert error.headers["cache-control"] == "no-store" and error.headers["x-frame-options"] == "DENY"


def test_the_widget_script_stays_embeddable_from_other_origins(client: TestClient) -> None:
    response = client.get("/widget/kestrel-chat.js", headers={"Origin": EVIL})
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]  # nosniff needs the right type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "cross-origin-resource-policy" not in response.headers
    assert "no-store" not in response.headers.get("cache-control", "")  # static files keep their caching


def test_hsts_only_over_https(client: TestClient) -> None:
    assert "strict-transport-security" not in client.get("/healthz").headers
    secure = TestClient(client.app, base_url="https://testserver")
    hsts = secure.get("/healthz").headers["strict-transport-security"]
    assert re.match(r"max-age=\d{7,}", hsts)


def test_the_api_docs_page_gets_its_own_policy(client: TestClient) -> None:
    response = client.get("/docs")
    csp = response.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in csp and "frame-ancestors 'none'" in csp


class _InlineFinder(HTMLParser):
    """Everything a CSP without 'unsafe-inline' blocks: inline scripts and styles, style and on* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self._in = "script"
        if tag == "style":
            self.problems.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{tag} {name}=")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"{tag} {name}=javascript:")

    def handle_endtag(self, tag: str) -> None:
        self._in = None if tag == "script" else self._in

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.problems.append("inline <script>")


@pytest.mark.parametrize("page", ["web/index.html", "web/console/index.html"])
def test_our_pages_have_nothing_inline_that_the_csp_would_block(page: str) -> None:
    finder = _InlineFinder()
    finder.feed(Path(PROJECT_ROOT / page).read_text())
    assert finder.problems == []


# ---------------------------------------------------------------------------------------- in a real browser
@pytest.mark.browser
def test_pages_run_under_their_csp_in_chromium(built_index: Settings, tmp_path: Path) -> None:
    """The demo page (with the widget) and the console load and style themselves with no CSP violation."""
    import shutil
    import threading
    import time

    import uvicorn

    from tests.support.services import free_port

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings(built_index, tmp_path)), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    watch = (
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
            page = browser.new_page()
            page.add_init_script(watch)
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(f"http://127.0.0.1:{port}/")
            launcher = page.get_by_test_id("kc-launcher")
            sync_api.expect(launcher).to_be_visible()
            assert launcher.evaluate("node => getComputedStyle(node).borderRadius") == "50%"  # widget CSS applied
            hero = page.evaluate("getComputedStyle(document.querySelector('.hero')).backgroundImage")
            assert "linear-gradient" in hero  # web/site.css applied
            page.get_by_role("button", name="Ask our assistant").click()  # web/site.js opens the widget
            sync_api.expect(page.get_by_test_id("kc-input")).to_be_visible()
            assert page.evaluate("window.__csp") == []
            page.goto(f"http://127.0.0.1:{port}/console/")
            card = page.locator(".login-card")
            sync_api.expect(card).to_be_visible()
            assert card.evaluate("node => getComputedStyle(node).maxWidth") == "380px"  # console.css applied
            assert page.evaluate("window.__csp") == []
            assert not [e for e in errors if "Content Security Policy" in e], errors
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
