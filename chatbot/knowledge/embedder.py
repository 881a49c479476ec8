"""Sentence embeddings, loaded once and shared by ingestion, retrieval and the grounding step."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from chatbot.model_specs import force_offline, resolve_model_spec


class Embedder:
    """A sentence-transformers model behind a warm-up, so constructing one is free."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.model_spec = model
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            force_offline()
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model_spec(self.model_spec), device=self.device)

    @property
    def model(self) -> Any:
        if self._model is None:
            self.warm_up()
        return self._model

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer.tokenize(text))

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, so inner product is cosine similarity."""
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)
