"""The agent REST API: queue, transcript, notes and suggested replies (with the real fine-tuned generator)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatbot.agents.suggestions import suggest
from chatbot.config import Settings
from chatbot.dialogue.engine import Engine
from chatbot.dialogue.grounding import check_grounding
from chatbot.store import Store
from chatbot.store.models import Suggestion
from tests.support.app import create_agent, login, module_settings, new_conversation, started


@pytest.fixture(scope="module")
def settings_(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return module_settings(built_index, tmp_path_factory.mktemp("agent-api"))


@pytest.fixture(scope="module")
def client(settings_: Settings) -> Iterator[TestClient]:
    create_agent(settings_, "alice")
    create_agent(settings_, "bob")
    app_client = started(settings_)
    yield app_client
    app_client.__exit__(None, None, None)


def outcomes(settings: Settings, conversation: str) -> dict[str, str]:
    store = Store(settings.resolved_database_url)
    try:
        with store._sessions() as session:
            rows = session.execute(
                select(Suggestion.id, Suggestion.outcome).where(Suggestion.conversation_id == conversation)
            ).all()
    finally:
        store.close()
    return dict(rows)  # type: ignore[arg-type]


def test_queue_lists_waiting_oldest_first_then_mine(client: TestClient) -> None:
    _, alice = login(client, "alice")
    first, first_customer = new_conversation(client)
    second, second_customer = new_conversation(client)
    client.post(f"/v1/conversations/{first}/messages", headers=first_customer, json={"text": "wire cut-off time?"})
    client.post(f"/v1/conversations/{first}/handoff", headers=first_customer)
    client.post(f"/v1/conversations/{second}/handoff", headers=second_customer)
    listed = client.get("/v1/agent/conversations", headers=alice).json()["conversations"]
    ids = [c["id"] for c in listed]
    assert ids.index(first) < ids.index(second)
    entry = listed[ids.index(first)]
    assert set(entry) >= {"id", "status", "handoff_reason", "handoff_requested_at", "flagged", "assigned_agent",
                          "last_message", "updated_at", "customer_online"}  # fmt: skip
    assert entry["last_message"]["role"] == "system" and entry["assigned_agent"] is None

    client.post(f"/v1/agent/conversations/{second}/claim", headers=alice)
    mine = client.get("/v1/agent/conversations?status=assigned&mine=true", headers=alice).json()["conversations"]
    assert [c["id"] for c in mine] == [second] or second in [c["id"] for c in mine]
    assert all(c["assigned_agent"]["name"] == "alice" for c in mine)
    _, bob = login(client, "bob")
    assert second not in [
        c["id"] for c in client.get("/v1/agent/conversations?mine=true", headers=bob).json()["conversations"]
    ]


def test_transcript_shows_answers_with_sources_and_notes(client: TestClient) -> None:
    _, alice = login(client, "alice")
    conversation, customer = new_conversation(client)
    client.post(f"/v1/conversations/{conversation}/messages", headers=customer,
                json={"text": "How much does it cost to send an international wire?"})  # fmt: skip
    note = client.post(f"/v1/agent/conversations/{conversation}/notes", headers=alice,
                       json={"text": "Customer is a VIP; card 4111 1111 1111 1111 mentioned by phone"})  # fmt: skip
    assert note.status_code == 201 and note.json()["agent_name"] == "alice"
    assert "4111 1111" not in note.json()["text"]
    detail = client.get(f"/v1/agent/conversations/{conversation}", headers=alice).json()
    assert detail["conversation"]["status"] == "bot"
    answer = detail["messages"][1]
    assert answer["role"] == "assistant" and answer["kind"] == "faq" and answer["sources"][0]["id"] == "wires"
    assert {"intent", "latency_ms", "quick_replies", "agent_name"} <= set(answer)
    assert [n["id"] for n in detail["notes"]] == [note.json()["id"]]


def test_suggestions_have_sources_and_their_use_is_recorded(client: TestClient, settings_: Settings) -> None:
    _, alice = login(client, "alice")
    conversation, customer = new_conversation(client)
    base = f"/v1/agent/conversations/{conversation}"
    client.post(f"/v1/conversations/{conversation}/handoff", headers=customer)
    asked = client.post(f"/v1/conversations/{conversation}/messages", headers=customer,
                        json={"text": "How long does a replacement card take to arrive?"})  # fmt: skip
    assert asked.status_code == 202
    client.post(f"{base}/claim", headers=alice)

    first = client.post(f"{base}/suggestions", headers=alice).json()
    assert first["message_id"] == asked.json()["message"]["id"]
    cards = first["suggestions"]
    assert 1 <= len(cards) <= 3
    assert all(c["kind"] in ("faq", "generated", "extractive") and c["sources"] and c["text"] for c in cards)
    assert cards[0]["kind"] == "faq" and "5 to 7 business days" in cards[0]["text"]
    assert cards[0]["sources"][0]["id"] == "lost-cards"

    # Sent as is.
    sent = client.post(
        f"{base}/messages", headers=alice, json={"text": cards[0]["text"], "suggestion_id": cards[0]["id"]}
    )
    assert sent.status_code == 201
    recorded = outcomes(settings_, conversation)
    assert recorded[cards[0]["id"]] == "sent"
    assert all(recorded[c["id"]] == "ignored" for c in cards[1:])

    # Edited by hand.
    second = client.post(f"{base}/suggestions", headers=alice).json()["suggestions"]
    edited = second[0]["text"] + " Is there anything else I can help with?"
    client.post(f"{base}/messages", headers=alice, json={"text": edited, "suggestion_id": second[0]["id"]})
    assert outcomes(settings_, conversation)[second[0]["id"]] == "edited"

    # Ignored: a reply without them, and pending ones when the conversation closes.
    third = client.post(f"{base}/suggestions", headers=alice).json()["suggestions"]
    client.post(f"{base}/messages", headers=alice, json={"text": "One moment please."})
    fourth = client.post(f"{base}/suggestions", headers=alice).json()["suggestions"]
    client.post(f"{base}/close", headers=alice)
    recorded = outcomes(settings_, conversation)
    assert all(recorded[c["id"]] == "ignored" for c in third + fourth)
    assert client.post(f"{base}/suggestions", headers=alice).json()["error"]["code"] == "conversation_closed"


def test_suggestions_offer_a_grounded_draft_from_the_fine_tuned_model(engine: Engine) -> None:
    """The draft is generated over the retrieved passages and passes the same grounding check as answers."""
    questions = [
        "What is the interest rate on the high-yield savings account?",
        "How do I report a stolen card?",
        "When do wires have to be requested to go out the same day?",
    ]
    drafts = []
    for question in questions:
        items = asyncio.run(suggest(engine, question))
        assert len(items) <= 3 and all(item.sources for item in items)
        assert sum(item.kind in ("generated", "extractive") for item in items) <= 1, "one draft at most"
        drafts += [item for item in items if item.kind in ("generated", "extractive")]
    assert any(d.kind == "generated" for d in drafts), "the fine-tuned model drafted nothing"
    for draft in drafts:
        assert engine.index is not None
        cited = {s.id for s in draft.sources}
        sources = [p.text + " " + (p.answer or "") for p in engine.index.passages if p.source_id in cited]
        assert check_grounding(draft.text, sources).supported
