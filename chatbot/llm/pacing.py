"""Stop starting generations that this machine cannot finish within the answer's time budget.

A generation that runs past ``generation_budget_ms`` is thrown away (the customer gets the
extractive answer instead), so on a machine too slow for the model every generated answer costs the
whole budget and yields nothing: on the 2-core CPU of docs/ every composed answer by the 135M model
ran late, while the extractive answers to the same turns were right more often
(``chatbot eval resolution``). A bank on a GPU, or with a faster remote server, finishes in time and
keeps generating.

``LatePacer`` is a circuit breaker over the last generations' outcomes: once ``trip_share`` of the
last ``window`` ran late it opens for ``cooldown_s`` (the engine answers extractively at once);
then one probe generation decides: finished in time closes it, late opens it again. The outcome of
a generation is only known at its end, so generations already running when it opens finish as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class LatePacer:
    def __init__(
        self,
        window: int = 8,
        cooldown_s: float = 300.0,
        trip_share: float = 0.75,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``window`` 0 never opens (every generation is attempted)."""
        self.window, self.cooldown_s, self.trip_share = window, cooldown_s, trip_share
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=max(window, 1))
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

    def record(self, late: bool) -> None:
        """The outcome of a generation that was started: ``late`` when it ran past its budget."""
        if self.window <= 0:
            return
        with self._lock:
            if self._open_until is not None and self._probing:
                self._probing = False
                if late:
                    self._open_until = self._clock() + self.cooldown_s
                    return
                self._open_until = None
                self._outcomes.clear()
                log.info("generation finishes within its budget again; generating")
                return
            if self._open_until is not None:
                return  # a generation that was already running when it opened
            self._outcomes.append(late)
            if len(self._outcomes) == self.window and sum(self._outcomes) >= self.trip_share * self.window:
                self._open_until = self._clock() + self.cooldown_s
                self._outcomes.clear()
                log.warning(
                    "generation keeps running past its time budget on this machine; answering extractively",
                    extra={"late": self.window, "cooldown_s": self.cooldown_s},
                )
