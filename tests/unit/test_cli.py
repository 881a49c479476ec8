"""`chatbot ask` as a user runs it: a real process, real models, one AnswerObject per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select

from chatbot.config import Settings
from chatbot.store import Store
from chatbot.store.models import Conversation


def run_cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        CHATBOT_DATA_DIR=str(settings.data_dir),
        CHATBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
        CHATBOT_GENERATOR_MODEL=settings.generator_model,
        CHATBOT_MAX_NEW_TOKENS="32",
        CHATBOT_DATABASE_URL=settings.resolved_database_url,
    )
    if settings.nlu_dir is not None:  # the intent classifier `make` built, not one trained per command
        env["CHATBOT_NLU_DIR"] = str(settings.nlu_dir)
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=300
    )


def test_ask_json_reads_questions_from_stdin(built_index: Settings) -> None:
    result = run_cli(
        built_index,
        "ask",
        "--json",
        stdin="What is the cut-off time for wire transfers?\n\nwhat's the weather on mars\n",
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["kind"] for a in answers] == ["faq", "refusal"]
    assert answers[0]["sources"][0]["id"] == "wires" and answers[0]["text"].startswith("Wires requested before")


def test_ask_with_argument_prints_text_and_sources(built_index: Settings) -> None:
    result = run_cli(built_index, "ask", "How", "much", "is", "an", "international", "wire?")
    assert result.returncode == 0, result.stderr
    assert "$45" in result.stdout and "[wires] Wire transfers" in result.stdout


def test_ask_reports_bad_input_without_a_traceback(built_index: Settings) -> None:
    result = run_cli(built_index, "ask", "--json", stdin="x" * 3000 + "\n")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "message_too_long"
    assert "Traceback" not in result.stderr


def test_chat_keeps_a_stored_conversation_so_follow_ups_have_their_context(built_index: Settings) -> None:
    result = run_cli(built_index, "chat", stdin="How much is an international wire?\nand a domestic one?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("bot ›") == 2
    store = Store(built_index.resolved_database_url)
    try:
        with store._sessions() as session:
            conversation = session.scalars(select(Conversation).where(Conversation.channel == "cli")).one()
        roles = [m.role for m in store.messages(conversation.id)]
    finally:
        store.close()
    assert roles == ["user", "assistant", "user", "assistant"]


def test_ingest_names_section_questions_whose_heading_is_gone(tmp_path, built_index: Settings) -> None:  # type: ignore[no-untyped-def]
    import shutil

    kb = tmp_path / "kb"
    shutil.copytree(built_index.knowledge_dir, kb)
    (kb / "questions").mkdir(exist_ok=True)
    lines = [
        {"section": "Replacement card delivery", "questions": ["when does my new card come"]},
        {"section": "Card delivery times", "questions": ["new card eta?"]},  # no such heading
    ]
    (kb / "questions" / "lost-cards.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    settings = built_index.model_copy(update={"knowledge_dir": kb, "data_dir": tmp_path / "data"})
    result = run_cli(settings, "ingest")
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr  # the console writes to stderr
    assert "1 section questions" in said
    assert "1 section(s) in questions/ match no heading" in said
    assert "lost-cards.jsonl:2 'Card delivery times'" in said
