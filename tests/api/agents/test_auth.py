"""Agent accounts, agent tokens and customer tokens, through the real app and the real CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatbot.agents.auth import issue_agent_token
from chatbot.config import Settings
from chatbot.store import Store
from chatbot.store.models import Agent, Conversation
from tests.support.app import PASSWORD, create_agent, login, module_settings, new_conversation, started


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # No generator: these tests never need a generated answer, and the app starts faster.
    return module_settings(built_index, tmp_path_factory.mktemp("auth"), generation_enabled=False)


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    create_agent(settings_, "alice", "agent")
    create_agent(settings_, "root", "admin")
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHATBOT_DATABASE_URL=settings.resolved_database_url, CHATBOT_DATA_DIR=str(settings.data_dir))
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli", "agents", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_creates_and_lists_agents_with_argon2id_hashes(client: TestClient, settings_: Settings) -> None:
    made = cli(settings_, "create", "carol.b", "--role", "admin", "--password-stdin", stdin="s3cret-pass-word\n")
    assert made.returncode == 0, made.stderr
    assert cli(settings_, "create", "carol.b", "--password-stdin", stdin="another-password\n").returncode == 1
    assert cli(settings_, "create", "bad name!", "--password-stdin", stdin="another-password\n").returncode == 2
    assert cli(settings_, "create", "dave", "--role", "boss", "--password-stdin", stdin="password99\n").returncode == 2
    assert cli(settings_, "create", "erin", "--password-stdin", stdin="short\n").returncode == 2
    listed = cli(settings_, "list")
    assert listed.returncode == 0 and "carol.b" in listed.stdout and "admin" in listed.stdout
    assert "s3cret" not in listed.stdout

    store = Store(settings_.resolved_database_url)
    try:
        with store._sessions() as session:
            stored = session.scalar(select(Agent.password_hash).where(Agent.name == "carol.b"))
    finally:
        store.close()
    assert stored is not None and stored.startswith("$argon2id$") and "s3cret" not in stored

    token, headers = login(client, "carol.b", "s3cret-pass-word")
    assert client.get("/v1/agent/me", headers=headers).json() == {
        "id": jwt.decode(token, options={"verify_signature": False})["sub"],
        "name": "carol.b",
        "role": "admin",
        "max_message_chars": 2000,  # the console's reply limit comes from the server
    }


def test_login_returns_a_signed_expiring_token(client: TestClient, settings_: Settings) -> None:
    response = client.post("/v1/agent/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["agent"]["name"] == "alice" and body["agent"]["role"] == "agent"
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["exp"] - time.time() == pytest.approx(settings_.agent_token_ttl_s, abs=30)
    assert body["expires_at"].startswith(time.strftime("%Y-%m-%d", time.gmtime(claims["exp"])))

    for wrong in ({"username": "alice", "password": "wrong password"}, {"username": "nobody", "password": PASSWORD}):
        refused = client.post("/v1/agent/login", json=wrong)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_credentials"
    assert client.post("/v1/agent/login", json={"username": "alice"}).status_code == 422


def test_agent_routes_reject_missing_forged_and_expired_tokens(client: TestClient) -> None:
    token, _ = login(client, "alice")
    agent_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    key = client.app.state.secret_key  # type: ignore[attr-defined]
    forged = jwt.encode({"sub": agent_id, "role": "admin", "exp": int(time.time()) + 600, "typ": "agent"},
                        "not-the-server-key-but-long-enough-for-hs256", "HS256")  # fmt: skip
    unsigned = jwt.encode({"sub": agent_id, "role": "admin", "exp": int(time.time()) + 600, "typ": "agent"},
                          None, "none")  # fmt: skip
    expired, _ = issue_agent_token(key, agent_id, "agent", 60, now=time.time() - 3600)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-2]}xx.{signature}"
    cases = {
        None: "missing_token",
        "Basic YWxpY2U6cGFzcw==": "invalid_token",
        "Bearer not-a-token": "invalid_token",
        f"Bearer {forged}": "invalid_token",
        f"Bearer {unsigned}": "invalid_token",
        f"Bearer {tampered}": "invalid_token",
        f"Bearer {expired}": "expired_token",
    }
    for authorization, code in cases.items():
        headers = {"Authorization": authorization} if authorization else {}
        for method, path in (("GET", "/v1/agent/me"), ("GET", "/v1/agent/conversations"),
                             ("POST", "/v1/agent/conversations/conv_x/claim"), ("GET", "/v1/analytics")):  # fmt: skip
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (authorization, path)
            assert response.json()["error"]["code"] == code, (authorization, path)
            assert "Traceback" not in response.text


def test_agent_websocket_rejects_bad_tokens_with_a_frame_and_4401(client: TestClient) -> None:
    key = client.app.state.secret_key  # type: ignore[attr-defined]
    expired, _ = issue_agent_token(key, "agt_x", "agent", 60, now=time.time() - 3600)
    for query, code in (
        ("", "missing_token"),
        ("?token=garbage", "invalid_token"),
        (f"?token={expired}", "expired_token"),
    ):
        with client.websocket_connect(f"/ws/agent{query}") as ws:
            frame = ws.receive_json()
            assert frame["type"] == "error" and frame["code"] == code
            message = ws.receive()
            assert message["type"] == "websocket.close" and message["code"] == 4401
    token, _ = login(client, "alice")
    with client.websocket_connect(f"/ws/agent?token={token}") as ws:
        assert ws.receive_json()["type"] == "queue"


def test_wrong_role_gets_403_and_a_disabled_agent_loses_access(client: TestClient, settings_: Settings) -> None:
    _, agent = login(client, "alice")
    _, admin = login(client, "root")
    for path in ("/v1/analytics", "/v1/analytics/unanswered.csv"):
        refused = client.get(path, headers=agent)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert client.get(path, headers=admin).status_code == 200

    create_agent(settings_, "mallory")
    _, headers = login(client, "mallory")
    assert client.get("/v1/agent/me", headers=headers).status_code == 200
    assert cli(settings_, "disable", "mallory").returncode == 0
    assert cli(settings_, "disable", "nobody").returncode == 1
    assert client.get("/v1/agent/me", headers=headers).json()["error"]["code"] == "invalid_token"
    login_again = client.post("/v1/agent/login", json={"username": "mallory", "password": PASSWORD})
    assert login_again.status_code == 401
    assert cli(settings_, "enable", "mallory").returncode == 0
    # Re-enabling does not revive the tokens issued before the disable: a new sign-in is needed.
    refused = client.get("/v1/agent/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_token"
    _, fresh = login(client, "mallory")
    assert client.get("/v1/agent/me", headers=fresh).status_code == 200


def test_logout_revokes_every_token_of_the_agent(client: TestClient, settings_: Settings) -> None:
    create_agent(settings_, "leaving")
    token, headers = login(client, "leaving")
    _, other_device = login(client, "leaving")
    assert client.get("/v1/agent/me", headers=headers).status_code == 200
    response = client.post("/v1/agent/logout", headers=headers)
    assert response.status_code == 204, response.text
    for old in (headers, other_device):
        refused = client.get("/v1/agent/conversations", headers=old)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_token"
    again = client.post("/v1/agent/logout", headers=headers)  # a revoked token cannot sign out again
    assert again.status_code == 401
    assert client.post("/v1/agent/logout").json()["error"]["code"] == "missing_token"
    _, fresh = login(client, "leaving")
    assert client.get("/v1/agent/me", headers=fresh).status_code == 200
    with client.websocket_connect(f"/ws/agent?token={token}") as ws:  # a revoked token opens no socket
        assert ws.receive_json()["code"] == "revoked_token"
        assert ws.receive()["code"] == 4401


def test_a_password_change_revokes_earlier_tokens(client: TestClient, settings_: Settings) -> None:
    create_agent(settings_, "rotating")
    _, headers = login(client, "rotating")
    assert cli(settings_, "password", "rotating", "--password-stdin", stdin="short\n").returncode == 2
    assert client.get("/v1/agent/me", headers=headers).status_code == 200
    assert cli(settings_, "password", "nobody", "--password-stdin", stdin="a-new-password-1\n").returncode == 1
    changed = cli(settings_, "password", "rotating", "--password-stdin", stdin="a-new-password-1\n")
    assert changed.returncode == 0, changed.stderr
    refused = client.get("/v1/agent/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "revoked_token"
    assert client.post("/v1/agent/login", json={"username": "rotating", "password": PASSWORD}).status_code == 401
    _, fresh = login(client, "rotating", "a-new-password-1")
    assert client.get("/v1/agent/me", headers=fresh).status_code == 200


def test_an_open_agent_socket_is_closed_on_its_next_frame_once_its_token_is_revoked(
    client: TestClient, settings_: Settings
) -> None:
    create_agent(settings_, "socketed")
    token, headers = login(client, "socketed")
    with client.websocket_connect(f"/ws/agent?token={token}") as ws:
        assert ws.receive_json()["type"] == "queue"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
        assert client.post("/v1/agent/logout", headers=headers).status_code == 204
        ws.send_json({"type": "ping"})
        frame = ws.receive_json()
        assert frame == {"type": "error", "code": "revoked_token", "message": frame["message"]}
        closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 4401
    # Disabling closes it the same way.
    token, _ = login(client, "socketed")
    with client.websocket_connect(f"/ws/agent?token={token}") as ws:
        assert ws.receive_json()["type"] == "queue"
        assert cli(settings_, "disable", "socketed").returncode == 0
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["code"] in ("invalid_token", "revoked_token")
        assert ws.receive()["code"] == 4401


def test_customers_read_only_their_own_conversation(client: TestClient, settings_: Settings) -> None:
    created = client.post("/v1/conversations").json()
    assert set(created) == {"id", "created_at", "status", "token", "customer_id"} and created["status"] == "bot"
    conversation, headers = created["id"], {"Authorization": f"Bearer {created['token']}"}
    other, other_headers = new_conversation(client)
    assert client.get(f"/v1/conversations/{conversation}/messages", headers=headers).status_code == 200
    cases = [({}, 401, "missing_token"), ({"Authorization": "Bearer nope"}, 401, "invalid_token"),
             (other_headers, 401, "invalid_token")]  # fmt: skip
    for bad, status, code in cases:
        for method, path, body in (
            ("GET", f"/v1/conversations/{conversation}/messages", None),
            ("POST", f"/v1/conversations/{conversation}/messages", {"text": "hello"}),
            ("POST", f"/v1/conversations/{conversation}/handoff", None),
        ):
            response = client.request(method, path, headers=bad, json=body)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, path, bad)
    missing = client.get("/v1/conversations/conv_missing/messages", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "conversation_not_found"

    # Only the SHA-256 of the token is stored.
    store = Store(settings_.resolved_database_url)
    try:
        with store._sessions() as session:
            stored = session.scalar(select(Conversation.token_hash).where(Conversation.id == conversation))
    finally:
        store.close()
    assert stored == hashlib.sha256(created["token"].encode()).hexdigest()
    assert other != conversation


def test_customer_websocket_needs_the_token_to_resume(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        ws.send_json({"type": "message", "text": "hello"})  # stored with its first message
        while ws.receive_json()["type"] not in ("message", "error"):
            pass
    assert ready["type"] == "ready" and ready["status"] == "bot" and len(ready["token"]) >= 40
    conversation, token = ready["conversation_id"], ready["token"]
    with client.websocket_connect(f"/ws/chat?conversation_id={conversation}&token={token}") as ws:
        resumed = ws.receive_json()
    assert resumed == {"type": "ready", "conversation_id": conversation, "status": "bot", "max_message_chars": 2000}
    for query in (f"conversation_id={conversation}", f"conversation_id={conversation}&token=wrong"):
        with client.websocket_connect(f"/ws/chat?{query}") as ws:
            error = ws.receive_json()
            assert error["type"] == "error" and error["code"] == "invalid_token"
            fresh = ws.receive_json()
            assert fresh["type"] == "ready" and fresh["conversation_id"] != conversation and fresh["token"]


def test_secret_key_is_generated_once_and_private(settings_: Settings, tmp_path: Path) -> None:
    from chatbot.tokens import secret_key

    local = settings_.model_copy(update={"data_dir": tmp_path, "secret_key": ""})
    first = secret_key(local)
    assert first == secret_key(local) and len(first) >= 40
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    strong = "k7Qe-2vX_pL9mZ4rT8wB1nH6yJ3cF5sD0aGu"
    assert secret_key(local.model_copy(update={"secret_key": strong})) == strong


@pytest.mark.parametrize(
    ("configured", "why"),
    [
        ("changeme", "placeholder"),
        ("CHANGE_ME-please-before-going-live-ok-thanks", "placeholder"),
        ("your-secret-key-goes-here-0123456789", "placeholder"),
        ("q8Zr2Lw0", "at least 32"),
        ("abababababababababababababababababab", "distinct"),
    ],
)
def test_a_weak_configured_secret_key_is_refused(settings_: Settings, configured: str, why: str) -> None:
    from chatbot.tokens import WeakSecretKey, secret_key

    with pytest.raises(WeakSecretKey, match=why):
        secret_key(settings_.model_copy(update={"secret_key": configured}))


@pytest.mark.parametrize("configured", ["", "changeme", "short-but-random-Zq81"])
def test_chatbot_serve_stops_at_start_with_a_weak_or_empty_secret_key(
    settings_: Settings, tmp_path: Path, configured: str
) -> None:
    """Issue 12: ``CHATBOT_SECRET_KEY=changeme chatbot serve`` started and signed tokens with it."""
    env = dict(os.environ, CHATBOT_DATA_DIR=str(tmp_path), CHATBOT_SECRET_KEY=configured, CHATBOT_PORT="1",
               COLUMNS="200")  # fmt: skip
    ran = subprocess.run([sys.executable, "-m", "chatbot.cli", "serve"], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert "Refusing to start: CHATBOT_SECRET_KEY is too weak" in ran.stderr
    assert "secrets.token_urlsafe" in ran.stderr  # says how to make a good one


def test_repeated_failed_logins_are_throttled_per_address_and_name(client: TestClient, settings_: Settings) -> None:
    create_agent(settings_, "trudy")
    for _ in range(5):
        refused = client.post("/v1/agent/login", json={"username": "trudy", "password": "guess"})
        assert refused.status_code == 401
    blocked = client.post("/v1/agent/login", json={"username": "trudy", "password": PASSWORD})
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "too_many_attempts"
    assert client.post("/v1/agent/login", json={"username": "alice", "password": PASSWORD}).status_code == 200

    from chatbot.agents.auth import LoginThrottle

    throttle = LoginThrottle(limit=2, window_s=60)
    throttle.failed("10.0.0.1", "Bob", now=0)
    throttle.failed("10.0.0.1", "bob", now=1)
    assert throttle.retry_after("10.0.0.1", "bob", now=2) == 59
    assert throttle.retry_after("10.0.0.2", "bob", now=2) == 0  # another address is not locked out
    assert throttle.retry_after("10.0.0.1", "bob", now=61) == 0  # the window passed


def test_tokens_in_websocket_urls_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from chatbot.agents.auth import install_token_redaction

    install_token_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]',
            "127.0.0.1:5000",
            "/ws/chat?conversation_id=conv_1&token=s3cr3t-T0ken&after=m",
        )
        logging.getLogger("uvicorn.access").info('%s - "GET %s"', "127.0.0.1:5000", "/ws/agent?token=eyJ.abc.def")
    assert "s3cr3t-T0ken" not in caplog.text and "eyJ.abc.def" not in caplog.text
    assert "conversation_id=conv_1&token=[redacted]&after=m" in caplog.text
