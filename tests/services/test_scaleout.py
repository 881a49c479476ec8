"""Two real `chatbot serve` processes on one PostgreSQL database and one Redis: the scale-out.

A customer on server A and an agent on server B talk live (queue, claim, replies both ways, presence);
two agents on different processes race for one conversation; then A is killed with SIGKILL while the
customer is sending, restarted, and every message that got an ``ack`` must be stored exactly once.
Everything is real: PostgreSQL and Redis from the Debian packages (tests/support/services.py), the CLI, the
servers with their models, WebSockets over TCP. Generation is off (answers are not what this tests),
so the servers start in seconds rather than minutes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from chatbot.config import Settings
from chatbot.store import Store
from tests.support.servers import ServerProcess, WsClient, free_port, scaleout_env
from tests.support.services import RedisServer

PASSWORD = "correct horse battery staple"


@pytest.fixture
def servers(built_index: Settings, postgres_url: str, redis: RedisServer, tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    env = scaleout_env(
        built_index,
        postgres_url,
        redis.url,
        CHATBOT_GENERATION_ENABLED="false",
        CHATBOT_RATE_LIMIT_ENABLED="false",  # one conversation sends a burst on purpose
        CHATBOT_PRESENCE_HEARTBEAT_S="1",
        CHATBOT_PRESENCE_TTL_S="3",
        CHATBOT_SHUTDOWN_GRACE_S="1",
    )
    a = ServerProcess(env, free_port(), tmp_path / "server-a.log")
    b = ServerProcess(env, free_port(), tmp_path / "server-b.log")
    for name in ("alice", "bob"):  # against the shared database, before any server runs (creates the schema)
        created = a.cli("agents", "create", name, "--password-stdin", stdin=PASSWORD + "\n")
        assert created.returncode == 0, created.stderr
    try:
        a.launch()
        b.launch()
        a.wait_healthy()
        b.wait_healthy()
        yield a, b
    finally:
        a.stop()
        b.stop()


def handoff_with_agents_online(customer: WsClient, wanted: int, timeout: float = 15) -> dict[str, Any]:
    """Ask for a person (idempotent) until the server reports ``wanted`` agents online: presence from the
    other process arrives through Redis within the heartbeat, so this polls rather than sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        customer.send({"type": "handoff"})
        frame = customer.until(lambda f: f["type"] == "handoff")
        if frame["agents_online"] == wanted:
            return frame
        assert time.monotonic() < deadline, f"agents_online stayed {frame['agents_online']}, expected {wanted}"
        time.sleep(0.3)


def claim_at_once(servers_and_tokens: list[tuple[ServerProcess, str]], conversation_id: str) -> list[tuple[int, Any]]:
    barrier = threading.Barrier(len(servers_and_tokens))
    results: list[tuple[int, Any]] = [(0, None)] * len(servers_and_tokens)

    def claim(index: int, server: ServerProcess, token: str) -> None:
        barrier.wait(timeout=30)
        results[index] = server.request("POST", f"/v1/agent/conversations/{conversation_id}/claim", token=token)

    threads = [
        threading.Thread(target=claim, args=(i, server, token)) for i, (server, token) in enumerate(servers_and_tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_overdue_flag_is_decided_once_when_several_processes_watch(postgres_url: str) -> None:
    """Every process runs the overdue watcher; the conditional UPDATE lets exactly one report each flag
    (and so broadcast it), however the two race."""
    stores = [Store(postgres_url), Store(postgres_url)]
    try:
        waiting = []
        for _ in range(20):
            conversation_id, _ = stores[0].create_conversation()
            stores[0].request_handoff(conversation_id, "customer_request")
            waiting.append(conversation_id)
        barrier = threading.Barrier(2)
        results: list[list[str]] = [[], []]

        def watch(index: int) -> None:
            barrier.wait(timeout=30)
            results[index] = stores[index].flag_overdue(datetime.now(UTC) + timedelta(seconds=1))

        threads = [threading.Thread(target=watch, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(results[0] + results[1]) == sorted(waiting)  # each flagged by exactly one of them
        assert stores[1].flag_overdue(datetime.now(UTC) + timedelta(seconds=1)) == []
    finally:
        for store in stores:
            store.close()


@pytest.mark.slow
def test_customer_and_agent_on_different_processes_and_a_killed_process_loses_no_acked_message(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = servers
    alice_token, bob_token = b.login("alice", PASSWORD), a.login("bob", PASSWORD)
    sockets: list[WsClient] = []
    try:
        # --- an agent on B, a customer on A -----------------------------------------------------
        alice = b.websocket(f"/ws/agent?token={alice_token}")
        sockets.append(alice)
        assert alice.receive()["type"] == "queue"
        customer = a.websocket("/ws/chat")
        sockets.append(customer)
        ready = customer.until(lambda f: f["type"] == "ready")
        conversation, customer_token = ready["conversation_id"], ready["token"]

        # Presence across processes: the agent online on B is reported to the customer on A.
        handoff = handoff_with_agents_online(customer, 1)
        assert handoff["status"] == "waiting"
        assert "connecting you with a member of our team" in handoff["text"]

        # B's agent sees the queue entry live (A stored it and published it through Redis).
        queued = alice.until(
            lambda f: f["type"] == "queue" and any(c["id"] == conversation for c in f["conversations"])
        )
        entry = next(c for c in queued["conversations"] if c["id"] == conversation)
        assert entry["status"] == "waiting" and entry["customer_online"] is True  # A's customer, seen from B

        # --- claim on B, replies both ways live ----------------------------------------------------
        status, claimed = b.request("POST", f"/v1/agent/conversations/{conversation}/claim", token=alice_token)
        assert status == 200 and claimed["status"] == "assigned", claimed
        joined = customer.until(lambda f: f["type"] == "handoff" and f["status"] == "assigned")
        assert joined["agent_name"] == "alice"
        status, sent = b.request(
            "POST", f"/v1/agent/conversations/{conversation}/messages", {"text": "Hi, Alice here."}, alice_token
        )
        assert status == 201, sent
        reply = customer.until(lambda f: f["type"] == "agent_message")
        assert reply["message"]["id"] == sent["id"] and reply["message"]["text"] == "Hi, Alice here."

        customer.send({"type": "message", "text": "My card was declined at a shop.", "client_id": "c-1"})
        ack = customer.until(lambda f: f["type"] == "ack")
        seen = alice.until(lambda f: f["type"] == "message" and f["message"]["id"] == ack["message_id"])
        assert seen["conversation_id"] == conversation and seen["message"]["text"] == "My card was declined at a shop."

        # --- two agents on two processes claim one conversation at the same moment -------------------
        bob = a.websocket(f"/ws/agent?token={bob_token}")
        sockets.append(bob)
        bob.until(lambda f: f["type"] == "queue")
        second = b.websocket("/ws/chat")  # a second customer, on B this time
        sockets.append(second)
        contested = second.until(lambda f: f["type"] == "ready")["conversation_id"]
        assert handoff_with_agents_online(second, 2)["status"] == "waiting"  # alice local, bob through Redis
        outcomes = claim_at_once([(b, alice_token), (a, bob_token)], contested)
        assert sorted(s for s, _ in outcomes) == [200, 409], outcomes
        assert next(body for s, body in outcomes if s == 409)["error"]["code"] == "already_assigned"

        # --- failed sign-ins are counted across processes (the throttle is in Redis) --------------------
        for attempt in range(5):
            status, body = (a, b)[attempt % 2].request(
                "POST", "/v1/agent/login", {"username": "alice", "password": "wrong guess"}
            )
            assert status == 401, body
        status, body = b.request("POST", "/v1/agent/login", {"username": "alice", "password": PASSWORD})
        assert status == 429 and body["error"]["code"] == "too_many_attempts", body

        # --- kill -9 server A while its customer is sending ---------------------------------------
        acked: dict[str, str] = {ack["message_id"]: "My card was declined at a shop."}
        for n in range(5):
            text = f"steady message {n}"
            customer.send({"type": "message", "text": text, "client_id": f"s-{n}"})
            acked[customer.until(lambda f: f["type"] == "ack")["message_id"]] = text
        sent_texts: list[str] = []
        stop_sending = threading.Event()

        def keep_sending() -> None:
            for n in range(200):
                if stop_sending.is_set():
                    return
                text = f"burst message {n}"
                try:
                    customer.send({"type": "message", "text": text, "client_id": f"b-{n}"})
                except Exception:  # the server is gone
                    return
                sent_texts.append(text)
                time.sleep(0.02)

        sender = threading.Thread(target=keep_sending)
        sender.start()
        burst_acks = 0
        try:
            while True:
                frame = customer.receive(timeout=20)
                if frame["type"] == "ack":
                    acked[frame["message_id"]] = f"burst message {frame['client_id'].removeprefix('b-')}"
                    burst_acks += 1
                    if burst_acks == 3:
                        a.kill9()  # mid-burst: messages in flight, some stored without an ack
        except (ConnectionClosed, TimeoutError, OSError):
            pass
        finally:
            stop_sending.set()
            sender.join(timeout=30)
        assert burst_acks >= 3 and len(sent_texts) > burst_acks, (burst_acks, len(sent_texts))

        # --- the stored conversation, read through B ------------------------------------------------
        status, detail = b.request("GET", f"/v1/agent/conversations/{conversation}", token=alice_token)
        assert status == 200, detail
        stored_ids = [m["id"] for m in detail["messages"]]
        for message_id, text in acked.items():
            assert stored_ids.count(message_id) == 1, (
                f"acked {message_id} ({text!r}) stored {stored_ids.count(message_id)}x"
            )
            assert next(m["text"] for m in detail["messages"] if m["id"] == message_id) == text
        customer_texts = [m["text"] for m in detail["messages"] if m["role"] == "user"]
        assert len(customer_texts) == len(set(customer_texts)), "a customer message was stored twice"
        stored_burst = sum(1 for t in customer_texts if t.startswith("burst message"))
        print(f"burst: {len(sent_texts)} sent, {burst_acks} acked, {stored_burst} stored before the kill took effect")

        # Presence: bob's process is dead, so B stops counting him once A's key expires (TTL 3 s).
        assert handoff_with_agents_online(second, 1)["status"] == "assigned"

        # --- A comes back: the customer resumes with after= and talks to B's agent again -------------
        a.start()
        last_acked = max(acked, key=stored_ids.index)
        resumed = a.websocket(f"/ws/chat?conversation_id={conversation}&token={customer_token}&after={last_acked}")
        sockets.append(resumed)
        assert resumed.until(lambda f: f["type"] == "ready")["status"] == "assigned"
        history = resumed.until(lambda f: f["type"] == "history")["messages"]
        assert [m["id"] for m in history] == stored_ids[stored_ids.index(last_acked) + 1 :]
        resumed.send({"type": "message", "text": "I'm back after the outage.", "client_id": "r-1"})
        back = resumed.until(lambda f: f["type"] == "ack")
        alice.until(lambda f: f["type"] == "message" and f["message"]["id"] == back["message_id"])
        status, sent = b.request(
            "POST", f"/v1/agent/conversations/{conversation}/messages", {"text": "Welcome back."}, alice_token
        )
        assert status == 201
        assert resumed.until(lambda f: f["type"] == "agent_message")["message"]["id"] == sent["id"]
    finally:
        for ws in sockets:
            with contextlib.suppress(Exception):
                ws.close()
