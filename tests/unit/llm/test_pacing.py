"""GenerationBreaker: generation is skipped while its text keeps being thrown away, and tried again later."""

from __future__ import annotations

from chatbot.llm.pacing import GenerationBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_when_three_in_four_of_the_last_generations_were_thrown_away() -> None:
    clock = Clock()
    breaker = GenerationBreaker(window=4, cooldown_s=60, clock=clock)
    for wasted in (True, False, True):
        assert breaker.allow()
        breaker.record(kept=not wasted)
    assert breaker.allow() and not breaker.open  # 2 of 3: not yet a full window
    breaker.record(kept=False)
    assert breaker.open and not breaker.allow()  # 3 of the last 4 were thrown away


def test_mostly_kept_never_opens() -> None:
    breaker = GenerationBreaker(window=4, cooldown_s=60, clock=Clock())
    for wasted in (True, False, True, False, False, True, False, True):
        breaker.record(kept=not wasted)
        assert breaker.allow()


def test_after_the_cooldown_one_probe_decides() -> None:
    clock = Clock()
    breaker = GenerationBreaker(window=2, cooldown_s=60, clock=clock)
    breaker.record(kept=False)
    breaker.record(kept=False)
    assert not breaker.allow()
    clock.now = 61
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record(kept=False)  # thrown away again: another cooldown
    assert not breaker.allow()
    clock.now = 122
    assert breaker.allow()
    breaker.record(kept=True)  # kept: generating again
    assert not breaker.open and breaker.allow() and breaker.allow()


def test_generations_already_running_when_it_opened_do_not_count() -> None:
    clock = Clock()
    breaker = GenerationBreaker(window=2, cooldown_s=60, clock=clock)
    breaker.record(kept=False)
    breaker.record(kept=False)
    breaker.record(kept=True)  # started before it opened: still open
    assert breaker.open and not breaker.allow()


def test_a_run_thrown_away_opens_it_before_the_window_is_full() -> None:
    breaker = GenerationBreaker(window=8, cooldown_s=60, clock=Clock(), run=3)
    breaker.record(kept=False)
    breaker.record(kept=False)
    assert breaker.allow()  # 2 in a row: not yet
    breaker.record(kept=False)
    assert breaker.open and not breaker.allow()  # 3 in a row, with 5 of the window still to come


def test_a_run_broken_by_a_kept_answer_does_not_open_it() -> None:
    breaker = GenerationBreaker(window=8, cooldown_s=60, clock=Clock(), run=3)
    for kept in (False, False, True, False, False, True):
        breaker.record(kept=kept)
        assert breaker.allow()


def test_window_zero_always_generates() -> None:
    breaker = GenerationBreaker(window=0, clock=Clock(), run=3)
    for _ in range(20):
        breaker.record(kept=False)
    assert breaker.allow() and not breaker.open
