"""Webhooks against a REAL local HTTP receiver (http.server in a thread): signed payloads, retries with
backoff, failure after the last attempt, several workers delivering each event once, and the events
the handoff lifecycle and feedback emit (real app, real SQLite)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatbot.config import Settings
from chatbot.integration.webhooks import WebhookWorker, enqueue, sign, verify_signature, webhook_secret
from chatbot.store import Store
from chatbot.store.models import WebhookDelivery
from tests.support.app import create_agent, login, module_settings, new_conversation, started

SECRET = "whsec_test_secret"


class Receiver:
    """A real HTTP server that answers 500 to the first ``fail_first`` requests, then 200; it records all."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                    failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.requests)} of {count} webhook requests arrived")

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def deliveries(settings: Settings) -> list[WebhookDelivery]:
    store = Store(settings.resolved_database_url)
    try:
        with store._sessions() as session:
            return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.seq)))
    finally:
        store.close()


# ---------------------------------------------------------------------- signatures
def test_signatures_verify_and_tampering_fails() -> None:
    body = b'{"id":"evt_1","event":"conversation.closed"}'
    header = sign(SECRET, body, timestamp=1_700_000_000)
    assert verify_signature(SECRET, header, body, now=1_700_000_100)
    assert verify_signature(SECRET, header, body.decode(), now=1_700_000_100)
    assert not verify_signature(SECRET, header, body.replace(b"closed", b"opened"), now=1_700_000_100)
    assert not verify_signature("another secret", header, body, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body, tolerance_s=300, now=1_700_000_301)  # too old: a replay
    tampered_time = header.replace("t=1700000000", "t=1700000050")
    assert not verify_signature(SECRET, tampered_time, body, now=1_700_000_100)
    for bad in (None, "", "v1=abc", "t=1700000000", "t=x,v1=" + "0" * 64, "garbage"):
        assert not verify_signature(SECRET, bad, body, now=1_700_000_100)
    # Several v1 values (secret rotation): any one matching is enough.
    rotated = header + ",v1=" + "0" * 64
    assert verify_signature(SECRET, rotated, body, now=1_700_000_100)


def test_the_default_secret_is_derived_never_the_server_key(built_index: Settings) -> None:
    derived = webhook_secret(built_index.model_copy(update={"webhook_secret": ""}), "server-secret")
    assert derived != "server-secret" and len(derived) == 64
    assert webhook_secret(built_index.model_copy(update={"webhook_secret": "explicit"}), "server-secret") == "explicit"


# ---------------------------------------------------------------------- the app: lifecycle events, retries
@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=2)
    yield server
    server.close()


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Settings:
    return module_settings(
        built_index,
        tmp_path_factory.mktemp("webhooks"),
        generation_enabled=False,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_backoff_s=0.05,
        webhook_max_attempts=5,
    )


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    create_agent(settings_, "wendy", "agent")
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def test_delivered_on_the_third_attempt_with_a_valid_signature(
    client: TestClient, receiver: Receiver, settings_: Settings
) -> None:
    conversation_id, headers = new_conversation(client)
    assert client.post(f"/v1/conversations/{conversation_id}/handoff", headers=headers).status_code == 200
    attempts = receiver.wait_for(3)[:3]
    assert len({a["headers"]["Kestrel-Delivery"] for a in attempts}) == 1  # the same delivery, retried
    assert all(a["body"] == attempts[0]["body"] for a in attempts)
    final = attempts[2]
    assert final["headers"]["Kestrel-Event"] == "handoff.requested"
    assert verify_signature(SECRET, final["headers"]["Kestrel-Signature"], final["body"])
    tampered = final["body"].replace(conversation_id.encode(), b"conv_0000000000000000")
    assert tampered != final["body"] and not verify_signature(SECRET, final["headers"]["Kestrel-Signature"], tampered)
    payload = json.loads(final["body"])
    assert set(payload) == {"id", "event", "created_at", "conversation_id", "data"}
    assert payload["event"] == "handoff.requested" and payload["conversation_id"] == conversation_id
    assert payload["id"] == final["headers"]["Kestrel-Delivery"]
    assert payload["data"] == {"reason": "customer_request", "status": "waiting"}
    deadline = time.monotonic() + 30
    while (row := next(d for d in deliveries(settings_) if d.id == payload["id"])).status != "delivered":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert row.attempts == 3 and row.delivered_at is not None and row.last_error is None


def test_lifecycle_and_feedback_events_carry_ids_and_redacted_text(client: TestClient, receiver: Receiver) -> None:
    conversation_id, headers = new_conversation(client)
    answer = client.post(f"/v1/conversations/{conversation_id}/messages", headers=headers,
                         json={"text": "my card was stolen"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    comment = "useless, my card 4111 1111 1111 1111 is still active"
    rated = client.post(f"/v1/messages/{answer.json()['id']}/feedback", headers=headers,
                        json={"rating": "down", "comment": comment})  # fmt: skip
    assert rated.status_code == 200
    _, agent = login(client, "wendy")
    assert client.post(f"/v1/agent/conversations/{conversation_id}/claim", headers=agent).status_code == 200
    assert client.post(f"/v1/agent/conversations/{conversation_id}/close", headers=agent).status_code == 200

    deadline = time.monotonic() + 60
    wanted = {"feedback.created", "conversation.assigned", "conversation.closed"}
    while True:
        mine = {e["event"]: e for e in receiver.events() if e["conversation_id"] == conversation_id}
        if wanted <= set(mine):
            break
        assert time.monotonic() < deadline, sorted(mine)
        time.sleep(0.05)
    feedback = mine["feedback.created"]["data"]
    assert feedback["message_id"] == answer.json()["id"] and feedback["rating"] == "down"
    assert "4111" not in json.dumps(feedback) and feedback["comment"] == rated.json()["comment"]
    assert mine["conversation.assigned"]["data"]["outcome"] == "taken_over"
    assert mine["conversation.assigned"]["data"]["agent_id"].startswith("agt_")
    assert mine["conversation.closed"]["data"]["by"] == "agent"
    assert "handoff.requested" not in mine  # a takeover is an assignment, not a customer's request
    for request in receiver.requests:
        assert verify_signature(SECRET, request["headers"]["Kestrel-Signature"], request["body"])
        assert b"4111 1111" not in request["body"] and b"my card was stolen" not in request["body"]


# ---------------------------------------------------------------------- the worker on its own
def worker_settings(base: Settings, tmp_path: Any, url: str, **changes: Any) -> Settings:
    return module_settings(base, tmp_path, **{"webhook_url": url, "webhook_secret": SECRET, "webhook_backoff_s": 0.02,
                                               **changes})  # fmt: skip


def test_a_delivery_fails_after_the_last_attempt(built_index: Settings, tmp_path: Any) -> None:
    always_down = Receiver(fail_first=10**6)
    settings = worker_settings(built_index, tmp_path, always_down.url, webhook_max_attempts=3)
    store = Store(settings.resolved_database_url)

    async def scenario() -> None:
        worker = WebhookWorker(settings, store, SECRET, poll_s=0.02)
        worker.start()
        try:
            event_id = enqueue(settings, store, "conversation.closed", None, {"by": "agent"})
            deadline = time.monotonic() + 30
            while True:
                rows = [d for d in deliveries(settings) if d.id == event_id]
                if rows and rows[0].status == "failed":
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert rows[0].attempts == 3 and rows[0].last_error == "HTTP 500"
            await asyncio.sleep(0.3)
            assert len(always_down.requests) == 3  # nothing after the last attempt
        finally:
            await worker.stop()

    try:
        asyncio.run(scenario())
    finally:
        store.close()
        always_down.close()


def test_an_unreachable_receiver_is_retried_with_growing_waits(built_index: Settings, tmp_path: Any) -> None:
    settings = worker_settings(built_index, tmp_path, "http://127.0.0.1:9/nothing-listens-here",
                               webhook_max_attempts=4, webhook_backoff_s=10.0)  # fmt: skip
    store = Store(settings.resolved_database_url)
    try:
        event_id = enqueue(settings, store, "handoff.requested", None, {"reason": "customer_request"})
        worker = WebhookWorker(settings, store, SECRET)

        async def one_pass() -> int:
            async with httpx.AsyncClient(timeout=2) as http:
                return await worker.run_once(http)

        assert asyncio.run(one_pass()) == 1
        row = next(d for d in deliveries(settings) if d.id == event_id)
        assert row.status == "pending" and row.attempts == 1 and row.last_error == "ConnectError"
        wait = (row.next_attempt_at - row.created_at).total_seconds()
        assert 5.0 <= wait <= 10.5  # first retry: base 10 s with jitter in [0.5, 1]
        assert asyncio.run(one_pass()) == 0  # not due yet: nobody tries it early
    finally:
        store.close()


def test_several_workers_deliver_each_event_exactly_once(built_index: Settings, tmp_path: Any) -> None:
    ok = Receiver()
    settings = worker_settings(built_index, tmp_path, ok.url)
    stores = [Store(settings.resolved_database_url) for _ in range(3)]  # one Store per "process"
    try:
        ids = {enqueue(settings, stores[0], "conversation.closed", None, {"n": n}) for n in range(12)}

        async def scenario() -> None:
            workers = [WebhookWorker(settings, s, SECRET, poll_s=0.02) for s in stores]
            for worker in workers:
                worker.start()
            try:
                deadline = time.monotonic() + 30
                while sum(d.status == "delivered" for d in deliveries(settings)) < len(ids):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            finally:
                for worker in workers:
                    await worker.stop()

        asyncio.run(scenario())
        received = [r["headers"]["Kestrel-Delivery"] for r in ok.requests]
        assert sorted(received) == sorted(ids)  # every event once: no duplicates, none lost
    finally:
        for store in stores:
            store.close()
        ok.close()


def test_nothing_is_written_without_a_webhook_url(built_index: Settings, tmp_path: Any) -> None:
    settings = module_settings(built_index, tmp_path, webhook_url="")
    store = Store(settings.resolved_database_url)
    try:
        assert enqueue(settings, store, "conversation.closed", None, {}) is None
        assert deliveries(settings) == []
        with pytest.raises(ValueError):
            enqueue(settings.model_copy(update={"webhook_url": "http://x"}), store, "made.up", None, {})
    finally:
        store.close()
