"""Off-topic probe: how many messages that are not about banking the routing refuses.

The messages are CLINC150's validation split: its 100 out-of-scope examples plus 400 drawn (seed 0)
from its validation examples of the non-banking domains (travel, cooking, small talk about phones,
...). Each goes through the understanding step and ``policy.decide`` as a first customer turn, the
path every channel uses; a message counts as refused when the route is ``refusal``. The routing
changes of a stop are checked with it (a rule that makes a banking wording answerable must not make
"is android better than iphone" answerable too); it decides nothing on its own.

Caveat: the intent classifier trains on CLINC150's ``val`` split too (as ``out_of_scope``), so this
measures the whole route (classifier, relevance and rules) on messages the classifier has seen; the
test split stays for evaluation (``chatbot eval intents``).

    python benchmarks/offtopic_probe.py [--out answered.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

from chatbot.config import Settings
from chatbot.dialogue import policy
from chatbot.dialogue.engine import Engine
from chatbot.evals.answers import machine_description

BANK_DOMAINS = ("banking", "credit_cards")


def off_topic_messages(clinc_dir: Path, sampled: int = 400, seed: int = 0) -> list[str]:
    """CLINC150's validation out-of-scope messages, then ``sampled`` of its non-banking ones."""
    data = json.loads((clinc_dir / "data_full.json").read_text(encoding="utf-8"))
    domains = json.loads((clinc_dir / "domains.json").read_text(encoding="utf-8"))
    bank = {intent for name in BANK_DOMAINS for intent in domains[name]}
    messages = [text for text, _ in data["oos_val"]]
    other = [text for text, intent in data["val"] if intent not in bank]
    random.seed(seed)
    return messages + random.sample(other, sampled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the messages not refused, with their route, as JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.disable(logging.WARNING)
    settings = Settings(generation_enabled=False)
    engine = Engine(settings)
    engine.warm_up()
    messages = off_topic_messages(settings.nlu_data_dir / "clinc150")
    started = time.perf_counter()
    answered = []
    try:
        for number, text in enumerate(messages, 1):
            understood = engine.understand(text, text)
            decision = policy.decide(text, understood, settings)
            if decision.route != "refusal":
                answered.append({"route": decision.route, "best_score": round(understood.best_score, 3), "text": text})
            if number % 100 == 0:
                print(f"{number} of {len(messages)} read", flush=True)
    finally:
        engine.close()
    refused = len(messages) - len(answered)
    print(f"Machine: {machine_description()}. Wall time {(time.perf_counter() - started) / 60:.1f} min.")
    print(f"Off-topic messages refused: {refused} of {len(messages)} ({refused / len(messages):.1%})")
    if args.out:
        args.out.write_text(json.dumps(answered, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
