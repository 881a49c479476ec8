"""Redact card, account and identity numbers from customer text.

Customers paste card numbers into chats. Those must never reach the database, the logs or the
model. Card numbers are recognised in any common spacing and confirmed with the Luhn checksum
(so an order number is left alone); IBANs are confirmed with their mod-97 checksum and routing
numbers with the ABA checksum. Account numbers and SSNs have no checksum, so they are matched by
shape and, for accounts, by a nearby keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}(?!\d)")
ROUTING_CONTEXT = re.compile(r"\b(?:routing|aba|rtn)\b[^\d]{0,20}(\d{9})(?!\d)", re.IGNORECASE)
ACCOUNT_CONTEXT = re.compile(
    r"\b(?:account|acct|a/c|checking|savings)\b(?:\s*(?:number|no\.?|#|num))?[^\d]{0,12}(\d[\d -]{4,18}\d)(?!\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Redaction:
    text: str
    found: dict[str, int]

    @property
    def changed(self) -> bool:
        return bool(self.found)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return int(numeric) % 97 == 1


def aba_valid(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit():
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def redact(text: str) -> Redaction:
    found: dict[str, int] = {}

    def note(kind: str) -> None:
        found[kind] = found.get(kind, 0) + 1

    def card(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            note("card")
            return f"[CARD ••••{digits[-4:]}]"
        return match.group(0)

    def iban(match: re.Match[str]) -> str:
        if iban_valid(match.group(0)):
            note("iban")
            return "[IBAN]"
        return match.group(0)

    def routing(match: re.Match[str]) -> str:
        if aba_valid(match.group(1)):
            note("routing")
            return match.group(0).replace(match.group(1), "[ROUTING]")
        return match.group(0)

    def account(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(1))
        if len(digits) < 6:
            return match.group(0)
        note("account")
        return match.group(0).replace(match.group(1), f"[ACCOUNT ••{digits[-2:]}]")

    def ssn(match: re.Match[str]) -> str:
        note("ssn")
        return "[SSN]"

    text = CARD.sub(card, text)
    text = IBAN.sub(iban, text)
    text = ROUTING_CONTEXT.sub(routing, text)
    text = ACCOUNT_CONTEXT.sub(account, text)
    text = SSN.sub(ssn, text)
    return Redaction(text=text, found=found)
