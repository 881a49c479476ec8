"""`chatbot eval claims`: precision and recall of the claim check on hand-labelled sentences.

``evaluation/claims.jsonl`` holds answer sentences written the way the generator writes them, each
with the sources it would have been given and a label: ``supported`` (verbatim or paraphrased
facts, comparisons of two products, courtesy) or ``unsupported`` (a figure moved to another
product, an invented figure, a negation flipped, a sentence that only repeats the question). The
unsupported sentences are the positive class: recall is the share of them the check stops,
precision the share of stopped sentences that deserved it (a false alarm costs a generated answer,
which falls back to the extractive one). The old figure-only check (``check_grounding``) is
measured on the same sentences, as the baseline the claim check replaces.

A line: ``{"id", "sentence", "sources": [passage id or document id, ...], "question"?: str,
"source_texts"?: [str, ...], "label": "supported" | "unsupported", "kind": str, "split"?: str}``. A
document id stands for all of that document's chunks, as a retrieval context of its sections would.
``split``: ``tuning`` sentences were used while the check was built; ``heldout`` ones were written
after it was frozen, from documents the tuning sentences do not use, and measured once.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.dialogue.grounding import check_claim, check_grounding, product_names
from chatbot.knowledge.index import KnowledgeIndex

CLAIMS_SET = PROJECT_ROOT / "evaluation" / "claims.jsonl"
LABELS = ("supported", "unsupported")


@dataclass(frozen=True)
class LabelledClaim:
    id: str
    sentence: str
    sources: tuple[str, ...]
    label: str
    kind: str
    question: str | None = None
    source_texts: tuple[str, ...] = ()
    split: str = ""


def load_claims(path: Path = CLAIMS_SET) -> list[LabelledClaim]:
    claims = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("label") not in LABELS:
            raise ValueError(f"{path}:{number}: label must be one of {LABELS}")
        if not record.get("sources") and not record.get("source_texts"):
            raise ValueError(f"{path}:{number}: no sources")
        claims.append(
            LabelledClaim(
                id=record["id"],
                sentence=record["sentence"],
                sources=tuple(record.get("sources", ())),
                label=record["label"],
                kind=record["kind"],
                question=record.get("question"),
                source_texts=tuple(record.get("source_texts", ())),
                split=record.get("split", ""),
            )
        )
    return claims


def source_texts(index: KnowledgeIndex, ids: tuple[str, ...]) -> list[str]:
    """Passage texts for passage ids, or every chunk of a document for a document id."""
    texts = []
    for source in ids:
        if source in index.by_id:
            passage = index.passages[index.by_id[source]]
            texts.append(passage.text + (f"\n{passage.answer}" if passage.answer else ""))
            continue
        chunks = [p.text for p in index.passages if p.kind == "chunk" and p.source_id == source]
        if not chunks:
            raise ValueError(f"unknown source {source!r} (neither a passage id nor a document id)")
        texts.extend(chunks)
    return texts


@dataclass
class ClaimsReport:
    path: str
    sentences: int
    checks: dict[str, dict[str, float]]  # check → precision, recall, f1, false_positive_rate
    kinds: dict[str, dict[str, Any]]  # kind → label, n, flagged share per check
    reasons: dict[str, dict[str, int]]  # kind → the claim check's reasons
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"Claim check on {self.path}: {self.sentences} labelled sentences (unsupported = positive class)",
            "",
            "| check | precision | recall | F1 | supported sentences flagged |",
            "|---|---|---|---|---|",
        ]
        for name, row in self.checks.items():
            lines.append(
                f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
                f"{row['false_positive_rate']:.1%} |"
            )
        lines += [
            "",
            "By kind: the share flagged (recall for unsupported kinds, false alarms for supported ones)",
            "",
            "| kind | label | sentences | claim check | figure check (old) | claim check's reasons |",
            "|---|---|---|---|---|---|",
        ]
        for kind, row in self.kinds.items():
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.reasons[kind].items(), key=lambda x: -x[1]))
            lines.append(
                f"| {kind} | {row['label']} | {row['n']} | {row['claim']:.0%} | {row['figure']:.0%} | {reasons} |"
            )
        if self.errors:
            lines += ["", "Misjudged by the claim check:", ""]
            lines += [f"- {e['id']} ({e['kind']}, {e['reason']}): {e['sentence']}" for e in self.errors]
        return "\n".join(lines)


def _scores(pairs: list[tuple[bool, bool]]) -> dict[str, float]:
    """Precision, recall, F1 with the unsupported label as positive; pairs are (actual, flagged)."""
    tp = sum(a and f for a, f in pairs)
    fp = sum(f and not a for a, f in pairs)
    fn = sum(a and not f for a, f in pairs)
    negatives = sum(not a for a, _ in pairs)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "false_positive_rate": fp / max(1, negatives)}


def run_claims_evaluation(settings: Settings, path: Path = CLAIMS_SET) -> ClaimsReport:
    claims = load_claims(path)
    index = KnowledgeIndex.load(settings.data_dir)
    names = product_names(Path(settings.knowledge_dir))
    claim_pairs: list[tuple[bool, bool]] = []
    by_split: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    figure_pairs: list[tuple[bool, bool]] = []
    by_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    labels: dict[str, str] = {}
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    errors = []
    for claim in claims:
        texts = list(claim.source_texts) + source_texts(index, claim.sources)
        verdict = check_claim(claim.sentence, texts, claim.question, names=names)
        flagged_claim = not verdict.supported
        flagged_figure = not check_grounding(claim.sentence, texts).supported
        actual = claim.label == "unsupported"
        claim_pairs.append((actual, flagged_claim))
        if claim.split:
            by_split[claim.split].append((actual, flagged_claim))
        figure_pairs.append((actual, flagged_figure))
        by_kind[claim.kind].append((flagged_claim, flagged_figure))
        labels[claim.kind] = claim.label
        reasons[claim.kind][verdict.reason] += 1
        if actual != flagged_claim:
            errors.append({"id": claim.id, "kind": claim.kind, "reason": verdict.reason, "sentence": claim.sentence})
    kinds = {
        kind: {
            "label": labels[kind],
            "n": len(rows),
            "claim": sum(c for c, _ in rows) / len(rows),
            "figure": sum(f for _, f in rows) / len(rows),
        }
        for kind, rows in sorted(by_kind.items(), key=lambda item: (labels[item[0]], item[0]))
    }
    return ClaimsReport(
        path=str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path),
        sentences=len(claims),
        checks={
            "claim check (check_claim)": _scores(claim_pairs),
            **{f"claim check, {split} sentences ({len(rows)})": _scores(rows) for split, rows in by_split.items()},
            "figure check (check_grounding)": _scores(figure_pairs),
        },
        kinds=kinds,
        reasons={kind: dict(counter) for kind, counter in reasons.items()},
        errors=errors,
    )
