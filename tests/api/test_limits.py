"""Request-body and WebSocket-frame size limits, and the idle-connection timeout (real app, real SQLite)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from chatbot.config import Settings
from tests.support.app import app_settings, create_agent, login, new_conversation, start

MAX_BODY, MAX_FRAME, IDLE_S = 2048, 1024, 1.0


@pytest.fixture(scope="module")
def client(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = app_settings(
        built_index,
        tmp_path_factory.mktemp("limits"),
        max_body_bytes=MAX_BODY,
        max_frame_bytes=MAX_FRAME,
        ws_idle_timeout_s=IDLE_S,
        rate_limit_enabled=False,
    )
    app_client = start(settings)
    create_agent(settings, "idle-agent")
    yield app_client
    app_client.__exit__(None, None, None)


def test_a_body_over_the_limit_is_refused_by_its_content_length(client: TestClient) -> None:
    conversation, auth = new_conversation(client)
    body = json.dumps({"text": "x" * (MAX_BODY + 10)})
    response = client.post(
        f"/v1/conversations/{conversation}/messages",
        content=body,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert client.get(f"/v1/conversations/{conversation}/messages", headers=auth).json()["messages"] == []


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(client: TestClient) -> None:
    conversation, auth = new_conversation(client)
    chunks = [b'{"text": "', *([b"y" * 512] * 6), b'"}']

    response = client.post(
        f"/v1/conversations/{conversation}/messages",
        content=iter(chunks),  # no Content-Length: Transfer-Encoding: chunked
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_body_under_the_limit_passes(client: TestClient) -> None:
    conversation, auth = new_conversation(client)
    response = client.post(
        f"/v1/conversations/{conversation}/messages", content=iter([b'{"text": ', b'"hello"}']), headers=auth
    )
    assert response.status_code in (200, 503)  # 503 only while the engine is still loading: not a size error


def test_an_invalid_content_length_is_a_bad_request(client: TestClient) -> None:
    response = client.post("/v1/conversations", headers={"Content-Length": "-5"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


def test_a_websocket_frame_over_the_limit_closes_with_1009(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_text(json.dumps({"type": "message", "text": "z" * (MAX_FRAME + 1)}))
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 1009


def test_a_multibyte_frame_is_measured_in_bytes(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_text(
            json.dumps({"type": "typing", "pad": "€" * (MAX_FRAME // 3 + 1)}, ensure_ascii=False)
        )  # 3 bytes each
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 1009


def test_an_idle_customer_socket_gets_an_error_frame_then_1001(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        assert ws.receive_json()["type"] == "ready"
        started = time.monotonic()
        frame = ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == "idle_timeout"
        assert time.monotonic() - started >= IDLE_S * 0.9
        message = ws.receive()
        assert message["type"] == "websocket.close" and message["code"] == 1001


def test_a_socket_that_keeps_talking_stays_open(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        assert ws.receive_json()["type"] == "ready"
        for _ in range(4):  # 4 × 0.5 s = twice the idle timeout, but never idle for a whole timeout
            time.sleep(IDLE_S / 2)
            ws.send_text("not json")
            frame = ws.receive_json()
            assert frame["type"] == "error" and frame["code"] == "invalid_frame"


def test_an_idle_agent_socket_is_closed_too(client: TestClient) -> None:
    token, _ = login(client, "idle-agent")
    with client.websocket_connect(f"/ws/agent?token={token}") as ws:
        frame = ws.receive_json()
        assert frame["type"] == "queue"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
        while (frame := ws.receive_json())["type"] != "error":
            pass
        assert frame["code"] == "idle_timeout"
        message = ws.receive()
        assert message["type"] == "websocket.close" and message["code"] == 1001
