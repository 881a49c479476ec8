"""Load the bank's documents and FAQ pairs from the knowledge-base folder.

Banks keep content in many shapes; we accept Markdown with front matter (preferred), plain text
and HTML documents, and FAQ pairs as JSONL or CSV. Every record carries a stable ``id`` because
answers cite it and evaluation sets refer to it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
from bs4 import BeautifulSoup

DOCUMENT_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
FAQ_SUFFIXES = {".jsonl", ".csv"}


class KnowledgeError(ValueError):
    """A knowledge-base file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    url: str | None
    text: str  # Markdown body (HTML and text are converted to Markdown-like headings)
    path: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SectionQuestions:
    """Questions customers ask that one section of a document answers.

    They are indexed as extra vectors of the section's passage (see
    :class:`chatbot.knowledge.index.KnowledgeIndex`): customers rarely use the words of the help
    page ("coffee shop wifi" for a section on public networks), and a question is closer to a
    question than to the page. ``section`` is the heading path as chunking writes it
    ("Fees > Monthly fee"), or "" for the text before the first heading.
    """

    document_id: str
    section: str
    questions: tuple[str, ...]
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class FaqEntry:
    id: str
    question: str
    answer: str
    source: str  # the document id that backs the answer, or the entry's own id
    url: str | None = None
    title: str | None = None
    path: str = ""


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "doc"


def load_document(path: Path) -> Document:
    suffix = path.suffix.lower()
    raw = path.read_text(encoding="utf-8")
    if suffix in {".md", ".markdown"}:
        post = frontmatter.loads(raw)
        meta = {str(k): str(v) for k, v in post.metadata.items()}
        body = post.content
        title = meta.get("title") or _first_heading(body) or path.stem
    elif suffix in {".html", ".htm"}:
        soup = BeautifulSoup(raw, "html.parser")
        meta = {}
        for tag in soup.find_all("meta"):
            name, content = tag.get("name"), tag.get("content")
            if isinstance(name, str) and isinstance(content, str):
                meta[name] = content
        title = meta.get("title") or (soup.title.get_text(strip=True) if soup.title else "") or path.stem
        body = _html_to_markdown(soup)
    else:
        meta = {}
        lines = raw.strip().splitlines()
        title = lines[0].strip() if lines else path.stem
        body = raw
    doc_id = meta.get("id") or _slug(path.stem)
    if not body.strip():
        raise KnowledgeError(f"{path}: document has no text")
    return Document(id=doc_id, title=title, url=meta.get("url") or None, text=body, path=str(path), meta=meta)


def _first_heading(markdown: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", markdown, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def _html_to_markdown(soup: BeautifulSoup) -> str:
    for tag in soup(["script", "style", "nav", "footer"]):
        tag.decompose()
    parts: list[str] = []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "p", "li", "td"]):
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name in {"h1", "h2", "h3", "h4"}:
            parts.append("#" * int(element.name[1]) + " " + text)
        elif element.name == "li":
            parts.append("- " + text)
        else:
            parts.append(text)
    return "\n\n".join(parts)


def _jsonl_objects(path: Path) -> list[tuple[int, dict[str, object]]]:
    """The JSON objects of a JSONL file with their line numbers; blank lines are skipped."""
    objects: list[tuple[int, dict[str, object]]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise KnowledgeError(f"{path}:{number}: invalid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise KnowledgeError(f"{path}:{number}: expected a JSON object")
        objects.append((number, record))
    return objects


def load_faq_file(path: Path) -> list[FaqEntry]:
    rows: list[dict[str, object]] = []
    if path.suffix.lower() == ".jsonl":
        rows.extend(record for _, record in _jsonl_objects(path))
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    entries = []
    for number, row in enumerate(rows, start=1):
        missing = [key for key in ("id", "question", "answer") if not str(row.get(key) or "").strip()]
        if missing:
            raise KnowledgeError(f"{path}: entry {number} lacks {', '.join(missing)}")
        entry_id = str(row["id"]).strip()
        entries.append(
            FaqEntry(
                id=entry_id,
                question=str(row["question"]).strip(),
                answer=str(row["answer"]).strip(),
                source=str(row.get("source") or entry_id).strip(),
                url=(str(row["url"]).strip() or None) if row.get("url") else None,
                title=str(row["title"]).strip() if row.get("title") else None,
                path=str(path),
            )
        )
    return entries


QUESTIONS_FOLDER = "questions"


def load_section_questions(path: Path) -> list[SectionQuestions]:
    """``questions/<document id>.jsonl``: one ``{"section": ..., "questions": [...]}`` per line."""
    document_id = path.stem
    records: list[SectionQuestions] = []
    for number, record in _jsonl_objects(path):
        section = record.get("section")
        if not isinstance(section, str):
            raise KnowledgeError(f'{path}:{number}: expected an object with a "section" string')
        questions = record.get("questions")
        if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
            raise KnowledgeError(f'{path}:{number}: "questions" must be a list of non-empty strings')
        records.append(
            SectionQuestions(
                document_id=document_id,
                section=section.strip(),
                questions=tuple(q.strip() for q in questions),
                path=str(path),
                line=number,
            )
        )
    return records


def discover_question_files(root: Path) -> list[Path]:
    """The section-question files under ``root/questions/`` (none is fine)."""
    folder = root / QUESTIONS_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.jsonl") if p.is_file() and not p.name.startswith("."))


def discover_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Documents anywhere under ``root`` except ``faq/`` and ``questions/``; FAQ files under ``faq/``."""
    if not root.is_dir():
        raise KnowledgeError(f"knowledge base folder {root} does not exist")
    documents, faqs = [], []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.name.lower() == "readme.md":
            continue
        relative = path.relative_to(root)
        if relative.parts[0] == "faq" and path.suffix.lower() in FAQ_SUFFIXES:
            faqs.append(path)
        elif relative.parts[0] not in {"faq", QUESTIONS_FOLDER} and path.suffix.lower() in DOCUMENT_SUFFIXES:
            documents.append(path)
    return documents, faqs
