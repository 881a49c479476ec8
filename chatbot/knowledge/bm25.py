"""Okapi BM25 over a sparse term matrix: exact words matter in banking (\"SWIFT\", \"HELOC\")."""

from __future__ import annotations

import re

import numpy as np
from scipy import sparse

TOKEN = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "would",
        "should",
        "am",
        "im",
        "i'm",
        "get",
        "got",
        "any",
    ]
)


def tokenize(text: str) -> list[str]:
    tokens = []
    for token in TOKEN.findall(text.lower()):
        if token in STOPWORDS:
            continue
        # A light plural/possessive fold; a full stemmer buys little on short FAQ texts.
        if len(token) > 4 and token.endswith("s") and not token.endswith("ss"):
            token = token[:-1]
        tokens.append(token.removesuffix("'s"))
    return tokens


class BM25:
    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        docs = [tokenize(t) for t in texts]
        self.vocabulary: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[int] = []
        for row, tokens in enumerate(docs):
            counts: dict[int, int] = {}
            for token in tokens:
                column = self.vocabulary.setdefault(token, len(self.vocabulary))
                counts[column] = counts.get(column, 0) + 1
            rows.extend([row] * len(counts))
            cols.extend(counts.keys())
            vals.extend(counts.values())
        n_docs, n_terms = len(docs), max(1, len(self.vocabulary))
        tf = sparse.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(n_docs, n_terms))
        lengths = np.asarray([len(d) for d in docs], dtype=np.float32)
        average = float(lengths.mean()) if n_docs else 1.0
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=n_terms).astype(np.float32)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        tf = tf.tocoo()
        norm = k1 * (1.0 - b + b * lengths[tf.row] / max(average, 1e-6))
        weights = idf[tf.col] * tf.data * (k1 + 1.0) / (tf.data + norm)
        self._weights = sparse.csc_matrix((weights, (tf.row, tf.col)), shape=(n_docs, n_terms))
        self.size = n_docs

    def scores(self, query: str) -> np.ndarray:
        columns = [self.vocabulary[t] for t in tokenize(query) if t in self.vocabulary]
        if not columns or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._weights[:, columns].sum(axis=1)).ravel().astype(np.float32)
