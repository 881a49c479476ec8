"""Split documents into retrieval passages on their headings, within a token budget.

A bank's help page is written in sections ("Monthly fee", "How to avoid it"); a section is the
natural unit to retrieve and to cite. Sections longer than the embedder's budget are split on
paragraphs, then on sentences, so that no text is silently truncated by the encoder. Every chunk
starts with its document title and heading path, which keeps a chunk meaningful on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from chatbot.knowledge.sources import Document

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    id: str
    document_id: str
    heading: str
    text: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"


def split_sections(markdown: str) -> list[tuple[list[str], str]]:
    """Return ``(heading path, body)`` pairs in document order."""
    sections: list[tuple[list[str], str]] = []
    path: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append((list(path), body))
        lines.clear()

    for line in markdown.splitlines():
        match = HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            del path[level - 1 :]
            path.extend([""] * (level - 1 - len(path)))
            path.append(match.group(2).strip())
        else:
            lines.append(line)
    flush()
    return sections


def _pieces(body: str, budget: int, count: TokenCounter) -> list[str]:
    """Greedy packing of paragraphs (then sentences) into pieces of at most ``budget`` tokens."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if count(paragraph) <= budget:
            units.append(paragraph)
        else:
            units.extend(s.strip() for s in SENTENCE_END.split(paragraph) if s.strip())
    pieces: list[str] = []
    current: list[str] = []
    for unit in units:
        candidate = "\n\n".join([*current, unit])
        if current and count(candidate) > budget:
            pieces.append("\n\n".join(current))
            current = [unit]
        else:
            current.append(unit)
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def chunk_document(document: Document, max_tokens: int, count: TokenCounter) -> list[Chunk]:
    chunks: list[Chunk] = []
    used_ids: set[str] = set()
    for path, body in split_sections(document.text):
        headings = [h for h in path if h]
        # The document's own H1 usually repeats its title; keep the path informative.
        if headings and headings[0].strip().lower() == document.title.strip().lower():
            headings = headings[1:]
        heading = " > ".join(headings)
        prefix = document.title + (f" — {heading}" if heading else "")
        budget = max(16, max_tokens - count(prefix) - 2)
        for number, piece in enumerate(_pieces(body, budget, count)):
            base = f"{document.id}#{_slug(heading) if heading else 'intro'}"
            chunk_id = base if number == 0 else f"{base}-{number + 1}"
            while chunk_id in used_ids:
                chunk_id += "x"
            used_ids.add(chunk_id)
            chunks.append(Chunk(id=chunk_id, document_id=document.id, heading=heading, text=f"{prefix}\n{piece}"))
    return chunks
