"""Customer questions indexed for a document's sections (``knowledge_base/questions/``)."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from chatbot.config import Settings
from chatbot.knowledge.chunking import chunk_document
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import KnowledgeIndex, build_index, is_stale
from chatbot.knowledge.retriever import Retriever
from chatbot.knowledge.sources import (
    KnowledgeError,
    discover_files,
    discover_question_files,
    load_document,
    load_section_questions,
)
from tests.conftest import FIXTURE_KB

DELIVERY = "lost-cards#replacement-card-delivery"
# Nothing in the customer's words is in the section's text ("A replacement card arrives in 5 to 7
# business days"), which is why banks write down the questions their customers ask.
ASKED = "when does the plastic show up in my mailbox"


def _kb(tmp_path: Path, lines: list[dict[str, object]] | None) -> Path:
    kb = tmp_path / "kb"
    shutil.copytree(FIXTURE_KB, kb)
    if lines is not None:
        (kb / "questions").mkdir()
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (kb / "questions" / "lost-cards.jsonl").write_text(text, encoding="utf-8")
    return kb


QUESTIONS = [
    {"section": "Replacement card delivery", "questions": [ASKED, "how long for a new card to come in the mail"]},
    {"section": "Report a lost or stolen debit card", "questions": ["someone swiped my wallet what do i do"]},
]


def test_questions_are_attached_to_their_section_and_lift_its_score(tmp_path: Path, embedder: Embedder) -> None:
    kb, data = _kb(tmp_path, QUESTIONS), tmp_path / "data"
    report = build_index(kb, data, embedder, 200, progress=False)
    index = KnowledgeIndex.load(data)
    assert report.files_total == 7 and index.manifest["section_questions"] == 3
    assert [pid for pid, _ in index.questions] == [DELIVERY, DELIVERY, "lost-cards#report-a-lost-or-stolen-debit-card"]
    assert index.question_vectors.shape == (3, 384)

    vector = embedder.encode([ASKED])[0]
    row = index.by_id[DELIVERY]
    with_questions = index.cosine(vector)
    assert with_questions[row] == pytest.approx(float(index.question_vectors[0] @ vector), abs=1e-5)
    assert with_questions[row] > float(index.vectors[row] @ vector) + 0.1
    others = np.delete(np.arange(len(index.passages)), list(index.question_rows))
    assert np.allclose(with_questions[others], (index.vectors @ vector)[others])  # untouched

    on = Retriever(index, embedder, rrf_k=10, bm25_weight=0.3)
    off = Retriever(index, embedder, rrf_k=10, bm25_weight=0.3, section_questions=False)
    first = on.search(ASKED, top_k=1, mode="dense")[0]
    assert first.passage.id == DELIVERY
    # The hit keeps what the passage itself scored: sentence selection reads that, not the question's.
    assert first.text_score == pytest.approx(float(index.vectors[row] @ vector), abs=1e-5)
    assert first.text_cosine < first.score
    assert off.search(ASKED, top_k=1, mode="dense")[0].passage.id != DELIVERY
    assert all(h.text_score is None and h.text_cosine == h.score for h in off.search(ASKED, top_k=5))
    # The questions are searchable by their words too.
    assert on.search("plastic mailbox", top_k=1, mode="bm25")[0].passage.id == DELIVERY


def test_questions_are_reused_and_tracked_like_the_other_files(tmp_path: Path, embedder: Embedder) -> None:
    kb, data = _kb(tmp_path, None), tmp_path / "data"
    first = build_index(kb, data, embedder, 200, progress=False)
    assert KnowledgeIndex.load(data).questions == [] and first.section_questions == 0

    (kb / "questions").mkdir()
    (kb / "questions" / "lost-cards.jsonl").write_text(json.dumps(QUESTIONS[0]) + "\n", encoding="utf-8")
    assert is_stale(kb, data, embedder.model_spec, 200)
    added = build_index(kb, data, embedder, 200, progress=False)
    assert (added.files_changed, added.embedded, added.passages) == (1, 2, first.passages)

    with (kb / "questions" / "lost-cards.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(QUESTIONS[1]) + "\n")
    one_more = build_index(kb, data, embedder, 200, progress=False)
    assert one_more.embedded == 1 and len(KnowledgeIndex.load(data).questions) == 3
    assert build_index(kb, data, embedder, 200, progress=False).up_to_date


def test_a_renamed_heading_leaves_its_questions_out_and_says_which(
    tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [*QUESTIONS, {"section": "Card delivery times", "questions": ["new card eta?"]}]
    kb, data = _kb(tmp_path, lines), tmp_path / "data"
    with caplog.at_level(logging.WARNING, logger="chatbot.knowledge.index"):
        report = build_index(kb, data, embedder, 200, progress=False)
    assert report.section_questions == 3 and report.unmatched == ["lost-cards.jsonl:3 'Card delivery times'"]
    assert build_index(kb, data, embedder, 200, progress=False).unmatched == report.unmatched  # still said
    index = KnowledgeIndex.load(data)
    assert index.manifest["section_questions"] == 3
    assert index.manifest["section_questions_unmatched"] == ["lost-cards.jsonl:3 'Card delivery times'"]
    assert "new card eta?" not in {q for _, q in index.questions}
    assert any("without their section" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"section": "Replacement card delivery", "questions": ["ok", ""]}', "list of non-empty strings"),
        ('{"questions": ["ok"]}', 'a "section" string'),
        ('{"section": "x", "questions": "ok"}', "list of non-empty strings"),
        ("{not json", "invalid JSON"),
    ],
)
def test_a_malformed_questions_file_is_named_with_its_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "lost-cards.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match=rf"lost-cards.jsonl:2: .*{message}"):
        load_section_questions(path)


def test_every_shipped_question_names_a_section_of_its_document(embedder: Embedder) -> None:
    """A heading renamed in a shipped document without its questions would silently lose them."""
    settings = Settings()
    files = discover_question_files(settings.knowledge_dir)
    assert files, f"no section questions in {settings.knowledge_dir / 'questions'}"
    documents, _ = discover_files(settings.knowledge_dir)
    headings = {
        (document.id, chunk.heading)
        for document in map(load_document, documents)
        for chunk in chunk_document(document, settings.chunk_max_tokens, embedder.count_tokens)
    }
    records = [record for path in files for record in load_section_questions(path)]
    assert [(r.path, r.section) for r in records if (r.document_id, r.section) not in headings] == []
    assert len({q.lower() for r in records for q in r.questions}) == sum(len(r.questions) for r in records)
