"""The turn service on its own: a fake engine and a SQLite store, no model, no web layer.

What a customer turn guarantees, whatever the channel: the text is validated once and stored
redacted before the engine runs; the engine gets the earlier turns as history and never the store;
the answer is stored before its ``message`` event; a handoff answer moves the conversation to a person.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from chatbot.agents.hub import InProcessHub
from chatbot.config import Settings
from chatbot.conversations.handoff import HandoffService
from chatbot.conversations.turns import TurnService
from chatbot.errors import InvalidInput, NotFound, RateLimited
from chatbot.limits import ConversationLimits, MemoryLimiter
from chatbot.schema import AnswerObject, DeltaEvent, EngineEvent, ErrorEvent, MessageEvent, SourceRef, StartEvent
from chatbot.store import Store


class FakeEngine:
    """Answers every message with a fixed kind; records what it was given."""

    def __init__(self, settings: Settings, kind: str = "faq", handoff: bool = False) -> None:
        self.settings, self.kind, self.handoff = settings, kind, handoff
        self.calls: list[tuple[str, list[str]]] = []
        self.cited: list[list[str]] = []
        self.passages: list[tuple[list[str], str | None]] = []

    async def respond(
        self,
        text: str,
        history: Sequence[str] = (),
        options: object = None,
        cited: Sequence[str] = (),
        passages: Sequence[str] = (),
        quoted_whole: str | None = None,
    ) -> AsyncIterator[EngineEvent]:
        self.calls.append((text, list(history)))
        self.cited.append(list(cited))
        self.passages.append((list(passages), quoted_whole))
        n = len(self.calls)
        yield StartEvent(id=f"msg_answer{n}")
        yield DeltaEvent(id=f"msg_answer{n}", text="An answer.")
        source = SourceRef(id=f"doc-{n}", title=f"Document {n}", passage=f"doc-{n}#section")
        answer = AnswerObject(id=f"msg_answer{n}", text="An answer.", kind=self.kind,  # type: ignore[arg-type]
                              handoff=self.handoff, sources=[source])  # fmt: skip
        yield MessageEvent(message=answer)


def turn_service(tmp_path: Path, **engine: Any) -> tuple[TurnService, FakeEngine, Store]:
    settings = Settings(data_dir=tmp_path, rate_limit_conversation_per_minute=3)
    store = Store(f"sqlite:///{tmp_path / 'turns.db'}")
    fake = FakeEngine(settings, **engine)
    handoff = HandoffService(settings, store, InProcessHub())
    limits = ConversationLimits(settings, MemoryLimiter())
    return TurnService(settings, fake, store, handoff, limits), fake, store  # type: ignore[arg-type]


def collect(stream: AsyncIterator[EngineEvent]) -> list[EngineEvent]:
    async def run() -> list[EngineEvent]:
        return [event async for event in stream]

    return asyncio.run(run())


def test_a_turn_stores_the_redacted_message_passes_history_and_stores_the_answer(tmp_path: Path) -> None:
    turns, engine, store = turn_service(tmp_path)
    conversation, _ = store.create_conversation("web", None)
    collect(turns.ask("how much is a wire?", conversation))
    events = collect(turns.ask("  my card 4111 1111 1111 1111 was stolen\x00 ", conversation))
    assert isinstance(events[0], StartEvent) and events[0].conversation_id == conversation
    assert isinstance(events[-1], MessageEvent) and events[-1].message.conversation_id == conversation
    assert engine.calls[-1] == ("my card [CARD ••••1111] was stolen", ["how much is a wire?"])
    assert engine.cited == [[], ["doc-1"]]  # a follow-up leans on what the previous answer cited
    # ...and on the passage it quoted; an entry answered whole (kind faq) is not to be returned whole again
    assert engine.passages == [([], None), (["doc-1#section"], "doc-1#section")]
    stored = store.messages(conversation)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert "4111" not in stored[2].text and stored[3].id == events[-1].message.id


def test_bad_text_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    turns, engine, store = turn_service(tmp_path)
    conversation, _ = store.create_conversation("web", None)
    events = collect(turns.ask("   ", conversation))
    assert len(events) == 1 and isinstance(events[0], ErrorEvent) and events[0].code == "empty_message"
    with pytest.raises(InvalidInput):
        asyncio.run(turns.accept(conversation, "x" * 2001))
    assert store.messages(conversation) == [] and engine.calls == []


def test_the_per_conversation_limit_refuses_without_storing(tmp_path: Path) -> None:
    turns, _, store = turn_service(tmp_path)
    conversation, _ = store.create_conversation("web", None)
    for _ in range(3):
        asyncio.run(turns.accept(conversation, "hello"))
    with pytest.raises(RateLimited):
        asyncio.run(turns.accept(conversation, "hello"))
    assert len(store.messages(conversation)) == 3


def test_an_unknown_conversation_is_not_found(tmp_path: Path) -> None:
    turns, _, _ = turn_service(tmp_path)
    with pytest.raises(NotFound):
        asyncio.run(turns.accept("conv_missing", "hello"))


def test_a_handoff_answer_puts_the_conversation_with_a_person_and_the_assistant_falls_silent(tmp_path: Path) -> None:
    turns, engine, store = turn_service(tmp_path, kind="handoff", handoff=True)
    conversation, _ = store.create_conversation("web", None)
    collect(turns.ask("I want a person", conversation))
    assert store.conversation(conversation).status == "waiting"
    assert collect(turns.ask("hello?", conversation)) == [] and len(engine.calls) == 1
    assert [m.role for m in store.messages(conversation)] == ["user", "assistant", "system", "user"]


def test_without_a_conversation_the_text_is_redacted_and_there_is_no_history(tmp_path: Path) -> None:
    turns, engine, _ = turn_service(tmp_path)
    answer = asyncio.run(turns.ask_answer("call me at jane.doe@example.com"))
    assert answer.conversation_id is None and engine.calls == [("call me at [EMAIL]", [])]


def test_after_an_agent_spoke_the_assistants_earlier_sources_are_not_passed(tmp_path: Path) -> None:
    turns, engine, store = turn_service(tmp_path)
    conversation, _ = store.create_conversation("web", None)
    collect(turns.ask("how much is a wire?", conversation))
    store.add_message(conversation, "agent", "Hi, I'm Dana from the wires team.")
    collect(turns.ask("and the cutoff?", conversation))
    assert engine.cited[-1] == [] and engine.calls[-1][1] == ["how much is a wire?"]
