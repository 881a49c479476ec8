"""Sentence vectors for the classifier: the retriever's own MiniLM embedder, called directly.

Reusing the retriever's embedder means one model in memory and, when the engine passes the query
vector it already computed for retrieval, no second encode at all. For a single sentence the
sentence-transformers ``encode`` wrapper costs more than the model (batching, sorting, progress
machinery), so ``encode_one`` calls the tokenizer and the transformer directly under
``torch.inference_mode`` and pools exactly as the model's Pooling + Normalize modules do.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.knowledge.embedder import Embedder


class SentenceEncoder:
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._parts: tuple[Any, Any, int] | None = None
        self._lock = threading.Lock()

    def _model_parts(self) -> tuple[Any, Any, int]:
        with self._lock:
            if self._parts is None:
                model = self.embedder.model
                self._parts = (model.tokenizer, model[0].auto_model, int(model.max_seq_length))
            return self._parts

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Batched encode (training, evaluation): unit-length float32 rows."""
        return self.embedder.encode(texts, batch_size=64, progress=progress)

    def encode_one(self, text: str) -> np.ndarray:
        """One sentence, low latency; the same vector as ``encode([text])[0]`` up to float rounding."""
        import torch

        tokenizer, model, max_len = self._model_parts()
        with torch.inference_mode():
            batch = tokenizer([text], return_tensors="pt", truncation=True, max_length=max_len).to(model.device)
            hidden = model(**batch).last_hidden_state[0]
            mask = batch["attention_mask"][0].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(0) / mask.sum().clamp(min=1e-9)
            vector = torch.nn.functional.normalize(pooled, dim=0)
        return vector.cpu().numpy().astype(np.float32)


class EmbeddingCache:
    """Vectors of training sentences on disk, keyed by text, so retraining does not re-encode them."""

    def __init__(self, path: Path, model_spec: str) -> None:
        self.path = path
        self.tag = hashlib.sha256(model_spec.encode()).hexdigest()[:12]
        self._vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["tag"]) == self.tag:
                    self._vectors = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def encode(self, encoder: SentenceEncoder, texts: list[str], progress: bool = False) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self._vectors})
        if missing:
            for text, vector in zip(missing, encoder.encode(missing, progress=progress), strict=True):
                self._vectors[text] = vector
            self._save()
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        texts = list(self._vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp, tag=np.array(self.tag), texts=np.array(texts), vectors=np.stack([self._vectors[t] for t in texts])
        )
        tmp.replace(self.path)
