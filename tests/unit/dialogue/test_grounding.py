import pytest

from chatbot.dialogue.grounding import check_grounding, extract_figures

SOURCE = (
    "An outgoing international wire costs $45.00. Call 1-800-555-0142 any day. The cut-off is 5:00 p.m. ET. "
    "High-Yield Savings earns 4.10% APY. Refunds post within 10 business days. Updated October 1, 2026."
)


@pytest.mark.parametrize(
    "answer",
    [
        "It costs $45.",
        "International wires are $45.00 and must be sent by 5 p.m.",
        "Call us at (800) 555-0142.",
        "The savings rate is 4.1 percent APY.",
        "Expect the refund within ten business days.",
        "This page was updated on Oct 1.",
        "One of our team can help.",
    ],
)
def test_supported_figures_are_kept(answer: str) -> None:
    assert check_grounding(answer, [SOURCE]).supported


@pytest.mark.parametrize(
    ("answer", "planted"),
    [
        ("It costs $50.", "money:50"),
        ("The cut-off is 6:00 p.m.", "time:18:00"),
        ("Savings earns 4.25% APY.", "percent:4.25"),
        ("Call 1-800-555-0143.", "phone:8005550143"),
        ("Refunds take 30 days.", "number:30"),
        ("It was updated on November 3.", "date:nov-3"),
        ("It costs $45 and a $15 handling fee.", "money:15"),
    ],
)
def test_planted_unsupported_figures_are_caught(answer: str, planted: str) -> None:
    result = check_grounding(answer, [SOURCE])
    assert not result.supported
    assert planted in result.unsupported


def test_figures_are_normalised_across_formats() -> None:
    assert extract_figures("$1,250.50 and 2.50% at 17:30 on 10/01/2026") == {
        "money:1250.5",
        "percent:2.5",
        "time:17:30",
        "date:10/1",
    }


@pytest.mark.parametrize(
    ("text", "figures"),
    [
        ("7/6 ARM: interest rate 5.875%, APR 6.721%.", {"percent:5.875", "percent:6.721", "number:7", "number:6"}),
        ("Card APR 29%", {"percent:29"}),
        ("Statements are ready on Apr 6, 2026.", {"date:apr-6"}),
    ],
)
def test_an_apr_figure_is_a_rate_not_a_date_in_april(text: str, figures: set[str]) -> None:
    assert extract_figures(text) == figures


def test_a_figure_from_another_product_in_the_same_context_is_caught() -> None:
    context = [
        "The High-Yield Savings account earns 4.00% APY on every balance.",
        "The 12-month CD earns 4.10% APY. Early withdrawal costs 90 days of interest.",
    ]
    assert check_grounding("The High-Yield Savings account earns 4.00% APY.", context).supported
    wrong = check_grounding("The High-Yield Savings account earns 4.10% APY.", context)
    assert not wrong.supported and wrong.unsupported == ["percent:4.1"]
    assert check_grounding("A 12-month CD pays 4.10% APY.", context).supported


# --- the claim check: one sentence, one source sentence --------------------------------------------

from pathlib import Path  # noqa: E402

from chatbot.config import PROJECT_ROOT  # noqa: E402
from chatbot.dialogue.grounding import ProductNames, check_claim, product_names  # noqa: E402

SAVINGS = [
    "Savings and money market accounts — Kestrel Basic Savings\n"
    "Kestrel Basic Savings is a simple savings account.\n\n"
    "- Interest rate: 0.10% APY on all balances\n- Minimum opening deposit: $25\n- Monthly maintenance fee: $5\n\n"
    "The $5 monthly fee on Kestrel Basic Savings is waived in any statement cycle in which you keep a minimum "
    "daily balance of $300.",
    "Savings and money market accounts — Kestrel High-Yield Savings\n"
    "Kestrel High-Yield Savings is our online savings account with our highest variable savings rate.\n\n"
    "- Interest rate: 4.00% APY on all balances\n- Minimum opening deposit: $1\n- Monthly maintenance fee: $0\n"
    "- No minimum balance to earn the 4.00% APY",
    "Savings and money market accounts — Overdraft Protection from your Kestrel savings\n"
    "You can link Kestrel Basic Savings or Kestrel High-Yield Savings to your Kestrel checking account as "
    "Overdraft Protection. There is no fee for Overdraft Protection transfers, and they do not count toward "
    "the 6 withdrawals per statement cycle.",
]
CHECKING = [
    "Checking accounts\nKestrel Bank offers three checking accounts: Kestrel Everyday Checking (a $10 monthly fee "
    "that you can avoid), Kestrel Premier Checking (a $25 monthly fee, waived with $10,000 in combined balances) "
    "and Kestrel Student Checking (for ages 17 to 24, with no monthly fee).",
    "Checking accounts — Kestrel Everyday Checking at a glance\n- Minimum opening deposit: $25\n"
    "- Monthly maintenance fee: $10",
]
WIRES = [
    "International wire transfers — Kestrel international wire fees\n- Outgoing international wire: $45\n"
    "- Incoming international wire: $20 ($0 for Kestrel Premier Checking)",
    "Domestic wire transfers — Kestrel domestic wire fees\n- Outgoing domestic wire: $30\n"
    "- Incoming domestic wire: $15 ($0 for Kestrel Premier Checking)",
]
LOANS = [
    "Personal loans — Fees on a Kestrel personal loan\n- Origination fee: $0\n"
    "- Prepayment penalty: none; you can pay off your Kestrel personal loan early at any time\n"
    "- Returned payment fee: $0",
]
NAMES = ProductNames.from_texts(SAVINGS + CHECKING + WIRES + LOANS)


def claim(sentence: str, sources: list[str], question: str | None = None, previous: str | None = None):  # type: ignore[no-untyped-def]
    return check_claim(sentence, sources, question, previous=previous, names=NAMES)


@pytest.mark.parametrize(
    ("sentence", "sources"),
    [
        ("Kestrel High-Yield Savings earns 4.00% APY on all balances.", SAVINGS),
        ("High-Yield Savings pays 4.00% APY, and you only need $1 to open it.", SAVINGS),  # two list items
        ("There's no monthly fee on the High-Yield Savings account.", SAVINGS),  # "$0" reads as "no"
        ("Basic Savings has a $5 monthly fee, while High-Yield Savings has no monthly fee.", SAVINGS),
        ("The $5 fee on Basic Savings is waived if you keep at least $300 as your minimum daily balance.", SAVINGS),
        ("Overdraft Protection transfers are free.", SAVINGS),
        ("Kestrel Premier Checking costs $25 a month.", CHECKING),  # the figure right after its name
        ("Incoming international wires cost $20, or nothing with Kestrel Premier Checking.", WIRES),
        ("If you have any other questions, feel free to ask.", SAVINGS),  # courtesy: nothing to check
        ("The returned payment fee is $0.", LOANS),  # "$0" before a full stop is still a "no"
        ("You can pay off your personal loan early without a prepayment penalty.", LOANS),  # "penalty: none"
        # a source's own sentence naming several products, each with its figure
        (
            "Kestrel Everyday Checking (a $10 monthly fee that you can avoid), Kestrel Premier Checking (a $25 "
            "monthly fee, waived with $10,000 in combined balances) and Kestrel Student Checking (for ages 17 to 24, "
            "with no monthly fee).",
            CHECKING,
        ),
        ("If you'd like, I can connect you with a member of our team.", SAVINGS),
    ],
)
def test_supported_claims_pass(sentence: str, sources: list[str]) -> None:
    verdict = claim(sentence, sources)
    assert verdict.supported, verdict


@pytest.mark.parametrize(
    ("sentence", "sources", "reason"),
    [
        # Basic Savings' $5 fee put on High-Yield Savings (the figure check passes it)
        ("Kestrel High-Yield Savings earns 4.00% APY on all balances, with a $5 monthly fee.", SAVINGS,
         "misattributed_figure"),
        ("Kestrel Basic Savings earns 4.00% APY.", SAVINGS, "misattributed_figure"),
        ("Kestrel Premier Checking has a $10 monthly fee.", CHECKING, "misattributed_figure"),  # Everyday's $10
        ("An outgoing international wire costs $30.", WIRES, "misattributed_figure"),  # the domestic fee
        ("Kestrel High-Yield Savings earns 4.25% APY.", SAVINGS, "unsupported_figure"),
        ("There is a fee for Overdraft Protection transfers.", SAVINGS, "negation"),
        ("Overdraft Protection transfers count toward the 6 withdrawals.", SAVINGS, "negation"),
        ("Kestrel High-Yield Savings has a monthly maintenance fee.", SAVINGS, "negation"),
    ],
)  # fmt: skip
def test_unsupported_claims_fail_with_their_reason(sentence: str, sources: list[str], reason: str) -> None:
    verdict = claim(sentence, sources)
    assert not verdict.supported and verdict.reason == reason, verdict


def test_the_figure_check_alone_passes_a_misattributed_figure() -> None:
    sentence = "Kestrel High-Yield Savings earns 4.00% APY on all balances, with a $5 monthly fee."
    assert check_grounding(sentence, SAVINGS).supported  # why the claim check exists
    verdict = claim(sentence, SAVINGS)
    assert verdict.reason == "misattributed_figure" and "$5" in verdict.evidence


def test_a_sentence_that_only_repeats_the_question_fails() -> None:
    question = "my paycheck didn't show up today, i set up direct deposit last week"
    sources = ["Direct deposit\nIt usually takes 1 to 2 pay cycles for your first direct deposit to arrive."]
    assert claim("I set up direct deposit last week.", sources, question).reason == "echo"
    assert claim(
        "It usually takes 1 to 2 pay cycles for your first direct deposit to arrive.", sources, question
    ).supported


def test_it_takes_the_product_of_the_sentence_before() -> None:
    previous = "Kestrel High-Yield Savings earns 4.00% APY."
    assert claim("It has a $5 monthly fee.", SAVINGS, previous=previous).reason == "misattributed_figure"
    assert claim("It has no monthly fee.", SAVINGS, previous=previous).supported


def test_product_names_come_from_the_knowledge_base() -> None:
    names = product_names(PROJECT_ROOT / "knowledge_base")
    assert {"high yield savings", "basic savings", "premier checking", "everyday checking"} <= names.names
    assert names.find("the premier checking fee") == {"premier checking"}
    assert names.find("Is Premier free?") == {"premier checking"}  # a capitalised short name
    assert names.find("I travel a lot") == frozenset()  # "Travel" the card only when capitalised
    assert names.find("send it with QuickPay") == {"quickpay"}  # written as the knowledge base writes it
    assert "bank" not in names.names and "atm" not in names.names
    assert product_names(Path("/nonexistent")).names == frozenset()
