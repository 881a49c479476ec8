"""`chatbot eval intents` and `chatbot eval oos`: the intent classifier on public test splits.

- BANKING77 ``test.csv`` (3,080): accuracy and macro-F1 of the 77-way decision (argmax over the 77
  BANKING77 intents, the published protocol), and of the product's own decision (all 82 intents
  and the out-of-scope threshold: a banking question sent to ``out_of_scope`` or ``greeting`` counts
  as wrong). Also parse latency p50/p95, with and without the query vector already computed.
- CLINC150 banking + credit-card intents with out-of-scope (test: 900 in-scope, 1,000 out-of-scope).
  CLINC's 30 intents are a different label set from BANKING77, so in-scope accuracy is measured the
  way the CLINC paper does: the same method (MiniLM + n-gram heads, out-of-scope class, threshold)
  trained on CLINC's own ``train`` split (the 30 intents, plus the other CLINC intents and the
  ``oos_train`` examples as out-of-scope), the mixing weight and the threshold chosen on ``val``.
  The product classifier is also run on the same test split as an out-of-scope detector (anything
  it does not call ``out_of_scope`` counts as in scope).
Test splits are never trained or tuned on.
"""

from __future__ import annotations

import platform
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chatbot.config import Settings
from chatbot.evals.metrics import percentile
from chatbot.machine import cpu_name
from chatbot.nlu import IntentClassifier
from chatbot.nlu.data import (
    CLINC_OOS_LABEL,
    Example,
    clinc_as_product_example,
    clinc_bank_intents,
    read_banking77,
    read_clinc_bank_eval,
    read_clinc_full,
)
from chatbot.nlu.encoder import EmbeddingCache
from chatbot.nlu.labels import BANK_OTHER, BANKING77_INTENTS, OUT_OF_SCOPE
from chatbot.nlu.model import ModelConfig, train_model


def _machine() -> dict[str, str]:
    return {"cpu": cpu_name(), "python": platform.python_version()}


def _vectors(classifier: IntentClassifier, texts: list[str], progress: bool) -> np.ndarray:
    """Evaluation sentences go through their own cache file, separate from the training one."""
    settings = classifier.settings
    cache = EmbeddingCache(settings.resolved_nlu_dir / "eval-embedding-cache.npz", settings.embedding_model)
    return cache.encode(classifier.encoder, texts, progress=progress)


def macro_f1(gold: np.ndarray, pred: np.ndarray, classes: int) -> float:
    scores = []
    for c in range(classes):
        tp = float(((pred == c) & (gold == c)).sum())
        fp = float(((pred == c) & (gold != c)).sum())
        fn = float(((pred != c) & (gold == c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


@dataclass
class IntentReport:
    examples: int
    accuracy_77: float
    macro_f1_77: float
    accuracy_product: float
    macro_f1_product: float
    sent_to_extra_intents: float  # share of banking questions the product called out_of_scope/greeting/...
    threshold: float
    latency_samples: int
    parse_p50_ms: float
    parse_p95_ms: float
    parse_with_vector_p50_ms: float
    parse_with_vector_p95_ms: float
    machine: dict[str, str] = field(default_factory=_machine)
    command: str = "chatbot eval intents"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        return "\n".join(
            [
                f"BANKING77 test ({self.examples:,} examples), {self.machine['cpu']}",
                "",
                "| decision | accuracy | macro-F1 |",
                "|---|---|---|",
                f"| 77-way (argmax over the BANKING77 intents) | {self.accuracy_77:.2%} | {self.macro_f1_77:.4f} |",
                f"| product (82 intents, out-of-scope threshold {self.threshold:.2f}) | {self.accuracy_product:.2%} "
                f"| {self.macro_f1_product:.4f} |",
                "",
                f"banking questions sent to an extra intent (out_of_scope, greeting, ...): "
                f"{self.sent_to_extra_intents:.2%}",
                "",
                f"| parse latency ({self.latency_samples} single messages) | p50 ms | p95 ms |",
                "|---|---|---|",
                f"| `parse(text)` (encode + heads) | {self.parse_p50_ms:.1f} | {self.parse_p95_ms:.1f} |",
                f"| `parse(text, embedding=query vector)` (added in the engine) | {self.parse_with_vector_p50_ms:.1f} "
                f"| {self.parse_with_vector_p95_ms:.1f} |",
            ]
        )


def _latency(classifier: IntentClassifier, texts: list[str], vectors: np.ndarray | None) -> tuple[float, float]:
    times = []
    for i, text in enumerate(texts):
        started = time.perf_counter()
        classifier.parse(text, embedding=None if vectors is None else vectors[i])
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 95)


def evaluate_intents(
    settings: Settings, classifier: IntentClassifier | None = None, latency_samples: int = 300, limit: int = 0,
    progress: bool = True, seed: int = 13,
) -> IntentReport:  # fmt: skip
    classifier = classifier or IntentClassifier(settings)
    classifier.warm_up()
    test = read_banking77(settings.nlu_data_dir, "test")
    if limit:
        test = random.Random(seed).sample(test, min(limit, len(test)))
    texts, gold_names = [e.text for e in test], [e.label for e in test]
    vectors = _vectors(classifier, texts, progress)
    labels = classifier.labels
    index = {name: i for i, name in enumerate(labels)}
    gold = np.array([index[name] for name in gold_names])
    probs = classifier.probabilities(texts, vectors)
    n77 = len(BANKING77_INTENTS)
    assert labels[:n77] == list(BANKING77_INTENTS)
    pred77 = probs[:, :n77].argmax(axis=1)
    assert classifier.model is not None
    pred = classifier.model.decide(probs, classifier.threshold)

    sample = random.Random(seed).sample(range(len(texts)), min(latency_samples, len(texts)))
    classifier.parse(texts[sample[0]])  # warm caches before timing
    p50, p95 = _latency(classifier, [texts[i] for i in sample], None)
    v50, v95 = _latency(classifier, [texts[i] for i in sample], vectors[sample])
    return IntentReport(
        examples=len(texts),
        accuracy_77=float((pred77 == gold).mean()),
        macro_f1_77=macro_f1(gold, pred77, n77),
        accuracy_product=float((pred == gold).mean()),
        macro_f1_product=macro_f1(gold, pred, n77),
        sent_to_extra_intents=float((pred >= n77).mean()),
        threshold=classifier.threshold,
        latency_samples=len(sample),
        parse_p50_ms=p50,
        parse_p95_ms=p95,
        parse_with_vector_p50_ms=v50,
        parse_with_vector_p95_ms=v95,
    )


@dataclass
class OosScores:
    in_scope_accuracy: float  # CLINC head only: right intent, out-of-scope predictions count as wrong
    in_scope_accepted: float  # share of in-scope test messages not called out_of_scope
    oos_recall: float
    oos_precision: float
    threshold: float


@dataclass
class OosReport:
    in_scope_examples: int
    oos_examples: int
    clinc_head: OosScores
    product: OosScores
    tuning: dict[str, Any]
    machine: dict[str, str] = field(default_factory=_machine)
    command: str = "chatbot eval oos"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        def row(name: str, s: OosScores, acc: bool) -> str:
            accuracy = f"{s.in_scope_accuracy:.2%}" if acc else "—"
            return (
                f"| {name} | {accuracy} | {s.in_scope_accepted:.2%} | {s.oos_recall:.2%} | {s.oos_precision:.2%} "
                f"| {s.threshold:.2f} |"
            )

        return "\n".join(
            [
                f"CLINC150 banking + credit cards with out-of-scope, test split ({self.in_scope_examples} in scope, "
                f"{self.oos_examples} out of scope), {self.machine['cpu']}",
                "",
                "| classifier | in-scope accuracy | in-scope accepted | OOS recall | OOS precision | threshold |",
                "|---|---|---|---|---|---|",
                row("same method, head trained on CLINC's 30 intents (train; tuned on val)", self.clinc_head, True),
                row("product classifier (BANKING77 intents) as an out-of-scope detector", self.product, False),
            ]
        )


def _oos_scores(pred: list[str], gold: list[str], threshold: float) -> OosScores:
    p, g = np.array(pred), np.array(gold)
    in_scope = g != OUT_OF_SCOPE
    flagged = p == OUT_OF_SCOPE
    return OosScores(
        in_scope_accuracy=float((p[in_scope] == g[in_scope]).mean()),
        in_scope_accepted=float((~flagged[in_scope]).mean()),
        oos_recall=float(flagged[~in_scope].mean()),
        oos_precision=float((~in_scope[flagged]).mean()) if flagged.any() else 0.0,
        threshold=threshold,
    )


def _is_other(example: Example | None) -> bool:
    """Not one of CLINC's 30 bank intents, and not a bank request either: out of scope for this evaluation."""
    return example is not None and example.label != BANK_OTHER


def _clinc_split(settings: Settings, split: str, config: ModelConfig) -> tuple[list[str], list[str], np.ndarray]:
    """CLINC's 30 bank intents under their own names; every other CLINC intent and ``oos`` as out_of_scope."""
    bank = clinc_bank_intents(settings.nlu_data_dir)
    texts, labels = [], []
    genuine: list[bool] = []
    others: dict[str, list[str]] = {}
    for text, intent in read_clinc_full(settings.nlu_data_dir, split):
        if intent in bank:
            texts.append(text)
            labels.append(intent)
        elif intent == CLINC_OOS_LABEL or _is_other(clinc_as_product_example(text, intent, bank)):
            others.setdefault(intent, []).append(text)
    rng = random.Random(config.seed)
    for intent in sorted(others):
        group = others[intent]
        if intent != CLINC_OOS_LABEL and len(group) > 40:
            group = rng.sample(group, 40)
        texts.extend(group)
        labels.extend([OUT_OF_SCOPE] * len(group))
        genuine.extend([intent == CLINC_OOS_LABEL] * len(group))
    # threshold target: in-scope examples and CLINC's own out-of-scope ones (see model.train_model)
    mask = np.array([label != OUT_OF_SCOPE for label in labels]) | np.array(
        [False] * (len(labels) - len(genuine)) + genuine
    )
    return texts, labels, mask


def evaluate_oos(settings: Settings, classifier: IntentClassifier | None = None, progress: bool = True) -> OosReport:
    classifier = classifier or IntentClassifier(settings)
    classifier.warm_up()
    config = ModelConfig()
    train_texts, train_labels, _ = _clinc_split(settings, "train", config)
    val_texts, val_labels, val_mask = _clinc_split(settings, "val", config)
    cache = EmbeddingCache(settings.resolved_nlu_dir / "embedding-cache.npz", settings.embedding_model)
    train_vecs = cache.encode(classifier.encoder, train_texts, progress=progress)
    val_vecs = cache.encode(classifier.encoder, val_texts, progress=progress)
    labels = [*sorted(set(train_labels) - {OUT_OF_SCOPE}), OUT_OF_SCOPE]
    head = train_model(
        train_texts, train_labels, train_vecs, labels, config, tune=(val_texts, val_labels, val_vecs),
        threshold_mask=val_mask, out_of_scope=OUT_OF_SCOPE,
    )  # fmt: skip

    test = read_clinc_bank_eval(settings.nlu_data_dir, "test")
    texts = [t for t, _ in test]
    gold = [OUT_OF_SCOPE if label == CLINC_OOS_LABEL else label for _, label in test]
    vectors = _vectors(classifier, texts, progress)
    head_pred = [labels[i] for i in head.decide(head.probabilities(vectors, texts))]
    assert classifier.model is not None
    product_probs = classifier.probabilities(texts, vectors)
    product_pred = [classifier.labels[i] for i in classifier.model.decide(product_probs, classifier.threshold)]
    product_gold = [OUT_OF_SCOPE if g == OUT_OF_SCOPE else "in_scope" for g in gold]
    return OosReport(
        in_scope_examples=sum(g != OUT_OF_SCOPE for g in gold),
        oos_examples=sum(g == OUT_OF_SCOPE for g in gold),
        clinc_head=_oos_scores(head_pred, gold, head.threshold),
        product=_oos_scores(product_pred, product_gold, classifier.threshold),
        tuning={"clinc_head": head.meta.get("tuning", {}), "train_examples": len(train_texts)},
    )
