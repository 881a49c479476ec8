"""Answers by kind: counts, latency, and a rough resolution proxy, through the customer path.

    nice .venv/bin/python benchmarks/answer_kinds.py [--sets FILE ...] [--every N] [--limit N]
                                                    [--generation on|off] [--out report.json]

Every question goes through ``Engine.answer`` with a real SQLite store, so the turns of a
multi-turn conversation are answered as follow-ups. Two kinds of set are read:

- the development sets (``evaluation/dev_bank.jsonl``, ``dev_cfpb.jsonl``): one question each with
  the id of its gold FAQ entry; an answer "has the facts" when it contains every figure of the gold
  entry's curated answer (money, percentages, times, phone numbers, counts, as the grounding check
  normalises them). Questions whose gold answer states no figure are left out of that share.
- resolution sets (``evaluation/dev_resolution.jsonl`` format, docs in PLAN): every turn lists
  fact groups; an answer-route turn has the facts when every group has an alternative in the text
  and no ``forbid`` string occurs.

Reported per answer kind: count, p50/p95 latency (the AnswerObject's ``latency_ms``) and the share
with the facts; plus how long the generator ran on turns whose generated text was then thrown away
(the answer became extractive or a fallback), the cost that the generation gate removes. This is a proxy
until ``chatbot eval resolution`` exists. The machine is shared: run it under ``nice``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.dialogue.grounding import extract_figures
from chatbot.evals.metrics import percentile
from chatbot.machine import cpu_name
from chatbot.store.repository import Store

DEV_SETS = [PROJECT_ROOT / "evaluation" / "dev_bank.jsonl", PROJECT_ROOT / "evaluation" / "dev_cfpb.jsonl"]
RESOLUTION = PROJECT_ROOT / "evaluation" / "dev_resolution.jsonl"
COMPOSED = ("generated", "extractive")


@dataclass
class Turn:
    text: str
    route: str = "answer"
    figures: frozenset[str] | None = None  # dev sets: the gold answer's figures
    facts: list[list[str]] | None = None  # resolution sets: groups of alternatives
    forbid: list[str] = field(default_factory=list)


@dataclass
class Conversation:
    id: str
    turns: list[Turn]


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def fact_present(alternative: str, answer: str) -> bool:
    """PLAN.md's rule: case-insensitive, whitespace-normalised; ``$29`` also matches ``$29.00``."""
    needle, text = _normal(alternative), _normal(answer)
    if re.fullmatch(r"\$[\d,]+", needle):
        return re.search(re.escape(needle) + r"(?:\.00)?(?![\d,])", text) is not None
    return needle in text


def load(paths: list[Path], gold_answers: dict[str, str]) -> list[Conversation]:
    conversations = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "turns" in record:
                turns = [
                    Turn(t["text"], t.get("route", "answer"), facts=t.get("facts"), forbid=t.get("forbid", []))
                    for t in record["turns"]
                ]
            else:
                gold = gold_answers.get(record.get("answer_id") or "")
                route = "answer" if record.get("answer_id") else "unanswerable"
                figures = frozenset(extract_figures(gold)) if gold else None
                turns = [Turn(record["question"], route, figures=figures or None)]
            conversations.append(Conversation(record["id"], turns))
    return conversations


def has_facts(turn: Turn, text: str) -> bool | None:
    if turn.route != "answer":
        return None
    if turn.facts is not None:
        return all(any(fact_present(a, text) for a in group) for group in turn.facts) and not any(
            fact_present(f, text) for f in turn.forbid
        )
    if turn.figures:
        return turn.figures <= extract_figures(text)
    return None


class GenerationTimer:
    """Wraps the worker's ``stream`` to add up the seconds spent generating for the current turn."""

    def __init__(self, engine: Engine) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.text = ""
        self.best = self.best_faq = 0.0
        search = engine.search

        def searched(*args: Any, **kwargs: Any) -> list[Any]:
            hits = search(*args, **kwargs)
            self.best = max((h.score for h in hits), default=0.0)
            self.best_faq = max((h.score for h in hits if h.passage.kind == "faq"), default=0.0)
            return hits

        engine.search = searched  # type: ignore[method-assign]
        worker = engine.worker
        if worker is None:
            return
        original = worker.stream

        async def timed(messages: list[dict[str, str]], max_new_tokens: int) -> AsyncGenerator[str, None]:
            started = time.perf_counter()
            self.calls += 1
            try:
                async for piece in original(messages, max_new_tokens):
                    self.text += piece
                    yield piece
            finally:
                self.seconds += time.perf_counter() - started

        worker.stream = timed  # type: ignore[method-assign]

    def take(self) -> dict[str, Any]:
        taken = {
            "generation_ms": self.seconds * 1000,
            "generated": self.calls > 0,
            "generator_text": self.text,
            "best": round(self.best, 4),
            "best_faq": round(self.best_faq, 4),
        }
        self.seconds, self.calls, self.text = 0.0, 0, ""
        return taken


async def run(engine: Engine, store: Store, conversations: list[Conversation]) -> list[dict[str, Any]]:
    timer = GenerationTimer(engine)
    turns = TurnService(engine.settings, engine, store)  # the customer's path: stored turns, history
    rows = []
    for number, conversation in enumerate(conversations, start=1):
        conversation_id, _ = store.create_conversation("bench")
        for turn in conversation.turns:
            answer = await turns.ask_answer(turn.text, conversation_id)
            rows.append(
                {
                    "id": conversation.id,
                    "text": turn.text,
                    "route": turn.route,
                    "kind": answer.kind,
                    "latency_ms": answer.latency_ms,
                    **timer.take(),
                    "facts": has_facts(turn, answer.text),
                    "answer": answer.text,
                    "sources": [s.id for s in answer.sources],
                }
            )
        if number % 20 == 0:
            print(f"  {number}/{len(conversations)} conversations", file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    by_kind["composed"] = [r for r in rows if r["kind"] in COMPOSED]
    by_kind["all answers"] = [r for r in rows if r["route"] == "answer"]
    table = {}
    for kind, group in by_kind.items():
        latency = [r["latency_ms"] for r in group]
        judged = [r["facts"] for r in group if r["facts"] is not None]
        table[kind] = {
            "count": len(group),
            "p50_ms": percentile(latency, 50) if latency else None,
            "p95_ms": percentile(latency, 95) if latency else None,
            "with_facts": sum(judged) / len(judged) if judged else None,
            "judged": len(judged),
        }
    wasted = [r["generation_ms"] for r in rows if r["generated"] and r["kind"] != "generated"]
    return {
        "kinds": table,
        "generation_runs": sum(r["generated"] for r in rows),
        "generation_thrown_away": len(wasted),
        "generation_thrown_away_ms_total": sum(wasted),
        "generation_ms_total": sum(r["generation_ms"] for r in rows),
    }


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| kind | count | p50 ms | p95 ms | with the facts (judged) |", "|---|---|---|---|---|"]
    for kind, row in sorted(summary["kinds"].items(), key=lambda item: -item[1]["count"]):
        facts = f"{row['with_facts']:.0%} ({row['judged']})" if row["with_facts"] is not None else "–"
        p50 = f"{row['p50_ms']:.0f}" if row["p50_ms"] is not None else "–"
        p95 = f"{row['p95_ms']:.0f}" if row["p95_ms"] is not None else "–"
        lines.append(f"| {kind} | {row['count']} | {p50} | {p95} | {facts} |")
    lines.append(
        f"\nGenerator ran on {summary['generation_runs']} turns; its text was thrown away on "
        f"{summary['generation_thrown_away']} ({summary['generation_thrown_away_ms_total'] / 1000:.1f} s of "
        f"{summary['generation_ms_total'] / 1000:.1f} s generating)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", type=Path, help="default: the dev sets, plus dev_resolution if present")
    parser.add_argument("--every", type=int, default=1, help="take every Nth conversation (a quick subset)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many conversations")
    parser.add_argument("--generation", choices=["on", "off"], default=None, help="default: the setting")
    parser.add_argument("--out", type=Path, help="JSON report with every answer")
    args = parser.parse_args()

    sets = args.sets or DEV_SETS + ([RESOLUTION] if RESOLUTION.exists() else [])
    overrides: dict[str, Any] = {}
    if args.generation is not None:
        overrides["generation_enabled"] = args.generation == "on"
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(**overrides, database_url=f"sqlite:///{Path(folder) / 'bench.db'}")
        store = Store(settings.database_url)
        engine = Engine(settings)
        engine.warm_up()
        assert engine.index is not None
        gold = {p.id: p.answer or "" for p in engine.index.passages if p.kind == "faq"}
        conversations = load(sets, gold)[:: args.every]
        if args.limit:
            conversations = conversations[: args.limit]
        asyncio.run(engine.answer("warm-up question about wire fees"))
        started = time.perf_counter()
        rows = asyncio.run(run(engine, store, conversations))
        seconds = time.perf_counter() - started
        engine.close()
    summary = summarise(rows)
    print(
        f"{len(rows)} turns in {len(conversations)} conversations from {', '.join(p.name for p in sets)}; "
        f"generation {'on' if settings.generation_enabled else 'off'}; {seconds:.0f} s; "
        f"{cpu_name()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n"
    )
    print(markdown(summary))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
