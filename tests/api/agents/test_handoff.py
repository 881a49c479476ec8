"""The handoff lifecycle over both WebSockets and REST: real app, real engine, real SQLite."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.schema import AnswerObject
from chatbot.store import LifecycleConflict, Store
from tests.support.app import ask, create_agent, login, module_settings, new_conversation, receive_until, started
from tests.support.legacy_db import first_release_sqlite


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(
        built_index, tmp_path_factory.mktemp("handoff"), generation_enabled=False, handoff_flag_after_s=2
    )


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    for name in ("alice", "bob", "carol"):
        create_agent(settings_, name)
    create_agent(settings_, "root", "admin")
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def test_full_lifecycle_over_both_websockets(client: TestClient) -> None:
    token, agent = login(client, "alice")
    with client.websocket_connect(f"/ws/agent?token={token}") as console, client.websocket_connect("/ws/chat") as ws:
        assert console.receive_json()["type"] == "queue"
        ready = ws.receive_json()
        conversation = ready["conversation_id"]

        # The customer asks; the message is acknowledged (stored) before the bot's answer starts.
        frames = ask(ws, "How much does it cost to send an international wire?", client_id="c-1")
        assert frames[0] == {"type": "ack", "message_id": frames[0]["message_id"], "client_id": "c-1"}
        assert frames[1]["type"] == "start" and frames[-1]["type"] == "message"
        assert frames[-1]["message"]["handoff"] is False
        seen = receive_until(console, "message")
        assert seen[-1]["message"]["role"] == "user" and seen[-1]["message"]["id"] == frames[0]["message_id"]
        assert receive_until(console, "message")[-1]["message"]["role"] == "assistant"

        # The customer asks for a person: told an agent is online and the expected wait.
        ws.send_json({"type": "handoff"})
        notice = ws.receive_json()
        assert notice["type"] == "handoff" and notice["status"] == "waiting" and notice["agents_online"] == 1
        assert notice["expected_wait_s"] == 120 and "about 2 minutes" in notice["text"]
        queue = receive_until(console, "queue")[-1]["conversations"]
        waiting = next(c for c in queue if c["id"] == conversation)
        assert waiting["status"] == "waiting" and waiting["handoff_reason"] == "customer_request"
        assert waiting["customer_online"] is True and waiting["flagged"] is False

        # Claim, reply: the customer gets the agent's message in real time.
        claimed = client.post(f"/v1/agent/conversations/{conversation}/claim", headers=agent)
        assert claimed.status_code == 200 and claimed.json()["assigned_agent"]["name"] == "alice"
        joined = ws.receive_json()
        assert joined["type"] == "handoff" and joined["status"] == "assigned" and joined["agent_name"] == "alice"
        reply = client.post(f"/v1/agent/conversations/{conversation}/messages", headers=agent,
                            json={"text": "Hello, I'm Alice. I have frozen the card for you."})  # fmt: skip
        assert reply.status_code == 201 and reply.json()["role"] == "agent" and reply.json()["agent_name"] == "alice"
        delivered = ws.receive_json()
        assert delivered["type"] == "agent_message" and delivered["message"]["id"] == reply.json()["id"]

        # While assigned the bot stays silent: the customer's message is acked and reaches the console only.
        ws.send_json({"type": "typing"})
        ws.send_json({"type": "message", "text": "Thank you! Can I get a new one?", "client_id": "c-2"})
        ack = ws.receive_json()
        assert ack["type"] == "ack" and ack["client_id"] == "c-2"
        typing = receive_until(console, "presence")[-1]
        assert typing["conversation_id"] == conversation and typing["typing"] is True
        forwarded = receive_until(console, "message")[-1]
        while forwarded["message"]["role"] != "user":
            forwarded = receive_until(console, "message")[-1]
        assert forwarded["message"]["id"] == ack["message_id"]
        client.post(f"/v1/agent/conversations/{conversation}/messages", headers=agent, json={"text": "Yes, sent."})
        assert ws.receive_json()["type"] == "agent_message"  # not a bot "start"

        # Return to the bot: it answers again.
        returned = client.post(f"/v1/agent/conversations/{conversation}/return", headers=agent)
        assert returned.status_code == 200 and returned.json()["status"] == "bot"
        back = ws.receive_json()
        assert back["type"] == "handoff" and back["status"] == "bot"
        assert ask(ws, "What is the cut-off time for wire transfers?")[-1]["message"]["role"] == "assistant"

        # Hand off again, then the agent closes.
        handoff = client.post(f"/v1/conversations/{conversation}/handoff",
                              headers={"Authorization": f"Bearer {ready['token']}"})  # fmt: skip
        assert handoff.status_code == 200 and handoff.json()["status"] == "waiting"
        assert ws.receive_json()["status"] == "waiting"
        client.post(f"/v1/agent/conversations/{conversation}/claim", headers=agent)
        assert ws.receive_json()["status"] == "assigned"
        closed = client.post(f"/v1/agent/conversations/{conversation}/close", headers=agent)
        assert (
            closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_by"] == "agent"
        )
        final = ws.receive_json()
        assert final["type"] == "handoff" and final["status"] == "closed" and "closed" in final["text"]

    detail = client.get(f"/v1/agent/conversations/{conversation}", headers=agent).json()
    roles = [m["role"] for m in detail["messages"]]
    assert roles.count("agent") == 2 and roles.count("user") == 3 and roles.count("system") == 6
    assert detail["conversation"]["customer_online"] is False


def test_no_agent_online_tells_the_customer_and_flags_after_the_timeout(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat") as ws:
        ws.receive_json()
        ws.send_json({"type": "handoff"})
        notice = ws.receive_json()
        conversation = notice["conversation_id"]
        assert notice["status"] == "waiting" and notice["agents_online"] == 0
        assert "No one from our team is online" in notice["text"] and "leave a message" in notice["text"].lower()
        assert notice["expected_wait_s"] == 24 * 3600 and "24 hours" in notice["text"]
        # a day's wait is no answer to a stolen card: the 24/7 line of knowledge_base/lost-or-stolen-cards.md
        assert "24/7 card and fraud line" in notice["text"] and "1-800-555-0199" in notice["text"]
        ws.send_json({"type": "handoff"})  # idempotent: the same state again, no new notice stored
        assert ws.receive_json()["status"] == "waiting"
        ws.send_json({"type": "message", "text": "Please call me back about my mortgage."})
        assert ws.receive_json()["type"] == "ack"  # stored for the agents; no bot answer

    _, agent = login(client, "bob")
    listed = client.get("/v1/agent/conversations?status=waiting", headers=agent).json()["conversations"]
    mine = next(c for c in listed if c["id"] == conversation)
    assert mine["flagged"] is False and mine["last_message"]["text"] == "Please call me back about my mortgage."
    time.sleep(2.5)
    listed = client.get("/v1/agent/conversations?status=waiting", headers=agent).json()["conversations"]
    assert next(c for c in listed if c["id"] == conversation)["flagged"] is True
    requested = [c["handoff_requested_at"] for c in listed]
    assert requested == sorted(requested)  # waiting ones oldest first


def test_two_agents_claiming_at_once_exactly_one_wins(client: TestClient, settings_: Settings) -> None:
    # In the database, with real threads: 8 agents race for one conversation.
    store = Store(settings_.resolved_database_url)
    try:
        agents = [store.create_agent(f"racer{i}", "agent", "x").id for i in range(8)]
        for _ in range(5):
            conversation, _ = store.create_conversation("web")
            store.request_handoff(conversation, "customer_request")
            barrier = threading.Barrier(len(agents))

            def claim(agent_id: str, conversation: str = conversation, barrier: threading.Barrier = barrier) -> str:
                barrier.wait()
                try:
                    return store.claim(conversation, agent_id)[0]
                except LifecycleConflict as error:
                    return error.code

            with ThreadPoolExecutor(len(agents)) as pool:
                outcomes = list(pool.map(claim, agents))
            assert outcomes.count("claimed") == 1 and outcomes.count("already_assigned") == len(agents) - 1
            winner = agents[outcomes.index("claimed")]
            assert store.conversation(conversation).assigned_agent_id == winner
    finally:
        store.close()

    # Over the API: two consoles claim at once; one 200, one 409 already_assigned.
    conversation, customer = new_conversation(client)
    client.post(f"/v1/conversations/{conversation}/handoff", headers=customer)
    headers = [login(client, "alice")[1], login(client, "bob")[1]]
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda h: client.post(f"/v1/agent/conversations/{conversation}/claim", headers=h),
                                  headers))  # fmt: skip
    assert sorted(r.status_code for r in responses) == [200, 409]
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.json()["error"]["code"] == "already_assigned"
    assert client.post(f"/v1/agent/conversations/{conversation}/claim",
                       headers=headers[[r.status_code for r in responses].index(200)]).status_code == 200  # fmt: skip


def test_customer_and_agent_writing_at_once_are_stored_in_order(client: TestClient) -> None:
    conversation, customer = new_conversation(client)
    _, agent = login(client, "carol")
    client.post(f"/v1/conversations/{conversation}/handoff", headers=customer)
    assert client.post(f"/v1/agent/conversations/{conversation}/claim", headers=agent).status_code == 200

    def customer_writes() -> list[str]:
        ids = []
        for i in range(6):
            response = client.post(f"/v1/conversations/{conversation}/messages", headers=customer,
                                   json={"text": f"customer message {i}"})  # fmt: skip
            assert response.status_code == 202 and response.json()["status"] == "assigned"
            ids.append(response.json()["message"]["id"])
        return ids

    def agent_writes() -> list[str]:
        ids = []
        for i in range(6):
            response = client.post(f"/v1/agent/conversations/{conversation}/messages", headers=agent,
                                   json={"text": f"agent message {i}"})  # fmt: skip
            assert response.status_code == 201
            ids.append(response.json()["id"])
        return ids

    with ThreadPoolExecutor(2) as pool:
        from_customer, from_agent = pool.submit(customer_writes), pool.submit(agent_writes)
        customer_ids, agent_ids = from_customer.result(), from_agent.result()
    messages = client.get(f"/v1/conversations/{conversation}/messages", headers=customer).json()["messages"]
    texts = [m["text"] for m in messages if m["role"] in ("user", "agent")]
    assert [t for t in texts if t.startswith("customer")] == [f"customer message {i}" for i in range(6)]
    assert [t for t in texts if t.startswith("agent")] == [f"agent message {i}" for i in range(6)]
    stored_ids = [m["id"] for m in messages]
    assert all(i in stored_ids for i in customer_ids + agent_ids)
    assert len(messages) == len(set(stored_ids))  # each stored once, in the order the database took them


def test_a_reconnecting_customer_receives_what_was_missed(client: TestClient) -> None:
    _, agent = login(client, "alice")
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        conversation, token = ready["conversation_id"], ready["token"]
        ws.send_json({"type": "handoff"})
        ws.receive_json()
        ws.send_json({"type": "message", "text": "Is anyone there?"})
        last_seen = ws.receive_json()["message_id"]
    client.post(f"/v1/agent/conversations/{conversation}/claim", headers=agent)
    for text in ("Hi, this is Alice.", "How can I help?"):
        client.post(f"/v1/agent/conversations/{conversation}/messages", headers=agent, json={"text": text})

    with client.websocket_connect(f"/ws/chat?conversation_id={conversation}&token={token}&after={last_seen}") as ws:
        ready = ws.receive_json()
        assert ready == {
            "type": "ready", "conversation_id": conversation, "status": "assigned", "max_message_chars": 2000
        }  # fmt: skip
        history = ws.receive_json()
    assert history["type"] == "history"
    missed = [(m["role"], m["text"]) for m in history["messages"]]
    assert missed[-2:] == [("agent", "Hi, this is Alice."), ("agent", "How can I help?")]
    assert [r for r, _ in missed] == ["system", "agent", "agent"]  # "alice … joined", then the two replies
    assert history["messages"][-1]["agent_name"] == "alice"

    rest = client.get(f"/v1/conversations/{conversation}/messages?after={last_seen}",
                      headers={"Authorization": f"Bearer {token}"}).json()["messages"]  # fmt: skip
    assert [m["id"] for m in rest] == [m["id"] for m in history["messages"]]
    unknown = client.get(f"/v1/conversations/{conversation}/messages?after=msg_nope",
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "message_not_found"
    with client.websocket_connect(f"/ws/chat?conversation_id={conversation}&token={token}&after=msg_nope") as ws:
        ws.receive_json()
        assert ws.receive_json()["code"] == "message_not_found"
        assert len(ws.receive_json()["messages"]) == len(history["messages"]) + 2  # everything


def test_an_engine_answer_with_handoff_moves_the_conversation_to_waiting(client: TestClient) -> None:
    conversation, customer = new_conversation(client)
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    turns = client.app.state.turns  # type: ignore[attr-defined]
    store.add_user_message(conversation, "I want to talk to a person")
    answer = AnswerObject(id="msg_handoff_test", conversation_id=conversation, text="Connecting you with our team.",
                          kind="handoff", handoff=True)  # fmt: skip
    store.add_answer(answer)
    client.portal.call(turns.answered, answer)  # type: ignore[union-attr]
    record = store.conversation(conversation)
    assert record.status == "waiting" and record.handoff_reason == "human_agent_intent"
    messages = client.get(f"/v1/conversations/{conversation}/messages", headers=customer).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "system"]


def test_precise_errors_for_bad_agent_requests(client: TestClient) -> None:
    _, alice = login(client, "alice")
    _, bob = login(client, "bob")
    conversation, customer = new_conversation(client)
    post = client.post

    def code(response: object) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]  # type: ignore[attr-defined]

    base = f"/v1/agent/conversations/{conversation}"
    assert code(post("/v1/agent/conversations/conv_nope/claim", headers=alice)) == (404, "conversation_not_found")
    assert code(client.get("/v1/agent/conversations/conv_nope", headers=alice)) == (404, "conversation_not_found")
    assert code(post(f"{base}/messages", headers=alice, json={"text": "hi"})) == (409, "not_assigned_to_you")
    assert code(post(f"{base}/return", headers=alice)) == (409, "not_in_handoff")
    assert code(client.get("/v1/agent/conversations?status=open", headers=alice)) == (422, "invalid_status")
    assert code(client.get("/v1/agent/conversations?limit=0", headers=alice)) == (422, "invalid_request")
    post(f"{base}/claim", headers=alice)  # a takeover of a conversation still with the bot
    assert code(post(f"{base}/claim", headers=bob)) == (409, "already_assigned")
    assert code(post(f"{base}/messages", headers=bob, json={"text": "hi"})) == (409, "not_assigned_to_you")
    assert code(post(f"{base}/close", headers=bob)) == (409, "not_assigned_to_you")
    assert code(post(f"{base}/messages", headers=alice, json={"text": "x" * 2001})) == (422, "message_too_long")
    assert code(post(f"{base}/messages", headers=alice, json={"text": "   "})) == (422, "empty_message")
    assert code(post(f"{base}/messages", headers=alice, json={})) == (422, "invalid_request")
    assert code(post(f"{base}/messages", headers=alice, json={"text": "hi", "suggestion_id": "sug_nope"})) == (
        404, "suggestion_not_found")  # fmt: skip
    assert code(post(f"{base}/notes", headers=alice, json={"text": "y" * 5000})) == (422, "message_too_long")
    assert code(post("/v1/messages/msg_nope/feedback", headers=customer, json={"rating": "up"})) == (
        404, "message_not_found")  # fmt: skip
    assert client.get(f"{base}", headers=alice).json()["conversation"]["handoff_reason"] == "agent_takeover"
    post(f"{base}/close", headers=alice)
    assert code(post(f"{base}/claim", headers=bob)) == (409, "conversation_closed")
    assert code(post(f"{base}/close", headers=alice)) == (409, "conversation_closed")
    # A closed conversation reopens with the assistant when the customer writes again.
    again = post(
        f"/v1/conversations/{conversation}/messages", headers=customer, json={"text": "What is the wire cut-off?"}
    )
    assert again.status_code == 200 and again.json()["role"] == "assistant"


def test_an_existing_first_release_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "chatbot.db"
    first_release_sqlite(path, "conv_old", "msg_old", "hello from the old release")
    store = Store(f"sqlite:///{path}")
    try:
        record = store.conversation("conv_old")
        assert record.status == "bot" and record.flagged is False and record.token_hash is None
        assert [m.text for m in store.messages("conv_old")] == ["hello from the old release"]
        changed, waiting = store.request_handoff("conv_old", "customer_request")
        assert changed and waiting.status == "waiting"
    finally:
        store.close()
    from chatbot.store.migrate import upgrade
    from chatbot.store.models import Base

    again = Store(f"sqlite:///{path}")
    try:
        assert upgrade(again.engine, Base.metadata) == []  # idempotent
    finally:
        again.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(conversations)")}
    assert {"token_hash", "assigned_agent_id", "handoff_reason", "flagged", "closed_at", "closed_by"} <= columns


def test_open_consoles_are_told_when_a_waiting_conversation_is_flagged(client: TestClient) -> None:
    token, _ = login(client, "carol")
    conversation, customer = new_conversation(client)
    with client.websocket_connect(f"/ws/agent?token={token}") as console:
        assert console.receive_json()["type"] == "queue"
        client.post(f"/v1/conversations/{conversation}/handoff", headers=customer)
        flagged = False
        for _ in range(20):  # the watcher runs every second here (handoff_flag_after_s=2); ping so no read blocks
            time.sleep(0.5)
            console.send_json({"type": "ping"})
            for frame in receive_until(console, "pong"):
                if frame["type"] == "queue":
                    entry = next((c for c in frame["conversations"] if c["id"] == conversation), None)
                    flagged = flagged or bool(entry and entry["flagged"])
            if flagged:
                break
        assert flagged
