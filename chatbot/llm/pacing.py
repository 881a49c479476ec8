"""Stop starting generations whose text keeps being thrown away.

A generated answer is sent only when it finishes within ``generation_budget_ms``, passes the claim
check sentence by sentence and says more than "Yes."; otherwise the customer gets the extractive
answer, after waiting for the generation. On the 2-core CPU of docs/ the 135M model's text was
thrown away on almost every composed answer (cut off by the budget, or a sentence failed the check)
while the extractive answers to the same turns were right more often (``chatbot eval resolution``):
every generation there only adds 1.5-2.5 s. A bank on a GPU, or with a larger or faster model whose
text is kept, keeps generating.

``GenerationBreaker`` is a circuit breaker over the last generations' outcomes: once ``trip_share``
of the last ``window`` were thrown away it opens for ``cooldown_s`` (the engine answers extractively
at once); then one probe generation decides: kept closes it, thrown away opens it again. The outcome
of a generation is only known at its end, so generations already running when it opens finish as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class GenerationBreaker:
    def __init__(
        self,
        window: int = 8,
        cooldown_s: float = 300.0,
        trip_share: float = 0.75,
        clock: Callable[[], float] = time.monotonic,
        run: int = 0,
    ) -> None:
        """``window`` 0 never opens (every generation is attempted). ``run``: this many thrown away in a
        row open it without waiting for a full window, so that a fresh process on a machine too slow to
        generate in time does not make its first ``window`` customers wait (0: the window alone)."""
        self.window, self.cooldown_s, self.trip_share, self.run = window, cooldown_s, trip_share, run
        self._clock = clock
        self._wasted: deque[bool] = deque(maxlen=max(window, 1))
        self._open_until: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """Whether generation is being skipped now."""
        with self._lock:
            return self._open_until is not None and self._clock() < self._open_until

    def allow(self) -> bool:
        """Whether to start a generation now; after the cooldown, one probe at a time is let through."""
        if self.window <= 0:
            return True
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def record(self, kept: bool) -> None:
        """The outcome of a generation that was started: ``kept`` when its text was the answer."""
        if self.window <= 0:
            return
        with self._lock:
            if self._open_until is not None and self._probing:
                self._probing = False
                if not kept:
                    self._open_until = self._clock() + self.cooldown_s
                    return
                self._open_until = None
                self._wasted.clear()
                log.info("generated answers are kept again; generating")
                return
            if self._open_until is not None:
                return  # a generation that was already running when it opened
            self._wasted.append(not kept)
            in_a_row = 0 < self.run <= len(self._wasted) and all(list(self._wasted)[-self.run :])
            if in_a_row or (len(self._wasted) == self.window and sum(self._wasted) >= self.trip_share * self.window):
                self._open_until = self._clock() + self.cooldown_s
                self._wasted.clear()
                log.warning(
                    "generated answers keep being thrown away on this machine; answering extractively",
                    extra={"window": self.window, "cooldown_s": self.cooldown_s},
                )
