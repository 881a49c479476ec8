import asyncio

import pytest

from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import BARE_REPLY, Engine, EngineOptions, complete_sentences
from chatbot.dialogue.grounding import check_grounding
from chatbot.errors import InvalidInput
from chatbot.schema import DeltaEvent, ErrorEvent, MessageEvent, StartEvent


def ask(engine: Engine, text: str, **options: object):  # type: ignore[no-untyped-def]
    return asyncio.run(engine.answer(text, options=EngineOptions(**options)))  # type: ignore[arg-type]


def test_confident_faq_match_is_answered_verbatim_with_its_document_as_source(engine: Engine) -> None:
    answer = ask(engine, "How much does it cost to send an international wire?")
    assert answer.kind == "faq"
    assert answer.text == "An outgoing international wire transfer costs $45."
    assert [s.id for s in answer.sources] == ["wires"]
    assert answer.sources[0].url == "https://bank.example/help/wires"


def test_faq_threshold_decides_between_verbatim_and_composed_answers(engine: Engine) -> None:
    question = "what's the fee to wire money to another country"
    score = max(h.score for h in engine.search(question) if h.passage.kind == "faq")
    strict = engine.settings.model_copy(update={"faq_threshold": min(score + 0.01, 1.0)})
    lenient = engine.settings.model_copy(update={"faq_threshold": score - 0.01})
    original = engine.settings
    try:
        engine.settings = lenient
        assert ask(engine, question).kind == "faq"
        engine.settings = strict
        assert ask(engine, question, generation=False).kind == "extractive"
    finally:
        engine.settings = original


def test_unrelated_question_is_refused_with_what_the_assistant_can_do(engine: Engine) -> None:
    answer = ask(engine, "Who won the football world cup in 1998?")
    assert answer.kind == "refusal"
    assert answer.intent is not None and answer.intent.name == "out_of_scope"
    assert answer.sources == []
    assert "accounts" in answer.text


def test_banking_question_the_knowledge_base_lacks_falls_back_and_offers_a_human(engine: Engine) -> None:
    answer = ask(engine, "Can I open a safe deposit box at your branch?")
    assert answer.kind == "fallback"
    assert answer.sources == []
    assert "member of our team" in answer.text


def test_extractive_answer_quotes_the_best_source(engine: Engine) -> None:
    answer = ask(engine, "how many free withdrawals can i make from my savings each month", generation=False)
    assert answer.kind == "extractive"
    assert "6 free withdrawals" in answer.text
    assert answer.sources[0].id == "savings"


@pytest.mark.parametrize(
    "question",
    [
        "what happens if my wire is late, who do I call",
        "how fast can I get a new card if I pay for faster shipping",
        "what hours is the branch open at the weekend",
    ],
)
def test_no_composed_answer_states_a_figure_missing_from_its_sources(engine: Engine, question: str) -> None:
    answer = ask(engine, question)
    assert answer.kind in {"generated", "extractive", "faq", "fallback"}
    if answer.kind in {"generated", "extractive"}:
        hits = engine.search(question, top_k=10)
        sources = [h.passage.text + " " + (h.passage.answer or "") for h in hits]
        assert check_grounding(answer.text, sources).supported, answer.text


def test_stream_is_start_deltas_then_message_and_deltas_spell_the_streamed_text(engine: Engine) -> None:
    async def collect() -> list[object]:
        return [event async for event in engine.respond("My card was stolen, what should I do?")]

    events = asyncio.run(collect())
    assert isinstance(events[0], StartEvent)
    assert isinstance(events[-1], MessageEvent)
    assert all(isinstance(e, DeltaEvent) for e in events[1:-1]) and len(events) > 2
    assert "".join(e.text for e in events[1:-1]) == events[-1].message.text  # type: ignore[attr-defined]
    assert events[-1].message.id == events[0].id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "empty_message"), ("   \n\t ", "empty_message"), ("x" * 2001, "message_too_long"),
     ("\x00\x01\x02 ?!", "unreadable_message"), (None, "invalid_text")],
)  # fmt: skip
def test_bad_input_gets_a_precise_error_event(engine: Engine, text: object, code: str) -> None:
    """The turn service validates once, before the engine: the same codes on every channel."""
    turns = TurnService(engine.settings, engine)

    async def collect() -> list[object]:
        return [event async for event in turns.ask(text)]

    events = asyncio.run(collect())
    assert len(events) == 1 and isinstance(events[0], ErrorEvent) and events[0].code == code
    with pytest.raises(InvalidInput):
        asyncio.run(turns.ask_answer(text))


@pytest.mark.parametrize(
    ("streamed", "complete", "rest"),
    [
        (
            "Deposits made by 9:00 p.m. ET are credited the same day. The next",
            ["Deposits made by 9:00 p.m. ET are credited the same day."],
            "The next",
        ),
        ("Deposits made by 9:00 p.m.", [], "Deposits made by 9:00 p.m."),
        ("Deposits made by 9:00 p.m. ET", [], "Deposits made by 9:00 p.m. ET"),
        ("A wire costs $30. It arrives the same day. Rest", ["A wire costs $30.", "It arrives the same day."], "Rest"),
        ("Cards work in the U.S. And abroad", [], "Cards work in the U.S. And abroad"),
    ],
)
def test_streamed_sentences_end_at_sentence_ends_not_at_abbreviations(
    streamed: str, complete: list[str], rest: str
) -> None:
    assert complete_sentences(streamed) == (complete, rest)


def test_a_bare_yes_or_no_is_not_an_answer() -> None:
    assert all(BARE_REPLY.match(text) for text in ("Yes.", "No.", " nope! ", "It depends."))
    assert not any(BARE_REPLY.match(text) for text in ("Yes, up to $250,000.", "No fee.", "Not in the US."))
