from chatbot.knowledge.chunking import chunk_document, split_sections
from chatbot.knowledge.sources import Document


def words(text: str) -> int:
    return len(text.split())


def test_sections_follow_headings_in_order() -> None:
    sections = split_sections("# Title\nintro\n## A\nalpha\n### A1\ndeep\n## B\nbeta")
    assert [(path, body) for path, body in sections] == [
        (["Title"], "intro"),
        (["Title", "A"], "alpha"),
        (["Title", "A", "A1"], "deep"),
        (["Title", "B"], "beta"),
    ]


def test_chunks_carry_title_and_heading_and_respect_the_budget() -> None:
    long_body = " ".join(f"Sentence number {i} about overdraft fees." for i in range(60))
    document = Document(
        id="od", title="Overdraft", url=None, text=f"# Overdraft\n## Fees\n{long_body}\n## Protection\nShort.", path="x"
    )
    chunks = chunk_document(document, max_tokens=50, count=words)
    assert all(words(c.text) <= 50 for c in chunks)
    assert len(chunks) > 3
    assert chunks[0].text.startswith("Overdraft — Fees\n")
    assert chunks[0].id == "od#fees" and chunks[1].id == "od#fees-2"
    assert chunks[-1].id == "od#protection"
    # Nothing is lost or duplicated between the pieces of a long section.
    rejoined = " ".join(c.text.split("\n", 1)[1] for c in chunks if c.heading == "Fees")
    assert rejoined.split() == long_body.split()
