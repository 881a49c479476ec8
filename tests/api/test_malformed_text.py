"""Text that is not valid Unicode (a lone surrogate) is refused at every entry point, never a 500.

JSON allows ``"\\ud800"`` (an escaped half of a surrogate pair); Python decodes it into a ``str``
that cannot be encoded as UTF-8, so it used to pass validation and fail later, in the database or
while sending a frame (a 500 with a traceback, a WebSocket closed with 1011). Each entry point
below must answer 422 / an ``error`` frame with the bad-text codes and store nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.store import Store
from tests.support.app import create_agent, login, module_settings, new_conversation, receive_until, started
from tests.support.integration import bearer, make_key

LONE = "\\ud800"  # as it arrives in a JSON document: an escape, not a character
BAD_TEXTS = [f"hello {LONE}", f"{LONE}", "card \\udfff lost", "\\udc80\\ud800 help"]
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(built_index, Path(tmp_path_factory.mktemp("malformed")), generation_enabled=False)


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def store(settings_: Settings, client: TestClient) -> Iterator[Store]:
    db = Store(settings_.resolved_database_url)
    yield db
    db.close()


def refused(response: object, *codes: str) -> None:
    status, body = response.status_code, response.json()  # type: ignore[attr-defined]
    assert status == 422, (status, body)
    assert body["error"]["code"] in (codes or ("invalid_text",)), body


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_rest_customer_message_is_refused_and_nothing_stored(client: TestClient, store: Store, text: str) -> None:
    conversation, headers = new_conversation(client)
    response = client.post(
        f"/v1/conversations/{conversation}/messages", content=f'{{"text": "{text}"}}', headers={**headers, **JSON}
    )
    refused(response)
    assert store.messages(conversation) == []


def test_websocket_message_gets_an_error_frame_and_the_socket_stays_open(client: TestClient, store: Store) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        ws.send_text(f'{{"type": "message", "text": "lost card {LONE}"}}')
        frames = receive_until(ws, "error", "message")
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "invalid_text", frames
        ws.send_text(f'{{"type": "message", "text": "hello", "client_id": "c-{LONE}"}}')
        frames = receive_until(ws, "error", "message")
        assert frames[-1]["type"] == "error" and frames[-1]["code"] == "invalid_frame", frames
        ws.send_json({"type": "message", "text": "hello"})  # still open, still answering
        assert receive_until(ws, "message", "error")[-1]["type"] == "message"
        conversation = ready["conversation_id"]
    assert [m.text for m in store.messages(conversation) if m.role == "user"] == ["hello"]


def test_openai_route_is_refused_and_nothing_stored(client: TestClient, settings_: Settings, store: Store) -> None:
    _, key = make_key(settings_, "malformed-openai")
    body = f'{{"model": "kestrel-assist", "messages": [{{"role": "user", "content": "hi {LONE}"}}]}}'
    response = client.post("/v1/chat/completions", content=body, headers={**bearer(key), **JSON})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_text"
    with store.sessions() as session:  # no conversation was created for the refused request
        from sqlalchemy import text as sql

        assert session.execute(sql("SELECT count(*) FROM conversations WHERE channel = 'openai'")).scalar() == 0


def test_nlu_parse_is_refused(client: TestClient) -> None:
    refused(client.post("/v1/nlu/parse", content=f'{{"text": "block my card {LONE}"}}', headers=JSON))


@pytest.fixture(scope="module")
def claimed(client: TestClient, settings_: Settings) -> tuple[str, dict[str, str]]:
    create_agent(settings_, "malformed-agent")
    _, agent = login(client, "malformed-agent")
    conversation, customer = new_conversation(client)
    assert client.post(f"/v1/conversations/{conversation}/handoff", headers=customer).status_code == 200
    assert client.post(f"/v1/agent/conversations/{conversation}/claim", headers=agent).status_code == 200
    return conversation, agent


def test_agent_reply_and_note_are_refused_and_nothing_stored(
    client: TestClient, store: Store, claimed: tuple[str, dict[str, str]]
) -> None:
    conversation, agent = claimed
    before = len(store.messages(conversation))
    base = f"/v1/agent/conversations/{conversation}"
    refused(client.post(f"{base}/messages", content=f'{{"text": "on it {LONE}"}}', headers={**agent, **JSON}))
    refused(client.post(f"{base}/notes", content=f'{{"text": "vip {LONE}"}}', headers={**agent, **JSON}))
    assert len(store.messages(conversation)) == before
    assert store.notes(conversation) == []


def test_other_string_fields_are_refused_not_500(client: TestClient, store: Store) -> None:
    """Fields other than a message's text (a feedback comment, a login name) get the generic 422."""
    refused(
        client.post("/v1/agent/login", content=f'{{"username": "a{LONE}", "password": "x"}}', headers=JSON),
        "invalid_request",
        "invalid_text",
    )
    conversation, customer = new_conversation(client)
    answer = client.post(f"/v1/conversations/{conversation}/messages", json={"text": "hello"}, headers=customer)
    message_id = answer.json()["id"]
    response = client.post(
        f"/v1/messages/{message_id}/feedback",
        content=f'{{"rating": "down", "comment": "bad {LONE}"}}',
        headers={**customer, **JSON},
    )
    refused(response, "invalid_request", "invalid_text")
