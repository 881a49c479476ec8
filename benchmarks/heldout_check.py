"""Held-out generation check: base vs fine-tuned generator on FAQ pairs that training never saw.

Reads the held-out examples written by ``python -m chatbot.training.generator prepare`` (the same
prompts as training: the FAQ entry among retrieved distractors, or distractors only) and generates
with the product's worker, batched. Reports per model:

* answerable: ROUGE-L against the target, the share of answers that contain every figure of the
  target, the share with a figure that is not in the context (what the grounding check rejects),
  and the share that wrongly say ``NOT_AVAILABLE``;
* unanswerable: the share that say ``NOT_AVAILABLE``.

    python benchmarks/heldout_check.py --examples var/train/heldout.json --adapter models/generator-lora
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.dialogue.grounding import check_grounding, extract_figures
from chatbot.evals.metrics import rouge_l
from chatbot.llm.loading import load_generator
from chatbot.llm.prompts import NOT_AVAILABLE
from chatbot.llm.worker import GenerationWorker
from chatbot.training.generator import TrainingExample, load_examples

REFUSAL = NOT_AVAILABLE.lower().rstrip(".")


def generate(worker: GenerationWorker, examples: list[TrainingExample], max_new_tokens: int) -> list[str]:
    async def run() -> list[str]:
        return list(await asyncio.gather(*[worker.complete(e.messages(), max_new_tokens) for e in examples]))

    try:
        return asyncio.run(run())
    finally:
        worker.stop()


def score(examples: list[TrainingExample], outputs: list[str]) -> dict[str, Any]:
    answerable = [(e, o) for e, o in zip(examples, outputs, strict=True) if e.answerable]
    unanswerable = [(e, o) for e, o in zip(examples, outputs, strict=True) if not e.answerable]
    with_figures = [(e, o) for e, o in answerable if extract_figures(e.target)]
    return {
        "answerable": len(answerable),
        "rouge_l": round(statistics.fmean(rouge_l(o, e.target) for e, o in answerable), 4) if answerable else None,
        "target_figures_copied": round(
            statistics.fmean(extract_figures(e.target) <= extract_figures(o) for e, o in with_figures), 4
        )
        if with_figures
        else None,
        "with_target_figures": len(with_figures),
        "unsupported_figure_rate": round(
            statistics.fmean(
                not check_grounding(o, [p.title + "\n" + p.text for p in e.passages]).supported for e, o in answerable
            ),
            4,
        )
        if answerable
        else None,
        "false_not_available": round(statistics.fmean(REFUSAL in o.lower() for _, o in answerable), 4)
        if answerable
        else None,
        "unanswerable": len(unanswerable),
        "correct_not_available": round(statistics.fmean(REFUSAL in o.lower() for _, o in unanswerable), 4)
        if unanswerable
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, default=Path("var/train/heldout.json"))
    parser.add_argument("--adapter", default=str(Settings().generator_adapter))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--samples", type=int, default=5, help="Example outputs to keep per model (0: all).")
    parser.add_argument("--models", default="base,fine-tuned", help="Which of base,fine-tuned to run.")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    settings = Settings()
    examples = load_examples(args.examples).examples
    examples = examples[: args.limit] if args.limit else examples
    report: dict[str, Any] = {"examples": len(examples)}
    for name, adapter in (("base", ""), ("fine-tuned", args.adapter)):
        if name not in args.models.split(","):
            continue
        loaded = load_generator(settings.generator_model, settings.data_dir, adapter=adapter, device=args.device)
        started = time.perf_counter()
        outputs = generate(GenerationWorker(loaded, max_batch_size=8, batch_wait_ms=50), examples, args.max_new_tokens)
        report[name] = {**score(examples, outputs), "seconds": round(time.perf_counter() - started, 1)}
        report[name]["samples"] = [
            {"question": e.question, "target": e.target, "output": o}
            for e, o in list(zip(examples, outputs, strict=True))[: args.samples or None]
        ]
        print(json.dumps({name: {k: v for k, v in report[name].items() if k != "samples"}}), flush=True)
    if args.output:
        args.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
