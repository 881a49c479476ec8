"""Logs never carry personal data: the filter ``configure_logging`` installs redacts every record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from chatbot.guard.log_filter import PiiRedactionFilter
from chatbot.log_setup import configure_logging

CARD, EMAIL, PHONE, SSN = "4111 1111 1111 1111", "jane.doe@example.com", "(415) 555-2671", "123-45-6789"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The real configure_logging, writing to the captured stderr; the root logger restored afterwards.

    Each test calls ``configure_logging`` itself: pytest resets the root level after fixture set-up.
    """
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        yield capsys
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def test_message_arguments_and_extras_are_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    log = logging.getLogger("chatbot.some.module")
    log.info(
        "customer wrote %s and %s",
        f"card {CARD}",
        f"email {EMAIL}",
        extra={"text": f"call me at {PHONE}", "nested": {"ssn": [f"ssn {SSN}"]}, "latency_ms": 41},
    )
    (record,) = lines(json_logs)
    raw = json.dumps(record, ensure_ascii=False)
    for secret in (CARD, EMAIL, PHONE, SSN, "4111"):
        assert secret not in raw
    assert record["event"] == "customer wrote card [CARD ••••1111] and email [EMAIL]"
    assert record["text"] == "call me at [PHONE ••••2671]"
    assert record["nested"] == {"ssn": ["ssn [SSN]"]}
    assert record["latency_ms"] == 41  # numbers and non-personal fields pass unchanged


def test_exceptions_and_third_party_loggers_are_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    try:
        raise ValueError(f"could not parse body {{'text': 'my account number 12345678901, {EMAIL}'}}")
    except ValueError:
        logging.getLogger("some.library").exception("request failed")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", f"/v1/lookup?email={EMAIL}", "1.1", 404
    )
    failed, access = lines(json_logs)
    assert "12345678901" not in failed["exception"] and EMAIL not in failed["exception"]
    assert "[ACCOUNT ••••8901]" in failed["exception"] and "ValueError" in failed["exception"]
    assert access["event"] == '127.0.0.1:50000 - "GET /v1/lookup?email=[EMAIL] HTTP/1.1" 404'


def test_ordinary_log_lines_are_unchanged(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("chatbot.dialogue.engine").info(
        "answered", extra={"kind": "faq", "latency_ms": 1234, "sources": ["fee-schedule", "kb-0042"]}
    )
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)")
    answered, running = lines(json_logs)
    assert answered["event"] == "answered" and answered["sources"] == ["fee-schedule", "kb-0042"]
    assert answered["latency_ms"] == 1234
    assert running["event"] == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)"


def test_the_filter_is_installed_once_on_the_root_handler(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    (handler,) = logging.getLogger().handlers
    assert sum(isinstance(f, PiiRedactionFilter) for f in handler.filters) == 1


def redact_value(value: object) -> object:
    return PiiRedactionFilter().rewrite_value(value)


def test_redact_value_walks_containers() -> None:
    value = {"a": (f"x {EMAIL}", 3), "b": [{"c": f"acct {12345678}"}], "d": None}
    assert redact_value(value) == {"a": ("x [EMAIL]", 3), "b": [{"c": "acct [ACCOUNT ••••5678]"}], "d": None}


def test_ids_with_long_digit_runs_are_not_taken_for_cards() -> None:
    """Hex ids (request, message, conversation) can hold a Luhn-valid digit run; they must stay intact."""
    for identifier in ("conv_4111111111111111", "a4111111111111111f", "msg_0a4111111111111111", "4111111111111111ab"):
        assert redact_value(identifier) == identifier
    assert redact_value("card:4111111111111111") == "card:[CARD ••••1111]"


def test_percent_encoded_personal_data_in_an_access_log_line_is_redacted(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/v1/conversations?customer_id=jane.doe%40example.com&limit=5&q=caf%C3%A9",
        "1.1",
        200,
    )
    (record,) = lines(json_logs)
    assert "jane.doe" not in str(record["event"]) and "example.com" not in str(record["event"])
    assert "[EMAIL]" in str(record["event"])


def test_percent_encoded_text_without_personal_data_is_logged_as_it_was(json_logs: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("uvicorn.access").info("GET /v1/search?q=caf%C3%A9%20hours 200")
    (record,) = lines(json_logs)
    assert record["event"] == "GET /v1/search?q=caf%C3%A9%20hours 200"
