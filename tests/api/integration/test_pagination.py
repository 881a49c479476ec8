"""Cursor pagination of a conversation's messages (real app, real SQLite); ``after=`` keeps working."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.errors import InvalidInput
from chatbot.integration.pagination import decode_seq, encode_seq
from tests.support.app import module_settings, new_conversation, started
from tests.support.integration import bearer, key_conversation, make_key

PAGE_MAX = 5


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(
        built_index, tmp_path_factory.mktemp("pages"), generation_enabled=False, page_size_max=PAGE_MAX
    )


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def conversation(client: TestClient) -> tuple[str, dict[str, str]]:
    """A conversation waiting for an agent (so the bot stays silent) with 1 notice + 8 customer messages."""
    conversation_id, headers = new_conversation(client)
    assert client.post(f"/v1/conversations/{conversation_id}/handoff", headers=headers).status_code == 200
    for n in range(8):
        response = client.post(f"/v1/conversations/{conversation_id}/messages", headers=headers,
                               json={"text": f"message number {n}"})  # fmt: skip
        assert response.status_code == 202, response.text
    return conversation_id, headers


def pages(client: TestClient, url: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    out = []
    cursor = None
    for _ in range(20):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        out.append(response.json())
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("pagination did not end")


def test_pages_cover_the_history_once_in_order(client: TestClient, conversation: tuple) -> None:
    conversation_id, headers = conversation
    url = f"/v1/conversations/{conversation_id}/messages"
    got = pages(client, url, headers, limit=3)
    assert [len(p["messages"]) for p in got] == [3, 3, 3]
    texts = [m["text"] for p in got for m in p["messages"]]
    assert texts[1:] == [f"message number {n}" for n in range(8)] and got[0]["messages"][0]["role"] == "system"
    ids = [m["id"] for p in got for m in p["messages"]]
    assert len(set(ids)) == 9
    # Without a limit a page is page_size_max long.
    default = pages(client, url, headers)
    assert [len(p["messages"]) for p in default] == [PAGE_MAX, 9 - PAGE_MAX]
    assert [m["id"] for p in default for m in p["messages"]] == ids
    assert got[-1]["next_cursor"] is None  # a full last page (9 = 3 x 3) still says it is the last


def test_after_keeps_working_and_combines_with_pages(client: TestClient, conversation: tuple) -> None:
    conversation_id, headers = conversation
    url = f"/v1/conversations/{conversation_id}/messages"
    everything = [m["id"] for p in pages(client, url, headers) for m in p["messages"]]
    after = client.get(url, params={"after": everything[5]}, headers=headers).json()
    assert [m["id"] for m in after["messages"]] == everything[6:] and after["next_cursor"] is None
    paged = pages(client, url, headers, after=everything[2], limit=2)
    assert [m["id"] for p in paged for m in p["messages"]] == everything[3:]
    missing = client.get(url, params={"after": "msg_nope"}, headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "message_not_found"


def test_bad_cursors_and_limits_are_422(client: TestClient, conversation: tuple) -> None:
    conversation_id, headers = conversation
    url = f"/v1/conversations/{conversation_id}/messages"
    not_digits = base64.urlsafe_b64encode(b"12a").decode().rstrip("=")
    for cursor in ("!!!", "%%%", not_digits, "A", "x" * 201):
        response = client.get(url, params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["error"]["code"] in ("invalid_cursor", "invalid_request")
    assert client.get(url, params={"cursor": "!!!"}, headers=headers).json()["error"]["code"] == "invalid_cursor"
    for limit in (0, -1, PAGE_MAX + 1):
        response = client.get(url, params={"limit": limit}, headers=headers)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    assert client.get(url, params={"limit": "ten"}, headers=headers).status_code == 422


def test_pages_need_the_conversation_token_or_its_key(client: TestClient, settings_: Settings) -> None:
    conversation_id, _ = new_conversation(client)
    _, other_headers = new_conversation(client)
    url = f"/v1/conversations/{conversation_id}/messages"
    assert client.get(url, params={"limit": 2}).json()["error"]["code"] == "missing_token"
    response = client.get(url, params={"limit": 2}, headers=other_headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    _, key = make_key(settings_, "pager")
    owned = key_conversation(client, key)
    response = client.get(f"/v1/conversations/{owned}/messages", params={"limit": 2}, headers=bearer(key))
    assert response.status_code == 200 and response.json() == {"conversation_id": owned, "messages": [],
                                                               "next_cursor": None}  # fmt: skip


def test_cursor_encoding_round_trips_and_is_opaque() -> None:
    for seq in (1, 42, 10**12):
        cursor = encode_seq(seq)
        assert str(seq) not in cursor and decode_seq(cursor) == seq
    for bad in ("", "====", "YWJj"):
        with pytest.raises(InvalidInput):
            decode_seq(bad)


def test_history_reads_are_rate_limited_per_client_ip(built_index: Settings, tmp_path_factory: pytest.TempPathFactory
                                                      ) -> None:  # fmt: skip
    settings = module_settings(built_index, tmp_path_factory.mktemp("pages-limits"), generation_enabled=False,
                               rate_limit_ip_per_minute=5)  # fmt: skip
    client = started(settings)  # /healthz, which started() polls, is exempt
    try:
        conversation_id, headers = new_conversation(client)
        url = f"/v1/conversations/{conversation_id}/messages"
        statuses = [client.get(url, params={"limit": 2}, headers=headers).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        refused = client.get(url, params={"limit": 2}, headers=headers)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        client.__exit__(None, None, None)
