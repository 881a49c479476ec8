"""Check that every figure in a generated answer appears, in the same sense, in its sources.

A bank cannot let a language model invent a fee, a rate or a phone number. We pull every figure
(money, percentages, times, dates, phone numbers, plain counts) out of the answer and out of its
sources, normalise both sides (``$35.00`` = ``$35``, ``2.5 percent`` = ``2.50%``, ``five`` = ``5``)
and accept an answer sentence only if each of its figures appears in a source passage that also
shares most of the answer sentence's key words. The second condition catches a real failure of small
models: quoting a figure that is in the context but belongs to another product ("High-Yield
Savings earns 4.10% APY" when 4.10% is the CD rate in the next passage).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chatbot.knowledge.bm25 import tokenize

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90", "hundred": "100",
}  # fmt: skip
MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)

PHONE = re.compile(r"(?<!\d)(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\d)")
TIME = re.compile(r"(?<![\d.])(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s?m\.?(?![a-z])", re.IGNORECASE)
TIME_24 = re.compile(r"(?<![\d.:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
DATE = re.compile(rf"\b({MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.IGNORECASE)
NUMERIC_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{2,4})(?![\d/])")
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b)", re.IGNORECASE)
MONEY = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?:\s*(million|billion|k)\b)?", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
WORD_NUMBER = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class GroundingResult:
    supported: bool
    figures: list[str]
    unsupported: list[str]


def _number(integer: str, fraction: str | None = None) -> str:
    value = integer.replace(",", "")
    if fraction and fraction.strip("0"):
        value += "." + fraction.rstrip("0")
    return str(int(value)) if "." not in value else value.lstrip("0") or "0"


def extract_figures(text: str) -> set[str]:
    """Normalised figures found in ``text``, each tagged with its kind (``money:35``, ``time:17:00``)."""
    figures: set[str] = set()
    remaining = text

    def consume(pattern: re.Pattern[str], make: object) -> None:
        nonlocal remaining
        for match in pattern.finditer(remaining):
            value = make(match)  # type: ignore[operator]
            if value:
                figures.add(value)
        remaining = pattern.sub(" ", remaining)

    consume(PHONE, lambda m: "phone:" + re.sub(r"\D", "", m.group(0))[-10:])
    consume(
        TIME,
        lambda m: f"time:{(int(m.group(1)) % 12) + (12 if m.group(3).lower() == 'p' else 0)}:{m.group(2) or '00'}",
    )
    consume(TIME_24, lambda m: f"time:{int(m.group(1))}:{m.group(2)}")
    consume(DATE, lambda m: f"date:{m.group(1)[:3].lower()}-{int(m.group(2))}")
    consume(NUMERIC_DATE, lambda m: f"date:{int(m.group(1))}/{int(m.group(2))}")
    consume(PERCENT, lambda m: "percent:" + _number(*m.group(1).partition(".")[::2]))
    consume(MONEY, lambda m: "money:" + _number(m.group(1), m.group(2)) + (m.group(3) or "").lower())
    consume(NUMBER, lambda m: "number:" + _number(m.group(1), m.group(2)))
    for match in WORD_NUMBER.finditer(remaining):
        figures.add("number:" + NUMBER_WORDS[match.group(1).lower()])
    return figures


def _comparable(figure: str) -> set[str]:
    """A figure also matches the bare number it contains ("3 business days" in a source backs "3")."""
    kind, _, value = figure.partition(":")
    forms = {figure}
    if kind in {"money", "percent", "number"}:
        forms.add("number:" + value)
    return forms


SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])|\n+")
FIGURE_WORDS = frozenset([*MONTHS.split("|"), *NUMBER_WORDS])  # parts of figures, compared as figures
GENERIC = frozenset(["kestrel", "bank", "customer", "account", "fee", "cost", "charge", "pay", "take", "day"])


def _key_words(sentence: str) -> set[str]:
    """Content words of a sentence: no stop words, no numbers, no words every banking text shares."""
    return {
        t
        for t in tokenize(sentence)
        if not t[0].isdigit() and len(t) > 2 and t not in GENERIC and t not in FIGURE_WORDS and "." not in t
    }


@dataclass(frozen=True)
class _Source:
    figures: frozenset[str]
    words: frozenset[str]


def _sources(texts: Iterable[str]) -> list[_Source]:
    return [
        _Source(
            frozenset(form for figure in extract_figures(text) for form in _comparable(figure)),
            frozenset(_key_words(text)),
        )
        for text in texts
    ]


def check_grounding(answer: str, sources: Iterable[str], max_shared_words: int = 3) -> GroundingResult:
    """Every figure of every answer sentence must appear in a source passage on the same subject.

    "Same subject": the passage shares at least half of the answer sentence's key words (at most
    ``max_shared_words`` are required, so long sentences are not held to an impossible bar).
    """
    passages = _sources(sources)
    claims: list[str] = []
    unsupported: list[str] = []
    for sentence in SENTENCES.split(answer):
        # Small counts in ordinary prose ("one of our team", "2 options") are not claims about the bank.
        figures = sorted(f for f in extract_figures(sentence) if not (f.startswith("number:") and f[7:] in {"0", "1"}))
        if not figures:
            continue
        words = _key_words(sentence)
        needed = min(max_shared_words, (len(words) + 1) // 2)
        for figure in figures:
            claims.append(figure)
            if not any(figure in s.figures and len(words & s.words) >= needed for s in passages):
                unsupported.append(figure)
    return GroundingResult(supported=not unsupported, figures=sorted(set(claims)), unsupported=unsupported)
