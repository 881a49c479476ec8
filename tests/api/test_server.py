"""The HTTP and WebSocket contract, through the real app (real engine, real SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.server.app import create_app


def started(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.__enter__()
    deadline = time.monotonic() + 120
    while client.get("/healthz").status_code != 200:
        assert time.monotonic() < deadline, "engine did not become ready"
        time.sleep(0.2)
    return client


@pytest.fixture(scope="module")
def client(built_index: Settings) -> Iterator[TestClient]:
    app_client = started(built_index)
    yield app_client
    app_client.__exit__(None, None, None)


TOKENS: dict[str, str] = {}


def new_conversation(client: TestClient) -> str:
    response = client.post("/v1/conversations")
    assert response.status_code == 201
    TOKENS[response.json()["id"]] = response.json()["token"]
    return str(response.json()["id"])


def auth(conversation: str) -> dict[str, str]:
    """The customer token of a conversation this module created (customers read only their own)."""
    return {"Authorization": f"Bearer {TOKENS[conversation]}"}


def test_healthz_reports_index_and_generator(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["passages"] == 13
    assert body["generator"]["device"] == "cpu"


def test_message_round_trip_returns_an_answer_object(client: TestClient) -> None:
    conversation = new_conversation(client)
    response = client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"text": "My card was stolen, help"},
        headers=auth(conversation),
    )
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"id", "conversation_id", "role", "text", "kind", "intent", "sources", "handoff",
                           "quick_replies", "latency_ms"}  # fmt: skip
    assert answer["conversation_id"] == conversation and answer["role"] == "assistant"
    assert answer["kind"] == "faq" and answer["sources"][0]["id"] == "lost-cards"

    history = client.get(f"/v1/conversations/{conversation}/messages", headers=auth(conversation)).json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
    assert history["messages"][1]["id"] == answer["id"]
    assert history["messages"][1]["sources"][0]["id"] == "lost-cards"


def test_card_numbers_are_redacted_before_they_are_stored(client: TestClient) -> None:
    conversation = new_conversation(client)
    client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"text": "card 4111 1111 1111 1111 was stolen"},
        headers=auth(conversation),
    )
    stored = client.get(f"/v1/conversations/{conversation}/messages", headers=auth(conversation)).json()
    stored = stored["messages"][0]["text"]
    assert "4111 1111" not in stored and "[CARD ••••1111]" in stored


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 422, "empty_message"),
        ({"text": "a" * 2001}, 422, "message_too_long"),
        ({"text": 42}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
    ],
)
def test_bad_messages_get_precise_errors(client: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    conversation = new_conversation(client)
    response = client.post(f"/v1/conversations/{conversation}/messages", json=body, headers=auth(conversation))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_garbage_body_and_unknown_ids_are_rejected_cleanly(client: TestClient) -> None:
    conversation = new_conversation(client)
    garbage = client.post(
        f"/v1/conversations/{conversation}/messages",
        content=b"\xff\xfe\x00binary",
        headers={"content-type": "application/json", **auth(conversation)},
    )
    assert garbage.status_code in {400, 422} and "error" in garbage.json()
    missing = client.post("/v1/conversations/conv_doesnotexist/messages", json={"text": "hello"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation_not_found"
    assert client.get("/v1/conversations/conv_nope/messages").status_code == 404
    assert client.get("/v1/conversations/bad id!/messages").status_code == 422
    assert client.get("/v1/no-such-route").json()["error"]["code"] == "not_found"


def receive_answer(ws: Any) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = ws.receive_json()
        frames.append(frame)
        if frame["type"] in {"message", "error"}:
            return frames


def test_websocket_streams_start_deltas_and_message(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["conversation_id"].startswith("conv_")
        ws.send_json({"type": "message", "text": "how long does a replacement card take to arrive"})
        frames = receive_answer(ws)
    assert frames[0]["type"] == "ack" and frames[0]["message_id"].startswith("msg_")  # stored before answered
    frames = frames[1:]
    assert frames[0]["type"] == "start" and frames[-1]["type"] == "message"
    assert {f["type"] for f in frames[1:-1]} == {"delta"}
    message = frames[-1]["message"]
    assert message["conversation_id"] == ready["conversation_id"] and message["id"] == frames[0]["id"]
    assert "5 to 7 business days" in message["text"]


def test_websocket_keeps_the_connection_through_malformed_frames(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        for bad in ["not json", "[1, 2]", '{"type": "nope"}', '{"type": "message"}']:
            ws.send_text(bad)
            frame = ws.receive_json()
            assert frame["type"] == "error" and frame["code"] == "invalid_frame", bad
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["code"] == "invalid_frame"
        ws.send_json({"type": "message", "text": "x" * 5000})
        assert ws.receive_json()["code"] == "message_too_long"
        ws.send_json({"type": "message", "text": "what is the cut-off time for wire transfers"})
        assert receive_answer(ws)[-1]["message"]["kind"] == "faq"


def test_websocket_resumes_a_known_conversation(client: TestClient) -> None:
    conversation = new_conversation(client)
    with client.websocket_connect(f"/ws/chat?conversation_id={conversation}&token={TOKENS[conversation]}") as ws:
        assert ws.receive_json()["conversation_id"] == conversation
    with client.websocket_connect("/ws/chat?conversation_id=conv_unknown") as ws:
        assert ws.receive_json()["code"] == "conversation_not_found"
        assert ws.receive_json()["conversation_id"] != "conv_unknown"


def test_connecting_stores_no_conversation_until_the_customer_writes(client: TestClient) -> None:
    """Issue 12: every /ws/chat connection stored a conversation, even when the customer never wrote."""
    store = client.app.state.store  # type: ignore[attr-defined]
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        conversation, token = ready["conversation_id"], ready["token"]
        assert ready["type"] == "ready" and conversation.startswith("conv_") and token
        ws.send_json({"type": "typing"})
        ws.send_json({"type": "message", "text": "   "})  # refused: stores nothing either
        assert ws.receive_json()["code"] == "empty_message"
    assert not store.conversation_exists(conversation)
    # The widget reconnects with what "ready" gave it: the same reservation, no error, no new token.
    with client.websocket_connect(f"/ws/chat?conversation_id={conversation}&token={token}") as ws:
        again = ws.receive_json()
        assert again["type"] == "ready" and again["conversation_id"] == conversation and "token" not in again
        ws.send_json({"type": "message", "text": "what is the cut-off time for wire transfers"})
        frames = receive_answer(ws)
    assert frames[0]["type"] == "ack" and frames[-1]["message"]["conversation_id"] == conversation
    history = client.get(f"/v1/conversations/{conversation}/messages", headers={"Authorization": f"Bearer {token}"})
    assert [m["role"] for m in history.json()["messages"]] == ["user", "assistant"]
    # A reservation cannot be claimed without its token.
    with client.websocket_connect("/ws/chat") as ws:
        other = ws.receive_json()["conversation_id"]
    with client.websocket_connect(f"/ws/chat?conversation_id={other}&token={token}") as ws:
        assert ws.receive_json()["code"] == "conversation_not_found"
        assert ws.receive_json()["conversation_id"] not in (other, conversation)
    assert not store.conversation_exists(other)


def test_asking_for_a_person_before_writing_stores_the_conversation(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    with client.websocket_connect("/ws/chat") as ws:
        conversation = ws.receive_json()["conversation_id"]
        ws.send_json({"type": "handoff"})
        frame = ws.receive_json()
        assert frame["type"] == "handoff" and frame["status"] == "waiting", frame
    assert store.conversation(conversation).status == "waiting"


def test_conversations_survive_an_app_restart(built_index: Settings) -> None:
    first = started(built_index)
    try:
        conversation = new_conversation(first)
        first.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "What is the cut-off time for wires?"},
            headers=auth(conversation),
        )
    finally:
        first.__exit__(None, None, None)
    second = started(built_index)
    try:
        messages = second.get(f"/v1/conversations/{conversation}/messages", headers=auth(conversation)).json()
        messages = messages["messages"]
    finally:
        second.__exit__(None, None, None)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["text"] == "What is the cut-off time for wires?"


def test_demo_page_and_widget_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'src="/widget/kestrel-chat.js"' in page.text
    assert client.get("/widget/kestrel-chat.js").status_code == 200
