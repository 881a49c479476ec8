from pathlib import Path

import pytest

from chatbot.knowledge.sources import KnowledgeError, discover_files, load_document, load_faq_file
from tests.conftest import FIXTURE_KB


def test_markdown_front_matter_gives_stable_id_title_and_url() -> None:
    document = load_document(FIXTURE_KB / "documents" / "wires.md")
    assert (document.id, document.title, document.url) == (
        "wires",
        "Wire transfers",
        "https://bank.example/help/wires",
    )
    assert "## Cut-off time for wire transfers" in document.text
    assert "product:" not in document.text  # front matter is metadata, not content


def test_html_document_keeps_headings_and_meta() -> None:
    document = load_document(FIXTURE_KB / "documents" / "savings.html")
    assert document.id == "savings"
    assert document.title == "Savings accounts"
    assert "## Interest on the High-Yield Savings account" in document.text
    assert "4.10% APY" in document.text


def test_text_document_takes_title_from_first_line() -> None:
    document = load_document(FIXTURE_KB / "documents" / "branch-hours.txt")
    assert (document.id, document.title) == ("branch-hours", "Branch opening hours")


def test_faq_jsonl_and_csv_load_alike() -> None:
    jsonl = load_faq_file(FIXTURE_KB / "faq" / "bank.jsonl")
    csv = load_faq_file(FIXTURE_KB / "faq" / "extra.csv")
    assert [e.id for e in jsonl] == ["fx-001", "fx-002", "fx-003"]
    assert csv[0].source == "savings" and csv[0].answer.endswith("4.10% APY.")


def test_malformed_faq_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q", "answer": "a"}\n{not json\n')
    with pytest.raises(KnowledgeError, match=r"bad.jsonl:2: invalid JSON"):
        load_faq_file(bad)


def test_faq_entry_without_answer_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question,answer\nx-1,What?,\n")
    with pytest.raises(KnowledgeError, match="lacks answer"):
        load_faq_file(bad)


def test_discover_separates_documents_from_faq_and_skips_readme(tmp_path: Path) -> None:
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "a.jsonl").write_text("")
    (tmp_path / "README.md").write_text("# about")
    (tmp_path / "doc.md").write_text("# Doc\ntext")
    documents, faqs = discover_files(tmp_path)
    assert [p.name for p in documents] == ["doc.md"]
    assert [p.name for p in faqs] == ["a.jsonl"]
