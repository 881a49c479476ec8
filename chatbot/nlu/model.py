"""The classifier itself: two linear heads, one on MiniLM vectors and one on TF-IDF n-grams,
combined in log-probability space, plus an out-of-scope threshold.

Why this design (measured, see docs/benchmarks.md "Intent classification"): a linear head on the
frozen retriever embedder is nearly free at run time (the engine already has the query vector),
and a character + word n-gram model catches the surface cues (product names, "PIN", "top-up",
typos) a 384-dimensional sentence vector blurs. The mixing weight and the out-of-scope threshold
are chosen on a held-out part of the training data, never on a test split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from chatbot.nlu.labels import EXTRA_INTENTS, OUT_OF_SCOPE

CONVERSATIONAL_INTENTS = tuple(name for name in EXTRA_INTENTS if name != OUT_OF_SCOPE)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class ModelConfig:
    seed: int = 13
    embedding_c: float = 100.0
    tfidf_c: float = 100.0
    holdout_fraction: float = 0.1
    oos_weight: float = 0.3  # each out-of-scope example counts this much: ~4.5k of them vs ~130 per intent
    max_iter: int = 300
    weights: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
    thresholds: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(0.0, 0.96, 0.02))


@dataclass
class IntentModel:
    labels: list[str]
    emb_coef: np.ndarray
    emb_intercept: np.ndarray
    word_vectorizer: Any
    char_vectorizer: Any
    tfidf_coef_t: np.ndarray  # [features, classes], row-major: a sparse row times it touches only its n-grams
    tfidf_intercept: np.ndarray
    weight: float  # weight of the embedding head's log-probabilities (the n-gram head gets 1 - weight)
    threshold: float  # in-scope probability of the two best intents together below which: out_of_scope
    out_of_scope: str | None = "out_of_scope"
    meta: dict[str, Any] = field(default_factory=dict)
    hidden: str | None = None  # an in-scope class parse never names (labels.BANK_OTHER)

    def tfidf_features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return sparse.hstack(
            [self.word_vectorizer.transform(texts), self.char_vectorizer.transform(texts)], format="csr"
        )

    def probabilities(self, vectors: np.ndarray, texts: Sequence[str], weight: float | None = None) -> np.ndarray:
        emb = _log_softmax(vectors @ self.emb_coef.T + self.emb_intercept)
        features = self.tfidf_features(texts)
        tfidf = _log_softmax(np.asarray(features @ self.tfidf_coef_t) + self.tfidf_intercept)
        w = self.weight if weight is None else weight
        return _softmax(w * emb + (1.0 - w) * tfidf)

    def decide(self, probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Index of the predicted label per row, after the out-of-scope threshold."""
        chosen = _decide(probs, self.labels, self.out_of_scope, self.threshold if threshold is None else threshold)
        if self.hidden is None or self.hidden not in self.labels:
            return chosen
        hidden = self.labels.index(self.hidden)
        visible = probs.copy()
        visible[:, hidden] = -1.0
        # A banking question outside BANKING77 (loans, APR) gets the closest banking intent, with its
        # low confidence; never a conversational one: "human_agent 0.001" would read as a request.
        for name in (self.out_of_scope, *CONVERSATIONAL_INTENTS):
            if name in self.labels:
                visible[:, self.labels.index(name)] = -1.0
        return np.where(chosen == hidden, visible.argmax(axis=1), chosen)  # type: ignore[no-any-return]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # type: ignore[no-any-return]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def _decide(probs: np.ndarray, labels: list[str], oos: str | None, threshold: float) -> np.ndarray:
    best = probs.argmax(axis=1)
    if oos is None or oos not in labels:
        return best  # type: ignore[no-any-return]
    oos_index = labels.index(oos)
    # The threshold applies to the two best in-scope classes together: a message split between two
    # close intents ("someone stole my debit card": lost card vs direct debit) is still in scope (the
    # engine asks which one), while an out-of-scope message spreads its mass thinly over many intents.
    in_scope = np.delete(probs, oos_index, axis=1)
    top_two = np.sort(in_scope, axis=1)[:, -2:].sum(axis=1)
    low = top_two < threshold
    return np.where(low, oos_index, best)  # type: ignore[no-any-return]


def _fit_heads(
    vectors: np.ndarray, texts: list[str], y: np.ndarray, sample_weight: np.ndarray, config: ModelConfig
) -> tuple[np.ndarray, np.ndarray, Any, Any, np.ndarray, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    emb = LogisticRegression(C=config.embedding_c, max_iter=config.max_iter, random_state=config.seed)
    emb.fit(vectors, y, sample_weight=sample_weight)
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, lowercase=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, lowercase=True)
    features = sparse.hstack([word.fit_transform(texts), char.fit_transform(texts)], format="csr")
    ngram = LogisticRegression(C=config.tfidf_c, max_iter=config.max_iter, random_state=config.seed)
    ngram.fit(features, y, sample_weight=sample_weight)
    return (
        emb.coef_.astype(np.float32), emb.intercept_.astype(np.float32), word, char,
        np.ascontiguousarray(ngram.coef_.T, dtype=np.float32), ngram.intercept_.astype(np.float32),
    )  # fmt: skip


def _weights(labels_of: list[str], oos: str | None, config: ModelConfig) -> np.ndarray:
    return np.array([config.oos_weight if label == oos else 1.0 for label in labels_of], dtype=np.float64)


def tune_threshold(
    probs: np.ndarray, gold: list[str], labels: list[str], oos: str | None, grid: Sequence[float]
) -> tuple[float, dict[str, float]]:
    """The threshold that maximises the mean of in-scope accuracy and out-of-scope recall."""
    gold_arr = np.array(gold)
    is_oos = gold_arr == oos
    best: tuple[float, float, dict[str, float]] = (-1.0, 0.0, {})
    for threshold in grid:
        pred = np.array(labels)[_decide(probs, labels, oos, threshold)]
        in_acc = float((pred[~is_oos] == gold_arr[~is_oos]).mean()) if (~is_oos).any() else 0.0
        recall = float((pred[is_oos] == oos).mean()) if is_oos.any() else 1.0
        score = (in_acc + recall) / 2
        if score > best[0] + 1e-9:
            best = (score, float(threshold), {"in_scope_accuracy": in_acc, "oos_recall": recall})
    return best[1], best[2]


def train_model(
    texts: list[str],
    labels_of: list[str],
    vectors: np.ndarray,
    labels: list[str],
    config: ModelConfig,
    tune: tuple[list[str], list[str], np.ndarray],
    threshold_mask: np.ndarray | None = None,
    out_of_scope: str | None = "out_of_scope",
    progress: Progress | None = None,
    hidden: str | None = None,
) -> IntentModel:
    """Fit on (texts, labels_of); choose the mixing weight and the threshold on ``tune``; then refit the
    heads on train + tune with those choices. ``threshold_mask`` selects the tune examples the threshold
    is chosen on: the in-scope ones and the *genuine* out-of-scope ones (CLINC's ``oos`` validation
    examples), not the paraphrases of other CLINC intents, which are too easy to be a fair target."""
    say = progress or (lambda _: None)
    started = time.perf_counter()
    index = {label: i for i, label in enumerate(labels)}
    fit_texts, fit_labels, fit_vecs = texts, labels_of, vectors
    tune_texts, tune_labels, tune_vecs = tune
    all_texts, all_labels = texts + tune_texts, labels_of + tune_labels
    all_vecs = np.concatenate([vectors, tune_vecs])

    say(f"fitting heads on {len(fit_texts):,} examples (held out {len(tune_texts):,} for tuning)")
    y = np.array([index[label] for label in fit_labels])
    heads = _fit_heads(fit_vecs, fit_texts, y, _weights(fit_labels, out_of_scope, config), config)
    model = IntentModel(labels, *heads, weight=0.5, threshold=0.0, out_of_scope=out_of_scope, hidden=hidden)

    say("choosing the mixing weight and the out-of-scope threshold on the held-out part")
    gold = np.array([index[label] for label in tune_labels])
    in_scope = np.array([label != out_of_scope for label in tune_labels])
    scores = {}
    for w in config.weights:
        probs = model.probabilities(tune_vecs, tune_texts, weight=w)
        scores[w] = float((probs.argmax(axis=1)[in_scope] == gold[in_scope]).mean())
    weight = max(config.weights, key=lambda w: (scores[w], -abs(w - 0.5)))
    model.weight = weight
    probs = model.probabilities(tune_vecs, tune_texts)
    mask = np.ones(len(tune_labels), dtype=bool) if threshold_mask is None else threshold_mask
    threshold, at_threshold = tune_threshold(
        probs[mask], [label for label, keep in zip(tune_labels, mask, strict=True) if keep], labels, out_of_scope,
        config.thresholds,
    )  # fmt: skip
    tuning = {"weight_accuracy": scores, "weight": weight, "threshold": threshold, **at_threshold}
    log.info("nlu tuning", extra=tuning)

    say(f"refitting on all {len(all_texts):,} examples")
    y_all = np.array([index[label] for label in all_labels])
    heads = _fit_heads(all_vecs, all_texts, y_all, _weights(all_labels, out_of_scope, config), config)
    meta = {
        "tuning": {k: v for k, v in tuning.items() if k != "weight_accuracy"},
        "tuning_weight_accuracy": {str(k): v for k, v in scores.items()},
        "examples": len(all_texts),
        "seed": config.seed,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return IntentModel(
        labels, *heads, weight=weight, threshold=threshold, out_of_scope=out_of_scope, meta=meta, hidden=hidden
    )
