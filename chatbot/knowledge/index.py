"""Build, save and load the retrieval index: passages, their embeddings, FAISS and BM25.

The index lives in ``<data_dir>/index`` with a manifest naming the embedding model, the chunking
settings and a hash of every source file. Besides one vector per passage it holds one vector per
section question (``knowledge_base/questions/``), each pointing at the passage of its section:
search scores a passage by the closer of its own text and its questions. Ingestion re-reads only
files whose hash changed and re-embeds only texts that are new, so adding one FAQ entry costs one
embedding, not a full rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from chatbot.knowledge.bm25 import BM25
from chatbot.knowledge.chunking import chunk_document
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.sources import (
    Document,
    FaqEntry,
    discover_files,
    discover_question_files,
    file_hash,
    load_document,
    load_faq_file,
    load_section_questions,
)

log = logging.getLogger(__name__)

# Bump when what a passage embeds or how it is chunked changes: every index built before is stale.
MANIFEST_VERSION = 4


@dataclass(frozen=True)
class Passage:
    """One retrievable unit: a FAQ entry or a document chunk."""

    id: str
    kind: Literal["faq", "chunk"]
    source_id: str  # what an answer cites: the document id, or the FAQ entry's own source
    title: str
    url: str | None
    text: str  # what is embedded and shown as context
    answer: str | None = None  # the curated answer of a FAQ entry
    file: str = ""

    @property
    def embed_text(self) -> str:
        # A FAQ entry is embedded by its question alone. Embedding question + answer was tried on
        # the development set: recall@3 rose (0.834 → 0.852) but recall@1 fell (0.680 → 0.639) and
        # the cosine became a worse signal for returning the curated answer verbatim.
        return self.text


@dataclass
class BuildReport:
    files_total: int
    files_changed: int
    passages: int
    embedded: int
    seconds: float
    up_to_date: bool
    section_questions: int = 0
    unmatched: list[str] = field(default_factory=list)  # section questions naming a heading no document has


def _faq_passage(entry: FaqEntry, documents: dict[str, Document]) -> Passage:
    document = documents.get(entry.source)
    title = document.title if document else (entry.title or entry.question)
    url = document.url if document else entry.url
    return Passage(
        id=entry.id,
        kind="faq",
        source_id=entry.source,
        title=title,
        url=url,
        text=entry.question,
        answer=entry.answer,
        file=entry.path,
    )


def _key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()[:32]


class KnowledgeIndex:
    """Passages plus their unit vectors, searchable densely (FAISS) and lexically (BM25)."""

    def __init__(
        self,
        passages: list[Passage],
        vectors: np.ndarray,
        manifest: dict[str, object],
        questions: list[tuple[str, str]] | None = None,
        question_vectors: np.ndarray | None = None,
    ) -> None:
        """``questions``: (passage id, question) pairs, one per row of ``question_vectors``."""
        self.passages = passages
        self.vectors = vectors
        self.manifest = manifest
        self.questions = list(questions or [])
        dimension = vectors.shape[1] if vectors.ndim == 2 else 0
        self.question_vectors = (
            question_vectors if question_vectors is not None else np.zeros((0, dimension), dtype=np.float32)
        )
        if len(self.questions) != len(self.question_vectors):
            raise ValueError(f"{len(self.questions)} section questions but {len(self.question_vectors)} vectors")
        self.by_id = {p.id: i for i, p in enumerate(passages)}
        self.by_source: dict[str, list[int]] = {}  # a document's passages, by source id
        for i, passage in enumerate(passages):
            self.by_source.setdefault(passage.source_id, []).append(i)
        # The passage row each section question belongs to (a question of a passage no longer in
        # the index would be a build error, so a missing id is one too).
        self.question_rows = np.array([self.by_id[pid] for pid, _ in self.questions], dtype=np.int64)
        self.faiss = faiss.IndexFlatIP(vectors.shape[1])
        if len(passages):
            self.faiss.add(vectors)
        asked: dict[int, list[str]] = {}
        for row, (_, question) in zip(self.question_rows, self.questions, strict=True):
            asked.setdefault(int(row), []).append(question)
        self.bm25 = BM25(
            [
                "\n".join([p.text, *([p.answer] if p.answer else []), *asked.get(row, [])])
                for row, p in enumerate(passages)
            ]
        )

    def cosine(self, vector: np.ndarray, question_discount: float = 0.0) -> np.ndarray:
        """Each passage's cosine to a query vector: the closer of its own text and its section
        questions, these less ``question_discount`` (see ``Settings.section_question_discount``)."""
        return self.lift_by_questions(self.vectors @ vector, vector, question_discount)

    def lift_by_questions(self, text: np.ndarray, vector: np.ndarray, question_discount: float) -> np.ndarray:
        """``text`` (each passage's cosine to its own text) raised, as a copy, to its closest section
        question's cosine less ``question_discount``, for a caller that keeps both."""
        cosine = text.copy()
        if len(self.questions):
            np.maximum.at(cosine, self.question_rows, self.question_vectors @ vector - question_discount)
        return cosine

    # ---------------------------------------------------------------- persistence
    @staticmethod
    def directory(data_dir: Path) -> Path:
        return data_dir / "index"

    def save(self, data_dir: Path) -> None:
        folder = self.directory(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / "passages.jsonl.tmp"
        with temporary.open("w", encoding="utf-8") as handle:
            for passage in self.passages:
                handle.write(json.dumps(asdict(passage), ensure_ascii=False) + "\n")
        np.save(folder / "vectors.npy", self.vectors)
        with (folder / "questions.jsonl").open("w", encoding="utf-8") as handle:
            for passage_id, question in self.questions:
                handle.write(json.dumps({"passage": passage_id, "question": question}, ensure_ascii=False) + "\n")
        np.save(folder / "question_vectors.npy", self.question_vectors)
        faiss.write_index(self.faiss, str(folder / "faiss.index"))
        temporary.replace(folder / "passages.jsonl")
        # The manifest is written last: its presence means the rest is complete.
        (folder / "manifest.json").write_text(json.dumps(self.manifest, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, data_dir: Path) -> KnowledgeIndex:
        folder = cls.directory(data_dir)
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"no index in {folder}; run `chatbot ingest` first")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        passages = [
            Passage(**json.loads(line))
            for line in (folder / "passages.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        vectors = np.load(folder / "vectors.npy")
        questions: list[tuple[str, str]] = []
        question_vectors = None
        if (folder / "questions.jsonl").exists():
            for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    questions.append((str(record["passage"]), str(record["question"])))
            question_vectors = np.load(folder / "question_vectors.npy")
        return cls(passages, vectors, manifest, questions, question_vectors)

    @classmethod
    def try_load(cls, data_dir: Path) -> KnowledgeIndex | None:
        try:
            return cls.load(data_dir)
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None


def settings_fingerprint(embedding_model: str, chunk_max_tokens: int) -> dict[str, object]:
    return {"version": MANIFEST_VERSION, "embedding_model": embedding_model, "chunk_max_tokens": chunk_max_tokens}


def is_stale(knowledge_dir: Path, data_dir: Path, embedding_model: str, chunk_max_tokens: int) -> bool:
    """True when a source file or a setting differs from what the saved index was built from."""
    manifest_path = KnowledgeIndex.directory(data_dir) / "manifest.json"
    if not manifest_path.exists():
        return True
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("settings") != settings_fingerprint(embedding_model, chunk_max_tokens):
        return True
    documents, faqs = discover_files(knowledge_dir)
    paths = [*documents, *faqs, *discover_question_files(knowledge_dir)]
    current = {str(p.relative_to(knowledge_dir)): file_hash(p) for p in paths}
    return current != manifest.get("files")


def build_index(
    knowledge_dir: Path,
    data_dir: Path,
    embedder: Embedder,
    chunk_max_tokens: int,
    progress: bool = True,
) -> BuildReport:
    """Bring the saved index up to date with ``knowledge_dir``, reusing unchanged work."""
    started = time.perf_counter()
    settings = settings_fingerprint(embedder.model_spec, chunk_max_tokens)
    document_paths, faq_paths = discover_files(knowledge_dir)
    question_paths = discover_question_files(knowledge_dir)
    all_paths = [*document_paths, *faq_paths, *question_paths]
    hashes = {str(p.relative_to(knowledge_dir)): file_hash(p) for p in all_paths}

    previous = KnowledgeIndex.try_load(data_dir)
    reusable: dict[str, np.ndarray] = {}
    previous_files: dict[str, str] = {}
    if previous is not None and previous.manifest.get("settings") == settings:
        previous_files = dict(previous.manifest.get("files", {}))  # type: ignore[call-overload]
        # Keys saved with the vectors name the exact text each vector embeds, so a change in what
        # a passage embeds can never pair an old vector with new text.
        for key, vector in zip(previous.manifest.get("vector_keys", []), previous.vectors, strict=False):  # type: ignore[call-overload]
            reusable[str(key)] = vector
        for key, vector in zip(previous.manifest.get("question_keys", []), previous.question_vectors, strict=False):  # type: ignore[call-overload]
            reusable[str(key)] = vector
    changed = [name for name, digest in hashes.items() if previous_files.get(name) != digest]
    if previous is not None and not changed and set(previous_files) == set(hashes):
        return BuildReport(
            len(all_paths),
            0,
            len(previous.passages),
            0,
            time.perf_counter() - started,
            True,
            len(previous.questions),
            list(previous.manifest.get("section_questions_unmatched", [])),  # type: ignore[call-overload]
        )

    documents = [load_document(p) for p in document_paths]
    by_id: dict[str, Document] = {}
    for document in documents:
        if document.id in by_id:
            raise ValueError(f"duplicate document id {document.id!r} in {document.path} and {by_id[document.id].path}")
        by_id[document.id] = document

    passages: list[Passage] = []
    seen: set[str] = set()
    for path in faq_paths:
        for entry in load_faq_file(path):
            if entry.id in seen:
                raise ValueError(f"duplicate FAQ id {entry.id!r} in {path}")
            seen.add(entry.id)
            passages.append(_faq_passage(entry, by_id))
    embedder.warm_up()
    sections: dict[tuple[str, str], list[int]] = {}  # (document id, heading) -> its passages' positions
    for document in documents:
        for chunk in chunk_document(document, chunk_max_tokens, embedder.count_tokens):
            sections.setdefault((document.id, chunk.heading), []).append(len(passages))
            passages.append(
                Passage(
                    id=chunk.id,
                    kind="chunk",
                    source_id=document.id,
                    title=document.title + (f" — {chunk.heading}" if chunk.heading else ""),
                    url=document.url,
                    text=chunk.text,
                    file=document.path,
                )
            )

    keys = [_key(embedder.model_spec, p.embed_text) for p in passages]
    missing = [i for i, key in enumerate(keys) if key not in reusable]
    fresh = embedder.encode([passages[i].embed_text for i in missing], progress=progress)
    for row, i in enumerate(missing):
        reusable[keys[i]] = fresh[row]
    dimension = embedder.model.get_embedding_dimension()
    vectors = (
        np.stack([reusable[k] for k in keys]).astype(np.float32)
        if passages
        else np.zeros((0, dimension), dtype=np.float32)
    )
    questions, question_vectors, unmatched, embedded = _section_questions(
        question_paths, sections, passages, vectors, embedder, reusable, progress
    )
    manifest = {
        "settings": settings,
        "files": hashes,
        "passages": len(passages),
        "faq_entries": sum(p.kind == "faq" for p in passages),
        "chunks": sum(p.kind == "chunk" for p in passages),
        "section_questions": len(questions),
        "section_questions_unmatched": unmatched,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "vector_keys": keys,
        "question_keys": [_key(embedder.model_spec, q) for _, q in questions],
    }
    KnowledgeIndex(passages, vectors, manifest, questions, question_vectors).save(data_dir)
    return BuildReport(
        len(all_paths),
        len(changed),
        len(passages),
        len(missing) + embedded,
        time.perf_counter() - started,
        False,
        len(questions),
        unmatched,
    )


def _section_questions(
    paths: list[Path],
    sections: dict[tuple[str, str], list[int]],
    passages: list[Passage],
    vectors: np.ndarray,
    embedder: Embedder,
    reusable: dict[str, np.ndarray],
    progress: bool,
) -> tuple[list[tuple[str, str]], np.ndarray, list[str], int]:
    """Embed the section questions and attach each to a passage of its section; also returns the
    unmatched sections and how many questions had to be embedded (the others were reused).

    A section split into several passages gets each question on the passage closest to it. A
    question file naming a section the document no longer has (a heading was renamed) does not
    stop ingestion: its questions are left out, logged, and listed in the manifest, so that the
    content team sees what to update instead of losing the whole knowledge base to one heading.
    """
    pending: list[tuple[list[int], str]] = []
    unmatched: list[str] = []
    for path in paths:
        for record in load_section_questions(path):
            rows = sections.get((record.document_id, record.section))
            if rows is None:
                unmatched.append(f"{Path(record.path).name}:{record.line} {record.section!r}")
                continue
            pending.extend((rows, question) for question in record.questions)
    if unmatched:
        log.warning("section questions without their section", extra={"sections": unmatched})
    dimension = vectors.shape[1]
    if not pending:
        return [], np.zeros((0, dimension), dtype=np.float32), unmatched, 0
    keys = [_key(embedder.model_spec, question) for _, question in pending]
    missing = [i for i, key in enumerate(keys) if key not in reusable]
    fresh = embedder.encode([pending[i][1] for i in missing], progress=progress) if missing else None
    for row, i in enumerate(missing):
        reusable[keys[i]] = fresh[row]  # type: ignore[index]
    question_vectors = np.stack([reusable[k] for k in keys]).astype(np.float32)
    questions = []
    for (rows, question), vector in zip(pending, question_vectors, strict=True):
        best = rows[int(np.argmax(vectors[rows] @ vector))] if len(rows) > 1 else rows[0]
        questions.append((passages[best].id, question))
    return questions, question_vectors, unmatched, len(missing)
