"""`chatbot eval dialogue`: follow-ups, routing, injection refusals and clarification, measured.

Everything runs through the customer path (``Engine.answer`` with a real Store, so follow-ups are
resolved from the stored turns exactly as for the widget), except retrieval recall, which calls
``Engine.search`` on the follow-up as typed and as resolved. Reported:

- retrieval recall@1/@3 (document level: a hit whose source is one of the turn's gold ids) on the
  follow-up turns of ``evaluation/dev_dialogue.jsonl``, without and with resolution;
- routing accuracy on every turn of those conversations (answer, flow, handoff, refusal, small
  talk, clarification), and for flows whether the right flow ran;
- the refusal rate on ``evaluation/injection.jsonl`` and whether any answer quoted the system
  prompt; the false-refusal and clarification rates on the ordinary questions of the answer dev
  sets; the injection detector alone on BANKING77 ``test.csv`` (ordinary banking questions; only
  measured, never tuned on);
- sweeps of the flow threshold and the clarification margin over the classifier's rankings, on
  development data only (the dialogue set, the answer dev sets and CLINC150 ``val``).
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.dialogue.followup import resolve
from chatbot.dialogue.policy import FLOWS, SMALL_TALK, clarification_options
from chatbot.evals.answers import DEFAULT_SETS, DevQuestion, load_dev_set, machine_description
from chatbot.evals.metrics import percentile
from chatbot.guard.injection import benign_sample, leaks_instructions, normalise
from chatbot.llm.prompts import SYSTEM_PROMPT
from chatbot.schema import AnswerObject
from chatbot.store.repository import Store

DIALOGUE_SET = PROJECT_ROOT / "evaluation" / "dev_dialogue.jsonl"
INJECTION_SET = PROJECT_ROOT / "evaluation" / "injection.jsonl"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ROUTES = ("answer", "flow", "handoff", "refusal", "smalltalk", "clarify")


@dataclass(frozen=True)
class Turn:
    text: str
    expect: str
    gold: tuple[str, ...] = ()
    followup: bool = False
    intent: str | None = None


@dataclass(frozen=True)
class Conversation:
    id: str
    source: str
    turns: tuple[Turn, ...]


@dataclass
class DialogueReport:
    machine: str
    conversations: int
    followup_turns: int
    retrieval: dict[str, dict[str, float]]
    detection: dict[str, float]
    routing: dict[str, dict[str, float]]
    flow_intent_accuracy: float
    injection: dict[str, float]
    ordinary: dict[str, float]
    latency_ms: dict[str, float]
    sweeps: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = [
            f"Machine: {self.machine}",
            "",
            f"**Follow-up retrieval** ({self.followup_turns} follow-up turns in {self.conversations} conversations; "
            "a hit counts when its source is a gold document)",
            "",
            "| query | recall@1 | recall@3 |",
            "|---|---|---|",
        ]
        for name, row in self.retrieval.items():
            lines.append(f"| {name} | {row['recall@1']:.3f} | {row['recall@3']:.3f} |")
        lines += [
            "",
            f"Follow-ups detected: {self.detection['followups_detected']:.1%}; standalone later turns read as "
            f"follow-ups: {self.detection['standalone_misread']:.1%}",
            "",
            "**Routing** on the dialogue turns (expected route → share routed so)",
            "",
            "| expected | turns | accuracy |",
            "|---|---|---|",
        ]
        for route, row in self.routing.items():
            lines.append(f"| {route} | {row['turns']:.0f} | {row['accuracy']:.3f} |")
        lines += [
            "",
            f"Flow turns that ran the expected flow: {self.flow_intent_accuracy:.3f}",
            "",
            "**Injection and refusals**",
            "",
            "| measure | value |",
            "|---|---|",
            f"| injection attempts refused ({self.injection['attempts']:.0f}) | {self.injection['refusal_rate']:.1%} |",
            f"| answers quoting the system prompt | {self.injection['leaks']:.0f} |",
            f"| false refusals on answerable ordinary questions ({self.ordinary['answerable']:.0f}) | "
            f"{self.ordinary['false_refusal_rate']:.1%} |",
            f"| refusals on questions the bank does not answer ({self.ordinary['unanswerable']:.0f}; "
            f"the rest get the fallback) | {self.ordinary['unanswerable_refused']:.1%} |",
            f"| clarification rate on ordinary questions ({self.ordinary['questions']:.0f}) | "
            f"{self.ordinary['clarification_rate']:.1%} |",
            f"| flow rate on ordinary questions | {self.ordinary['flow_rate']:.1%} |",
        ]
        if "banking77_test_flagged" in self.injection:
            lines.append(
                f"| detector alone: BANKING77 test questions flagged ({self.injection['banking77_questions']:.0f}) | "
                f"{self.injection['banking77_test_flagged']:.2%} |"
            )
        lines += [
            "",
            f"Understanding step (follow-up resolution, injection check, intent, retrieval) p50 / p95: "
            f"{self.latency_ms['p50']:.0f} / {self.latency_ms['p95']:.0f} ms",
        ]
        for name, rows in self.sweeps.items():
            if not rows:
                continue
            lines += ["", f"Sweep: {name}", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
            for row in rows:
                lines.append("| " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
        return "\n".join(lines)


def load_conversations(path: Path = DIALOGUE_SET) -> list[Conversation]:
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        turns = []
        for turn in record["turns"]:
            if turn["expect"] not in ROUTES:
                raise ValueError(f"{path}:{number}: unknown route {turn['expect']!r}")
            turns.append(
                Turn(turn["text"], turn["expect"], tuple(turn.get("gold", ())), turn.get("followup", False),
                     turn.get("intent"))
            )  # fmt: skip
        conversations.append(Conversation(record["id"], record.get("source", ""), tuple(turns)))
    return conversations


def load_injections(path: Path = INJECTION_SET) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def route_of(answer: AnswerObject) -> str:
    if answer.kind == "clarification":
        return "clarify"
    if answer.kind in {"refusal", "handoff"}:
        return answer.kind
    if answer.kind == "flow":
        return "smalltalk" if answer.intent is not None and answer.intent.name in SMALL_TALK else "flow"
    return "answer"


def followup_retrieval(engine: Engine, conversations: list[Conversation]) -> tuple[dict[str, Any], dict[str, float]]:
    counts: dict[str, Counter[str]] = {"as typed": Counter(), "resolved": Counter()}
    detected = misread = standalone = total = 0
    for conversation in conversations:
        previous: list[str] = []
        for turn in conversation.turns:
            if previous:
                resolution = resolve(turn.text, previous)
                if turn.followup:
                    detected += resolution.dependent
                else:
                    standalone += 1
                    misread += resolution.dependent
                if turn.followup and turn.gold:
                    total += 1
                    for name, query in (("as typed", turn.text), ("resolved", resolution.query)):
                        sources = [h.passage.source_id for h in engine.search(query, top_k=3)]
                        counts[name]["recall@1"] += sources[:1] != [] and sources[0] in turn.gold
                        counts[name]["recall@3"] += any(s in turn.gold for s in sources)
            previous.append(turn.text)
    n = max(1, total)
    retrieval = {name: {k: v / n for k, v in c.items()} | {"turns": total} for name, c in counts.items()}
    for row in retrieval.values():
        row.setdefault("recall@1", 0.0)
        row.setdefault("recall@3", 0.0)
    followups = sum(t.followup for c in conversations for t in c.turns)
    detection = {"followups_detected": detected / max(1, followups), "standalone_misread": misread / max(1, standalone)}
    return retrieval, detection


async def _run_conversations(
    engine: Engine, store: Store, conversations: list[Conversation]
) -> list[tuple[Turn, AnswerObject]]:
    """Each conversation stored turn by turn through the turn service, as the widget's would be (follow-ups
    resolve from the stored history)."""
    turns = TurnService(engine.settings, engine, store)
    results = []
    for conversation in tqdm(conversations, desc="conversations", leave=False):
        conversation_id, _ = store.create_conversation("eval")
        for turn in conversation.turns:
            results.append((turn, await turns.ask_answer(turn.text, conversation_id)))
    return results


async def _answers(engine: Engine, texts: list[str], label: str) -> list[AnswerObject]:
    turns = TurnService(engine.settings, engine)
    return [await turns.ask_answer(text) for text in tqdm(texts, desc=label, leave=False)]


def routing_accuracy(results: list[tuple[Turn, AnswerObject]]) -> tuple[dict[str, dict[str, float]], float, list]:
    by_route: dict[str, list[bool]] = defaultdict(list)
    flows_right: list[bool] = []
    errors = []
    for turn, answer in results:
        got = route_of(answer)
        by_route[turn.expect].append(got == turn.expect)
        if turn.expect == "flow":
            flows_right.append(got == "flow" and answer.intent is not None and answer.intent.name == turn.intent)
        if got != turn.expect:
            errors.append({"text": turn.text, "expected": turn.expect, "got": got,
                           "intent": answer.intent.name if answer.intent else ""})  # fmt: skip
    table = {route: {"turns": len(v), "accuracy": sum(v) / len(v)} for route, v in by_route.items()}
    everything = [ok for v in by_route.values() for ok in v]
    table["all"] = {"turns": len(everything), "accuracy": sum(everything) / max(1, len(everything))}
    return table, sum(flows_right) / max(1, len(flows_right)), errors


def banking77_flagged(engine: Engine, limit: int = 0) -> tuple[float, int] | None:
    path = SHARED_DATA / "banking77" / "test.csv"
    if not path.exists() or engine.guard is None:
        return None
    texts = [row["text"] for row in csv.DictReader(path.open(encoding="utf-8"))]
    texts = texts[:limit] if limit else texts
    scores = engine.guard.scores(texts)
    margin = engine.guard.margin
    flagged = sum(bool(s >= margin or engine.guard.pattern(t)) for t, s in zip(texts, scores, strict=True))
    return flagged / len(texts), len(texts)


# The share of held-out ordinary questions the injection detector must stay under, with the knowledge
# base as contrast and without it: the margin is the lowest that does on both. (Under, not at: in
# 2026-12 the margin at exactly 0.5% without the knowledge base refused a development question.)
INJECTION_FLAG_CEILING = 0.005


def injection_margin_sweep(engine: Engine, size: int = 3000) -> list[dict[str, float]]:
    """The detector's margin, tuned on training data only: seeds caught when each is left out of the
    seed list, and held-out BANKING77 training questions (not the contrast sample) flagged, with the
    knowledge base as contrast and without it (a deployment with a small knowledge base). Rerun it
    when the knowledge base changes much: the contrast grows with it, and so does the margin's reach."""
    guard = engine.guard
    train = engine.settings.nlu_data_dir / "banking77" / "train.csv"
    if guard is None or not train.exists() or engine.index is None:
        return []
    contrast = benign_sample(train)
    texts = sorted({row["text"] for row in csv.DictReader(train.open(encoding="utf-8"))} - set(contrast))
    ordinary = random.Random(0).sample(texts, min(size, len(texts)))
    ordinary_vectors = engine.embedder.encode(ordinary)
    seed_vectors = engine.embedder.encode([normalise(t) for t in guard.seeds])
    contrast_vectors = engine.embedder.encode(contrast)
    patterns = [guard.pattern(t) is not None for t in ordinary]
    pairwise = seed_vectors @ seed_vectors.T
    np.fill_diagonal(pairwise, -1.0)
    rows = []
    knowledge = np.vstack([engine.index.vectors, engine.index.question_vectors])  # as the engine's guard sees it
    references = {"with_kb": np.vstack([knowledge, contrast_vectors]), "without_kb": contrast_vectors}
    scored = {
        name: (
            pairwise.max(axis=1) - (seed_vectors @ ref.T).max(axis=1),
            (ordinary_vectors @ seed_vectors.T).max(axis=1) - (ordinary_vectors @ ref.T).max(axis=1),
        )
        for name, ref in references.items()
    }
    # Fine where the rule's choice falls: it moves as the knowledge base (the contrast) grows.
    for margin in (-0.03, 0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.05, 0.08, 0.1):
        row = {"margin": margin}
        flagged = []
        for name, (seeds_left_out, ordinary_scores) in scored.items():
            row[f"seeds_caught_{name}"] = float(np.mean(seeds_left_out >= margin))
            hits = int(sum(p or s >= margin for p, s in zip(patterns, ordinary_scores, strict=True)))
            row[f"banking77_flagged_{name}"] = hits / len(ordinary)
            flagged.append(hits)
        # The rule (docs/benchmarks.md): the lowest margin with this 1.0 is the one to configure.
        row["under_ceiling"] = float(all(h < INJECTION_FLAG_CEILING * len(ordinary) for h in flagged))
        rows.append(row)
    return rows


def sweeps(engine: Engine, conversations: list[Conversation], questions: list[DevQuestion]) -> dict[str, list]:
    """Flow threshold, out-of-scope refusal ceiling and clarification margin, on development data only:
    the dialogue set's flow turns, the answer dev sets and CLINC150 ``val`` (in scope and out of scope)."""
    if getattr(engine, "nlu", None) is None:
        return {}
    settings = engine.settings
    flow_turns = [(t.text, t.intent) for c in conversations for t in c.turns if t.expect == "flow"]
    clinc = SHARED_DATA / "clinc150" / "banking_creditcards_plus_oos.json"
    clinc_oos: list[str] = []
    clinc_in: list[str] = []
    if clinc.exists():
        data = json.loads(clinc.read_text(encoding="utf-8"))
        clinc_oos = [text for text, _ in data.get("oos_val", [])]
        clinc_in = [text for text, _ in data.get("val", [])]

    def read(texts: list[str]) -> list[tuple[list[Any], float]]:
        understood = [engine.understand(text, text) for text in tqdm(texts, desc="sweep", leave=False)]
        return [(u.ranking, u.best_score) for u in understood]

    flows = read([text for text, _ in flow_turns])
    answerable = read([q.question for q in questions if q.answer_id])
    unanswerable = read([q.question for q in questions if not q.answer_id])
    ordinary = answerable + unanswerable
    oos, in_scope = read(clinc_oos), read(clinc_in)

    def share(rows: list[bool]) -> float:
        return sum(rows) / max(1, len(rows))

    flow_rows = []
    for step in range(9):
        threshold = 0.4 + 0.075 * step
        flow_rows.append(
            {
                "flow_threshold": threshold,
                "dialogue_flows_fired": share(
                    [
                        r[0].name == i and r[0].confidence >= threshold
                        for (r, _), (_, i) in zip(flows, flow_turns, strict=True)
                    ]
                ),
                "clinc_val_oos_as_flow": share([r[0].name in FLOWS and r[0].confidence >= threshold for r, _ in oos]),
                "ordinary_as_flow": share([r[0].name in FLOWS and r[0].confidence >= threshold for r, _ in ordinary]),
            }
        )

    def refused(rows: list[tuple[list[Any], float]], ceiling: float) -> float:
        return share(
            [r[0].name == "out_of_scope" and r[0].confidence >= settings.oos_refusal_confidence and b < ceiling
             for r, b in rows]
        )  # fmt: skip

    oos_rows = [
        {
            "max_cosine": ceiling,
            "answerable_refused": refused(answerable, ceiling),
            "unanswerable_refused": refused(unanswerable, ceiling),
            "clinc_val_oos_refused": refused(oos, ceiling),
            "clinc_val_in_scope_refused": refused(in_scope, ceiling),
        }
        for ceiling in (0.4, 0.45, 0.5, 0.55, 0.6)
    ]
    vague = read([t.text for c in conversations for t in c.turns if t.expect == "clarify"])
    clarify_rows = []
    for confidence in (0.6, 0.7, 0.8):
        for margin in (0.2, 0.3, 0.35, 0.4):
            tuned = settings.model_copy(update={"clarify_confidence": confidence, "clarify_margin": margin})
            clarify_rows.append(
                {
                    "clarify_confidence": confidence,
                    "clarify_margin": margin,
                    "ordinary_clarified": share([bool(clarification_options(r, b, tuned)) for r, b in ordinary]),
                    "vague_dev_clarified": share([bool(clarification_options(r, b, tuned)) for r, b in vague]),
                }
            )
    return {
        "flow threshold": flow_rows,
        "out-of-scope refusal ceiling": oos_rows,
        "clarification margin": clarify_rows,
        "injection margin": injection_margin_sweep(engine),
    }


def run_dialogue_evaluation(
    settings: Settings, generation: bool = False, banking77: bool = True, sweep: bool = True
) -> DialogueReport:
    conversations = load_conversations()
    injections = load_injections()
    questions = [q for path in DEFAULT_SETS for q in load_dev_set(path)]
    ordinary = [q.question for q in questions]
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{Path(folder) / 'eval.db'}")
        engine = Engine(settings.model_copy(update={"generation_enabled": generation}))
        engine.warm_up()
        try:
            retrieval, detection = followup_retrieval(engine, conversations)
            results = asyncio.run(_run_conversations(engine, store, conversations))
            routing, flow_accuracy, errors = routing_accuracy(results)
            attacks = asyncio.run(_answers(engine, [i["text"] for i in injections], "injection"))
            answers = asyncio.run(_answers(engine, ordinary, "ordinary"))
            timings = []
            for text in ordinary[:100]:
                started = time.perf_counter()
                engine.understand(text, text)
                timings.append((time.perf_counter() - started) * 1000)
            flagged = banking77_flagged(engine) if banking77 else None
            sweep_rows = sweeps(engine, conversations, questions) if sweep else {}
        finally:
            engine.close()
            store.close()
    everything = [a for _, a in results] + attacks + answers
    leaks = sum(leaks_instructions(a.text) or SYSTEM_PROMPT[:60] in a.text for a in everything)
    injection = {
        "attempts": len(attacks),
        "refusal_rate": sum(a.kind == "refusal" for a in attacks) / max(1, len(attacks)),
        "leaks": leaks,
    }
    if flagged is not None:
        injection["banking77_test_flagged"], injection["banking77_questions"] = flagged[0], flagged[1]
    answerable = [a for a, q in zip(answers, questions, strict=True) if q.answer_id]
    unanswerable = [a for a, q in zip(answers, questions, strict=True) if not q.answer_id]
    ordinary_rates = {
        "questions": len(answers),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "false_refusal_rate": sum(a.kind == "refusal" for a in answerable) / max(1, len(answerable)),
        "unanswerable_refused": sum(a.kind == "refusal" for a in unanswerable) / max(1, len(unanswerable)),
        "clarification_rate": sum(a.kind == "clarification" for a in answers) / max(1, len(answers)),
        "flow_rate": sum(a.kind == "flow" for a in answers) / max(1, len(answers)),
    }
    return DialogueReport(
        machine=machine_description(),
        conversations=len(conversations),
        followup_turns=int(retrieval["resolved"]["turns"]),
        retrieval=retrieval,
        detection=detection,
        routing=routing,
        flow_intent_accuracy=flow_accuracy,
        injection=injection,
        ordinary=ordinary_rates,
        latency_ms={"p50": percentile(timings, 50), "p95": percentile(timings, 95)},
        sweeps=sweep_rows,
        errors=errors,
    )
