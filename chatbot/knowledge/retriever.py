"""Hybrid search: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank.

Dense vectors catch paraphrases ("my card hasn't shown up"); BM25 catches the exact terms that
customers copy from a statement or a product name. Reciprocal-rank fusion needs no score
calibration between the two. Every hit also carries its cosine similarity to the query, because
routing thresholds (verbatim FAQ answer, fallback) are defined on that calibrated scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatbot.config import Settings
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import KnowledgeIndex, Passage

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # cosine similarity between query and passage, in [-1, 1]
    fused: float  # the rank-fusion score that ordered the hits
    dense_rank: int | None
    bm25_rank: int | None


class Retriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        rrf_k: int = 60,
        bm25_weight: float = 0.5,
        candidates: int = 50,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.bm25_weight = bm25_weight
        self.candidates = candidates

    @classmethod
    def from_settings(cls, index: KnowledgeIndex, embedder: Embedder, settings: Settings) -> Retriever:
        """The retriever the settings describe (what the engine and the evaluation use)."""
        return cls(index, embedder, rrf_k=settings.rrf_k, bm25_weight=settings.bm25_weight)

    def search(self, query: str, top_k: int = 5, mode: Mode = "hybrid", vector: np.ndarray | None = None) -> list[Hit]:
        """``vector``: the query's embedding when the caller already has it (the engine encodes a
        message once for the classifier, the injection check and retrieval)."""
        size = len(self.index.passages)
        if size == 0 or not query.strip():
            return []
        if vector is None:
            vector = self.embedder.encode([query])[0]
        cosine = self.index.vectors @ vector
        depth = min(self.candidates, size)
        dense_order = np.argsort(-cosine)[:depth] if mode != "bm25" else np.array([], dtype=np.int64)
        bm25_order = np.array([], dtype=np.int64)
        if mode != "dense":
            lexical = self.index.bm25.scores(query)
            bm25_order = np.argsort(-lexical)[:depth]
            bm25_order = bm25_order[lexical[bm25_order] > 0]
        dense_rank = {int(i): r for r, i in enumerate(dense_order)}
        bm25_rank = {int(i): r for r, i in enumerate(bm25_order)}
        fused: dict[int, float] = {}
        for ranks, weight in ((dense_rank, 1.0), (bm25_rank, self.bm25_weight)):
            for i, rank in ranks.items():
                fused[i] = fused.get(i, 0.0) + weight / (self.rrf_k + rank + 1)
        order = sorted(fused, key=lambda i: (-fused[i], -cosine[i]))[:top_k]
        return [
            Hit(
                passage=self.index.passages[i],
                score=float(cosine[i]),
                fused=fused[i],
                dense_rank=dense_rank.get(i),
                bm25_rank=bm25_rank.get(i),
            )
            for i in order
        ]
