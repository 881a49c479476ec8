"""Build, save and load the product classifier artifact (``<data_dir>/nlu``).

The artifact is a build output like the retrieval index: not in git, rebuilt by ``make`` (or on
first use) when missing or when the training data changed, in a couple of minutes on a 2-core CPU.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from chatbot.config import Settings
from chatbot.nlu.data import GENUINE_OOS, Example, fingerprint, product_training_set
from chatbot.nlu.encoder import EmbeddingCache, SentenceEncoder
from chatbot.nlu.labels import BANK_OTHER, MODEL_LABELS, OUT_OF_SCOPE
from chatbot.nlu.model import IntentModel, ModelConfig, Progress, train_model

log = logging.getLogger(__name__)

MODEL_FILE = "intent-classifier.joblib"
META_FILE = "meta.json"
FORMAT_VERSION = 5


def artifact_state(settings: Settings) -> str:
    """``ok``, ``missing`` or ``stale`` (trained on other data, another embedder or an older format)."""
    folder = settings.resolved_nlu_dir
    if not (folder / MODEL_FILE).exists() or not (folder / META_FILE).exists():
        return "missing"
    meta = json.loads((folder / META_FILE).read_text())
    expected = (FORMAT_VERSION, fingerprint(settings.nlu_data_dir), settings.embedding_model)
    found = (meta.get("format"), meta.get("data_fingerprint"), meta.get("embedding_model"))
    return "ok" if found == expected else "stale"


def build_artifact(
    settings: Settings,
    encoder: SentenceEncoder,
    config: ModelConfig | None = None,
    progress: Progress | None = None,
    show_bar: bool = True,
) -> dict[str, Any]:
    """Train the product classifier on the training splits and write it to ``resolved_nlu_dir``."""
    import joblib

    from chatbot.machine import cpu_name

    say = progress or (lambda message: log.info(message))
    config = config or ModelConfig()
    started = time.perf_counter()
    folder = settings.resolved_nlu_dir
    folder.mkdir(parents=True, exist_ok=True)
    examples = product_training_set(settings.nlu_data_dir)
    texts = [e.text for e in examples]
    say(f"encoding {len(texts):,} training sentences with {settings.embedding_model}")
    cache = EmbeddingCache(folder / "embedding-cache.npz", settings.embedding_model)
    vectors = cache.encode(encoder, texts, progress=show_bar)
    fit_texts, fit_labels, fit_vecs, tune, mask = _split(examples, vectors, config)
    model = train_model(
        fit_texts, fit_labels, fit_vecs, list(MODEL_LABELS), config, tune=tune, threshold_mask=mask,
        out_of_scope=OUT_OF_SCOPE, progress=say, hidden=BANK_OTHER,
    )  # fmt: skip
    tmp = folder / (MODEL_FILE + ".tmp")
    joblib.dump(model, tmp)
    tmp.replace(folder / MODEL_FILE)
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.source] = counts.get(example.source, 0) + 1
    meta = {
        "format": FORMAT_VERSION,
        "data_fingerprint": fingerprint(settings.nlu_data_dir),
        "embedding_model": settings.embedding_model,
        "examples": len(examples),
        "examples_by_source": counts,
        "out_of_scope_examples": sum(e.label == OUT_OF_SCOPE for e in examples),
        "other_banking_examples": sum(e.label == BANK_OTHER for e in examples),
        "weight": model.weight,
        "threshold": model.threshold,
        "tuning": model.meta.get("tuning", {}),
        "seed": config.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": cpu_name(),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))
    say(f"intent classifier written to {folder} in {meta['seconds']}s")
    return meta


def _split(examples: list[Example], vectors: np.ndarray, config: ModelConfig) -> tuple[Any, ...]:
    """Fit / tune split: BANKING77 has no validation split, so a stratified share of the training data
    is held out for tuning, together with CLINC150's ``oos_val`` examples (the genuine out-of-scope)."""
    from sklearn.model_selection import train_test_split

    genuine_val = np.array([e.source == f"{GENUINE_OOS}-val" for e in examples])
    rest = np.flatnonzero(~genuine_val)
    fit_idx, tune_idx = train_test_split(
        rest, test_size=config.holdout_fraction, random_state=config.seed, stratify=[examples[i].label for i in rest]
    )
    tune_idx = np.concatenate([tune_idx, np.flatnonzero(genuine_val)])
    mask = np.array([examples[i].label != OUT_OF_SCOPE or genuine_val[i] for i in tune_idx])

    def part(idx: np.ndarray) -> tuple[list[str], list[str], np.ndarray]:
        return [examples[i].text for i in idx], [examples[i].label for i in idx], vectors[idx]

    fit_texts, fit_labels, fit_vecs = part(fit_idx)
    return fit_texts, fit_labels, fit_vecs, part(tune_idx), mask


def load_model(settings: Settings) -> IntentModel:
    import joblib

    model = joblib.load(settings.resolved_nlu_dir / MODEL_FILE)
    if not isinstance(model, IntentModel):
        raise TypeError(f"{settings.resolved_nlu_dir / MODEL_FILE} is not an intent classifier")
    return model


def vectors_for(encoder: SentenceEncoder, texts: list[str], settings: Settings, progress: bool = False) -> np.ndarray:
    """Encode evaluation sentences through the same on-disk cache training uses."""
    cache = EmbeddingCache(settings.resolved_nlu_dir / "embedding-cache.npz", settings.embedding_model)
    return cache.encode(encoder, texts, progress=progress)
