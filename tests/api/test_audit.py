"""The audit log: agent and admin actions over the real app write events, and GET /v1/audit pages through them.

The app is real (engine, SQLite file of this module, TestClient) as in tests/api/agents/test_agent_api.py. The
rate-limit test runs last and uses a small per-IP limit set through Settings for this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.store import Store
from chatbot.store.audit import AuditRecord
from chatbot.store.cli import operator_id
from tests.support.app import PASSWORD, create_agent, login, module_settings, new_conversation, started

IP_LIMIT = 150  # requests per minute from the test client's address: enough for every test before the last
SECRET_REPLY = "Your replacement card ships today, reference ZX-4471."
SECRET_NOTE = "Customer mentioned travelling to Lisbon."


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(
        built_index,
        tmp_path_factory.mktemp("audit"),
        generation_enabled=False,
        rate_limit_ip_per_minute=IP_LIMIT,
        page_size_max=50,
    )


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    create_agent(settings_, "alice")
    create_agent(settings_, "bob")
    create_agent(settings_, "root", "admin")
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def events(settings: Settings, **filters: Any) -> list[AuditRecord]:
    store = Store(settings.resolved_database_url)
    try:
        return store.audit_events(limit=10_000, **filters)
    finally:
        store.close()


def agent_id(settings: Settings, name: str) -> str:
    store = Store(settings.resolved_database_url)
    try:
        agent = store.agent_by_name(name)
        assert agent is not None
        return agent.id
    finally:
        store.close()


def test_agent_and_admin_actions_are_audited_with_ids_only(client: TestClient, settings_: Settings) -> None:
    start = max((e.seq for e in events(settings_)), default=0)
    alice_id, root_id = agent_id(settings_, "alice"), agent_id(settings_, "root")
    # Sign-in failures: the typed name is never stored, only whether it exists.
    assert client.post("/v1/agent/login", json={"username": "mallory", "password": "guess"}).status_code == 401
    assert client.post("/v1/agent/login", json={"username": "alice", "password": "wrong pw"}).status_code == 401
    _, alice = login(client, "alice")
    _, root = login(client, "root")

    conversation, customer = new_conversation(client)
    client.post(f"/v1/conversations/{conversation}/messages", headers=customer, json={"text": "wire cut-off time?"})
    assert client.post(f"/v1/conversations/{conversation}/handoff", headers=customer).status_code == 200
    base = f"/v1/agent/conversations/{conversation}"
    assert client.post(f"{base}/claim", headers=alice).status_code == 200
    assert client.get(base, headers=alice).status_code == 200
    cards = client.post(f"{base}/suggestions", headers=alice).json()["suggestions"]
    assert cards, "the fixture knowledge base answers the wire cut-off question"
    sent = client.post(
        f"{base}/messages", headers=alice, json={"text": cards[0]["text"], "suggestion_id": cards[0]["id"]}
    )
    assert sent.status_code == 201
    reply = client.post(f"{base}/messages", headers=alice, json={"text": SECRET_REPLY})
    assert reply.status_code == 201
    assert client.post(f"{base}/notes", headers=alice, json={"text": SECRET_NOTE}).status_code == 201
    assert client.post(f"{base}/return", headers=alice).status_code == 200
    assert client.post(f"{base}/claim", headers=root).status_code == 200  # with the bot again: a take-over
    assert client.post(f"{base}/close", headers=root).status_code == 200
    assert client.get("/v1/analytics?days=7", headers=root).status_code == 200
    assert client.get("/v1/analytics/unanswered.csv?days=7", headers=root).status_code == 200

    new = [e for e in reversed(events(settings_)) if e.seq > start]
    assert [e.action for e in new] == [
        "agent.login_failed",
        "agent.login_failed",
        "agent.login",
        "agent.login",
        "conversation.claim",
        "conversation.view",
        "conversation.reply",
        "suggestion.outcome",
        "conversation.reply",
        "conversation.note",
        "conversation.return",
        "conversation.take_over",
        "conversation.close",
        "analytics.view",
        "analytics.export",
    ]
    unknown, wrong = new[0], new[1]
    assert (unknown.actor_id, unknown.detail) == (None, {"name_known": False})
    assert (wrong.actor_id, wrong.detail) == (alice_id, {"name_known": True})
    assert all(e.ip == "testclient" for e in new)
    by_action = {e.action: e for e in new}
    assert by_action["conversation.claim"].actor_id == alice_id
    assert by_action["conversation.claim"].actor_type == "agent"
    assert (by_action["conversation.claim"].target_type, by_action["conversation.claim"].target_id) == (
        "conversation", conversation)  # fmt: skip
    assert by_action["conversation.take_over"].actor_type == "admin"
    assert by_action["conversation.take_over"].actor_id == root_id
    assert by_action["suggestion.outcome"].target_id == cards[0]["id"]
    assert by_action["suggestion.outcome"].detail["outcome"] == "sent"
    assert new[8].detail == {"message_id": reply.json()["id"]}
    assert by_action["analytics.export"].detail["days"] == 7
    dumped = json.dumps([e.as_dict() for e in new])
    assert SECRET_REPLY not in dumped and SECRET_NOTE not in dumped and "mallory" not in dumped
    assert PASSWORD not in dumped and "wrong pw" not in dumped


def cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHATBOT_DATABASE_URL=settings.resolved_database_url, CHATBOT_DATA_DIR=str(settings.data_dir))
    result = subprocess.run(
        [sys.executable, "-m", "chatbot.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_cli_records_operator_actions(settings_: Settings) -> None:
    assert (
        "created agent carol"
        in cli(settings_, "agents", "create", "carol", "--password-stdin", stdin=PASSWORD + "\n").stderr
    )
    cli(settings_, "agents", "disable", "carol")
    cli(settings_, "agents", "enable", "carol")
    carol = agent_id(settings_, "carol")
    listed = cli(settings_, "audit", "list", "--actor", operator_id() or "", "--json")
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["action"] for e in lines][:3] == ["agent.enable", "agent.disable", "agent.create"]
    assert all(e["actor_type"] == "operator" and e["target_id"] == carol for e in lines[:3])
    assert lines[2]["detail"] == {"role": "agent"}
    only = cli(settings_, "audit", "list", "--action", "agent.disable", "--limit", "5", "--json").stdout.splitlines()
    assert [json.loads(line)["action"] for line in only] == ["agent.disable"]
    table = cli(settings_, "audit", "list", "--limit", "3").stdout  # the human-readable table
    assert "seq" in table and "operator" in table


def test_the_audit_route_pages_newest_first(client: TestClient, settings_: Settings) -> None:
    _, root = login(client, "root")
    total = len(events(settings_))
    seen: list[dict[str, Any]] = []
    cursor: int | None = None
    pages = 0
    while True:
        query = "?limit=4" + (f"&cursor={cursor}" if cursor is not None else "")
        response = client.get(f"/v1/audit{query}", headers=root)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"events", "next_cursor"} and len(body["events"]) <= 4
        seen += body["events"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert cursor == body["events"][-1]["seq"]
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    assert len(seen) == total and pages == -(-total // 4)  # every event exactly once, read as it was at the start
    assert set(seen[0]) == {"seq", "created_at", "actor_type", "actor_id", "action", "target_type", "target_id", "ip",
                            "detail"}  # fmt: skip
    claims = client.get("/v1/audit?action=conversation.claim", headers=root).json()["events"]
    assert claims and all(e["action"] == "conversation.claim" for e in claims)
    alice_id = agent_id(settings_, "alice")
    mine = client.get(f"/v1/audit?actor_id={alice_id}&limit=50", headers=root).json()["events"]
    assert mine and all(e["actor_id"] == alice_id for e in mine)
    views = events(settings_, action="audit.view")
    assert views and views[0].actor_id == agent_id(settings_, "root") and views[0].actor_type == "admin"


def test_the_audit_route_refuses_without_an_admin_token(client: TestClient) -> None:
    def code(response: Any) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    assert code(client.get("/v1/audit"))[0] == 401
    assert code(client.get("/v1/audit", headers={"Authorization": "Bearer not.a.token"}))[0] == 401
    _, alice = login(client, "alice")
    assert code(client.get("/v1/audit", headers=alice)) == (403, "forbidden")
    _, root = login(client, "root")
    for bad in ("abc", "0", "-3", "1.5", "9" * 30, "%C2%B2"):
        assert code(client.get(f"/v1/audit?cursor={bad}", headers=root)) == (422, "invalid_cursor"), bad
    assert code(client.get("/v1/audit?limit=0", headers=root))[0] == 422
    assert code(client.get("/v1/audit?limit=51", headers=root)) == (422, "invalid_request")  # over page_size_max
    assert client.get("/v1/audit?cursor=1", headers=root).json() == {"events": [], "next_cursor": None}


def test_the_audit_route_is_rate_limited_per_ip(client: TestClient) -> None:
    """Last in this module: it spends the module's per-IP budget."""
    _, root = login(client, "root")
    for _ in range(IP_LIMIT + 10):
        response = client.get("/v1/audit?limit=1", headers=root)
        if response.status_code == 429:
            break
        assert response.status_code == 200
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1
