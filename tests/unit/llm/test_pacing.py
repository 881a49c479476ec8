"""LatePacer: generation is skipped while it keeps running past its budget, and tried again later."""

from __future__ import annotations

from chatbot.llm.pacing import LatePacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_when_three_in_four_of_the_last_generations_ran_late() -> None:
    clock = Clock()
    pacer = LatePacer(window=4, cooldown_s=60, clock=clock)
    for late in (True, False, True):
        assert pacer.allow()
        pacer.record(late)
    assert pacer.allow() and not pacer.open  # 2 of 3: not yet a full window
    pacer.record(True)
    assert pacer.open and not pacer.allow()  # 3 of the last 4 ran late


def test_mostly_in_time_never_opens() -> None:
    pacer = LatePacer(window=4, cooldown_s=60, clock=Clock())
    for late in (True, False, True, False, False, True, False, True):
        pacer.record(late)
        assert pacer.allow()


def test_after_the_cooldown_one_probe_decides() -> None:
    clock = Clock()
    pacer = LatePacer(window=2, cooldown_s=60, clock=clock)
    pacer.record(True)
    pacer.record(True)
    assert not pacer.allow()
    clock.now = 61
    assert pacer.allow()  # the probe
    assert not pacer.allow()  # only one at a time
    pacer.record(True)  # late again: another cooldown
    assert not pacer.allow()
    clock.now = 122
    assert pacer.allow()
    pacer.record(False)  # finished in time: generating again
    assert not pacer.open and pacer.allow() and pacer.allow()


def test_generations_already_running_when_it_opened_do_not_count() -> None:
    clock = Clock()
    pacer = LatePacer(window=2, cooldown_s=60, clock=clock)
    pacer.record(True)
    pacer.record(True)
    pacer.record(False)  # started before it opened: still open
    assert pacer.open and not pacer.allow()


def test_window_zero_always_generates() -> None:
    pacer = LatePacer(window=0, clock=Clock())
    for _ in range(20):
        pacer.record(True)
    assert pacer.allow() and not pacer.open
