"""PII redaction: every kind in every format it claims, look-alikes kept, and the measured corpus figures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatbot.config import Settings
from chatbot.evals.pii import DEFAULT_CORPUS, evaluate, load_corpus, run_pii_evaluation
from chatbot.guard.pii import aba_valid, find_pii, iban_valid, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        # cards: Luhn-checked, continuous or grouped by spaces, dashes or dots; Amex 4-6-5
        ("my card 4111 1111 1111 1111 was stolen", "my card [CARD ••••1111] was stolen", "card"),
        ("card 4111-1111-1111-1111", "card [CARD ••••1111]", "card"),
        ("card 4111.1111.1111.1111.", "card [CARD ••••1111].", "card"),
        ("visa 4111111111111111, exp 09/27", "visa [CARD ••••1111], exp 09/27", "card"),
        ("amex 378282246310005 please", "amex [CARD ••••0005] please", "card"),
        ("amex 3782 822463 10005 please", "amex [CARD ••••0005] please", "card"),
        ("mastercard 2223-0031-2200-3222", "mastercard [CARD ••••3222]", "card"),
        ("discover 6011 1111 1111 1117", "discover [CARD ••••1117]", "card"),
        # IBAN: mod-97 and the country's length; compact, grouped, lowercase
        ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN [IBAN GB••5432]", "iban"),
        ("send it to GB82WEST12345698765432 today", "send it to [IBAN GB••5432] today", "iban"),
        ("iban de89370400440532013000", "iban [IBAN DE••3000]", "iban"),
        ("my iban: de89 3704 0044 0532 0130 00.", "my iban: [IBAN DE••3000].", "iban"),
        # SSN: dashes or spaces always; 9 digits or the last four only after an SSN keyword
        ("my ssn is 123-45-6789", "my ssn is [SSN]", "ssn"),
        ("social 123 45 6789", "social [SSN]", "ssn"),
        ("SSN: 123456789 for the credit check", "SSN: [SSN] for the credit check", "ssn"),
        ("the last 4 of my social are 6789", "the last 4 of my social are [SSN]", "ssn"),
        ("my ITIN is 912-78-4521", "my ITIN is [SSN]", "ssn"),
        # routing: ABA checksum after a keyword
        ("routing number 021000021", "routing number [ROUTING]", "routing"),
        ("ABA 011000015 for the wire", "ABA [ROUTING] for the wire", "routing"),
        # account: after a keyword, 6-17 digits
        ("account number 12345678901", "account number [ACCOUNT ••••8901]", "account"),
        ("acct no. 8453825414, please waive the fee", "acct no. [ACCOUNT ••••5414], please waive the fee", "account"),
        ("a/c 0012-3456-7890", "a/c [ACCOUNT ••••7890]", "account"),
        ("move $500 from savings 1234567890", "move $500 from savings [ACCOUNT ••••7890]", "account"),
        # e-mail
        ("email me at john.smith+bank@gmail.com", "email me at [EMAIL]", "email"),
        ("reply to p.j.o'brien@mail.example.co.uk please", "reply to [EMAIL] please", "email"),
        # phone: NANP with separators, +country code, bare 10 digits after a phone keyword
        ("call me at (415) 555-2671", "call me at [PHONE ••••2671]", "phone"),
        ("my cell 415.555.2671", "my cell [PHONE ••••2671]", "phone"),
        ("415 555 2671 after 5pm", "[PHONE ••••2671] after 5pm", "phone"),
        ("reach me on +1 (212) 555-0143", "reach me on [PHONE ••••0143]", "phone"),
        ("1-206-555-0148 is my old phone", "[PHONE ••••0148] is my old phone", "phone"),
        ("text me at 4155550163", "text me at [PHONE ••••0163]", "phone"),
        ("call me on +44 20 7946 0958", "call me on [PHONE ••••0958]", "phone"),
        ("+33 6 12 34 56 78 is my husband", "[PHONE ••••5678] is my husband", "phone"),
        ("my mobile 07700 900123 gets no texts", "my mobile [PHONE ••••0123] gets no texts", "phone"),
    ],
)
def test_each_kind_and_format_is_redacted(text: str, expected: str, kind: str) -> None:
    result = redact(text)
    assert result.text == expected
    assert result.found == {kind: 1}


def test_several_kinds_in_one_message_each_get_their_placeholder() -> None:
    result = redact("routing 021000021 account 123456789, email a.b@c.io, phone (602) 555-0174")
    assert result.text == "routing [ROUTING] account [ACCOUNT ••••6789], email [EMAIL], phone [PHONE ••••0174]"
    assert result.found == {"routing": 1, "account": 1, "email": 1, "phone": 1}
    assert [e.kind for e in result.entities] == ["routing", "account", "email", "phone"]


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456 arrived",  # fails Luhn: not a card
        "reference 4829 1047 3365 2210 from the wire",  # fails Luhn
        "I paid $1,200 on 10/01/2026 at 10:30 PM",
        "the rate went from 4.25% to 3.90%",
        "routing number 123456789",  # fails the ABA checksum
        "GB82 WEST 1234 5698 7654 33",  # fails mod-97
        "my zip code is 94110, billing zip 10001-1234",
        "I've been a customer since 2009, born in 1986",
        "my card ending in 4421 got declined",  # the last four are kept on purpose
        "acct ending 7719, why was I charged",
        "the app shows **** **** **** 1234",
        "my savings has 150000 in it",  # a balance, not an account number
        "checking on order 45678912",  # the number belongs to the order
        "mortgage of 350000 over 360 months",
        "the dispute number is 1234567890",  # 10 digits without a phone keyword
        "the merchant's phone was 555-0123",  # 7-digit local numbers are kept
        "my employer id is 12-3456789",
        "tracking number 1Z999AA10123456784",
        "SWIFT code KSTRUS33",
        "the text code 482913 expired",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact(text).text == text
    assert find_pii(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "call 1-800-555-0142 any time",
        "our fraud line (800) 555-0199",
        "from abroad: +1-302-555-0177",
        "Kestrel's routing number is 021000555",
        "forward it to phishing@kestrelbank.example",
    ],
)
def test_the_banks_own_published_numbers_are_kept(text: str) -> None:
    """Agents quote them and agents' messages are redacted too: they must reach the customer intact."""
    assert redact(text).text == text


def test_the_published_list_is_a_setting() -> None:
    assert redact("call 1-800-555-0142", keep=[]).text == "call [PHONE ••••0142]"
    assert redact("call (415) 555-2671", keep=["415-555-2671"]).text == "call (415) 555-2671"


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert iban_valid("de89 3704 0044 0532 0130 00")
    assert not iban_valid("DE8937040044053201300")  # the right checksum cannot save the wrong length
    assert aba_valid("021000021") and not aba_valid("021000022")


def test_corpus_is_large_balanced_and_split() -> None:
    cases = load_corpus()
    assert len(cases) >= 250
    with_pii = [c for c in cases if c.expected]
    assert 0.4 <= len(with_pii) / len(cases) <= 0.6
    assert {c.split for c in cases} == {"dev", "test"}
    assert {e.kind for c in with_pii for e in c.expected} == {
        "card",
        "iban",
        "ssn",
        "routing",
        "account",
        "email",
        "phone",
    }
    assert len({c.text for c in cases}) == len(cases)


def test_measured_recall_and_false_positive_rate_on_the_dev_half() -> None:
    """The real evaluation on the dev split (the rules were tuned there; test is reported, not asserted)."""
    report = evaluate(load_corpus(), "dev")
    assert report.entities >= 60 and report.without_pii >= 50
    assert report.recall >= 0.98, report.misses
    assert report.false_positive_rate <= 0.02, report.false_positives
    for kind, scores in report.per_kind.items():
        assert scores["expected"] > 0, kind


def test_eval_pii_command_writes_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chatbot.cli import app

    out = tmp_path / "pii.json"
    result = CliRunner().invoke(app, ["eval", "pii", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert set(written["splits"]) == {"dev", "test"}
    assert (
        written["splits"]["dev"]
        == json.loads(json.dumps(run_pii_evaluation(DEFAULT_CORPUS).as_dict()))["splits"]["dev"]
    )
    assert "| dev |" in result.output


# --------------------------------------------------------------------------- what reaches a remote model
class _RecordingApp:
    """Wraps the real generation server's ASGI app and keeps the bodies of chat-completion requests."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording_receive, send)
        if scope["path"].endswith("/chat/completions"):
            self.bodies.append(b"".join(chunks))


@pytest.fixture
def generation_server(settings: Settings) -> Iterator[tuple[str, _RecordingApp]]:
    import socket

    import uvicorn

    from chatbot.llm.openai_server import create_llm_app

    recorder = _RecordingApp(create_llm_app(settings))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["status"] == "ok":
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "generation server did not start"
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}/v1", recorder
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.slow
def test_a_remote_model_only_ever_sees_redacted_text(
    built_index: Settings, generation_server: tuple[str, _RecordingApp], tmp_path: Path
) -> None:
    from chatbot.conversations.turns import TurnService
    from chatbot.dialogue.engine import Engine, EngineOptions
    from chatbot.store import Store

    url, recorder = generation_server
    store = Store(f"sqlite:///{tmp_path / 'remote.db'}")
    engine = Engine(built_index.model_copy(update={"llm_base_url": url}))
    turns = TurnService(engine.settings, engine, store)
    engine.warm_up()
    try:
        conversation, _ = store.create_conversation("web", None)
        card, email = "4111 1111 1111 1111", "jane.doe@example.com"
        question = f"my card {card} was stolen, mail {email}: how fast can I get a new card?"
        options = EngineOptions(faq_route=False, dialogue=False)
        answer = asyncio.run(turns.ask_answer(question, conversation, options))
    finally:
        engine.close()
    assert recorder.bodies, f"the engine never called the generation server (answered {answer.kind})"
    sent = " ".join(json.dumps(json.loads(body)["messages"], ensure_ascii=False) for body in recorder.bodies)
    assert card not in sent and "4111111111111111" not in sent and email not in sent
    assert "[CARD ••••1111]" in sent and "[EMAIL]" in sent
    stored = [m.text for m in store.messages(conversation)]
    assert all(card not in text and email not in text for text in stored)


def test_analytics_show_questions_redacted_even_from_rows_stored_before_the_new_kinds() -> None:
    """Rows written before e-mail and phone redaction existed are redacted again when shown (and in the CSV)."""
    from chatbot.agents.analytics import summarise, unanswered_csv
    from chatbot.store import AnalyticsData

    question = "why was I charged? call me at (415) 555-2671 or jane.doe@example.com"
    data = AnalyticsData(["conv_1"], [], set(), [], [], [], [(question, "fallback"), (question, "fallback")])
    top = summarise(data, days=30)["top_unanswered"]
    assert top == [
        {"text": "why was I charged? call me at [PHONE ••••2671] or [EMAIL]", "count": 2, "kind": "fallback"}
    ]
    assert "555-2671" not in unanswered_csv(top) and "jane.doe" not in unanswered_csv(top)


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111\n1111 1111",  # wrapped across lines by a paste
        "4111/1111/1111/1111",
        "4111 / 1111 / 1111 / 1111",
        "card 4\u200b111\u200b1111\u200b1111\u200b1111",  # zero-width spaces between the digits
        "my card " + "4111 1111 1111 1111".translate(FULL_WIDTH),
        "card 4111_1111_1111_1111 declined",
        "4\u00ad111-1111-1111-1111",  # a soft hyphen
    ],
)
def test_a_card_number_is_found_whatever_separates_or_disguises_its_digits(text: str) -> None:
    redaction = redact(text, keep=[])
    assert redaction.found == {"card": 1}, redaction.text
    assert "[CARD ••••1111]" in redaction.text
    assert not any(ch.isdigit() for ch in redaction.text.replace("••••1111", ""))


def test_disguised_phone_email_and_ssn_are_found() -> None:
    found = redact(
        "text " + "503-555-2671".translate(FULL_WIDTH) + ", mail jane.doe\u200b@example.com, ssn 4\u200b12-68-3391",
        keep=[],
    ).found
    assert found == {"phone": 1, "email": 1, "ssn": 1}


def test_the_text_around_personal_data_is_kept_exactly_as_written() -> None:
    """Detection reads a normalised copy; what is kept is the customer's own characters (emoji included)."""
    text = "\U0001f468\u200d\U0001f469 \uff21\uff22 card 4\u200b111 1111 1111 1111 ok"
    assert redact(text, keep=[]).text == "\U0001f468\u200d\U0001f469 \uff21\uff22 card [CARD ••••1111] ok"


@pytest.mark.parametrize(
    "text",
    [
        "dates 2024/01/05 and 2024/02/06",
        "order " + "4582 3391".translate(FULL_WIDTH) + " 0042 7781 never arrived",  # fails the Luhn check
        "paid 120.00/85.50/42.10 this month",
        "two numbers 4111-1111 1111/1111",  # mixed punctuation: not one card
    ],
)
def test_look_alikes_with_other_separators_are_left_alone(text: str) -> None:
    assert find_pii(text, keep=[]) == []
