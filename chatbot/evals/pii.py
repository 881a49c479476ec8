"""`chatbot eval pii`: recall and false-positive rate of the PII redactor on ``evaluation/pii.jsonl``.

The corpus holds hand-written banking-chat messages, about half with personal data (every kind and
format the redactor claims) and half without any but with look-alikes (amounts, dates, order and
reference numbers, the bank's own phone number). Each line names its ``split``: rules are tuned on
``dev`` only; ``test`` is reported, never tuned on.

Definitions:
- **recall** (entity level): an expected entity counts as found when every letter and digit of it lies
  inside a detected entity *of the same kind*; ``redacted`` also accepts a detection of another kind
  (the data is hidden, under the wrong label).
- **false-positive rate**: messages without personal data in which anything was redacted / messages
  without personal data.
- **spurious entities**: detections overlapping no expected entity, in any message.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatbot.config import PROJECT_ROOT
from chatbot.guard.pii import KINDS, Entity, find_pii
from chatbot.machine import cpu_name

DEFAULT_CORPUS = PROJECT_ROOT / "evaluation" / "pii.jsonl"


@dataclass(frozen=True)
class Expected:
    kind: str
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class Case:
    id: str
    split: str
    text: str
    expected: tuple[Expected, ...]


def load_corpus(path: Path = DEFAULT_CORPUS) -> list[Case]:
    """Read the corpus; each expected value must occur exactly once in its message."""
    cases: list[Case] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        expected = []
        for item in row["pii"]:
            value, kind = item["value"], item["type"]
            if kind not in KINDS or row["text"].count(value) != 1:
                raise ValueError(f"{path}:{number}: {kind!r} {value!r} must be a known kind occurring once")
            start = row["text"].index(value)
            expected.append(Expected(kind, value, start, start + len(value)))
        cases.append(Case(row["id"], row["split"], row["text"], tuple(expected)))
    return cases


def _covered(expected: Expected, text: str, detected: list[Entity], same_kind: bool) -> bool:
    spans = [(e.start, e.end) for e in detected if not same_kind or e.kind == expected.kind]
    positions = [i for i in range(expected.start, expected.end) if text[i].isalnum()]
    return all(any(s <= i < e for s, e in spans) for i in positions)


@dataclass
class KindScores:
    expected: int = 0
    found: int = 0
    redacted: int = 0

    @property
    def recall(self) -> float | None:
        return round(self.found / self.expected, 4) if self.expected else None


@dataclass
class SplitReport:
    split: str
    messages: int
    with_pii: int
    without_pii: int
    entities: int
    found: int
    redacted: int
    recall: float
    redacted_recall: float
    false_positive_messages: int
    false_positive_rate: float
    spurious_entities: int
    per_kind: dict[str, dict[str, Any]]
    misses: list[dict[str, Any]] = field(default_factory=list)
    false_positives: list[dict[str, Any]] = field(default_factory=list)


def evaluate(cases: list[Case], split: str) -> SplitReport:
    """Score the redactor on the cases of one split (``all`` for every case)."""
    chosen = [c for c in cases if split == "all" or c.split == split]
    kinds = {kind: KindScores() for kind in KINDS}
    misses: list[dict[str, Any]] = []
    false_positives: list[dict[str, Any]] = []
    fp_messages = spurious = 0
    for case in chosen:
        detected = find_pii(case.text)
        for expected in case.expected:
            scores = kinds[expected.kind]
            scores.expected += 1
            strict = _covered(expected, case.text, detected, same_kind=True)
            loose = strict or _covered(expected, case.text, detected, same_kind=False)
            scores.found += strict
            scores.redacted += loose
            if not strict:
                misses.append({"id": case.id, "kind": expected.kind, "value": expected.value, "redacted": loose})
        extra = [e for e in detected if not any(e.start < x.end and x.start < e.end for x in case.expected)]
        spurious += len(extra)
        if extra:
            false_positives.append(
                {"id": case.id, "text": case.text, "detected": [[e.kind, case.text[e.start : e.end]] for e in extra]}
            )
        if not case.expected and detected:
            fp_messages += 1
    entities = sum(k.expected for k in kinds.values())
    found = sum(k.found for k in kinds.values())
    redacted = sum(k.redacted for k in kinds.values())
    clean = sum(1 for c in chosen if not c.expected)
    return SplitReport(
        split=split,
        messages=len(chosen),
        with_pii=len(chosen) - clean,
        without_pii=clean,
        entities=entities,
        found=found,
        redacted=redacted,
        recall=round(found / entities, 4) if entities else 0.0,
        redacted_recall=round(redacted / entities, 4) if entities else 0.0,
        false_positive_messages=fp_messages,
        false_positive_rate=round(fp_messages / clean, 4) if clean else 0.0,
        spurious_entities=spurious,
        per_kind={
            kind: {"expected": s.expected, "found": s.found, "redacted": s.redacted, "recall": s.recall}
            for kind, s in kinds.items()
        },
        misses=misses,
        false_positives=false_positives,
    )


@dataclass
class PiiReport:
    corpus: str
    splits: dict[str, SplitReport]
    machine: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [f"PII redaction on {self.corpus} ({self.machine['cpu']})", ""]
        lines += [
            "| split | messages (with / without PII) | entities | recall | redacted (any kind) "
            "| false-positive rate | spurious entities |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.splits.values():
            lines.append(
                f"| {r.split} | {r.messages} ({r.with_pii} / {r.without_pii}) | {r.entities} | {r.recall:.2%} "
                f"| {r.redacted_recall:.2%} | {r.false_positive_rate:.2%} ({r.false_positive_messages}) "
                f"| {r.spurious_entities} |"
            )
        lines += ["", "| kind | " + " | ".join(self.splits) + " |", "|---|" + "---|" * len(self.splits)]
        for kind in KINDS:
            cells = []
            for r in self.splits.values():
                s = r.per_kind[kind]
                cells.append(f"{s['found']}/{s['expected']}" + (f" ({s['recall']:.0%})" if s["expected"] else ""))
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        for r in self.splits.values():
            for miss in r.misses:
                lines.append(f"- {r.split} miss {miss['id']}: {miss['kind']} {miss['value']!r}")
            for fp in r.false_positives:
                lines.append(f"- {r.split} false positive {fp['id']}: {fp['detected']}")
        return "\n".join(lines)


def run_pii_evaluation(corpus: Path = DEFAULT_CORPUS, splits: tuple[str, ...] = ("dev", "test")) -> PiiReport:
    cases = load_corpus(corpus)
    try:
        shown = str(corpus.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        shown = str(corpus)
    return PiiReport(
        corpus=shown,
        splits={split: evaluate(cases, split) for split in splits},
        machine={"cpu": cpu_name()},
    )
