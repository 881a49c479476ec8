"""API keys: the `chatbot keys` CLI (real subprocess, real SQLite), hashing, revocation, scopes, last use."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatbot.config import Settings
from chatbot.integration.keys import ApiKeys, identity_secret, parse_scopes
from chatbot.store import Store
from chatbot.store.models import ApiKey
from chatbot.tokens import secret_key
from tests.support.app import module_settings, started
from tests.support.integration import bearer, make_key, signed


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(built_index, tmp_path_factory.mktemp("keys"), generation_enabled=False)


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def keys_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHATBOT_DATABASE_URL=settings.resolved_database_url, CHATBOT_DATA_DIR=str(settings.data_dir))
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli", "keys", *args], env=env, capture_output=True, text=True, timeout=120
    )


def customers(client: TestClient, key: str, settings: Settings, record_name: str) -> int:
    """GET /v1/conversations for one customer with this key; the status code."""
    store = Store(settings.resolved_database_url)
    try:
        record = ApiKeys(store.engine).by_name(record_name)
    finally:
        store.close()
    assert record is not None
    params = {"customer_id": "cust-1", "customer_hash": signed(settings, record, "cust-1")}
    return client.get("/v1/conversations", params=params, headers=bearer(key)).status_code


def test_cli_creates_lists_revokes_and_audits(client: TestClient, settings_: Settings) -> None:
    made = keys_cli(settings_, "create", "ios-app", "--scopes", "chat,agent")
    assert made.returncode == 0, made.stderr
    key = re.search(r"^key: (kst_\S+)$", made.stdout, re.M)
    secret = re.search(r"^identity_secret: ([0-9a-f]{64})$", made.stdout, re.M)
    assert key and secret
    assert keys_cli(settings_, "create", "ios-app").returncode == 1  # the name is taken
    assert keys_cli(settings_, "create", "bad name!").returncode == 2
    assert keys_cli(settings_, "create", "x", "--scopes", "chat,root").returncode == 2

    store = Store(settings_.resolved_database_url)
    try:
        with store._sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.name == "ios-app"))
            assert row is not None
            assert row.key_hash == hashlib.sha256(key.group(1).encode()).hexdigest()  # only the SHA-256 is kept
            assert key.group(1) not in (row.id, row.prefix, row.name) and key.group(1).startswith(row.prefix)
            assert row.scopes == ["chat", "agent"]
            key_id = row.id
        # The secret is derived, not stored: the CLI and the server compute the same one.
        assert secret.group(1) == identity_secret(secret_key(settings_), key_id)
        again = keys_cli(settings_, "identity-secret", "ios-app")
        assert again.returncode == 0 and again.stdout.strip() == secret.group(1)
        assert keys_cli(settings_, "identity-secret", "nobody").returncode == 1

        listed = keys_cli(settings_, "list")
        assert listed.returncode == 0 and "ios-app" in listed.stdout and "chat,agent" in listed.stdout
        assert key.group(1) not in listed.stdout and "never" in listed.stdout

        assert customers(client, key.group(1), settings_, "ios-app") == 200
        revoked = keys_cli(settings_, "revoke", "ios-app")
        assert revoked.returncode == 0, revoked.stderr
        assert keys_cli(settings_, "revoke", "nobody").returncode == 1
        response = client.get("/v1/conversations", params={"customer_id": "c", "customer_hash": "0" * 64},
                              headers=bearer(key.group(1)))  # fmt: skip
        assert response.status_code == 401 and response.json()["error"]["code"] == "revoked_api_key"
        row_text = next(line for line in keys_cli(settings_, "list").stdout.splitlines() if "ios-app" in line)
        assert re.search(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00\s*\S?\s*$", row_text), row_text  # revoked: when

        actions = [(e.actor_type, e.action, e.target_id) for e in store.audit_events(limit=10)]
        assert ("operator", "api_key.create", key_id) in actions and ("operator", "api_key.revoke", key_id) in actions
        assert all(key.group(1) not in str(e.detail) for e in store.audit_events(limit=10))
    finally:
        store.close()


def test_missing_invalid_and_wrong_scope_keys_are_refused(client: TestClient, settings_: Settings) -> None:
    record, key = make_key(settings_, "agent-only", ("agent",))
    params = {"customer_id": "cust-1", "customer_hash": signed(settings_, record, "cust-1")}
    cases = [
        ({}, 401, "missing_token"),
        (bearer("kst_" + "A" * 43), 401, "invalid_api_key"),
        (bearer("not-a-key"), 401, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, 401, "invalid_api_key"),
        (bearer(key), 403, "insufficient_scope"),
    ]
    for headers, status, code in cases:
        response = client.get("/v1/conversations", params=params, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.json()["error"]["code"] == code
        assert key not in response.text


def test_last_used_is_recorded_at_most_once_a_minute(client: TestClient, settings_: Settings) -> None:
    record, key = make_key(settings_, "android-app")
    assert record.last_used_at is None
    assert customers(client, key, settings_, "android-app") == 200
    store = Store(settings_.resolved_database_url)
    try:
        keys = ApiKeys(store.engine)
        first = keys.by_name("android-app")
        assert first is not None and first.last_used_at is not None
        assert customers(client, key, settings_, "android-app") == 200
        second = keys.by_name("android-app")
        assert second is not None and second.last_used_at == first.last_used_at  # throttled: no second write
        # A minute later the next use is written; the conditional UPDATE also holds across processes.
        assert keys.touch(second, now=first.last_used_at + timedelta(seconds=61)) is True
        later = keys.by_name("android-app")
        assert later is not None and later.last_used_at is not None and later.last_used_at > first.last_used_at
        assert keys.touch(first, now=first.last_used_at + timedelta(seconds=62)) is False  # stale copy, no write
    finally:
        store.close()


def test_scopes_are_parsed_strictly() -> None:
    assert parse_scopes("chat, admin,chat") == ("chat", "admin")
    for bad in ("", ",", "chat,everything"):
        with pytest.raises(ValueError):
            parse_scopes(bad)


def test_agent_and_admin_scopes_open_the_reading_routes_only(client: TestClient, settings_: Settings) -> None:
    _, agent_key = make_key(settings_, "crm-sync", ("agent",))
    _, admin_key = make_key(settings_, "bi-export", ("admin",))
    _, chat_key = make_key(settings_, "app-only", ("chat",))
    conversation = client.post("/v1/conversations").json()["id"]

    queue = client.get("/v1/agent/conversations", params={"status": "bot"}, headers=bearer(agent_key))
    assert queue.status_code == 200 and any(c["id"] == conversation for c in queue.json()["conversations"])
    detail = client.get(f"/v1/agent/conversations/{conversation}", headers=bearer(agent_key))
    assert detail.status_code == 200 and detail.json()["conversation"]["id"] == conversation
    # A key never acts as a person: claiming still needs an agent token.
    claim = client.post(f"/v1/agent/conversations/{conversation}/claim", headers=bearer(agent_key))
    assert claim.status_code == 401

    assert client.get("/v1/analytics", headers=bearer(admin_key)).status_code == 200
    assert client.get("/v1/analytics/unanswered.csv", headers=bearer(admin_key)).status_code == 200
    audit = client.get("/v1/audit", params={"action": "conversation.view"}, headers=bearer(admin_key))
    assert audit.status_code == 200
    view = audit.json()["events"][0]
    assert view["actor_type"] == "api_key" and view["target_id"] == conversation

    # Scopes do not spill over: the agent key cannot read analytics, the chat key cannot read the queue.
    refused = client.get("/v1/analytics", headers=bearer(agent_key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert client.get("/v1/agent/conversations", headers=bearer(chat_key)).status_code == 403
    assert client.get("/v1/audit", headers=bearer("kst_" + "B" * 43)).status_code == 401
