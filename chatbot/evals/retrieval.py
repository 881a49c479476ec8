"""`chatbot eval retrieval`: retrieval alone, fast (no generator, no classifier).

Reported on the answer dev sets (``evaluation/dev_bank.jsonl`` + ``dev_cfpb.jsonl``): entry
recall@1/@3 (the top hits include the gold FAQ entry) and document recall@1/@3 (the gold entry's
source), with :func:`chatbot.evals.answers.retrieval_metrics`, so the figures are the same as
``chatbot eval answers``'; on the follow-up turns of ``evaluation/dev_dialogue.jsonl``, document
recall@1/@3 of the query as resolved by :func:`chatbot.dialogue.followup.resolve`, as
``chatbot eval dialogue`` measures it. Also: how often a ``cfpb-…`` entry outranks the bank's own
content on a bank question, and the latency of one search (p50/p95).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.dialogue.followup import resolve
from chatbot.evals.answers import DEFAULT_SETS, DevQuestion, load_dev_set, retrieval_metrics
from chatbot.evals.metrics import percentile
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import KnowledgeIndex
from chatbot.knowledge.retriever import Hit, Retriever

DIALOGUE_SET = PROJECT_ROOT / "evaluation" / "dev_dialogue.jsonl"


class RetrievalBench:
    """The index and retriever the engine would build, without the generator or the classifier.

    It has the two members :func:`retrieval_metrics` uses (``index`` and ``search``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedder = Embedder(settings.embedding_model)
        self.index = KnowledgeIndex.load(settings.data_dir)
        self.retriever = Retriever.from_settings(self.index, self.embedder, settings)

    def search(
        self, query: str, top_k: int | None = None, mode: str | None = None, vector: np.ndarray | None = None
    ) -> list[Hit]:
        return self.retriever.search(
            query,
            top_k or self.settings.retrieval_top_k,
            mode=(mode or self.settings.retrieval_mode),  # type: ignore[arg-type]
            vector=vector,
        )


@dataclass
class RetrievalReport:
    sets: list[str]
    questions: int
    rows: dict[str, dict[str, float]]
    followup: dict[str, float]
    cfpb_over_bank: dict[str, float]
    latency_ms: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"Dev sets: {', '.join(self.sets)} — {self.questions} answerable questions; "
            f"follow-up turns of evaluation/dev_dialogue.jsonl: {self.followup.get('turns', 0):.0f}.",
            "",
            "| retrieval | entry recall@1 | entry recall@3 | document recall@1 | document recall@3 "
            "| follow-up doc@1 | follow-up doc@3 |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in self.rows.items():
            follow = (
                f"{self.followup['recall@1']:.3f} | {self.followup['recall@3']:.3f}" if name == "hybrid" else "– | –"
            )
            lines.append(
                f"| {name} | {r['recall@1']:.3f} | {r['recall@3']:.3f} | {r['doc@1']:.3f} | {r['doc@3']:.3f} "
                f"| {follow} |"
            )
        c = self.cfpb_over_bank
        lines += [
            "",
            f"Bank questions (gold a Kestrel entry) whose top hit is an Ask CFPB entry: {c['count']:.0f} of "
            f"{c['questions']:.0f}. Search latency p50 {self.latency_ms['p50']:.0f} ms, "
            f"p95 {self.latency_ms['p95']:.0f} ms.",
        ]
        return "\n".join(lines)


def followup_recall(bench: RetrievalBench, path: Path = DIALOGUE_SET) -> dict[str, float]:
    """Document recall on the follow-up turns with gold ids, on the query as resolved."""
    from chatbot.evals.dialogue import load_conversations

    hits1 = hits3 = total = 0
    for conversation in load_conversations(path):
        previous: list[str] = []
        for turn in conversation.turns:
            if previous and turn.followup and turn.gold:
                query = resolve(turn.text, previous).query
                sources = [h.passage.source_id for h in bench.search(query, top_k=3)]
                total += 1
                hits1 += bool(sources) and sources[0] in turn.gold
                hits3 += any(s in turn.gold for s in sources)
            previous.append(turn.text)
    n = max(1, total)
    return {"recall@1": hits1 / n, "recall@3": hits3 / n, "turns": float(total)}


def cfpb_over_bank(bench: RetrievalBench, questions: Sequence[DevQuestion]) -> dict[str, float]:
    bank = [q for q in questions if q.answer_id and not q.answer_id.startswith("cfpb-")]
    count = 0
    for question in bank:
        hits = bench.search(question.question, top_k=1)
        count += bool(hits) and hits[0].passage.source_id.startswith("cfpb-")
    return {"count": float(count), "questions": float(len(bank))}


def run_retrieval_evaluation(
    settings: Settings, sets: Sequence[Path] = DEFAULT_SETS, modes: Sequence[str] = ("hybrid",)
) -> RetrievalReport:
    bench = RetrievalBench(settings)
    bench.embedder.warm_up()
    questions = [q for path in sets for q in load_dev_set(path)]
    answerable = [q for q in questions if q.answer_id]
    rows = {mode: retrieval_metrics(bench, questions, mode) for mode in modes}  # type: ignore[arg-type]
    timings = []
    for question in answerable[:60]:
        started = time.perf_counter()
        bench.search(question.question)
        timings.append((time.perf_counter() - started) * 1000)
    return RetrievalReport(
        sets=[str(p.relative_to(PROJECT_ROOT)) if p.is_relative_to(PROJECT_ROOT) else str(p) for p in sets],
        questions=len(answerable),
        rows=rows,
        followup=followup_recall(bench),
        cfpb_over_bank=cfpb_over_bank(bench, questions),
        latency_ms={"p50": percentile(timings, 50), "p95": percentile(timings, 95)},
    )
