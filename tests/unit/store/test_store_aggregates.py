"""The store's aggregate repositories, each on its own, on SQLite and on PostgreSQL (tests/support/services.py).

``tests/services/test_store_postgres.py`` drives the whole ``Store`` through its flat methods; these tests
reach each repository through its ``Store`` attribute (``store.agents``, ``store.outbox``, …), cover
the repositories that took over the SQL of ``chatbot/integration`` and ``chatbot/server`` (API keys,
idempotency, the webhook outbox, the integration API's conversations, the OpenAI channel's history,
the waiting count), and check the rule that no SQL is written outside ``chatbot/store``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chatbot.store import AgentExists, ConversationNotFound, KeyExists, MessageNotFound, Store
from chatbot.store.agents import AgentRepository
from chatbot.store.models import utcnow

CHATBOT = Path(__file__).resolve().parents[3] / "chatbot"


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 's.db'}"
    opened = Store(url)
    yield opened
    opened.close()


def test_every_repository_shares_the_stores_session_factory(store: Store) -> None:
    repositories = [
        store.conversations, store.lifecycle, store.transcript, store.agents, store.internal_notes,
        store.suggestions, store.feedback, store.analytics, store.api_keys, store.idempotency, store.outbox,
        store.audit_log,
    ]  # fmt: skip
    assert all(r._sessions is store.sessions for r in repositories)
    # A repository built from the bare engine sees the same database (what command-line tools do).
    store.agents.create("alice", "agent", "hash")
    assert AgentRepository(store.engine).by_name("alice") is not None


def test_agents(store: Store) -> None:
    alice = store.agents.create("alice", "admin", "hash-a")
    with pytest.raises(AgentExists):
        store.agents.create("alice", "agent", "other")
    assert store.agents.by_name("alice").password_hash == "hash-a"  # type: ignore[union-attr]  # the login's lookup
    assert store.agents.by_id(alice.id).password_hash == ""  # type: ignore[union-attr]  # every other read: no hash
    assert alice.public() == {"id": alice.id, "name": "alice", "role": "admin"}
    store.agents.create("bob", "agent", "hash-b")
    assert [a.name for a in store.agents.list()] == ["alice", "bob"]
    assert store.agents.set_active("bob", False) and not store.agents.set_active("nobody", False)
    assert store.agents.by_name("bob").active is False  # type: ignore[union-attr]
    store.agents.set_password_hash(alice.id, "rehashed")
    assert store.agents.by_name("alice").password_hash == "rehashed"  # type: ignore[union-attr]
    assert store.agents.by_id("agt_nope") is None and store.agents.by_name("nobody") is None


def test_notes_suggestions_and_feedback(store: Store) -> None:
    alice = store.agents.create("alice", "agent", "hash")
    conversation, _ = store.conversations.create()
    question = store.transcript.add_user_message(conversation, "How much is a wire?")
    store.internal_notes.add(conversation, alice.id, "first")
    store.internal_notes.add(conversation, alice.id, "second")
    notes = store.internal_notes.for_conversation(conversation)
    assert [(n.text, n.agent_name) for n in notes] == [("first", "alice"), ("second", "alice")]
    with pytest.raises(ConversationNotFound):
        store.internal_notes.add("conv_nope", alice.id, "x")

    first = store.suggestions.add(conversation, question.id, alice.id, [("faq", "A", [])])
    second = store.suggestions.add(conversation, question.id, alice.id, [("faq", "B", []), ("generated", "C", [])])
    assert store.suggestions.get(first[0].id).outcome == "ignored"  # type: ignore[union-attr]  # superseded
    store.suggestions.resolve(conversation, second[1].id, "edited", "msg_x")
    assert [store.suggestions.get(s.id).outcome for s in second] == ["ignored", "edited"]  # type: ignore[union-attr]
    store.lifecycle.request_handoff(conversation, "customer_request")
    store.lifecycle.claim(conversation, alice.id)
    pending = store.suggestions.add(conversation, question.id, alice.id, [("faq", "D", [])])
    store.lifecycle.return_to_bot(conversation, alice.id)  # the agent leaves: nothing is pending any more
    assert store.suggestions.get(pending[0].id).outcome == "ignored"  # type: ignore[union-attr]

    answer = store.transcript.add(conversation, "assistant", "A wire costs $45.", "faq")
    store.feedback.set(answer.id, conversation, "down", "short")
    store.feedback.set(answer.id, conversation, "up", None)
    assert store.analytics.data(utcnow() - timedelta(days=1)).feedback == [(answer.id, "up")]


def test_conversations_of_the_integration_api_and_the_openai_channel(store: Store) -> None:
    made = [store.conversations.create_owned("f" * 64, "key_1", "cust-1") for _ in range(3)]
    store.conversations.create_owned("e" * 64, "key_1", "cust-2")
    store.conversations.create("web")  # no key: never listed for a customer
    summary = store.conversations.summary(made[0].id)
    assert summary.channel == "api" and summary.api_key_id == "key_1" and summary.customer_id == "cust-1"
    assert summary.created_at.utcoffset() == timedelta(0)
    store.conversations.create_owned("d" * 64, "key_2", "cust-1")  # the same id under another key: not listed
    page, more = store.conversations.for_customer("cust-1", None, 2, api_key_id="key_1")
    assert more and len(page) == 2
    rest, more = store.conversations.for_customer("cust-1", (page[-1].created_at, page[-1].id), 2, api_key_id="key_1")
    assert not more and {s.id for s in page + rest} == {m.id for m in made}
    with pytest.raises(ConversationNotFound):
        store.conversations.summary("conv_nope")

    turns = [("user", "how much is a wire?"), ("assistant", "It is $45."), ("user", "and domestic?")]
    opened = store.conversations.create_with_history("openai", "key_1", None, turns)
    history = store.transcript.recent(opened)
    assert [(m.role, m.text, m.kind) for m in history] == [
        ("user", "how much is a wire?", None), ("assistant", "It is $45.", "history"), ("user", "and domestic?", None),
    ]  # fmt: skip
    assert store.conversations.get(opened).channel == "openai"

    messages, cursor = store.transcript.page(opened, None, None, 2)
    assert [m.id for m in messages] == [m.id for m in history[:2]] and cursor is not None
    messages, cursor = store.transcript.page(opened, None, cursor, 2)
    assert [m.id for m in messages] == [history[2].id] and cursor is None
    assert store.transcript.page(opened, history[0].id, None, 5)[0] == history[1:]
    with pytest.raises(MessageNotFound):
        store.transcript.page(opened, "msg_nope", None, 5)

    assert store.conversations.count_waiting() == 0
    store.lifecycle.request_handoff(opened, "customer_request")
    assert store.conversations.count_waiting() == 1
    assert [r.id for r in store.conversations.queue(("waiting",))] == [opened]


def test_api_keys(store: Store) -> None:
    record = store.api_keys.create("app", "kst_abcdefgh", "a" * 64, ("chat", "agent"))
    assert record.scopes == ("chat", "agent") and not record.revoked and record.last_used_at is None
    with pytest.raises(KeyExists):
        store.api_keys.create("app", "kst_other", "b" * 64, ("chat",))
    assert store.api_keys.by_hash("a" * 64) == record and store.api_keys.by_hash("c" * 64) is None
    now = utcnow()
    assert store.api_keys.touch(record.id, now, unless_since=now - timedelta(seconds=60))
    assert not store.api_keys.touch(record.id, now, unless_since=now - timedelta(seconds=60))  # written already
    assert store.api_keys.by_name("app").last_used_at is not None  # type: ignore[union-attr]
    revoked = store.api_keys.revoke("app")
    assert revoked is not None and revoked.revoked
    assert store.api_keys.revoke("app").revoked_at == revoked.revoked_at  # type: ignore[union-attr]  # idempotent
    assert store.api_keys.revoke("nobody") is None
    assert [k.name for k in store.api_keys.list()] == ["app"]


def test_idempotency_records(store: Store) -> None:
    now = utcnow()
    assert store.idempotency.insert_claim("key:k1", "open-1", "h1", now)
    assert not store.idempotency.insert_claim("key:k1", "open-1", "h2", now)  # the primary key decides
    entry = store.idempotency.get("key:k1", "open-1")
    assert entry is not None and entry.status_code is None and entry.request_hash == "h1"
    store.idempotency.release("key:k1", "open-1")  # an unfinished claim is forgotten …
    assert store.idempotency.get("key:k1", "open-1") is None
    assert store.idempotency.insert_claim("key:k1", "open-1", "h1", now)
    store.idempotency.complete("key:k1", "open-1", 201, {"id": "conv_1"})
    store.idempotency.release("key:k1", "open-1")  # … a finished one is kept
    kept = store.idempotency.get("key:k1", "open-1")
    assert kept is not None and (kept.status_code, kept.response) == (201, {"id": "conv_1"})

    # delete_entry deletes that very claim, not a newer one made under the same key meanwhile.
    store.idempotency.delete_entry(kept)
    assert store.idempotency.get("key:k1", "open-1") is None
    assert store.idempotency.insert_claim("key:k1", "open-1", "h1", now + timedelta(seconds=5))
    store.idempotency.delete_entry(kept)
    assert store.idempotency.get("key:k1", "open-1") is not None
    assert store.idempotency.delete_before(now + timedelta(seconds=10)) == 1


def test_the_webhook_outbox(store: Store) -> None:
    conversation = store.conversations.create_owned("f" * 64, "key_1", "cust-9").id
    event_id = store.outbox.enqueue("handoff.requested", conversation, {"reason": "customer_request"})
    store.outbox.enqueue("feedback.created", None, {"rating": "up"})
    now = utcnow() + timedelta(seconds=1)
    lease = now + timedelta(seconds=60)
    won = store.outbox.claim_due(now, lease, 10)
    assert [w[0] for w in won][:1] == [event_id] and len(won) == 2
    envelope = won[0][2]
    assert envelope["id"] == event_id and envelope["conversation_id"] == conversation
    assert envelope["data"] == {"reason": "customer_request", "customer_id": "cust-9"}
    assert store.outbox.claim_due(now, lease, 10) == []  # locked: another worker gets nothing
    # Both rows are pending, locked until the lease: due again then, not before.
    assert store.outbox.pending_due_times(now, 10) == [lease, lease]

    retry_at = now + timedelta(seconds=30)
    store.outbox.record_attempt(event_id, attempts=1, last_error="HTTP 500", next_attempt_at=retry_at)
    store.outbox.record_attempt(won[1][0], attempts=1, status="delivered", delivered_at=now, last_error=None)
    assert store.outbox.pending_due_times(now, 10) == [retry_at]  # the lock is released with the outcome
    assert store.outbox.claim_due(now, lease, 10) == []
    assert [(w[0], w[1]) for w in store.outbox.claim_due(retry_at, lease, 10)] == [(event_id, 1)]


def test_lifecycle_conflicts_name_the_reason(store: Store) -> None:
    alice = store.agents.create("alice", "agent", "hash")
    bob = store.agents.create("bob", "agent", "hash")
    conversation, _ = store.conversations.create()
    assert store.lifecycle.claim(conversation, alice.id)[0] == "taken_over"
    for attempt, code in (
        (lambda: store.lifecycle.claim(conversation, bob.id), "already_assigned"),
        (lambda: store.lifecycle.return_to_bot(conversation, bob.id), "not_assigned_to_you"),
        (lambda: store.lifecycle.close(conversation, bob.id), "not_assigned_to_you"),
    ):
        with pytest.raises(Exception) as raised:
            attempt()
        assert getattr(raised.value, "code", None) == code
    closed = store.lifecycle.close(conversation, alice.id)
    assert closed.status == "closed" and closed.closed_at is not None
    assert store.lifecycle.flag_overdue(datetime.now(UTC)) == []


def _sql_imports(path: Path) -> list[str]:
    """Imports that write SQL: anything of SQLAlchemy but the Engine type, and the table classes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module.startswith("sqlalchemy") and not (
                node.module == "sqlalchemy.engine" and names <= {"Engine"}
            ):
                found.append(f"{node.module}: {sorted(names)}")
            if node.module == "chatbot.store.models" and not names <= {"utcnow", "aware"}:
                found.append(f"{node.module}: {sorted(names)}")
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("sqlalchemy")]
    return found


def test_no_sql_outside_the_store() -> None:
    offenders = {
        str(path.relative_to(CHATBOT)): found
        for path in CHATBOT.rglob("*.py")
        if "store" not in path.relative_to(CHATBOT).parts[:1] and (found := _sql_imports(path))
    }
    assert offenders == {}
