"""`chatbot eval answers`: the development-set evaluation of the whole answer path.

Every question goes through ``Engine.answer`` (the customer path), under a few variants that
isolate one choice each: the fine-tuned vs the base generator, the grounding check on vs off,
hybrid vs dense retrieval. Reported per variant: retrieval recall@1/@3, the share of each answer
kind, ROUGE-L against the gold answer, the unsupported-figure rate (answers stating a figure that
none of their cited sources contains; the goal is 0) and p50/p95 latency per kind. The generator
is also measured alone on the held-out FAQ pairs, where the FAQ route is switched off so that
every answer is generated from retrieved passages.
"""

from __future__ import annotations

import asyncio
import json
import math
import platform
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine, EngineOptions
from chatbot.dialogue.grounding import check_grounding
from chatbot.evals.metrics import percentile, rouge_l
from chatbot.knowledge.index import KnowledgeIndex
from chatbot.machine import cpu_name
from chatbot.schema import AnswerObject

DEFAULT_SETS = [PROJECT_ROOT / "evaluation" / "dev_bank.jsonl", PROJECT_ROOT / "evaluation" / "dev_cfpb.jsonl"]
KINDS = ("faq", "generated", "extractive", "fallback")


@dataclass(frozen=True)
class DevQuestion:
    id: str
    question: str
    answer_id: str | None


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    fine_tuned: bool
    grounding: bool
    retrieval: str


VARIANTS = [
    Variant("product", "fine-tuned · grounding on · hybrid (default)", True, True, "hybrid"),
    Variant("base", "base generator · grounding on · hybrid", False, True, "hybrid"),
    Variant("no-grounding", "fine-tuned · grounding off · hybrid", True, False, "hybrid"),
    Variant("dense", "fine-tuned · grounding on · dense only", True, True, "dense"),
]


@dataclass
class VariantResult:
    label: str
    questions: int
    kinds: dict[str, float]
    rouge_l: float
    unsupported_rate: float
    unanswerable_fallback: float
    latency: dict[str, dict[str, float]]
    examples_unsupported: list[dict[str, str]] = field(default_factory=list)


@dataclass
class EvaluationReport:
    sets: list[str]
    questions: int
    answerable: int
    retrieval: dict[str, dict[str, float]]
    thresholds: list[dict[str, float]]
    variants: dict[str, VariantResult]
    heldout: dict[str, dict[str, float]]
    machine: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"Development sets: {', '.join(self.sets)} — {self.questions} questions "
            f"({self.answerable} answerable, {self.questions - self.answerable} not in the knowledge base).",
            f"Machine: {self.machine}. Wall time {self.seconds / 60:.1f} min.",
            "",
            "| retrieval | entry recall@1 | entry recall@3 | document recall@1 | document recall@3 |",
            "|---|---|---|---|---|",
        ]
        for mode, r in self.retrieval.items():
            lines.append(
                f"| {mode} | {r['recall@1']:.3f} | {r['recall@3']:.3f} | {r['doc@1']:.3f} | {r['doc@3']:.3f} |"
            )
        lines += [
            "",
            "| variant | faq | generated | extractive | fallback | ROUGE-L | unsupported-figure rate "
            "| fallback on unanswerable | p50 / p95 ms faq | p50 / p95 ms generated+extractive |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for result in self.variants.values():
            k = result.kinds
            faq_latency = result.latency.get("faq", {})
            composed = result.latency.get("composed", {})
            lines.append(
                f"| {result.label} | {k.get('faq', 0):.0%} | {k.get('generated', 0):.0%} | "
                f"{k.get('extractive', 0):.0%} | {k.get('fallback', 0):.0%} | {result.rouge_l:.3f} | "
                f"{result.unsupported_rate:.1%} | {result.unanswerable_fallback:.0%} | "
                f"{_ms(faq_latency)} | {_ms(composed)} |"
            )
        if self.heldout:
            lines += [
                "",
                "Generator alone on the held-out FAQ pairs (FAQ route off, answers generated from retrieved passages):",
                "",
                "| generator | pairs | ROUGE-L (raw generation) | unsupported figures (raw) | "
                "kept after grounding check | ROUGE-L (as sent) |",
                "|---|---|---|---|---|---|",
            ]
            for name, h in self.heldout.items():
                lines.append(
                    f"| {name} | {h['pairs']:.0f} | {h['rouge_l_raw']:.3f} | {h['unsupported_raw']:.1%} | "
                    f"{h['kept_generated']:.0%} | {h['rouge_l_sent']:.3f} |"
                )
        if self.thresholds:
            lines += ["", "FAQ threshold sweep (hybrid retrieval, verbatim-answer route):", ""]
            lines += ["| threshold | answered verbatim | verbatim answers correct |", "|---|---|---|"]
            for row in self.thresholds:
                lines.append(f"| {row['threshold']:.3f} | {row['coverage']:.0%} | {row['precision']:.1%} |")
        return "\n".join(lines)


def _ms(stats: dict[str, float]) -> str:
    if not stats or math.isnan(stats.get("p50", math.nan)):
        return "–"
    return f"{stats['p50']:.0f} / {stats['p95']:.0f}"


def load_dev_set(path: Path) -> list[DevQuestion]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not record.get("question"):
            raise ValueError(f"{path}:{number}: no question")
        questions.append(DevQuestion(record["id"], record["question"], record.get("answer_id")))
    return questions


def machine_description() -> str:
    import os

    import torch

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu_name()}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}, torch {torch.__version__}"


class SourceTexts:
    """All text of a cited source id: a document's chunks and the FAQ answers that cite it."""

    def __init__(self, index: KnowledgeIndex) -> None:
        texts: dict[str, list[str]] = defaultdict(list)
        for passage in index.passages:
            texts[passage.source_id].append(passage.text + ("\n" + passage.answer if passage.answer else ""))
            texts[passage.id].append(passage.text + ("\n" + passage.answer if passage.answer else ""))
        self._texts = texts

    def for_answer(self, answer: AnswerObject) -> list[str]:
        return [text for source in answer.sources for text in self._texts.get(source.id, [])]


def unsupported(answer: AnswerObject, sources: SourceTexts) -> bool:
    if answer.kind in {"fallback", "refusal", "handoff"}:
        return False
    return not check_grounding(answer.text, sources.for_answer(answer)).supported


def retrieval_metrics(engine: Engine, questions: list[DevQuestion], mode: str) -> dict[str, float]:
    assert engine.index is not None
    source_of = {p.id: p.source_id for p in engine.index.passages}
    answerable = [q for q in questions if q.answer_id]
    hits1 = hits3 = doc1 = doc3 = 0
    for question in answerable:
        hits = engine.search(question.question, top_k=3, mode=mode)
        ids = [h.passage.id for h in hits]
        sources = [h.passage.source_id for h in hits]
        gold_source = source_of.get(question.answer_id or "", question.answer_id)
        hits1 += ids[:1] == [question.answer_id]
        hits3 += question.answer_id in ids
        doc1 += sources[:1] == [gold_source]
        doc3 += gold_source in sources
    n = max(1, len(answerable))
    return {"recall@1": hits1 / n, "recall@3": hits3 / n, "doc@1": doc1 / n, "doc@3": doc3 / n}


def threshold_sweep(engine: Engine, questions: list[DevQuestion]) -> list[dict[str, float]]:
    best: list[tuple[float, bool]] = []
    for question in questions:
        faq_hits = [h for h in engine.search(question.question, top_k=10) if h.passage.kind == "faq"]
        if faq_hits:
            top = max(faq_hits, key=lambda h: h.score)
            best.append((top.score, top.passage.id == question.answer_id))
    rows = []
    for step in range(12):
        threshold = 0.60 + 0.025 * step
        chosen = [correct for score, correct in best if score >= threshold]
        rows.append(
            {
                "threshold": threshold,
                "coverage": len(chosen) / max(1, len(questions)),
                "precision": sum(chosen) / len(chosen) if chosen else 1.0,
            }
        )
    return rows


async def _answers(engine: Engine, texts: list[str], options: EngineOptions, label: str) -> list[AnswerObject]:
    """Each question as a customer's turn (cleaned, redacted, answered), so the scores are what customers get."""
    turns = TurnService(engine.settings, engine)
    results = []
    for text in tqdm(texts, desc=label, leave=False):
        results.append(await turns.ask_answer(text, options=options))
    return results


def evaluate_variant(
    engine: Engine, variant: Variant, questions: list[DevQuestion], gold: dict[str, str], sources: SourceTexts
) -> VariantResult:
    options = EngineOptions(retrieval_mode=variant.retrieval, grounding_check=variant.grounding)
    answers = asyncio.run(_answers(engine, [q.question for q in questions], options, variant.key))
    kinds: Counter[str] = Counter(a.kind for a in answers)
    scores: list[float] = []
    latency: defaultdict[str, list[float]] = defaultdict(list)
    flagged = []
    for question, answer in zip(questions, answers, strict=True):
        if question.answer_id and question.answer_id in gold:
            scores.append(rouge_l(answer.text, gold[question.answer_id]))
        latency[answer.kind].append(answer.latency_ms)
        if answer.kind in {"generated", "extractive"}:
            latency["composed"].append(answer.latency_ms)
        if unsupported(answer, sources):
            flagged.append({"question": question.question, "answer": answer.text, "kind": answer.kind})
    unanswerable = [a for q, a in zip(questions, answers, strict=True) if not q.answer_id]
    return VariantResult(
        label=variant.label,
        questions=len(questions),
        kinds={k: kinds.get(k, 0) / len(answers) for k in (*KINDS, *sorted(set(kinds) - set(KINDS)))},
        rouge_l=sum(scores) / max(1, len(scores)),
        unsupported_rate=len(flagged) / len(answers),
        # A refusal (out of scope, since the dialogue routing) declines as a fallback does.
        unanswerable_fallback=sum(a.kind in {"fallback", "refusal"} for a in unanswerable) / max(1, len(unanswerable)),
        latency={k: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)} for k, v in latency.items()},
        examples_unsupported=flagged[:5],
    )


def heldout_generation(engine: Engine, pairs: list[tuple[str, str]], sources: SourceTexts) -> dict[str, float]:
    """ROUGE-L and figure errors of the generator alone, before and after the grounding check."""
    raw = asyncio.run(
        _answers(engine, [q for q, _ in pairs], EngineOptions(faq_route=False, grounding_check=False), "raw")
    )
    sent = asyncio.run(
        _answers(engine, [q for q, _ in pairs], EngineOptions(faq_route=False, grounding_check=True), "checked")
    )
    generated_raw = [(a, g) for a, (_, g) in zip(raw, pairs, strict=True) if a.kind == "generated"]
    return {
        "pairs": len(pairs),
        "rouge_l_raw": sum(rouge_l(a.text, g) for a, (_, g) in zip(raw, pairs, strict=True)) / max(1, len(pairs)),
        "unsupported_raw": sum(unsupported(a, sources) for a, _ in generated_raw) / max(1, len(generated_raw)),
        "kept_generated": sum(a.kind == "generated" for a in sent) / max(1, len(generated_raw)),
        "rouge_l_sent": sum(rouge_l(a.text, g) for a, (_, g) in zip(sent, pairs, strict=True)) / max(1, len(pairs)),
    }


def run_answer_evaluation(
    settings: Settings, sets: list[Path], limit: int = 0, variants: str = "all", heldout_limit: int = 40
) -> EvaluationReport:
    started = time.perf_counter()
    questions: list[DevQuestion] = []
    for path in sets:
        loaded = load_dev_set(path)
        questions.extend(loaded[:limit] if limit else loaded)
    wanted = [v for v in VARIANTS if variants == "all" or v.key in variants.split(",")]

    engines: dict[bool, Engine] = {}

    def engine_for(fine_tuned: bool) -> Engine:
        if fine_tuned not in engines:
            adapter = settings.generator_adapter if fine_tuned else ""
            engine = Engine(settings.model_copy(update={"generator_adapter": adapter}))
            engine.warm_up()
            engines[fine_tuned] = engine
        return engines[fine_tuned]

    main = engine_for(True)
    assert main.index is not None
    gold = {p.id: p.answer for p in main.index.passages if p.kind == "faq" and p.answer}
    missing = sorted({q.answer_id for q in questions if q.answer_id and q.answer_id not in gold})
    if missing:
        raise ValueError(f"dev-set answer ids not in the knowledge base: {', '.join(missing[:10])}")
    sources = SourceTexts(main.index)
    retrieval = {mode: retrieval_metrics(main, questions, mode) for mode in ("hybrid", "dense", "bm25")}
    thresholds = threshold_sweep(main, questions)
    results = {v.key: evaluate_variant(engine_for(v.fine_tuned), v, questions, gold, sources) for v in wanted}

    heldout: dict[str, dict[str, float]] = {}
    if heldout_limit:
        from chatbot.training.splits import holdout_ids

        held = sorted(holdout_ids(gold))
        pairs = [(main.index.passages[main.index.by_id[i]].text, gold[i]) for i in held][:heldout_limit]
        for fine_tuned, name in ((False, "base SmolLM2-135M-Instruct"), (True, "fine-tuned (LoRA)")):
            worker = engine_for(fine_tuned).worker
            # Without generation there is nothing to compare; without an adapter, "fine-tuned" is the base.
            if worker is None or (fine_tuned and worker.loaded.adapter is None):
                continue
            heldout[name] = heldout_generation(engine_for(fine_tuned), pairs, sources)
    for engine in engines.values():
        engine.close()
    return EvaluationReport(
        sets=[str(p.relative_to(PROJECT_ROOT)) if p.is_relative_to(PROJECT_ROOT) else str(p) for p in sets],
        questions=len(questions),
        answerable=sum(bool(q.answer_id) for q in questions),
        retrieval=retrieval,
        thresholds=thresholds,
        variants=results,
        heldout=heldout,
        machine=machine_description(),
        seconds=time.perf_counter() - started,
    )
