"""Parse latency of the intent classifier alone (no test-set encoding first, so it takes ~1 minute).

    .venv/bin/python benchmarks/nlu_latency.py [--samples 300] [--threads N]

Times ``IntentClassifier.parse`` on single BANKING77 test messages (fixed sample, seed 13): the whole
parse (MiniLM encode + heads), the heads alone given the query vector (what the NLU step adds in the
engine, which already encodes the query for retrieval), and the encode alone. Prints p50/p95 in ms
with the machine. ``chatbot eval intents`` reports the same first two figures after its accuracy run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from chatbot.config import get_settings
from chatbot.evals.metrics import percentile
from chatbot.machine import cpu_name
from chatbot.nlu import IntentClassifier
from chatbot.nlu.data import read_banking77


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = get_settings()
    classifier = IntentClassifier(settings)
    classifier.warm_up()
    texts = [e.text for e in random.Random(13).sample(read_banking77(settings.nlu_data_dir, "test"), args.samples)]
    vectors = classifier.encoder.encode(texts)
    for text in texts[:10]:
        classifier.parse(text)

    def timed(call: object) -> list[float]:
        out = []
        for i, text in enumerate(texts):
            started = time.perf_counter()
            call(i, text)  # type: ignore[operator]
            out.append((time.perf_counter() - started) * 1000)
        return out

    rows = {
        "parse(text)": timed(lambda i, t: classifier.parse(t)),
        "parse(text, embedding)": timed(lambda i, t: classifier.parse(t, embedding=vectors[i])),
        "encode only": timed(lambda i, t: classifier.encoder.encode_one(t)),
    }
    report = {
        "machine": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "samples": len(texts),
        **{
            name: {"p50_ms": round(percentile(v, 50), 2), "p95_ms": round(percentile(v, 95), 2)}
            for name, v in rows.items()
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
