"""Does llama.cpp generate what transformers generates? The same prompts the engine builds, both backends.

    nice .venv/bin/python benchmarks/generator_agreement.py [--questions 48] [--out agreement.json]

For development questions (every 4th of ``evaluation/dev_bank.jsonl`` and every 9th of
``dev_cfpb.jsonl``, up to ``--questions`` in all) the engine retrieves its context and builds the
chat messages exactly as it does for a customer; then the fine-tuned generator answers each one,
greedily, once through transformers (``GenerationWorker``, the adapter merged in fp32) and once
through llama.cpp (``LlamaCppGenerator``, the adapter folded into the GGUF), one request at a time.

Reported per backend: how many answers are identical to transformers', how many are the model's
"I don't have that information.", the median time to the first streamed piece, and the total time.
llama.cpp runs a different kernel path (and F16 weights where transformers has fp32), so a few
near-tie greedy choices may go the other way; the share of identical answers says how few.
Needs ``make`` (index, models, llama-server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._support import machine
from chatbot.config import PROJECT_ROOT, Settings
from chatbot.dialogue.engine import Engine, context_passage
from chatbot.llm.generators import Generator
from chatbot.llm.llamacpp import LlamaCppGenerator, find_llama_server
from chatbot.llm.prompts import NOT_AVAILABLE, chat_messages
from chatbot.llm.worker import GenerationWorker


def questions(limit: int) -> list[str]:
    def read(name: str) -> list[str]:
        lines = (PROJECT_ROOT / "evaluation" / name).read_text().splitlines()
        return [json.loads(line)["question"] for line in lines if line.strip()]

    bank, cfpb = read("dev_bank.jsonl")[1::4], read("dev_cfpb.jsonl")[::9]
    chosen = bank[: limit * 2 // 3]
    return chosen + cfpb[: limit - len(chosen)]


def prompts(settings: Settings, asked: list[str]) -> list[list[dict[str, str]]]:
    engine = Engine(settings.model_copy(update={"generation_enabled": False}))
    engine.warm_up()
    try:
        assert engine.retriever is not None
        built = []
        for question in asked:
            context = engine._context(engine.retriever.search(question))
            passages = [context_passage(hit.passage, settings.context_passage_words) for hit in context]
            built.append(chat_messages(question, passages))
        return built
    finally:
        engine.close()


async def answer_all(generator: Generator, messages: list[list[dict[str, str]]], max_new_tokens: int) -> dict[str, Any]:
    answers, firsts = [], []
    started = time.perf_counter()
    for chat in messages:
        asked = time.perf_counter()
        first: float | None = None
        pieces = []
        async for piece in generator.stream(chat, max_new_tokens):
            first = first or time.perf_counter()
            pieces.append(piece)
        firsts.append(((first or time.perf_counter()) - asked) * 1000)
        answers.append("".join(pieces))
    return {
        "answers": answers,
        "seconds": round(time.perf_counter() - started, 1),
        "first_piece_p50_ms": round(statistics.median(firsts)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings()
    if find_llama_server(settings.llama_server_binary) is None:
        print("llama-server is not built: run `make llama-server`", file=sys.stderr)
        return 2
    asked = questions(args.questions)
    messages = prompts(settings, asked)
    print(f"{len(messages)} prompts built by the engine", flush=True)

    worker = GenerationWorker.from_settings(settings.model_copy(update={"device": "cpu"}))
    results = {"transformers": asyncio.run(answer_all(worker, messages, settings.max_new_tokens))}
    worker.stop()
    served = LlamaCppGenerator.from_settings(settings.model_copy(update={"llama_parallel": 1}))
    served.start()
    try:
        results["llama.cpp"] = asyncio.run(answer_all(served, messages, settings.max_new_tokens))
    finally:
        served.stop()

    reference = results["transformers"]["answers"]
    print("| backend | identical to transformers | declined | first piece p50 | total |")
    print("|---|---:|---:|---:|---:|")
    for backend, result in results.items():
        result["identical"] = sum(a == b for a, b in zip(result["answers"], reference, strict=True))
        result["declined"] = sum(NOT_AVAILABLE in answer for answer in result["answers"])
        print(
            f"| {backend} | {result['identical']}/{len(reference)} | {result['declined']} "
            f"| {result['first_piece_p50_ms']} ms | {result['seconds']} s |"
        )
    if args.out:
        report = {"machine": machine(), "questions": asked, "merged_weights": settings.llama_merged_weights}
        args.out.write_text(json.dumps(report | {"results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
