"""Training and evaluation data for the intent classifier, read from ``data/nlu`` (see its README).

The product classifier learns from BANKING77 ``train.csv``, the CLINC150 ``train``/``val`` splits
(mapped intents, greetings/goodbyes/thanks, and everything else as ``out_of_scope``) and the
hand-written ``human_agent`` examples. Test splits are read only by the evaluation functions.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chatbot.nlu.labels import (
    BANK_OTHER,
    CLINC_BANK_DOMAINS,
    CLINC_BANK_EXTRA,
    CLINC_TO_INTENT,
    CLINC_UNUSED,
    MODEL_LABELS,
    OUT_OF_SCOPE,
)

CLINC_OOS_LABEL = "oos"
GENUINE_OOS = "clinc150-oos"  # Example.source of CLINC's own out-of-scope examples (+ "-train"/"-val")


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # "banking77", "clinc150", "clinc150-oos-train|val", "hand-written"


def read_banking77(data_dir: Path, split: str) -> list[Example]:
    if split not in {"train", "test"}:
        raise ValueError(f"BANKING77 has no {split!r} split")
    with (data_dir / "banking77" / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return [Example(row["text"].strip(), row["category"], "banking77") for row in csv.DictReader(handle)]


@lru_cache(maxsize=4)
def _json(path: Path) -> dict[str, list[list[str]]]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def clinc_bank_intents(data_dir: Path) -> frozenset[str]:
    domains: dict[str, list[str]] = json.loads((data_dir / "clinc150" / "domains.json").read_text(encoding="utf-8"))
    return frozenset(name for domain in CLINC_BANK_DOMAINS for name in domains[domain])


def read_clinc_full(data_dir: Path, split: str) -> list[tuple[str, str]]:
    """CLINC150 ``data_full.json``: (text, intent) with out-of-scope examples labelled ``oos``."""
    if split == "test":
        raise ValueError("the CLINC150 test split is for evaluation only; use read_clinc_bank_eval")
    data = _json(data_dir / "clinc150" / "data_full.json")
    rows = [(t, label) for t, label in data[split]]
    rows += [(t, CLINC_OOS_LABEL) for t, _ in data[f"oos_{split}"]]
    return rows


def read_clinc_bank_eval(data_dir: Path, split: str) -> list[tuple[str, str]]:
    """The banking + credit-card subset with out-of-scope (``banking_creditcards_plus_oos.json``)."""
    data = _json(data_dir / "clinc150" / "banking_creditcards_plus_oos.json")
    return [(t, label) for t, label in data[split]] + [(t, CLINC_OOS_LABEL) for t, _ in data[f"oos_{split}"]]


def read_hand_written(data_dir: Path) -> list[Example]:
    lines = (data_dir / "human_agent.txt").read_text(encoding="utf-8").splitlines()
    return [
        Example(line.strip(), "human_agent", "hand-written")
        for line in lines
        if line.strip() and not line.startswith("#")
    ]


def clinc_as_product_example(text: str, intent: str, bank_intents: frozenset[str]) -> Example | None:
    """Map one CLINC150 example onto the product's intents (None: not used, see labels.py)."""
    if intent in CLINC_TO_INTENT:
        return Example(text, CLINC_TO_INTENT[intent], "clinc150")
    if intent in bank_intents or intent in CLINC_BANK_EXTRA:
        return Example(text, BANK_OTHER, "clinc150")
    if intent in CLINC_UNUSED:
        return None
    return Example(text, OUT_OF_SCOPE, "clinc150")


OOS_PER_CLINC_INTENT = 40


def product_training_set(data_dir: Path, oos_per_intent: int = OOS_PER_CLINC_INTENT, seed: int = 13) -> list[Example]:
    """Everything the product classifier learns from (no test split of anything).

    Out-of-scope examples are sampled, ``oos_per_intent`` from each of the ~110 non-bank CLINC150
    intents (plus all of CLINC's own ``oos`` train/val examples): the variety of topics matters more
    than 120 paraphrases of each, and a third of the sentences keeps a fresh build within minutes.
    """
    examples = read_banking77(data_dir, "train") + read_hand_written(data_dir)
    bank = clinc_bank_intents(data_dir)
    by_intent: dict[str, list[Example]] = {}
    for split in ("train", "val"):
        for text, intent in read_clinc_full(data_dir, split):
            mapped = clinc_as_product_example(text, intent, bank)
            if mapped is not None and intent == CLINC_OOS_LABEL:
                mapped = Example(text, mapped.label, f"{GENUINE_OOS}-{split}")
            if mapped is not None:
                by_intent.setdefault(intent, []).append(mapped)
    rng = random.Random(seed)
    for intent in sorted(by_intent):
        group = by_intent[intent]
        if group[0].label in (OUT_OF_SCOPE, BANK_OTHER) and intent != CLINC_OOS_LABEL and len(group) > oos_per_intent:
            group = rng.sample(group, oos_per_intent)
        examples.extend(group)
    unknown = {e.label for e in examples} - set(MODEL_LABELS)
    if unknown:
        raise ValueError(f"training labels outside the intent inventory: {sorted(unknown)}")
    return examples


def fingerprint(data_dir: Path) -> str:
    """Hash of the files training reads, so a stale artifact is noticed and rebuilt."""
    digest = hashlib.sha256()
    for name in ("banking77/train.csv", "clinc150/data_full.json", "clinc150/domains.json", "human_agent.txt"):
        digest.update(name.encode())
        digest.update((data_dir / name).read_bytes())
    return digest.hexdigest()[:16]
