import pytest

from chatbot.guard.pii import aba_valid, iban_valid, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("my card 4111 1111 1111 1111 was stolen", "my card [CARD ••••1111] was stolen", "card"),
        ("card 4111-1111-1111-1111", "card [CARD ••••1111]", "card"),
        ("amex 378282246310005 please", "amex [CARD ••••0005] please", "card"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN [IBAN]", "iban"),
        ("my ssn is 123-45-6789", "my ssn is [SSN]", "ssn"),
        ("routing number 021000021", "routing number [ROUTING]", "routing"),
        ("account number 12345678901", "account number [ACCOUNT ••01]", "account"),
    ],
)
def test_sensitive_numbers_are_redacted(text: str, expected: str, kind: str) -> None:
    result = redact(text)
    assert result.text == expected
    assert result.found[kind] == 1


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456 arrived",  # fails Luhn: not a card
        "call 1-800-555-0142",
        "I paid $1,200 on 10/01/2026",
        "routing number 123456789",  # fails the ABA checksum
        "GB82 WEST 1234 5698 7654 33",  # fails mod-97
    ],
)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert redact(text).text == text


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert aba_valid("021000021") and not aba_valid("021000022")
