import pytest

from chatbot.dialogue.engine import Engine

CASES = [
    ("how much to send money abroad by wire", "fx-001"),
    ("what time do i need to send a wire by to go out today", "fx-002"),
    ("someone took my debit card", "fx-003"),
    ("what APY does high yield savings earn", "fx-004"),
    ("are branches open on saturday", "branch-hours#intro"),
    ("fee for an extra withdrawal from savings", "savings#withdrawals-from-savings"),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_hybrid_search_ranks_the_answering_passage_in_the_top_two(engine: Engine, query: str, expected: str) -> None:
    ids = [hit.passage.id for hit in engine.search(query, top_k=5, mode="hybrid")]
    assert expected in ids[:2], ids


def test_bm25_alone_finds_exact_terms_and_dense_alone_finds_paraphrases(engine: Engine) -> None:
    assert engine.search("APY", top_k=1, mode="bm25")[0].passage.source_id == "savings"
    assert engine.search("my wallet was nicked with my card in it", top_k=1, mode="dense")[0].passage.source_id == (
        "lost-cards"
    )


def test_hits_carry_cosine_scores_in_fused_order(engine: Engine) -> None:
    hits = engine.search("international wire fee", top_k=5)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert [h.fused for h in hits] == sorted((h.fused for h in hits), reverse=True)
    assert engine.search("   ") == []


def test_a_search_can_be_kept_to_faq_entries_or_to_document_sections(engine: Engine) -> None:
    """Quick replies for a vague message are the bank's FAQ questions, whatever sections rank first."""
    faq = engine.search("card", top_k=5, kind="faq")
    chunks = engine.search("card", top_k=5, kind="chunk")
    assert faq and {h.passage.kind for h in faq} == {"faq"}
    assert chunks and {h.passage.kind for h in chunks} == {"chunk"}
    every_faq = {p.id for p in engine.index.passages if p.kind == "faq"}
    assert {h.passage.id for h in engine.search("card", top_k=50, kind="faq")} == every_faq
