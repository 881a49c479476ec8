"""Import Ask CFPB question/answer pairs into the knowledge base as a JSONL FAQ file.

Why this file exists: the assistant answers general US consumer-finance questions (credit
reports, overdrafts, debt collection, mortgages, ...) from the Consumer Financial Protection
Bureau's public "Ask CFPB" knowledge base, alongside the bank's own documents and FAQ. This
script turns the cleaned 2017 export (CSV) into ``knowledge_base/faq/ask_cfpb.jsonl``, the
format the knowledge loader reads (``id``, ``question``, ``answer``, ``source``, plus ``url``,
``topic`` and ``subcategories``). Re-run it whenever the source CSV changes::

    python scripts/import_ask_cfpb.py [--source CSV] [--output JSONL]

Licence: Ask CFPB is a work of the US Government (Consumer Financial Protection Bureau) and is
in the public domain in the United States; it is also dedicated to the public domain worldwide
under CC0-1.0. The export was obtained via the catops/ask-cfpb-bot repository @ 90c86064
(ask.csv). The answers describe US consumer-finance rules in general terms as of 2017; they are
knowledge, not the fee schedule of any bank, and may be out of date.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "ask_cfpb" / "ask_cfpb_2017_approved_clean.csv"
DEFAULT_OUTPUT = REPO_ROOT / "knowledge_base" / "faq" / "ask_cfpb.jsonl"
EXPECTED_COLUMNS = ("ask_id", "question", "short_answer", "answer", "topic", "subcategories", "url")
SUBCATEGORY_SEPARATOR = " | "


class AskCfpbImportError(Exception):
    """The source CSV is missing or malformed; the message says where and why."""


def build_answer(short_answer: str, answer: str) -> str:
    """Put the short answer first (when there is one) unless the full answer already starts with it."""
    if not short_answer or answer.startswith(short_answer):
        return answer
    return f"{short_answer} {answer}"


def convert_row(row: dict[str, str], line: int, source: Path) -> tuple[int, dict[str, object]]:
    """Turn one CSV row into ``(ask_id, FAQ record)``, or raise if it lacks an id, question or answer."""
    ask_id = (row.get("ask_id") or "").strip()
    question = (row.get("question") or "").strip()
    short_answer = (row.get("short_answer") or "").strip()
    answer = (row.get("answer") or "").strip()
    missing = [name for name, value in (("ask_id", ask_id), ("question", question), ("answer", answer)) if not value]
    if missing:
        raise AskCfpbImportError(f"{source}: row {line} lacks {', '.join(missing)}")
    if not ask_id.isdigit():
        raise AskCfpbImportError(f"{source}: row {line}: ask_id {ask_id!r} is not a number")
    entry_id = f"cfpb-{ask_id}"
    subcategories = [part.strip() for part in (row.get("subcategories") or "").split(SUBCATEGORY_SEPARATOR)]
    record: dict[str, object] = {
        "id": entry_id,
        "question": question,
        "answer": build_answer(short_answer, answer),
        "url": (row.get("url") or "").strip(),
        "topic": (row.get("topic") or "").strip(),
        "subcategories": [part for part in subcategories if part],
        "source": entry_id,
    }
    return int(ask_id), record


def read_records(source: Path) -> list[dict[str, object]]:
    """Read and convert every row of ``source``, in ask_id order."""
    if not source.is_file():
        raise AskCfpbImportError(f"source CSV not found: {source}")
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        absent = [column for column in EXPECTED_COLUMNS if column not in (reader.fieldnames or [])]
        if absent:
            raise AskCfpbImportError(f"{source}: missing column(s) {', '.join(absent)}")
        keyed = [convert_row(row, number, source) for number, row in enumerate(reader, start=1)]
    if not keyed:
        raise AskCfpbImportError(f"{source}: no data rows")
    ask_ids = [ask_id for ask_id, _ in keyed]
    duplicates = sorted({ask_id for ask_id in ask_ids if ask_ids.count(ask_id) > 1})
    if duplicates:
        raise AskCfpbImportError(f"{source}: duplicate ask_id values {duplicates}")
    return [record for _, record in sorted(keyed, key=lambda pair: pair[0])]


def write_jsonl(records: list[dict[str, object]], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert the Ask CFPB CSV export into a JSONL FAQ file.")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="CSV to read (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSONL to write (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        records = read_records(args.source)
    except (AskCfpbImportError, OSError, csv.Error, UnicodeDecodeError) as error:
        print(f"import_ask_cfpb: error: {error}", file=sys.stderr)
        return 1
    write_jsonl(records, args.output)
    print(f"wrote {len(records)} entries to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
