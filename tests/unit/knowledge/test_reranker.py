"""Bank-first ordering, the cross-encoder reranker (built when missing, then loaded), and the two
shipped-knowledge-base failures that retrieved Ask CFPB instead of the bank's own document."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import KnowledgeIndex, build_index
from chatbot.knowledge.reranker import CrossEncoderReranker, load_reranker, passage_text, reranker_state
from chatbot.knowledge.retriever import Retriever
from chatbot.training.reranker import RerankerConfig, casual, train_reranker
from tests.conftest import FIXTURE_KB, PROJECT_DATA_DIR

OVERDRAFT = """---
id: overdraft
title: Overdraft services
---
# Overdraft services

## Kestrel overdraft fee

The Kestrel overdraft fee is $29 per item that we pay when your account does not have enough money.
"""


def _bank_and_cfpb_kb(root: Path) -> Path:
    kb = root / "kb"
    (kb / "documents").mkdir(parents=True)
    (kb / "faq").mkdir()
    (kb / "documents" / "overdraft.md").write_text(OVERDRAFT, encoding="utf-8")
    cfpb = {
        "id": "cfpb-53",
        "question": "Is there a fee if my balance goes over on a credit card balance transfer?",
        "answer": "A balance transfer fee is usually 3% to 5% of the amount transferred.",
        "source": "cfpb-53",
    }
    (kb / "faq" / "ask_cfpb.jsonl").write_text(json.dumps(cfpb) + "\n", encoding="utf-8")
    return kb


def test_bank_prior_puts_the_banks_own_content_first_and_keeps_the_cosine(tmp_path: Path, embedder: Embedder) -> None:
    kb, data = _bank_and_cfpb_kb(tmp_path), tmp_path / "data"
    build_index(kb, data, embedder, 200, progress=False)
    index = KnowledgeIndex.load(data)
    query = "is there a fee if my balance goes over"

    plain = Retriever(index, embedder, rrf_k=10, bm25_weight=0.3).search(query, top_k=2)
    assert plain[0].passage.source_id == "cfpb-53"  # the Ask CFPB question is worded like the query

    first = Retriever(index, embedder, rrf_k=10, bm25_weight=0.3, bank_prior=0.05).search(query, top_k=2)
    assert first[0].passage.source_id == "overdraft"
    assert {h.passage.id: h.score for h in first} == pytest.approx({h.passage.id: h.score for h in plain})
    assert first[0].fused >= first[1].fused

    # The rule: a relevant bank passage (cosine at or above the floor) goes before any Ask CFPB entry.
    floor = plain[1].score - 0.01
    ruled = Retriever(index, embedder, rrf_k=10, bm25_weight=0.3, bank_first_cosine=floor).search(query, top_k=2)
    assert ruled[0].passage.source_id == "overdraft"
    assert all(h.passage.source_id != "cfpb-53" for h in ruled)  # covered by the bank: Ask CFPB left out
    above = Retriever(index, embedder, rrf_k=10, bm25_weight=0.3, bank_first_cosine=0.99).search(query, top_k=2)
    assert above[0].passage.source_id == "cfpb-53"  # no bank passage is that close: the fusion decides


def test_settings_carry_the_bank_prior_and_the_reranker_knobs(tmp_path: Path, embedder: Embedder) -> None:
    kb, data = _bank_and_cfpb_kb(tmp_path), tmp_path / "data"
    build_index(kb, data, embedder, 200, progress=False)
    settings = Settings(data_dir=data, knowledge_dir=kb, bank_prior=0.07, bank_first_cosine=0.5, rerank_depth=5)
    retriever = Retriever.from_settings(KnowledgeIndex.load(data), embedder, settings)
    assert (retriever.bank_prior, retriever.bank_first_cosine, retriever.rerank_depth) == (0.07, 0.5, 5)
    assert retriever.reranker is None  # none built


def test_reranker_reads_a_faq_entry_by_its_answer_and_a_chunk_by_its_titled_text(built_index: Settings) -> None:
    index = KnowledgeIndex.load(built_index.data_dir)
    faq = next(p for p in index.passages if p.kind == "faq" and p.answer)
    chunk = next(p for p in index.passages if p.kind == "chunk")
    assert faq.answer in passage_text(faq) and faq.text not in passage_text(faq)
    assert passage_text(chunk) == chunk.text and chunk.text.startswith(chunk.title.split(" — ")[0])


def test_casual_rewrite_is_how_customers_type() -> None:
    import random

    text = casual("What is the fee for Kestrel Bank's international wires?", random.Random(1))
    assert text == text.lower() and "?" not in text and "kestrel" not in text and "wire" in text


def test_reranker_is_built_when_missing_then_loaded_and_used(tmp_path: Path, embedder: Embedder) -> None:
    kb, data = tmp_path / "kb", tmp_path / "data"
    shutil.copytree(FIXTURE_KB, kb)
    build_index(kb, data, embedder, 200, progress=False)
    settings = Settings(data_dir=data, knowledge_dir=kb, rerank_enabled=True)
    assert reranker_state(settings) == "missing" and load_reranker(settings) is None

    meta = train_reranker(settings, RerankerConfig(max_steps=2, group_batch=2, max_length=64))
    assert meta["steps"] == 2 and meta["groups"] > 0
    assert reranker_state(settings) == "ok"
    reranker = load_reranker(settings)
    assert isinstance(reranker, CrossEncoderReranker)
    assert load_reranker(settings.model_copy(update={"rerank_enabled": False})) is None

    retriever = Retriever.from_settings(KnowledgeIndex.load(data), embedder, settings)
    hits = retriever.search("how much to send money abroad by wire", top_k=3)
    assert hits and all(h.rerank is not None for h in hits)
    assert [h.fused for h in hits] == sorted((h.fused for h in hits), reverse=True)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)  # still the cosine, for the thresholds

    # A change to the knowledge base makes it stale (make retrains it); a stale one still loads.
    with (kb / "faq" / "bank.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "fx-200", "question": "Q?", "answer": "A.", "source": "wires"}) + "\n")
    assert reranker_state(settings) == "stale"
    assert load_reranker(settings) is not None


SHIPPED = Settings(data_dir=PROJECT_DATA_DIR, knowledge_dir=PROJECT_ROOT / "knowledge_base")


@pytest.fixture(scope="module")
def shipped_retriever(embedder: Embedder) -> Retriever:
    index = KnowledgeIndex.try_load(SHIPPED.data_dir)
    if index is None or "overdraft" not in {p.source_id for p in index.passages}:
        pytest.skip("the shipped knowledge base is not indexed in the project's data dir (run make)")
    return Retriever.from_settings(index, embedder, SHIPPED)


@pytest.mark.parametrize(
    ("question", "document"),
    [
        # Ask CFPB's balance-transfer entry ranked first until the overdraft page's sections carried
        # their customers' questions (knowledge_base/questions/overdraft.jsonl).
        ("is there a fee if my balance goes negative", "overdraft"),
        ("how long before a check i deposit is available", "funds-availability"),
    ],
)
def test_the_banks_own_document_answers_before_ask_cfpb(
    shipped_retriever: Retriever, question: str, document: str
) -> None:
    hits = shipped_retriever.search(question, top_k=3)
    assert hits[0].passage.source_id == document, [h.passage.id for h in hits]
