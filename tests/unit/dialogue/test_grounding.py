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


def test_a_figure_from_another_product_in_the_same_context_is_caught() -> None:
    context = [
        "The High-Yield Savings account earns 4.00% APY on every balance.",
        "The 12-month CD earns 4.10% APY. Early withdrawal costs 90 days of interest.",
    ]
    assert check_grounding("The High-Yield Savings account earns 4.00% APY.", context).supported
    wrong = check_grounding("The High-Yield Savings account earns 4.10% APY.", context)
    assert not wrong.supported and wrong.unsupported == ["percent:4.1"]
    assert check_grounding("A 12-month CD pays 4.10% APY.", context).supported
