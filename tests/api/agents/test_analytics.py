"""Analytics on a scripted set of conversations: every figure checked against what the script did."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatbot.agents.analytics import unanswered_csv
from chatbot.config import Settings
from chatbot.evals.metrics import percentile
from tests.support.app import create_agent, login, module_settings, new_conversation, started

MARS = "What will the weather be like on Mars tomorrow?"


@pytest.fixture(scope="module")
def client(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = module_settings(built_index, tmp_path_factory.mktemp("analytics"), generation_enabled=False)
    create_agent(settings, "alice")
    create_agent(settings, "root", "admin")
    app_client = started(settings)
    yield app_client
    app_client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def script(client: TestClient) -> dict[str, Any]:
    """Five conversations; returns what the figures must be, computed from the responses themselves."""
    _, alice = login(client, "alice")
    answers: list[dict[str, Any]] = []
    questions: dict[str, str] = {}

    def ask(conversation: str, customer: dict[str, str], text: str) -> dict[str, Any]:
        response = client.post(f"/v1/conversations/{conversation}/messages", headers=customer, json={"text": text})
        assert response.status_code == 200 and response.json()["handoff"] is False  # handoffs are scripted below
        answers.append(response.json())
        questions[response.json()["id"]] = text
        return response.json()

    def rate(answer: dict[str, Any], customer: dict[str, str], rating: str, comment: str | None = None) -> None:
        body = {"rating": rating, **({"comment": comment} if comment else {})}
        response = client.post(f"/v1/messages/{answer['id']}/feedback", headers=customer, json=body)
        assert response.status_code == 200 and response.json()["rating"] == rating

    # A: answered by the FAQ, thumbs up, no human. Contained.
    a, a_customer = new_conversation(client)
    rate(ask(a, a_customer, "How much does it cost to send an international wire?"), a_customer, "up")

    # B: not answered, thumbs down; the customer asks for a person; a suggestion is sent as is; closed.
    b, b_customer = new_conversation(client)
    rate(ask(b, b_customer, MARS), b_customer, "down", "Not helpful")
    client.post(f"/v1/conversations/{b}/handoff", headers=b_customer)
    client.post(f"/v1/conversations/{b}/messages", headers=b_customer, json={"text": "What is the wire cut-off time?"})
    client.post(f"/v1/agent/conversations/{b}/claim", headers=alice)
    b_cards = client.post(f"/v1/agent/conversations/{b}/suggestions", headers=alice).json()["suggestions"]
    assert b_cards
    client.post(f"/v1/agent/conversations/{b}/messages", headers=alice,
                json={"text": b_cards[0]["text"], "suggestion_id": b_cards[0]["id"]})  # fmt: skip
    client.post(f"/v1/agent/conversations/{b}/close", headers=alice)

    # C: an FAQ answer the customer rated down; an agent takes over, ignores the suggestions, returns it.
    c, c_customer = new_conversation(client)
    rate(ask(c, c_customer, "What interest does the high-yield savings account pay?"), c_customer, "down")
    client.post(f"/v1/agent/conversations/{c}/claim", headers=alice)
    c_cards = client.post(f"/v1/agent/conversations/{c}/suggestions", headers=alice).json()["suggestions"]
    client.post(f"/v1/agent/conversations/{c}/messages", headers=alice, json={"text": "I have frozen it for you."})
    client.post(f"/v1/agent/conversations/{c}/return", headers=alice)

    # D: the widget was opened, nothing written: not a conversation for the figures.
    new_conversation(client)

    # E: the same unanswered question again (other spelling), and a question that looks like a formula.
    e, e_customer = new_conversation(client)
    ask(e, e_customer, MARS.lower().rstrip("?"))
    ask(e, e_customer, "=HYPERLINK(1) what do penguins eat at the zoo")

    latencies = [float(x["latency_ms"]) for x in answers]
    unanswered = Counter(
        " ".join(questions[x["id"]].lower().split()).rstrip("?!. ")
        for x in answers
        if x["kind"] in ("fallback", "refusal")
    )
    assert unanswered[" ".join(MARS.lower().split()).rstrip("?!. ")] == 2, "the Mars question is not in the KB"
    return {
        "answers": answers,
        "kinds": Counter(x["kind"] for x in answers),
        "p50": round(percentile(latencies, 50), 1),
        "p95": round(percentile(latencies, 95), 1),
        "shown": len(b_cards) + len(c_cards),
        "unanswered": unanswered,
    }


def test_analytics_figures_match_the_scripted_conversations(client: TestClient, script: dict[str, Any]) -> None:
    _, admin = login(client, "root")
    report = client.get("/v1/analytics?days=30", headers=admin).json()
    assert report["conversations"] == 4
    assert report["containment_rate"] == 0.5  # A and E had no human; B and C did
    assert report["handoff_rate"] == 0.5
    assert report["handoff_reasons"] == {"customer_request": 1, "agent_takeover": 1}
    assert report["feedback"] == {"up": 1, "down": 2, "ratio": 0.3333}
    assert report["suggestions"] == {
        "shown": script["shown"],
        "sent": 1,
        "edited": 0,
        "ignored": script["shown"] - 1,
        "pending": 0,
        "use_rate": round(1 / script["shown"], 4),
    }
    assert report["answer_kinds"] == dict(script["kinds"])
    assert report["latency_ms"] == {"p50": script["p50"], "p95": script["p95"]}

    top = {" ".join(row["text"].lower().split()).rstrip("?!. "): row for row in report["top_unanswered"]}
    for question, count in script["unanswered"].items():
        assert top[question]["count"] == count + (question == "what will the weather be like on mars tomorrow")
    savings = top["what interest does the high-yield savings account pay"]
    assert savings == {
        "text": "What interest does the high-yield savings account pay?",
        "count": 1,
        "kind": "thumbs_down",
    }
    counts = [row["count"] for row in report["top_unanswered"]]
    assert counts == sorted(counts, reverse=True)


def test_unanswered_questions_export_as_csv(client: TestClient, script: dict[str, Any]) -> None:
    _, admin = login(client, "root")
    report = client.get("/v1/analytics", headers=admin).json()
    response = client.get("/v1/analytics/unanswered.csv", headers=admin)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["text"].lstrip("'"), int(r["count"]), r["kind"]) for r in rows] == [
        (t["text"], t["count"], t["kind"]) for t in report["top_unanswered"]
    ]
    assert not any(r["text"].startswith("=") for r in rows)  # spreadsheets must not run customer text
    assert client.get("/v1/analytics?days=0", headers=admin).status_code == 422


def test_csv_cells_that_look_like_formulas_are_escaped() -> None:
    text = unanswered_csv([{"text": "=SUM(A1:A9)", "count": 2, "kind": "fallback"},
                           {"text": "How do I close my account?", "count": 1, "kind": "thumbs_down"}])  # fmt: skip
    assert text.splitlines() == [
        "text,count,kind",
        "'=SUM(A1:A9),2,fallback",
        "How do I close my account?,1,thumbs_down",
    ]


def test_feedback_is_for_assistant_answers_of_ones_own_conversation(client: TestClient) -> None:
    conversation, customer = new_conversation(client)
    answer = client.post(f"/v1/conversations/{conversation}/messages", headers=customer,
                         json={"text": "What is the cut-off time for wire transfers?"}).json()  # fmt: skip
    _, other = new_conversation(client)
    url = f"/v1/messages/{answer['id']}/feedback"
    assert client.post(url, headers=other, json={"rating": "up"}).json()["error"]["code"] == "invalid_token"
    assert client.post(url, json={"rating": "up"}).json()["error"]["code"] == "missing_token"
    assert client.post(url, headers=customer, json={"rating": "meh"}).status_code == 422
    assert client.post(url, headers=customer, json={"rating": "up", "comment": "x" * 1001}).status_code == 422
    first = client.post(url, headers=customer, json={"rating": "down", "comment": "card 4111 1111 1111 1111"})
    assert first.status_code == 200 and "4111 1111" not in first.json()["comment"]
    second = client.post(url, headers=customer, json={"rating": "up"})
    assert second.json() == {"message_id": answer["id"], "rating": "up", "comment": None}
    history = client.get(f"/v1/conversations/{conversation}/messages", headers=customer).json()["messages"]
    user_message = next(m for m in history if m["role"] == "user")
    refused = client.post(f"/v1/messages/{user_message['id']}/feedback", headers=customer, json={"rating": "up"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_an_answer"
