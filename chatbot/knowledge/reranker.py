"""A cross-encoder that re-scores the first hybrid candidates, reading query and passage together.

The bi-encoder compares a customer's question with a FAQ entry's *question*; the cross-encoder
reads the question with the entry's *answer* (and a chunk's title, heading and text), so "is there
a fee if my balance goes negative" can match an answer about the overdraft fee that shares no
phrasing with it. It is fine-tuned from the MiniLM weights the product already ships, on the
knowledge base's own question→passage pairs (:mod:`chatbot.training.reranker`), into
``<data_dir>/reranker``: a build output like the index, made by ``make`` when missing or stale
(``chatbot train reranker --if-stale``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.config import Settings
from chatbot.knowledge.index import Passage
from chatbot.knowledge.sources import discover_files, file_hash

META_FILE = "reranker.json"
FORMAT_VERSION = 1


def reranker_dir(settings: Settings) -> Path:
    return settings.reranker_dir if settings.reranker_dir is not None else settings.data_dir / "reranker"


def passage_text(passage: Passage) -> str:
    """What the cross-encoder reads of a passage: a FAQ entry's title and answer (its question is
    what the dense ranking already matched), a chunk's own text (title and heading first)."""
    if passage.kind == "faq" and passage.answer:
        return f"{passage.title}\n{passage.answer}"
    return passage.text


def knowledge_fingerprint(knowledge_dir: Path) -> str:
    documents, faqs = discover_files(knowledge_dir)
    digest = hashlib.sha256()
    for path in sorted([*documents, *faqs]):
        digest.update(f"{path.relative_to(knowledge_dir)}:{file_hash(path)}\n".encode())
    return digest.hexdigest()[:16]


def expected_meta(settings: Settings) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "base_model": settings.embedding_model,
        "knowledge": knowledge_fingerprint(settings.knowledge_dir),
    }


def reranker_state(settings: Settings) -> str:
    """``ok``, ``missing`` or ``stale`` (trained on another knowledge base, base model or format)."""
    folder = reranker_dir(settings)
    meta_path = folder / META_FILE
    if not meta_path.exists() or not (folder / "config.json").exists():
        return "missing"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    wanted = expected_meta(settings)
    return "ok" if all(meta.get(key) == value for key, value in wanted.items()) else "stale"


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a sequence-classification head; loaded on first use."""

    def __init__(self, folder: Path, max_length: int = 128, device: str = "cpu") -> None:
        self.folder = folder
        self.max_length = max_length
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
            model = AutoModelForSequenceClassification.from_pretrained(str(self.folder))
            self._model = model.to(self.device).eval()

    def scores(self, query: str, texts: list[str]) -> np.ndarray:
        """One relevance logit per text (higher is more relevant)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        self.warm_up()
        import torch

        batch = self._tokenizer(
            [query] * len(texts),
            texts,
            truncation="only_second",
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            logits = self._model(**batch).logits
        return logits[:, 0].float().cpu().numpy()


def load_reranker(settings: Settings, device: str = "cpu") -> CrossEncoderReranker | None:
    """The trained reranker when enabled and present (a missing one is built by ``make``)."""
    if not settings.rerank_enabled:
        return None
    folder = reranker_dir(settings)
    if reranker_state(settings) == "missing":
        return None
    return CrossEncoderReranker(folder, max_length=settings.rerank_max_length, device=device)
