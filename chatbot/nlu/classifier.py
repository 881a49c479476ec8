"""``IntentClassifier``: what the engine, the API and the CLI call to name the customer's intent.

A Haystack-style component like the engine: constructing it loads nothing, ``warm_up`` loads the
artifact (training it first when missing or stale), ``parse`` answers in a few milliseconds. The
result follows the Rasa NLU convention: the chosen intent with its confidence and a top-5 ranking.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from chatbot.config import Settings
from chatbot.knowledge.embedder import Embedder
from chatbot.nlu.encoder import SentenceEncoder
from chatbot.nlu.model import IntentModel
from chatbot.schema import IntentRef

log = logging.getLogger(__name__)

RANKING_SIZE = 5


@dataclass(frozen=True)
class NluResult:
    intent: IntentRef
    ranking: list[IntentRef]  # top 5, best first; the chosen intent is always first

    def as_dict(self) -> dict[str, object]:
        return {"intent": self.intent.model_dump(), "ranking": [item.model_dump() for item in self.ranking]}


class IntentClassifier:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        """Cheap: pass the engine's embedder to share one MiniLM in memory (and its query vectors)."""
        self.settings = settings
        self.embedder = embedder or Embedder(settings.embedding_model)
        self.encoder = SentenceEncoder(self.embedder)
        self.model: IntentModel | None = None
        self.ready = False
        self._lock = threading.Lock()

    def warm_up(self, progress: bool = True) -> None:
        with self._lock:
            if self.ready:
                return
            from chatbot.nlu.artifact import artifact_state, build_artifact, load_model

            state = artifact_state(self.settings)
            if state != "ok":
                log.warning("intent classifier artifact %s; training it now (a few minutes)", state)
                build_artifact(self.settings, self.encoder, show_bar=progress)
            self.model = load_model(self.settings)
            self.encoder.encode_one("hello")  # first call pays the lazy initialisation, not a customer
            self.ready = True

    @property
    def threshold(self) -> float:
        assert self.model is not None
        override = self.settings.nlu_oos_threshold
        return self.model.threshold if override is None else override

    def parse(self, text: str, embedding: np.ndarray | None = None) -> NluResult:
        """Classify one message. ``embedding``: the text's unit-length vector from the same embedder,
        when the caller already has it (the engine's retrieval query), so no second encode is needed."""
        if not self.ready:
            self.warm_up()
        vector = self.encoder.encode_one(text) if embedding is None else np.asarray(embedding, dtype=np.float32)
        return self._results(vector.reshape(1, -1), [text])[0]

    def parse_batch(self, texts: list[str], embeddings: np.ndarray | None = None) -> list[NluResult]:
        if not self.ready:
            self.warm_up()
        if not texts:
            return []
        vectors = self.encoder.encode(texts) if embeddings is None else np.asarray(embeddings, dtype=np.float32)
        return self._results(vectors, texts)

    def probabilities(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """Raw class probabilities (columns in ``labels`` order), for evaluation."""
        assert self.model is not None
        return self.model.probabilities(vectors, texts)

    @property
    def labels(self) -> list[str]:
        assert self.model is not None
        return self.model.labels

    def _results(self, vectors: np.ndarray, texts: list[str]) -> list[NluResult]:
        model = self.model
        assert model is not None
        probs = model.probabilities(vectors, texts)
        chosen = model.decide(probs, self.threshold)
        results = []
        for row, choice in zip(probs, chosen, strict=True):
            order = [int(i) for i in np.argsort(-row)[: RANKING_SIZE + 2] if model.labels[int(i)] != model.hidden]
            confidence = float(row[choice])
            if model.labels[int(choice)] == model.out_of_scope and int(choice) != int(row.argmax()):
                # below the threshold: out_of_scope, as sure as the best in-scope class was not
                confidence = max(confidence, 1.0 - float(np.delete(row, int(choice)).max()))
            top = [int(choice)] + [i for i in order if i != int(choice)]
            ranking = [IntentRef(name=model.labels[i], confidence=round(float(row[i]), 4)) for i in top[:RANKING_SIZE]]
            ranking[0] = IntentRef(name=model.labels[int(choice)], confidence=round(confidence, 4))
            results.append(NluResult(intent=ranking[0], ranking=ranking))
        return results
