"""Verified customer identity: anonymous widget conversations, key-created ones with a signed customer id,
key access to its own conversations, and the customer's conversation list (real app, real SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.integration.keys import ApiKeyRecord
from chatbot.store import Store
from chatbot.store.models import Conversation
from tests.support.app import module_settings, started
from tests.support.integration import bearer, key_conversation, make_key, signed


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(built_index, tmp_path_factory.mktemp("identity"), generation_enabled=False, page_size_max=4)


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def app_key(settings_: Settings, client: TestClient) -> tuple[ApiKeyRecord, str]:
    return make_key(settings_, "mobile")


@pytest.fixture(scope="module")
def other_key(settings_: Settings, client: TestClient) -> tuple[ApiKeyRecord, str]:
    return make_key(settings_, "partner")


def stored(settings: Settings, conversation_id: str) -> tuple[str | None, str | None]:
    store = Store(settings.resolved_database_url)
    try:
        with store._sessions() as session:
            row = session.get(Conversation, conversation_id)
            assert row is not None
            return row.api_key_id, row.customer_id
    finally:
        store.close()


def test_anonymous_conversations_work_as_before(client: TestClient, settings_: Settings) -> None:
    response = client.post("/v1/conversations")
    assert response.status_code == 201
    body = response.json()
    assert body["token"] and body["customer_id"] is None
    assert stored(settings_, body["id"]) == (None, None)
    history = client.get(f"/v1/conversations/{body['id']}/messages", headers=bearer(body["token"]))
    assert history.status_code == 200


def test_a_verified_customer_id_is_stored(client: TestClient, settings_: Settings, app_key: tuple) -> None:
    record, key = app_key
    response = client.post(
        "/v1/conversations",
        headers=bearer(key),
        json={"customer_id": "cust-42", "customer_hash": signed(settings_, record, "cust-42")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["customer_id"] == "cust-42" and body["token"]
    assert stored(settings_, body["id"]) == (record.id, "cust-42")
    # The key itself reads and writes it; the customer token works too.
    assert client.get(f"/v1/conversations/{body['id']}/messages", headers=bearer(key)).status_code == 200
    assert client.get(f"/v1/conversations/{body['id']}/messages", headers=bearer(body["token"])).status_code == 200
    answer = client.post(f"/v1/conversations/{body['id']}/messages", headers=bearer(key), json={"text": "lost card"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversation_id"] == body["id"]
    handoff = client.post(f"/v1/conversations/{body['id']}/handoff", headers=bearer(key))
    assert handoff.status_code == 200 and handoff.json()["status"] == "waiting"


def test_forged_or_missing_identities_are_rejected(client: TestClient, settings_: Settings, app_key: tuple) -> None:
    record, key = app_key
    good = signed(settings_, record, "cust-42")
    cases = [
        (bearer(key), {"customer_id": "cust-42", "customer_hash": signed(settings_, record, "cust-43")}, 401,
         "invalid_identity"),
        (bearer(key), {"customer_id": "cust-42", "customer_hash": good[:-1] + ("0" if good[-1] != "0" else "1")}, 401,
         "invalid_identity"),
        (bearer(key), {"customer_id": "cust-42"}, 401, "invalid_identity"),
        (bearer(key), {"customer_id": "cust-42", "customer_hash": "not hex"}, 401, "invalid_identity"),
        ({}, {"customer_id": "cust-42", "customer_hash": good}, 401, "invalid_identity"),  # needs a key
        (bearer(key), {"customer_hash": good}, 422, "invalid_request"),
        (bearer(key), {"customer_id": "has space", "customer_hash": good}, 422, "invalid_request"),
        (bearer(key), {"customer_id": "x" * 129, "customer_hash": good}, 422, "invalid_request"),
        (bearer("kst_unknown"), {"customer_id": "cust-42", "customer_hash": good}, 401, "invalid_api_key"),
    ]  # fmt: skip
    for headers, body, status, code in cases:
        response = client.post("/v1/conversations", headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code
    other_server = settings_.model_copy(update={"secret_key": "another server entirely: 7f3c9a1e5b2d8f60"})
    other_secret = signed(other_server, record, "cust-42")
    response = client.post("/v1/conversations", headers=bearer(key),
                           json={"customer_id": "cust-42", "customer_hash": other_secret})  # fmt: skip
    assert response.status_code == 401


def test_a_key_reaches_only_its_own_conversations(
    client: TestClient, settings_: Settings, app_key: tuple, other_key: tuple
) -> None:
    record, key = app_key
    other_record, other = other_key
    mine = key_conversation(client, key, "cust-7", signed(settings_, record, "cust-7"))
    anonymous = client.post("/v1/conversations").json()["id"]
    url = f"/v1/conversations/{mine}/messages"
    response = client.get(url, headers=bearer(other))
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_your_conversation"
    response = client.get(f"/v1/conversations/{anonymous}/messages", headers=bearer(key))
    assert response.status_code == 403  # a key cannot read the widget's anonymous conversations
    # The other key proves the same customer id (signed with its own identity secret): still not its conversation.
    proof = {"Kestrel-Customer-Id": "cust-7", "Kestrel-Customer-Hash": signed(settings_, other_record, "cust-7")}
    response = client.get(url, headers={**bearer(other), **proof})
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_your_conversation"
    forged = {"Kestrel-Customer-Id": "cust-7", "Kestrel-Customer-Hash": signed(settings_, record, "cust-7")}
    response = client.get(url, headers={**bearer(other), **forged})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_identity"
    # The owning key may say which of its customers it acts for; another of its customers is refused.
    assert client.get(url, headers={**bearer(key), **forged}).status_code == 200
    someone = {"Kestrel-Customer-Id": "cust-8", "Kestrel-Customer-Hash": signed(settings_, record, "cust-8")}
    response = client.get(url, headers={**bearer(key), **someone})
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_your_conversation"
    _, agent_only = make_key(settings_, "agent-scope", ("agent",))
    response = client.get(url, headers=bearer(agent_only))
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    response = client.get("/v1/conversations/conv_unknown/messages", headers=bearer(key))
    assert response.status_code == 404


def test_two_keys_with_the_same_customer_id_never_reach_each_others_conversations(
    client: TestClient, settings_: Settings, app_key: tuple, other_key: tuple
) -> None:
    """Issue 12: partner B signs partner A's customer id with its own identity secret, then tries every route
    that reaches a conversation with a key. Each is refused, and A's conversation is unchanged."""
    record, key = app_key
    other_record, other = other_key
    customer = "cust-shared"
    theirs = key_conversation(client, key, customer, signed(settings_, record, customer))
    sent = client.post(f"/v1/conversations/{theirs}/messages", headers={**bearer(key), "Idempotency-Key": "retry-1"},
                       json={"text": "how much is an international wire?"})  # fmt: skip
    assert sent.status_code == 200, sent.text
    answer_id = sent.json()["id"]
    before = client.get(f"/v1/conversations/{theirs}/messages", headers=bearer(key)).json()["messages"]
    proof = {"Kestrel-Customer-Id": customer, "Kestrel-Customer-Hash": signed(settings_, other_record, customer)}
    as_other = {**bearer(other), **proof}

    listed = client.get("/v1/conversations", headers=bearer(other),
                        params={"customer_id": customer, "customer_hash": proof["Kestrel-Customer-Hash"]})  # fmt: skip
    assert listed.status_code == 200 and listed.json()["conversations"] == []
    url = f"/v1/conversations/{theirs}/messages"
    wire = {"text": "how much is an international wire?"}
    completion = {"model": "kestrel-assist", "messages": [{"role": "user", "content": "hi"}], "conversation_id": theirs}
    attempts = {
        "read": client.get(url, headers=as_other),
        "write": client.post(url, headers=as_other, json={"text": "hello"}),
        "replay": client.post(url, headers={**as_other, "Idempotency-Key": "retry-1"}, json=wire),
        "handoff": client.post(f"/v1/conversations/{theirs}/handoff", headers=as_other),
        "feedback": client.post(f"/v1/messages/{answer_id}/feedback", headers=as_other, json={"rating": "down"}),
        "openai": client.post("/v1/chat/completions", headers=as_other, json=completion),
    }
    for route, response in attempts.items():
        assert response.status_code == 403, (route, response.text)
        assert response.json()["error"]["code"] == "not_your_conversation", route
        assert "Idempotent-Replayed" not in response.headers, route
    after = client.get(f"/v1/conversations/{theirs}/messages", headers=bearer(key)).json()["messages"]
    assert after == before
    own = {"customer_id": customer, "customer_hash": signed(settings_, record, customer)}
    status = client.get("/v1/conversations", headers=bearer(key), params=own)
    assert [(c["id"], c["status"]) for c in status.json()["conversations"]] == [(theirs, "bot")]
    # B's own conversation for its customer of the same id is its own, and A does not see it either.
    mine = key_conversation(client, other, customer, proof["Kestrel-Customer-Hash"])
    assert client.get(f"/v1/conversations/{mine}/messages", headers=bearer(key)).status_code == 403
    listed = client.get("/v1/conversations", headers=bearer(other),
                        params={"customer_id": customer, "customer_hash": proof["Kestrel-Customer-Hash"]})  # fmt: skip
    assert [c["id"] for c in listed.json()["conversations"]] == [mine]


def test_customer_conversations_are_listed_newest_first_a_page_at_a_time(
    client: TestClient, settings_: Settings, app_key: tuple, other_key: tuple
) -> None:
    record, key = app_key
    other_record, other = other_key
    made = [key_conversation(client, key, "cust-list", signed(settings_, record, "cust-list")) for _ in range(5)]
    key_conversation(client, other, "cust-list", signed(settings_, other_record, "cust-list"))  # another key's customer
    key_conversation(client, key, "someone-else", signed(settings_, record, "someone-else"))
    params = {"customer_id": "cust-list", "customer_hash": signed(settings_, record, "cust-list"), "limit": 4}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = client.get("/v1/conversations", params={**params, **({"cursor": cursor} if cursor else {})},
                          headers=bearer(key))  # fmt: skip
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["conversations"]) <= 4
        assert all(c["customer_id"] == "cust-list" for c in body["conversations"])
        seen += [c["id"] for c in body["conversations"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))  # newest first, every one exactly once, only this key's
    created = [c["created_at"] for c in client.get("/v1/conversations", params=params, headers=bearer(key)).json()[
        "conversations"]]  # fmt: skip
    assert created == sorted(created, reverse=True)


def test_listing_refuses_bad_input_and_forged_identities(
    client: TestClient, settings_: Settings, app_key: tuple
) -> None:
    record, key = app_key
    good = {"customer_id": "cust-list", "customer_hash": signed(settings_, record, "cust-list")}
    cases = [
        ({**good, "customer_hash": "f" * 64}, bearer(key), 401, "invalid_identity"),
        (good, {}, 401, "missing_token"),
        ({**good, "cursor": "!!!"}, bearer(key), 422, "invalid_cursor"),
        ({**good, "cursor": "bm90LWEtY3Vyc29y"}, bearer(key), 422, "invalid_cursor"),
        ({**good, "limit": 5}, bearer(key), 422, "invalid_request"),  # page_size_max is 4 here
        ({**good, "limit": 0}, bearer(key), 422, "invalid_request"),
        ({"customer_id": "cust-list"}, bearer(key), 422, "invalid_request"),
    ]
    for params, headers, status, code in cases:
        response = client.get("/v1/conversations", params=params, headers=headers)
        assert response.status_code == status, (params, response.text)
        assert response.json()["error"]["code"] == code


def test_api_key_requests_are_rate_limited_per_key(built_index: Settings, tmp_path_factory: pytest.TempPathFactory
                                                   ) -> None:  # fmt: skip
    settings = module_settings(built_index, tmp_path_factory.mktemp("identity-limits"), generation_enabled=False,
                               rate_limit_key_per_minute=3, rate_limit_ip_per_minute=1000)  # fmt: skip
    record, key = make_key(settings, "busy-app")
    _, other = make_key(settings, "quiet-app")
    client = started(settings)
    try:
        params = {"customer_id": "cust-1", "customer_hash": signed(settings, record, "cust-1")}
        statuses = [
            client.post("/v1/conversations", headers=bearer(key), json=params).status_code,
            client.get("/v1/conversations", params=params, headers=bearer(key)).status_code,
            client.get("/v1/conversations", params=params, headers=bearer(key)).status_code,
        ]
        assert statuses == [201, 200, 200]
        for refused in (client.get("/v1/conversations", params=params, headers=bearer(key)),
                        client.post("/v1/conversations", headers=bearer(key), json=params)):  # fmt: skip
            assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 120
        assert client.post("/v1/conversations", headers=bearer(other)).status_code == 201  # its own budget
        assert client.post("/v1/conversations").status_code == 201  # the widget is not limited per key
    finally:
        client.__exit__(None, None, None)
