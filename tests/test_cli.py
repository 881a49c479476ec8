"""`chatbot ask` as a user runs it: a real process, real models, one AnswerObject per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from chatbot.config import Settings


def run_cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        CHATBOT_DATA_DIR=str(settings.data_dir),
        CHATBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
        CHATBOT_GENERATOR_MODEL=settings.generator_model,
        CHATBOT_MAX_NEW_TOKENS="32",
    )
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
