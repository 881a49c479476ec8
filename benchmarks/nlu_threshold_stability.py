"""How stable is the intent classifier's tuning? Retrain from the cached sentence vectors with float noise.

The out-of-scope threshold is the best point of a 0.02-step grid scored on 100 genuine out-of-scope
examples, so a different CPU's float rounding can move it. This retrains the classifier (the same
split, seed and tuning as ``chatbot train intents``) from the vectors ``make`` cached in
``var/nlu/embedding-cache.npz``, once as they are and once per noise level, and prints the weight
and threshold each run chooses (a few minutes per run on a 2-core CPU)::

    python benchmarks/nlu_threshold_stability.py --noise 0 1e-6 1e-5
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chatbot.config import Settings
from chatbot.nlu.artifact import _split
from chatbot.nlu.data import product_training_set
from chatbot.nlu.encoder import EmbeddingCache
from chatbot.nlu.labels import BANK_OTHER, MODEL_LABELS, OUT_OF_SCOPE
from chatbot.nlu.model import ModelConfig, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 1e-6, 1e-5], help="Gaussian sigma per run.")
    args = parser.parse_args()
    settings = Settings()
    examples = product_training_set(settings.nlu_data_dir)
    cache = EmbeddingCache(settings.resolved_nlu_dir / "embedding-cache.npz", settings.embedding_model)
    texts = [e.text for e in examples]
    missing = [t for t in texts if t not in cache._vectors]
    if missing:
        raise SystemExit(f"{len(missing)} training sentences are not cached: run `chatbot train intents` first")
    vectors = np.stack([cache._vectors[t] for t in texts]).astype(np.float32)
    config = ModelConfig()
    print("| noise sigma | weight | threshold | held-out in-scope accuracy | OOS recall |")
    print("|---|---|---|---|---|")
    for sigma in args.noise:
        rng = np.random.default_rng(int(sigma * 1e7))  # one seed per noise level
        noisy = vectors + rng.normal(0, sigma, vectors.shape).astype(np.float32) if sigma else vectors
        fit_texts, fit_labels, fit_vecs, tune, mask = _split(examples, noisy, config)
        model = train_model(
            fit_texts, fit_labels, fit_vecs, list(MODEL_LABELS), config, tune=tune, threshold_mask=mask,
            out_of_scope=OUT_OF_SCOPE, hidden=BANK_OTHER,
        )  # fmt: skip
        tuning = model.meta["tuning"]
        print(
            f"| {sigma:g} | {model.weight} | {model.threshold:.2f} | {tuning['in_scope_accuracy']:.2%} "
            f"| {tuning['oos_recall']:.2%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
