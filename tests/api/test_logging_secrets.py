"""No secrets in logs; request ids in every log record of a request and echoed to the client.

The filters alone, then a real uvicorn server (in a thread, real app and SQLite) whose JSON logs —
uvicorn's access and WebSocket lines included — are captured and searched for every secret sent.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from websockets.sync.client import connect

from chatbot.config import Settings
from chatbot.log_filters import SecretScrubFilter, request_id_var, scrub
from chatbot.log_setup import JsonFormatter, configure_logging
from chatbot.server.app import create_app
from tests.support.app import app_settings, create_agent
from tests.support.services import free_port

API_KEY = "kst_" + "A1b2C3d4" * 5 + "xyz"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ3RfMSIsInJvbGUiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNlY3JldA"
CUSTOMER_TOKEN = "Zm9vYmFyYmF6cXV4c2VjcmV0LWN1c3RvbWVyLXRva2Vu"
PASSWORD = "hunter2-is-my-password"


def formatted(record: logging.LogRecord) -> str:
    SecretScrubFilter().filter(record)
    return JsonFormatter().format(record)


def record(msg: str, *args: Any, exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("test", logging.INFO, __file__, 1, msg, args, exc_info)
    made.__dict__.update(extra)
    return made


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {CUSTOMER_TOKEN}",
        f"key {API_KEY} was used",
        f"agent token {JWT}",
        f"GET /ws/chat?conversation_id=conv_1&token={CUSTOMER_TOKEN}&after=msg_2",
        f"GET /v1/things?key={CUSTOMER_TOKEN}",
        f"GET /v1/conversations?customer_id=cust-42&customer_hash={CUSTOMER_TOKEN}",
        f'{{"customer_id": "cust-42", "customer_hash": "{CUSTOMER_TOKEN}"}}',
        f"login with password={PASSWORD}",
        f'{{"username": "ann", "password": "{PASSWORD}"}}',
    ],
)
def test_each_kind_of_secret_is_scrubbed_from_the_message(text: str) -> None:
    out = formatted(record(text))
    for secret in (CUSTOMER_TOKEN, API_KEY, JWT, PASSWORD, API_KEY[4:]):
        assert secret not in out
    assert "[redacted]" in out


def test_args_extras_and_exceptions_are_scrubbed_too() -> None:
    try:
        raise ValueError(f"refused key {API_KEY}")
    except ValueError:
        exc_info = sys.exc_info()
    out = formatted(
        record(
            "request from %s with %s",
            "10.0.0.1",
            f"Bearer {JWT}",
            exc_info=exc_info,
            headers={"authorization": f"Bearer {JWT}", "accept": "json"},
            password=PASSWORD,
            url=f"/ws/agent?token={JWT}",
            tokens=48,
        )
    )
    payload = json.loads(out)
    assert JWT not in out and API_KEY not in out and PASSWORD not in out
    assert payload["headers"]["accept"] == "json" and payload["tokens"] == 48  # only secrets go
    assert "10.0.0.1" in payload["event"] and "ValueError" in payload["exception"]


def test_ordinary_text_is_left_alone() -> None:
    text = "answered kind=faq latency_ms=12 sources=['lost-cards'] for conversation conv_123"
    assert scrub(text) == text


def test_records_carry_the_current_request_id() -> None:
    from chatbot.log_filters import RequestIdFilter

    token = request_id_var.set("req-42")
    try:
        made = record("inside a request")
        RequestIdFilter().filter(made)
    finally:
        request_id_var.reset(token)
    assert json.loads(JsonFormatter().format(made))["request_id"] == "req-42"
    outside = record("outside")
    RequestIdFilter().filter(outside)
    assert "request_id" not in json.loads(JsonFormatter().format(outside))


# ---------------------------------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def server(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, io.StringIO]]:
    """A real uvicorn server in a thread, logging JSON through configure_logging into a buffer."""
    settings = app_settings(
        built_index, tmp_path_factory.mktemp("logs"), rate_limit_key_per_minute=1, rate_limit_ip_per_minute=1000
    )
    create_agent(settings, "log-agent")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.stderr)
    buffer = io.StringIO()
    sys.stderr = buffer
    try:
        configure_logging("INFO")
    finally:
        sys.stderr = saved[2]
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}", buffer
    finally:
        uv.should_exit = True
        thread.join(timeout=60)
        root.handlers[:], root.level = saved[0], saved[1]


def call(base: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{base}{path}", data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_secrets_sent_to_a_real_server_never_reach_its_logs(server: tuple[str, io.StringIO]) -> None:
    base, buffer = server
    status, headers = call(base, "POST", "/v1/conversations", {"X-Request-ID": "req-create-1"})
    assert status == 201 and headers["X-Request-ID"] == "req-create-1"
    auth = {"Authorization": f"Bearer {API_KEY}", "X-Request-ID": "req-key-2"}
    call(base, "GET", "/v1/models", auth)
    status, _ = call(base, "GET", "/v1/models", auth)  # the key's limit is 1/min: logged as rate limited
    assert status == 429
    call(base, "GET", f"/v1/conversations/conv_x/messages?token={CUSTOMER_TOKEN}", {"Authorization": f"Bearer {JWT}"})
    login = json.dumps({"username": "log-agent", "password": PASSWORD}).encode()
    call(base, "POST", "/v1/agent/login", {"Content-Type": "application/json"}, login)
    identity = f"customer_id=jane.doe%40example.com&customer_hash={CUSTOMER_TOKEN[::-1]}"
    call(base, "GET", f"/v1/conversations?{identity}", {})  # refused (no key), but in the access log
    with connect(f"ws://{base}/ws/chat?conversation_id=conv_nope&token={CUSTOMER_TOKEN}") as ws:
        json.loads(ws.recv())
    with connect(f"ws://{base}/ws/agent?token={JWT}") as ws:
        json.loads(ws.recv())
    time.sleep(0.5)
    text = buffer.getvalue()
    assert "/ws/chat" in text and "/v1/models" in text, "uvicorn's access log was not captured"
    for secret in (API_KEY, API_KEY[4:], JWT, CUSTOMER_TOKEN, PASSWORD, CUSTOMER_TOKEN[::-1], "jane.doe"):
        assert secret not in text
    logged = records(buffer)
    limited = [r for r in logged if r["event"] == "rate limited"]
    assert limited and limited[-1]["request_id"] == "req-key-2"
    access = [r for r in logged if r["logger"] == "uvicorn.access" and "/v1/conversations " in r["event"]]
    assert access and access[0]["request_id"] == "req-create-1"


def test_request_ids_are_made_when_missing_or_unsafe(server: tuple[str, io.StringIO]) -> None:
    base, _ = server
    _, made = call(base, "GET", "/healthz", {})
    assert len(made["X-Request-ID"]) == 32
    _, unsafe = call(base, "GET", "/healthz", {"X-Request-ID": "x" * 65})
    assert unsafe["X-Request-ID"] != "x" * 65 and len(unsafe["X-Request-ID"]) == 32
    _, kept = call(base, "GET", "/healthz", {"X-Request-ID": "lb-7f3a:9.2_x"})
    assert kept["X-Request-ID"] == "lb-7f3a:9.2_x"


def test_websocket_connections_get_a_request_id(server: tuple[str, io.StringIO]) -> None:
    base, _ = server
    with connect(f"ws://{base}/ws/chat", additional_headers={"X-Request-ID": "ws-req-9"}) as ws:
        assert ws.response is not None and ws.response.headers["X-Request-ID"] == "ws-req-9"
        assert json.loads(ws.recv())["type"] == "ready"
