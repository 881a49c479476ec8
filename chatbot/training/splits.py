"""The one hold-out split of the FAQ pairs, shared by fine-tuning and by the evaluation.

Fine-tuning on every FAQ pair and then scoring the model on those same pairs would only measure
memorisation, so a fixed tenth of the FAQ entries never reaches a training step. Membership is
decided by each entry's **id alone** (a SHA-256 of ``"{seed}:{id}"``, bucketed into 1,000 slots),
not by its position in a file or by the other ids present. That makes the split:

* reproducible across machines and Python versions (no ``hash()`` randomisation, no RNG state);
* stable as the knowledge base grows: adding or removing an entry never moves another entry
  between the training and the held-out side, so an adapter trained last month is still evaluated
  only on pairs it never saw;
* identical in ``chatbot train generator``, ``chatbot train embedder`` and ``chatbot eval answers``,
  which all call :func:`holdout_ids` with the defaults below.

The held-out share is ``fraction`` in expectation (about 10 % of a large set); a tiny set such as
the test fixture may hold out none or one entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

DEFAULT_FRACTION = 0.1
DEFAULT_SEED = 13
_BUCKETS = 1000


def holdout_bucket(entry_id: str, seed: int = DEFAULT_SEED) -> int:
    """The entry's slot in ``[0, 1000)``; entries whose slot is below ``fraction * 1000`` are held out."""
    digest = hashlib.sha256(f"{seed}:{entry_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


def is_held_out(entry_id: str, fraction: float = DEFAULT_FRACTION, seed: int = DEFAULT_SEED) -> bool:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], not {fraction}")
    return holdout_bucket(entry_id, seed) < round(fraction * _BUCKETS)


def holdout_ids(ids: Iterable[str], fraction: float = DEFAULT_FRACTION, seed: int = DEFAULT_SEED) -> set[str]:
    """The ids of ``ids`` that training must never see and evaluation scores on."""
    return {entry_id for entry_id in ids if is_held_out(entry_id, fraction, seed)}
