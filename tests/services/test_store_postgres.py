"""The whole Store against a real PostgreSQL server (tests/support/services.py), as the scale-out deployment runs it.

Most tests run on SQLite too (the ``store`` fixture's second parameter), so any difference shows.

The same operations run on SQLite in tests/api/agents/test_handoff.py and tests/api/agents/test_agent_api.py through the
HTTP API; here they run at the store level on PostgreSQL, which is stricter (lengths, types, time
zones) and runs the claim race between real OS processes, each with its own connection pool.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from chatbot.agents.analytics import summarise
from chatbot.schema import AnswerObject, IntentRef, SourceRef
from chatbot.store import AgentExists, ConversationNotFound, LifecycleConflict, MessageNotFound, Store
from chatbot.store.models import HandoffEvent


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same store tests on both backends: PostgreSQL is the point, SQLite shows the behaviour is the same."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 's.db'}"
    opened = Store(url)
    yield opened
    opened.close()


def answer(conversation_id: str, text: str, kind: str = "faq", latency_ms: int = 42) -> AnswerObject:
    return AnswerObject(
        id=f"msg_{abs(hash((conversation_id, text))) % 10**12:012d}",
        conversation_id=conversation_id,
        text=text,
        kind=kind,  # type: ignore[arg-type]
        intent=IntentRef(name="transfer_fee_charged", confidence=0.91),
        sources=[SourceRef(id="faq:wire-fees", title="Wire fees", url="https://example.test/fees", score=0.88)],
        quick_replies=["Talk to a person"],
        latency_ms=latency_ms,
    )


def test_conversations_and_messages(store: Store) -> None:
    conversation, created = store.create_conversation(channel="web", token_hash="a" * 64)
    assert created.tzinfo is not None
    question = store.add_user_message(conversation, "How much is an international wire?")
    reply = store.add_answer(answer(conversation, "An international wire costs $45."))
    note = store.add_message(conversation, "system", "You're back with the assistant.", "status")
    assert [m.id for m in store.messages(conversation)] == [question.id, reply.id, note.id]
    assert [m.id for m in store.messages(conversation, limit=2)] == [reply.id, note.id]
    stored = store.message(reply.id)
    assert stored is not None
    assert stored.sources[0]["id"] == "faq:wire-fees" and stored.quick_replies == ["Talk to a person"]
    assert stored.intent == "transfer_fee_charged" and stored.confidence == pytest.approx(0.91)
    assert stored.kind == "faq" and stored.latency_ms == 42 and stored.handoff is False
    assert stored.as_dict()["created_at"].endswith("+00:00") and stored.created_at.utcoffset() == timedelta(0)
    assert [m.id for m in store.messages_after(conversation, None)] == [question.id, reply.id, note.id]
    assert [m.id for m in store.messages_after(conversation, question.id)] == [reply.id, note.id]
    assert store.messages_after(conversation, note.id) == []
    with pytest.raises(MessageNotFound):
        store.messages_after(conversation, "msg_nope")
    with pytest.raises(ConversationNotFound):
        store.messages("conv_nope")
    with pytest.raises(ConversationNotFound):
        store.add_user_message("conv_nope", "hello")
    assert store.conversation_exists(conversation) and not store.conversation_exists("conv_nope")
    assert store.last_user_message(conversation) == question
    record = store.conversation(conversation)
    assert record.status == "bot" and record.token_hash == "a" * 64 and record.last_message == note
    assert record.created_at.utcoffset() == timedelta(0)


def test_the_handoff_lifecycle(store: Store) -> None:
    alice = store.create_agent("alice", "agent", "hash-a")
    bob = store.create_agent("bob", "agent", "hash-b")
    root = store.create_agent("root", "admin", "hash-r")
    with pytest.raises(AgentExists):
        store.create_agent("alice", "agent", "again")
    agent = store.agent_by_name("alice")
    assert agent is not None and agent.password_hash == "hash-a"
    assert [a.name for a in store.list_agents()] == ["alice", "bob", "root"]
    assert store.set_agent_active("bob", False) and store.agent_by_id(bob.id).active is False  # type: ignore[union-attr]
    assert not store.set_agent_active("nobody", True)
    store.set_agent_active("bob", True)

    conversation, _ = store.create_conversation()
    store.add_user_message(conversation, "I want to speak to a person")
    changed, waiting = store.request_handoff(conversation, "customer_request")
    assert changed and waiting.status == "waiting" and waiting.handoff_requested_at is not None
    assert store.request_handoff(conversation, "customer_request")[0] is False  # already waiting
    other, _ = store.create_conversation()
    assert [r.id for r in store.list_conversations(("waiting", "assigned"))] == [conversation]
    assert {r.id for r in store.list_conversations(("bot", "waiting"))} == {conversation, other}

    outcome, claimed = store.claim(conversation, alice.id)
    assert outcome == "claimed" and claimed.assigned_agent_name == "alice" and claimed.status == "assigned"
    assert store.claim(conversation, alice.id)[0] == "already_mine"
    with pytest.raises(LifecycleConflict) as taken:
        store.claim(conversation, bob.id)
    assert taken.value.code == "already_assigned"
    assert [r.id for r in store.list_conversations(("assigned",), assigned_to=alice.id)] == [conversation]
    with pytest.raises(LifecycleConflict) as not_yours:
        store.return_to_bot(conversation, bob.id)
    assert not_yours.value.code == "not_assigned_to_you"
    reply = store.add_message(conversation, "agent", "Hello, this is Alice.", None, alice.id)
    assert reply.agent_name == "alice" and store.conversation(conversation).last_message == reply
    returned = store.return_to_bot(conversation, alice.id)
    assert returned.status == "bot" and returned.assigned_agent_id is None
    with pytest.raises(LifecycleConflict) as with_bot:
        store.return_to_bot(conversation, alice.id)
    assert with_bot.value.code == "not_in_handoff"

    outcome, taken_over = store.claim(conversation, bob.id)  # an agent takes over a conversation with the bot
    assert outcome == "taken_over" and taken_over.handoff_reason == "agent_takeover"
    with pytest.raises(LifecycleConflict):
        store.close_conversation(conversation, alice.id)  # not hers
    closed = store.close_conversation(conversation, root.id, is_admin=True)  # an admin may
    assert closed.status == "closed" and closed.closed_by == "agent" and closed.closed_at is not None
    with pytest.raises(LifecycleConflict) as again:
        store.claim(conversation, alice.id)
    assert again.value.code == "conversation_closed"
    assert store.reopen(conversation) and not store.reopen(conversation)
    assert store.conversation(conversation).status == "bot"
    with pytest.raises(ConversationNotFound):
        store.claim("conv_nope", alice.id)

    # Waiting too long: flagged once, with time-zone-aware comparisons.
    late, _ = store.create_conversation()
    store.request_handoff(late, "fallback")
    assert store.flag_overdue(datetime.now(UTC) - timedelta(hours=1)) == []
    assert store.flag_overdue(datetime.now(UTC) + timedelta(seconds=1)) == [late]
    assert store.flag_overdue(datetime.now(UTC) + timedelta(seconds=1)) == []
    assert store.conversation(late).flagged is True
    with store._sessions() as session:
        events = list(session.scalars(select(HandoffEvent.event).where(HandoffEvent.conversation_id == conversation)))
    assert events == ["requested", "claimed", "returned", "requested", "claimed", "closed", "reopened"]


def test_notes_suggestions_feedback_and_analytics(store: Store) -> None:
    alice = store.create_agent("alice", "agent", "hash")
    conversation, _ = store.create_conversation()
    question = store.add_user_message(conversation, "What will the weather be like on Mars?")
    fallback = store.add_answer(answer(conversation, "I'm sorry, I couldn't find that.", "fallback", 120))
    store.add_user_message(conversation, "How much is a wire?")
    good = store.add_answer(answer(conversation, "A wire costs $45.", "faq", 30))
    store.set_feedback(good.id, conversation, "down", "too short")
    store.set_feedback(good.id, conversation, "up", None)  # a second rating replaces the first
    store.set_feedback(fallback.id, conversation, "down", "useless")

    note = store.add_note(conversation, alice.id, "Customer is travelling.")
    assert note.agent_name == "alice" and note.created_at.tzinfo is not None
    assert [n.text for n in store.notes(conversation)] == ["Customer is travelling."]
    with pytest.raises(ConversationNotFound):
        store.add_note("conv_nope", alice.id, "x")

    store.request_handoff(conversation, "customer_request")
    store.claim(conversation, alice.id)
    first = store.add_suggestions(conversation, question.id, alice.id, [("faq", "Mars has no weather service.", [])])
    second = store.add_suggestions(
        conversation,
        question.id,
        alice.id,
        [("faq", "A wire costs $45.", [{"id": "faq:wire"}]), ("generated", "Hi", [])],
    )
    assert store.suggestion(first[0].id).outcome == "ignored"  # type: ignore[union-attr]
    sent = store.add_message(conversation, "agent", "A wire costs $45.", None, alice.id)
    store.resolve_suggestions(conversation, second[0].id, "sent", sent.id)
    assert store.suggestion(second[0].id).outcome == "sent"  # type: ignore[union-attr]
    assert store.suggestion(second[1].id).outcome == "ignored"  # type: ignore[union-attr]
    assert store.suggestion(second[0].id).sources == [{"id": "faq:wire"}]  # type: ignore[union-attr]

    data = store.analytics_data(datetime.now(UTC) - timedelta(days=1))
    assert data.conversation_ids == [conversation]
    assert data.requested == [(conversation, "customer_request")]
    assert data.agent_conversations == {conversation}
    assert sorted(data.feedback) == sorted([(good.id, "up"), (fallback.id, "down")])
    assert sorted(data.suggestion_outcomes) == ["ignored", "ignored", "sent"]
    assert ("What will the weather be like on Mars?", "fallback") in data.unanswered
    assert ("What will the weather be like on Mars?", "thumbs_down") in data.unanswered
    report = summarise(data, 1)
    assert report["conversations"] == 1 and report["handoff_rate"] == 1.0
    assert report["feedback"] == {"up": 1, "down": 1, "ratio": 0.5}
    assert report["answer_kinds"] == {"fallback": 1, "faq": 1}
    assert store.analytics_data(datetime.now(UTC) + timedelta(minutes=1)).conversation_ids == []


def test_audit_events_page_by_cursor(store: Store) -> None:
    for number in range(5):
        store.audit("agent", f"agt_{number % 2}", "conversation.claim", "conversation", f"conv_{number}")
    store.audit("operator", None, "retention.purge", detail={"deleted": 3})
    newest = store.audit_events(limit=4)
    assert [e.action for e in newest][:1] == ["retention.purge"] and newest[0].detail == {"deleted": 3}
    rest = store.audit_events(before_seq=newest[-1].seq, limit=4)
    assert len(newest) + len(rest) == 6 and newest[-1].seq > rest[0].seq
    assert {e.target_id for e in store.audit_events(actor_id="agt_1")} == {"conv_1", "conv_3"}
    assert newest[0].created_at.tzinfo is not None


def _claim_in_own_process(url: str, conversation_id: str, agent_id: str, barrier: Any) -> str:
    store = Store(url)  # each process: its own engine, pool and connections
    try:
        barrier.wait(timeout=120)
        try:
            return store.claim(conversation_id, agent_id)[0]
        except LifecycleConflict as conflict:
            return conflict.code
    finally:
        store.close()


def test_claims_from_six_processes_at_once_exactly_one_wins(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        claim_race(store, postgres_url)
    finally:
        store.close()


def claim_race(store: Store, postgres_url: str) -> None:
    processes = 6
    agents = [store.create_agent(f"agent{n}", "agent", "hash").id for n in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        for round_number in range(2):
            conversation, _ = store.create_conversation()
            store.add_user_message(conversation, "A person, please")
            store.request_handoff(conversation, "customer_request")
            barrier = manager.Barrier(processes)
            outcomes = pool.starmap(
                _claim_in_own_process, [(postgres_url, conversation, a, barrier) for a in agents], chunksize=1
            )
            assert sorted(outcomes) == ["already_assigned"] * (processes - 1) + ["claimed"], round_number
            winner = agents[outcomes.index("claimed")]
            record = store.conversation(conversation)
            assert record.status == "assigned" and record.assigned_agent_id == winner
            with store._sessions() as session:
                claims = session.scalar(
                    select(func.count())
                    .select_from(HandoffEvent)
                    .where(HandoffEvent.conversation_id == conversation, HandoffEvent.event == "claimed")
                )
            assert claims == 1


def test_lists_pick_the_same_rows_as_sqlite_under_a_limit(store: Store) -> None:
    """Waiting first (oldest request first), then the most recently updated: NULL ordering must not matter."""
    alice = store.create_agent("alice", "agent", "hash")
    returned, _ = store.create_conversation()
    store.request_handoff(returned, "customer_request")
    store.return_to_bot(returned, alice.id)  # requested once, long ago, back with the bot
    newer, _ = store.create_conversation()
    newest, _ = store.create_conversation()
    assert [r.id for r in store.list_conversations(("bot",), limit=2)] == [newest, newer]
    first, _ = store.create_conversation()
    second, _ = store.create_conversation()
    store.request_handoff(first, "fallback")
    store.request_handoff(second, "fallback")
    listed = [r.id for r in store.list_conversations(("bot", "waiting"), limit=3)]
    assert listed == [first, second, newest]


def test_times_read_as_utc_whatever_the_database_time_zone(postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'"))
    engine.dispose()
    store = Store(postgres_url)
    try:
        conversation, created = store.create_conversation()
        message = store.add_user_message(conversation, "hello")
        assert store.messages(conversation)[0].as_dict()["created_at"].endswith("+00:00")
        assert store.conversation(conversation).created_at.utcoffset() == timedelta(0)
        assert abs(store.conversation(conversation).created_at - created) < timedelta(seconds=1)
        assert message.created_at.utcoffset() == timedelta(0)
    finally:
        store.close()


def test_a_plain_postgresql_url_works_as_the_issue_writes_it(postgres_url: str) -> None:
    """``CHATBOT_DATABASE_URL=postgresql://…`` (no driver named): psycopg 3, the driver that is installed."""
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    assert plain.startswith("postgresql://")
    store = Store(plain)
    try:
        assert store.engine.dialect.driver == "psycopg"
        conversation, _ = store.create_conversation()
        assert store.conversation_exists(conversation)
    finally:
        store.close()
