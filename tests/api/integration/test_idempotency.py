"""Idempotency-Key on message and conversation creation (real app, real SQLite; claims also on PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.integration.idempotency import IdempotencyStore, InFlight, KeyReused, request_hash
from chatbot.store import Store
from chatbot.store.models import utcnow
from tests.support.app import module_settings, new_conversation, started
from tests.support.integration import bearer, make_key


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(built_index, tmp_path_factory.mktemp("idempotency"), generation_enabled=False)


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def history(client: TestClient, conversation_id: str, headers: dict[str, str]) -> list[dict[str, object]]:
    response = client.get(f"/v1/conversations/{conversation_id}/messages", headers=headers)
    assert response.status_code == 200
    return list(response.json()["messages"])


def test_a_retried_message_is_stored_once_and_the_answer_replayed(client: TestClient) -> None:
    conversation_id, headers = new_conversation(client)
    url = f"/v1/conversations/{conversation_id}/messages"
    retry = {**headers, "Idempotency-Key": "req-0001"}
    first = client.post(url, headers=retry, json={"text": "my card was stolen"})
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = client.post(url, headers=retry, json={"text": "my card was stolen"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert [m["role"] for m in history(client, conversation_id, headers)] == ["user", "assistant"]
    # Another key is another message.
    other = client.post(url, headers={**headers, "Idempotency-Key": "req-0002"}, json={"text": "my card was stolen"})
    assert other.status_code == 200 and other.json()["id"] != first.json()["id"]
    assert len(history(client, conversation_id, headers)) == 4


def test_202_responses_are_replayed_too(client: TestClient) -> None:
    conversation_id, headers = new_conversation(client)
    assert client.post(f"/v1/conversations/{conversation_id}/handoff", headers=headers).status_code == 200
    url = f"/v1/conversations/{conversation_id}/messages"
    retry = {**headers, "Idempotency-Key": "waiting-1"}
    first = client.post(url, headers=retry, json={"text": "are you there?"})
    again = client.post(url, headers=retry, json={"text": "are you there?"})
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert [m["role"] for m in history(client, conversation_id, headers)] == ["system", "user"]


def test_same_key_other_body_is_422_and_in_flight_is_409(client: TestClient, settings_: Settings) -> None:
    conversation_id, headers = new_conversation(client)
    url = f"/v1/conversations/{conversation_id}/messages"
    retry = {**headers, "Idempotency-Key": "k-1"}
    assert client.post(url, headers=retry, json={"text": "hello"}).status_code == 200
    reused = client.post(url, headers=retry, json={"text": "something else"})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    # Another process has claimed "k-2" and is still answering: a retry must not run it a second time.
    store = Store(settings_.resolved_database_url)
    try:
        claims = IdempotencyStore(store.engine, settings_.idempotency_ttl_s)
        fingerprint = request_hash("POST", url, {"text": "slow one"})
        assert claims.claim(f"conv:{conversation_id}", "k-2", fingerprint) is None
        busy = client.post(url, headers={**headers, "Idempotency-Key": "k-2"}, json={"text": "slow one"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_in_flight"
        claims.complete(f"conv:{conversation_id}", "k-2", 200, {"done": True})
        done = client.post(url, headers={**headers, "Idempotency-Key": "k-2"}, json={"text": "slow one"})
        assert done.status_code == 200 and done.json() == {"done": True}
    finally:
        store.close()
    assert len(history(client, conversation_id, headers)) == 2  # "slow one" was never stored by this process


def test_failed_requests_release_the_key_and_bad_keys_are_422(client: TestClient) -> None:
    conversation_id, headers = new_conversation(client)
    url = f"/v1/conversations/{conversation_id}/messages"
    retry = {**headers, "Idempotency-Key": "fix-and-retry"}
    empty = client.post(url, headers=retry, json={"text": "   "})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_message"
    fixed = client.post(url, headers=retry, json={"text": "lost card"})
    assert fixed.status_code == 200  # the failed attempt did not keep the key
    for bad in ("", "x" * 129):
        response = client.post(url, headers={**headers, "Idempotency-Key": bad}, json={"text": "hi"})
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_idempotency_key"
    assert client.post(url, headers={**headers, "Idempotency-Key": "~" * 128}, json={"text": "hi"}).status_code == 200
    unauthenticated = client.post(url, headers={"Idempotency-Key": "no-token"}, json={"text": "hi"})
    assert unauthenticated.status_code == 401


def test_conversation_creation_with_a_key_is_idempotent(client: TestClient, settings_: Settings) -> None:
    _, key = make_key(settings_, "retrying-app")
    headers = {**bearer(key), "Idempotency-Key": "open-1"}
    first = client.post("/v1/conversations", headers=headers)
    again = client.post("/v1/conversations", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and first.json()["token"]
    assert again.json() == {**first.json(), "token": None}  # the token is shown once: never stored in clear
    assert client.get(f"/v1/conversations/{first.json()['id']}/messages", headers=bearer(key)).status_code == 200
    store = Store(settings_.resolved_database_url)
    try:
        record = IdempotencyStore(store.engine, 3600).record(f"key:{_key_id(store, key)}", "open-1")
        assert record is not None and first.json()["token"] not in str(record.response)
    finally:
        store.close()
    _, other_key = make_key(settings_, "another-app")  # keys are scoped: the same Idempotency-Key is another request
    other = client.post("/v1/conversations", headers={**bearer(other_key), "Idempotency-Key": "open-1"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    anonymous = client.post("/v1/conversations", headers={"Idempotency-Key": "open-1"})
    assert anonymous.status_code == 422 and anonymous.json()["error"]["code"] == "invalid_idempotency_key"


def _key_id(store: Store, key: str) -> str:
    from chatbot.integration.keys import ApiKeys

    record = ApiKeys(store.engine).authenticate(key)
    assert record is not None
    return record.id


def test_records_expire(settings_: Settings, client: TestClient) -> None:
    store = Store(settings_.resolved_database_url)
    try:
        claims = IdempotencyStore(store.engine, ttl_s=60)
        now = utcnow()
        assert claims.claim("test", "old", "h1", now=now) is None
        claims.complete("test", "old", 201, {"n": 1})
        assert claims.claim("test", "old", "h1", now=now + timedelta(seconds=30)) is not None  # replayed
        with pytest.raises(KeyReused):
            claims.claim("test", "old", "h2", now=now + timedelta(seconds=30))
        # After the TTL the key is free again, even with another body.
        assert claims.claim("test", "old", "h2", now=now + timedelta(seconds=61)) is None
        assert claims.record("test", "old") is not None
        claims.complete("test", "old", 201, {"n": 2})
        assert claims.cleanup(now=now + timedelta(seconds=200)) >= 1
        assert claims.record("test", "old") is None
    finally:
        store.close()


def race(url: str, scope: str, workers: int = 8) -> list[str]:
    """``workers`` threads, each with its own Store (its own connection pool, as another process would have),
    claim the same key at once; what each got."""
    stores = [Store(url) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(store: Store) -> None:
        claims = IdempotencyStore(store.engine, 3600)
        barrier.wait()
        try:
            result = "claimed" if claims.claim(scope, "same-key", "same-body") is None else "replayed"
        except InFlight:
            result = "in_flight"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    return outcomes


def test_concurrent_claims_on_sqlite_have_one_winner(settings_: Settings, client: TestClient) -> None:
    outcomes = race(settings_.resolved_database_url, "race-sqlite")
    assert sorted(outcomes) == ["claimed"] + ["in_flight"] * 7


def test_concurrent_claims_on_postgresql_have_one_winner(postgres_url: str) -> None:
    Store(postgres_url).close()  # create the tables once
    outcomes = race(postgres_url, "race-postgres")
    assert sorted(outcomes) == ["claimed"] + ["in_flight"] * 7


def test_replays_do_not_spend_the_conversation_limit(built_index: Settings, tmp_path_factory: pytest.TempPathFactory
                                                     ) -> None:  # fmt: skip
    settings = module_settings(built_index, tmp_path_factory.mktemp("idempotency-limits"), generation_enabled=False,
                               rate_limit_conversation_per_minute=2, rate_limit_ip_per_minute=1000)  # fmt: skip
    client = started(settings)
    try:
        conversation_id, headers = new_conversation(client)
        url = f"/v1/conversations/{conversation_id}/messages"

        def send(key: str, text: str = "lost card") -> int:
            return client.post(url, headers={**headers, "Idempotency-Key": key}, json={"text": text}).status_code

        assert [send("a"), send("a"), send("a"), send("b")] == [200, 200, 200, 200]  # replays are free
        refused = client.post(url, headers={**headers, "Idempotency-Key": "c"}, json={"text": "lost card"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert send("a") == 200  # an answered message is still replayed over the limit
        assert len(history(client, conversation_id, headers)) == 4  # a, b and their answers; c was not stored
        store = Store(settings.resolved_database_url)
        try:  # the refused request kept no claim: the client may retry "c" once the window allows
            assert IdempotencyStore(store.engine, 3600).record(f"conv:{conversation_id}", "c") is None
        finally:
            store.close()
    finally:
        client.__exit__(None, None, None)
