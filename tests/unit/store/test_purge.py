"""Retention (`chatbot purge`): delete and anonymise modes, dry runs, open handoffs kept, the audit event, the CLI.

Real SQLite files (and real PostgreSQL for the row-locking batch path); conversations are aged by
moving their stored times back, as if they had happened N days ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from chatbot.schema import AnswerObject, IntentRef
from chatbot.store import Store
from chatbot.store.models import (
    Conversation,
    Feedback,
    HandoffEvent,
    IdempotencyRecord,
    Message,
    Note,
    Suggestion,
    WebhookDelivery,
)
from chatbot.store.retention import REMOVED_TEXT, purge

CUSTOMER_TEXT = "My card 4111 was declined in Lisbon"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'purge.db'}")
    yield opened
    opened.close()


@dataclass
class Scripted:
    id: str
    answer_id: str
    agent_id: str


def age(store: Store, conversation_id: str, days: float) -> None:
    """Move a conversation and everything in it ``days`` into the past."""
    moment = datetime.now(UTC) - timedelta(days=days)
    with store._sessions.begin() as session:
        session.execute(update(Conversation).where(Conversation.id == conversation_id).values(updated_at=moment))
        session.execute(update(Message).where(Message.conversation_id == conversation_id).values(created_at=moment))


def scripted(store: Store, agent_name: str = "alice", days: float = 0, status: str = "closed") -> Scripted:
    """A conversation with every kind of row that hangs off one: messages, feedback, note, suggestions,
    handoff events, a webhook delivery and a stored idempotent response."""
    agent = store.agent_by_name(agent_name) or store.create_agent(agent_name, "agent", "hash")
    conversation, _ = store.create_conversation(token_hash="f" * 64)
    with store._sessions.begin() as session:
        session.execute(update(Conversation).where(Conversation.id == conversation).values(customer_id="cust-42"))
    question = store.add_user_message(conversation, CUSTOMER_TEXT)
    answer = store.add_answer(
        AnswerObject(
            id=f"msg_a{conversation[5:]}",
            conversation_id=conversation,
            text="Let me connect you with our card team.",
            kind="handoff",
            intent=IntentRef(name="declined_card_payment", confidence=0.93),
            latency_ms=87,
        )
    )
    store.set_feedback(answer.id, conversation, "down", "The bot did not help with my card 4111")
    store.request_handoff(conversation, "human_agent_intent")
    store.claim(conversation, agent.id)
    store.add_suggestions(conversation, question.id, agent.id, [("generated", "About your card in Lisbon...", [])])
    store.add_message(conversation, "agent", "I have unblocked your card for Portugal.", None, agent.id)
    store.add_note(conversation, agent.id, "Customer travels to Lisbon until Friday.")
    if status == "closed":
        store.close_conversation(conversation, agent.id)
    elif status == "bot":
        store.return_to_bot(conversation, agent.id)
    elif status == "waiting":
        store.return_to_bot(conversation, agent.id)
        store.request_handoff(conversation, "customer_request")
    with store._sessions.begin() as session:
        delivery = WebhookDelivery(
            id=f"whd_{conversation[5:]}", event="conversation.closed", conversation_id=conversation
        )
        delivery.payload = {"conversation_id": conversation}
        session.add(delivery)
        response = {"text": CUSTOMER_TEXT}
        scope = f"conv:{conversation}"
        session.add(IdempotencyRecord(scope=scope, key="r1", request_hash="0" * 64, status_code=200, response=response))
    if days:
        age(store, conversation, days)
    return Scripted(conversation, answer.id, agent.id)


def count(store: Store, model: type, conversation_id: str) -> int:
    with store._sessions() as session:
        column = model.conversation_id  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model).where(column == conversation_id)) or 0)


def idempotency_rows(store: Store, conversation_id: str) -> int:
    with store._sessions() as session:
        query = (
            select(func.count())
            .select_from(IdempotencyRecord)
            .where(IdempotencyRecord.scope == f"conv:{conversation_id}")
        )
        return int(session.scalar(query) or 0)


ALL_CHILDREN = (Message, Feedback, Note, Suggestion, HandoffEvent, WebhookDelivery)


def test_delete_mode_removes_old_conversations_and_everything_hanging_off_them(store: Store) -> None:
    old = scripted(store, days=40)
    old_bot = scripted(store, days=40, status="bot")
    recent = scripted(store, days=5)
    waiting = scripted(store, days=400, status="waiting")
    assigned = scripted(store, days=400, status="assigned")
    revived = scripted(store, days=40)  # old, but the customer wrote again yesterday
    store.add_user_message(revived.id, "Is my card working now?")

    report = purge(store, 30, "delete")

    assert (report.conversations, report.kept_open) == (2, 2)
    assert (report.messages, report.feedback, report.notes, report.suggestions) == (2 * 3, 2, 2, 2)
    assert report.handoff_events == 2 * 3 and report.webhook_deliveries == 2 and report.idempotency_keys == 2
    for gone in (old, old_bot):
        assert not store.conversation_exists(gone.id)
        assert (
            all(count(store, model, gone.id) == 0 for model in ALL_CHILDREN) and idempotency_rows(store, gone.id) == 0
        )
    for kept in (recent, waiting, assigned, revived):
        assert store.conversation_exists(kept.id) and count(store, Message, kept.id) >= 3
        assert idempotency_rows(store, kept.id) == 1
    assert store.conversation(waiting.id).status == "waiting" and store.conversation(assigned.id).status == "assigned"
    event = store.audit_events(action="retention.purge")[0]
    assert event.actor_type == "operator" and event.detail["mode"] == "delete" and event.detail["days"] == 30
    assert event.detail["conversations"] == 2 and event.detail["messages"] == 6 and event.detail["kept_open"] == 2
    assert purge(store, 30, "delete").conversations == 0  # nothing left to do


def test_anonymise_mode_keeps_the_numbers_and_removes_the_words(store: Store) -> None:
    old = scripted(store, days=40)
    recent = scripted(store, days=1)

    report = purge(store, 30, "anonymise")

    assert report.conversations == 1 and report.messages == 3 and report.handoff_events == 0
    record = store.conversation(old.id)
    assert record.token_hash is None and record.status == "closed"
    with store._sessions() as session:
        row = session.get(Conversation, old.id)
        assert row is not None and row.customer_id is None and row.anonymised_at is not None
        assert session.get(Conversation, recent.id).customer_id == "cust-42"  # type: ignore[union-attr]
        notes = list(session.scalars(select(Note.text).where(Note.conversation_id == old.id)))
        suggestions = list(session.scalars(select(Suggestion.text).where(Suggestion.conversation_id == old.id)))
        feedback = session.execute(select(Feedback.rating, Feedback.comment).where(Feedback.conversation_id == old.id))
        assert notes == [""] and suggestions == [""] and list(feedback) == [("down", None)]
    messages = store.messages(old.id)
    assert {m.text for m in messages} == {REMOVED_TEXT}
    answer = next(m for m in messages if m.id == old.answer_id)
    assert (answer.kind, answer.intent, answer.latency_ms) == ("handoff", "declined_card_payment", 87)
    assert count(store, HandoffEvent, old.id) == 3  # the lifecycle stays for analytics
    assert count(store, WebhookDelivery, old.id) == 0 and idempotency_rows(store, old.id) == 0
    assert CUSTOMER_TEXT in [m.text for m in store.messages(recent.id)]
    # Analytics still count the anonymised conversation's answers and handoff.
    data = store.analytics_data(datetime.now(UTC) - timedelta(days=365))
    assert old.id in data.conversation_ids and (old.id, "human_agent_intent") in data.requested
    assert purge(store, 30, "anonymise").conversations == 0  # already anonymised
    assert purge(store, 30, "delete").conversations == 1  # an anonymised conversation can still be deleted later


def test_a_dry_run_changes_nothing(store: Store) -> None:
    old = [scripted(store, days=45) for _ in range(3)]
    scripted(store, days=2)
    before = store.audit_events()
    for mode in ("delete", "anonymise"):
        dry = purge(store, 30, mode, dry_run=True)  # type: ignore[arg-type]
        assert dry.dry_run and dry.conversations == 3 and dry.messages == 9
    assert store.audit_events() == before  # not even an audit event
    for conversation in old:
        assert CUSTOMER_TEXT in [m.text for m in store.messages(conversation.id)]
        assert store.conversation(conversation.id).token_hash == "f" * 64
        assert count(store, WebhookDelivery, conversation.id) == 1 and idempotency_rows(store, conversation.id) == 1


def test_dry_run_counts_equal_the_real_run(tmp_path: Path) -> None:
    for mode in ("delete", "anonymise"):
        store = Store(f"sqlite:///{tmp_path / f'{mode}.db'}")
        try:
            for _ in range(3):
                scripted(store, days=45)
            scripted(store, days=2)
            scripted(store, days=90, status="waiting")
            dry = purge(store, 30, mode, dry_run=True)  # type: ignore[arg-type]
            real = purge(store, 30, mode)  # type: ignore[arg-type]
            assert dry.counts() == real.counts(), mode
            assert real.conversations == 3 and real.kept_open == 1
        finally:
            store.close()


def test_work_runs_in_batches_with_progress(store: Store) -> None:
    for _ in range(5):
        scripted(store, days=31)
    seen: list[tuple[int, int]] = []
    report = purge(store, 30, "delete", batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert report.batches == 3 and seen == [(2, 5), (4, 5), (5, 5)]


def test_bad_arguments_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        purge(store, 0, "delete")
    with pytest.raises(ValueError):
        purge(store, 30, "shred")  # type: ignore[arg-type]


def test_purge_on_postgresql(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        deleted = [scripted(store, days=40) for _ in range(3)]
        anonymised = scripted(store, "bob", days=40)
        kept = scripted(store, "bob", days=400, status="waiting")
        store.add_user_message(anonymised.id, "x")  # recent activity: not purged by the first run
        first = purge(store, 30, "delete", batch_size=2)
        assert first.conversations == 3 and first.batches == 2 and first.kept_open == 1
        assert not any(store.conversation_exists(d.id) for d in deleted)
        age(store, anonymised.id, 40)
        second = purge(store, 30, "anonymise")
        assert second.conversations == 1 and {m.text for m in store.messages(anonymised.id)} == {REMOVED_TEXT}
        assert store.conversation(kept.id).status == "waiting"
        assert [e.detail["mode"] for e in store.audit_events(action="retention.purge")] == ["anonymise", "delete"]
    finally:
        store.close()


def run_cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_RETENTION")}
    environment |= {"CHATBOT_DATABASE_URL": database_url, **env}
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli", *args], capture_output=True, text=True, env=environment, timeout=300
    )


def test_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    try:
        old = scripted(store, days=40)
        recent = scripted(store, days=3)
    finally:
        store.close()

    refused = run_cli(url, "purge", CHATBOT_RETENTION_DAYS="0")
    assert refused.returncode == 2 and "--days" in refused.stderr

    dry = run_cli(url, "purge", "--days", "30", "--dry-run", "--json", "--mode", "delete")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["conversations"] == 1 and json.loads(dry.stdout)["dry_run"] is True

    bad = run_cli(url, "purge", "--days", "30", "--mode", "shred")
    assert bad.returncode == 2

    done = run_cli(url, "purge", CHATBOT_RETENTION_DAYS="30", CHATBOT_RETENTION_MODE="anonymise")
    assert done.returncode == 0, done.stderr
    assert "anonymised" in done.stdout and "conversations" in done.stdout

    listed = run_cli(url, "audit", "list", "--action", "retention.purge", "--json")
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(events) == 1 and events[0]["detail"]["conversations"] == 1 and events[0]["actor_type"] == "operator"

    store = Store(url)
    try:
        assert {m.text for m in store.messages(old.id)} == {REMOVED_TEXT}
        assert CUSTOMER_TEXT in [m.text for m in store.messages(recent.id)]
    finally:
        store.close()

    current = run_cli(url, "db", "current")
    assert current.returncode == 0 and "up to date" in current.stdout
    upgraded = run_cli(url, "db", "upgrade")
    assert upgraded.returncode == 0 and "already at revision" in upgraded.stderr
