"""Hybrid search: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank.

Dense vectors catch paraphrases ("my card hasn't shown up"); BM25 catches the exact terms that
customers copy from a statement or a product name. Reciprocal-rank fusion needs no score
calibration between the two. Every hit also carries its cosine similarity to the query, because
routing thresholds (verbatim FAQ answer, fallback) are defined on that calibrated scale. A document
section's cosine is the closer of its text and the customer questions indexed for it
(``knowledge_base/questions/``, less a small discount), since customers rarely use the page's words.

Two things then reorder the first candidates, both inside this layer so that every caller gets
them: the bank's own content (its documents and FAQ) gets a prior over Ask CFPB entries
(``bank_prior``), so that a generic federal answer never outranks the bank's own policy on the
same question; and, when a trained cross-encoder is present (:mod:`chatbot.knowledge.reranker`),
the first ``rerank_depth`` candidates are re-scored by it, reading each passage's title and text
with the question. The cosine stays the hit's ``score``, so the thresholds keep their meaning.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np

from chatbot.config import Settings
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import KnowledgeIndex, Passage
from chatbot.knowledge.reranker import CrossEncoderReranker, load_reranker, passage_text

Mode = Literal["hybrid", "dense", "bm25"]
CFPB_PREFIX = "cfpb-"  # source ids of Ask CFPB entries; everything else is the bank's own content


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # cosine similarity between query and passage, in [-1, 1]
    fused: float  # the score that ordered the hits: rank fusion (+ bank prior), or the reranker's (+ prior)
    dense_rank: int | None
    bm25_rank: int | None
    rerank: float | None = None  # the cross-encoder's logit, when it re-scored this hit
    text_score: float | None = None  # cosine to the passage's own text, when a section question scored higher

    @property
    def text_cosine(self) -> float:
        """The cosine to what the passage says (not to a question asked of it)."""
        return self.score if self.text_score is None else self.text_score


class Retriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        rrf_k: int = 60,
        bm25_weight: float = 0.5,
        candidates: int = 50,
        bank_prior: float = 0.0,
        bank_first_cosine: float = 0.0,
        reranker: CrossEncoderReranker | None = None,
        rerank_depth: int = 12,
        rerank_bank_prior: float = 0.0,
        followup_prior: float = 0.0,
        section_questions: bool = True,
        question_discount: float = 0.0,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.bm25_weight = bm25_weight
        self.candidates = candidates
        self.bank_prior = bank_prior
        self.bank_first_cosine = bank_first_cosine
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.rerank_bank_prior = rerank_bank_prior
        self.followup_prior = followup_prior
        self.section_questions = section_questions
        self.question_discount = question_discount
        self._bank = np.array([not p.source_id.startswith(CFPB_PREFIX) for p in index.passages], dtype=bool)
        self._kinds = {k: np.array([p.kind == k for p in index.passages], dtype=bool) for k in ("faq", "chunk")}

    @classmethod
    def from_settings(cls, index: KnowledgeIndex, embedder: Embedder, settings: Settings) -> Retriever:
        """The retriever the settings describe (what the engine and the evaluation use)."""
        return cls(
            index,
            embedder,
            rrf_k=settings.rrf_k,
            bm25_weight=settings.bm25_weight,
            bank_prior=settings.bank_prior,
            bank_first_cosine=settings.bank_first_cosine,
            reranker=load_reranker(settings, device=embedder.device),
            rerank_depth=settings.rerank_depth,
            rerank_bank_prior=settings.rerank_bank_prior,
            followup_prior=settings.followup_source_prior,
            section_questions=settings.section_questions,
            question_discount=settings.section_question_discount,
        )

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: Mode = "hybrid",
        vector: np.ndarray | None = None,
        prefer: Collection[str] = (),
        kind: Literal["faq", "chunk"] | None = None,
    ) -> list[Hit]:
        """``vector``: the query's embedding when the caller already has it (the engine encodes a
        message once for the classifier, the injection check and retrieval). ``prefer``: source ids
        whose passages get ``followup_prior`` (the documents the previous answer cited, for a follow-up).
        ``kind``: only FAQ entries, or only document sections."""
        size = len(self.index.passages)
        if size == 0 or not query.strip():
            return []
        if vector is None:
            vector = self.embedder.encode([query])[0]
        text = self.index.vectors @ vector
        # One product with the passages' vectors serves both: the text's cosine (sentence selection
        # reads it) and the cosine lifted by the section questions (ranking and thresholds).
        cosine = self.index.lift_by_questions(text, vector, self.question_discount) if self.section_questions else text
        allowed = self._kinds[kind] if kind else None
        depth = min(self.candidates, size)
        ranked = cosine if allowed is None else np.where(allowed, cosine, -np.inf)
        dense_order = np.argsort(-ranked)[:depth] if mode != "bm25" else np.array([], dtype=np.int64)
        if allowed is not None:
            dense_order = dense_order[allowed[dense_order]]  # fewer passages of that kind than ``depth``
        bm25_order = np.array([], dtype=np.int64)
        if mode != "dense":
            lexical = self.index.bm25.scores(query)
            if allowed is not None:
                lexical = np.where(allowed, lexical, 0.0)
            bm25_order = np.argsort(-lexical)[:depth]
            bm25_order = bm25_order[lexical[bm25_order] > 0]
        dense_rank = {int(i): r for r, i in enumerate(dense_order)}
        bm25_rank = {int(i): r for r, i in enumerate(bm25_order)}
        fused: dict[int, float] = {}
        for ranks, weight in ((dense_rank, 1.0), (bm25_rank, self.bm25_weight)):
            for i, rank in ranks.items():
                fused[i] = fused.get(i, 0.0) + weight / (self.rrf_k + rank + 1)
        if self.followup_prior:
            # The closest passage of each preferred document is a candidate even when neither ranking
            # had it (a follow-up's words may not name the product it is about).
            for source in prefer:
                own = [i for i in self.index.by_source.get(source, []) if allowed is None or allowed[i]]
                if own:
                    fused.setdefault(max(own, key=lambda i: cosine[i]), 0.0)
        for i in fused:
            if self._bank[i]:
                fused[i] += self.bank_prior
            if self.followup_prior and self.index.passages[i].source_id in prefer:
                fused[i] += self.followup_prior
        # Bank first: when some of the bank's passages are relevant on the calibrated scale (cosine at
        # least ``bank_first_cosine``), the bank's content covers the question and Ask CFPB entries are
        # left out (the engine returns the most similar FAQ entry verbatim, wherever it ranks).
        first = {i for i in fused if self._bank[i] and self.bank_first_cosine and cosine[i] >= self.bank_first_cosine}
        if first:
            fused = {i: score for i, score in fused.items() if self._bank[i]}
        order = sorted(fused, key=lambda i: (i not in first, -fused[i], -cosine[i]))
        ordering = fused
        reranked: dict[int, float] = {}
        if self.reranker is not None and order:
            head = order[: max(self.rerank_depth, top_k)]
            logits = self.reranker.scores(query, [passage_text(self.index.passages[i]) for i in head])
            reranked = {i: float(logit) for i, logit in zip(head, logits, strict=True)}
            ordering = {i: reranked[i] + (self.rerank_bank_prior if self._bank[i] else 0.0) for i in head}
            order = sorted(head, key=lambda i: (-ordering[i], -cosine[i]))
        return [
            Hit(
                passage=self.index.passages[i],
                score=float(cosine[i]),
                fused=ordering[i],
                dense_rank=dense_rank.get(i),
                bm25_rank=bm25_rank.get(i),
                rerank=reranked.get(i),
                text_score=float(text[i]) if cosine[i] != text[i] else None,
            )
            for i in order[:top_k]
        ]
