"""Redact personal data from customer text: cards, IBANs, SSNs, routing and account numbers, e-mail, phone.

Customers paste card numbers, account details and contact data into chats. Those must never reach
the database, the logs, a remote model or the analytics. Each kind is recognised by its shape and,
where one exists, confirmed by its checksum, so look-alikes (order numbers, amounts, dates) stay:

- ``card`` ``[CARD ••••1111]``: 13-19 digits starting 2-6, continuous or grouped by any one kind of
  separator (spaces and line breaks, dashes, dots, slashes, underscores, " / "), Luhn-checked.

Detection reads the text NFKC-normalised with invisible format characters removed (``normalise``),
so full-width digits or zero-width spaces cannot hide a number; offsets map back to the original.
- ``iban`` ``[IBAN GB••5432]``: country, check digits, BBAN; compact or grouped, any case; the country's
  registry length and mod-97.
- ``ssn`` ``[SSN]``: ``123-45-6789`` / ``123 45 6789``; 9 bare digits, or "last 4", only after an SSN
  keyword (ssn, social, tax id, ITIN; ITINs start with 9).
- ``routing`` ``[ROUTING]``: 9 digits with the ABA checksum after "routing", "ABA", "RTN" or "transit".
- ``account`` ``[ACCOUNT ••••8901]``: 6-17 digits after "account", "acct", "a/c", "checking", "savings",
  "loan number"..., unless they are an amount or belong to another noun (order, case, reference...).
- ``email`` ``[EMAIL]``: local@domain.tld.
- ``phone`` ``[PHONE ••••2671]``: NANP numbers with separators or parentheses (optionally +1), ``+``
  international numbers (E.164, 8-15 digits); bare 10 digits or a national 0-number after a phone keyword.

Deliberately kept: the last four digits of a card or account ("acct ending 1234": banks print them
and agents need them), amounts, dates, times, years, zip codes, percentages, numbers failing their
checksum, 7-digit local phone numbers, and the bank's own published numbers and addresses
(``Settings.pii_public_numbers``, passed in as ``keep`` by every caller that has Settings: an agent
quoting the bank's phone or routing number must reach the customer intact). Routing numbers need a
keyword: a bare 9-digit number passing the ABA checksum is left alone. On the development corpus
every routing number comes with a keyword, so a keyword-less rule would add no recall there, while
one random 9-digit order or reference number in ten passes the checksum; and a routing number names
a bank, not a person (docs/security.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from chatbot.config import PII_PUBLIC_NUMBERS

KINDS = ("card", "iban", "ssn", "routing", "account", "email", "phone")

# IBAN lengths from the SWIFT IBAN registry: a candidate must have its country's exact length.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

EMAIL = re.compile(
    r"(?<![\w.%+'-])[A-Za-z0-9][A-Za-z0-9._%+'-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})(?=[ -]?[A-Za-z0-9])")
# 13-19 digits starting 2-6 (the card networks' IIN ranges), each digit optionally after a short run of
# separators (whatever a person types or a paste leaves: spaces, line breaks, dashes, dots, slashes,
# underscores, commas); not inside a word, so a digit run in a hex id (request, message, conversation
# ids in logs) is left alone.
CARD_SEPARATOR = r"[\s./_\\|,:-]"
CARD = re.compile(rf"(?<![\w.-])[2-6](?:{CARD_SEPARATOR}{{0,3}}\d){{12,18}}(?!\w|[.-]\d)")
SSN_DELIMITED = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?!\d|-\d)")
NANP = re.compile(
    r"(?<![\w+.-])(?:(?:\+1|1)[ .-]?)?(?:\(([2-9]\d{2})\)[ ]?|([2-9]\d{2})[ .-])([2-9]\d{2})[ .-](\d{4})(?!\d|[.-]\d)"
)
INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(0\)|\(\d{1,4}\))?[ .-]?\d{1,5}){1,6}(?!\d)")
NINE_DIGITS = re.compile(r"(?<![\d-])(\d{3}[ -]?\d{3}[ -]?\d{3})(?!\d|-\d)")
# After a phone keyword: 10 digits (NANP, or 1 + NANP) or a national number with its trunk 0 ("07700 900123").
BARE_PHONE = re.compile(r"(?<![\w+])(?:(?:\+?1)?[2-9]\d{2}[2-9]\d{6}|0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4})(?![\d]|[.-]\d)")
ACCOUNT_NUMBER = re.compile(r"(?<![\d$£€.,])(\d(?:[ -]?\d){5,16})(?![\d%]|[.,]\d)")
LAST_FOUR = re.compile(r"(?<!\d)(\d{4})(?!\d)")

ROUTING_KEYWORD = re.compile(r"\b(?:routing|aba|rtn|transit)\b", re.IGNORECASE)
SSN_KEYWORD = re.compile(r"\b(?:ssn|ss#|ss\s?no|social(?:\s+security)?|tax\s?id|tin|itin|taxpayer)\b", re.IGNORECASE)
ACCOUNT_KEYWORD = re.compile(
    r"\b(?:account|acct|acc|a/c|accnt|checking|chequing|savings|brokerage|(?:loan|mortgage)\s+(?:number|no|#))\b"
    r"|\ba/c\b|\bacct#",
    re.IGNORECASE,
)
PHONE_KEYWORD = re.compile(
    r"\b(?:phone|cell|cellphone|mobile|telephone|tel|call(?:ed)?|text(?:ed)?|reach|contact|whats\s?app|landline"
    r"|fax|sms|my\s+(?:new\s+)?number|number\s+on\s+file)\b",
    re.IGNORECASE,
)
AMOUNT_AFTER = re.compile(r"\s*(?:dollars|usd|bucks|k\b|%|percent|cents|eur|gbp)", re.IGNORECASE)
AMOUNT_BEFORE = re.compile(
    r"\b(?:has|have|had|with|balance|over|about|around|only|worth|holds|contains|total|paid|owe)\b", re.IGNORECASE
)
OTHER_NOUN = re.compile(
    r"\b(?:order|ref|reference|confirmation|case|ticket|tracking|transaction|invoice|claim|member|policy|id)\b",
    re.IGNORECASE,
)
LAST_HINT = re.compile(r"last\s*(?:4|four)", re.IGNORECASE)
NUMBER_SUFFIX = re.compile(r"\s*(?:number|num|nbr|no\.?|#)", re.IGNORECASE)
SENTENCE_BREAK = re.compile(r"[\n!?]|\.\s")


@dataclass(frozen=True)
class Entity:
    """One piece of personal data: where it is in the text, what it is and what replaces it."""

    kind: str
    start: int
    end: int
    placeholder: str


@dataclass(frozen=True)
class Redaction:
    text: str
    found: dict[str, int]
    entities: tuple[Entity, ...] = field(default=())

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
    compact = re.sub(r"[ -]", "", candidate).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact[:2].isalpha():
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return int(numeric) % 97 == 1


def aba_valid(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit():
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone_key(text: str) -> str:
    digits = _digits(text)
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


_PUBLIC_CACHE: dict[tuple[str, ...], frozenset[str]] = {}


def _normalise_public(values: tuple[str, ...]) -> frozenset[str]:
    if values not in _PUBLIC_CACHE:
        _PUBLIC_CACHE[values] = frozenset(v.strip().lower() if "@" in v else _phone_key(v) for v in values)
    return _PUBLIC_CACHE[values]


class _Finder:
    """Collects non-overlapping entities; earlier (more certain) rules win over later ones."""

    def __init__(self, text: str, keep: frozenset[str]) -> None:
        self.text = text
        self.keep = keep
        self.entities: list[Entity] = []

    def free(self, start: int, end: int) -> bool:
        return all(end <= e.start or start >= e.end for e in self.entities)

    def add(self, kind: str, start: int, end: int, placeholder: str) -> bool:
        if not self.free(start, end):
            return False
        self.entities.append(Entity(kind, start, end, placeholder))
        return True

    def window_after(self, keyword: re.Match[str], size: int) -> tuple[int, int]:
        """From the keyword's end up to ``size`` characters, not crossing a sentence boundary."""
        start = keyword.end()
        suffix = NUMBER_SUFFIX.match(self.text, start)  # "acct no. 123": "no." is no sentence end
        start = suffix.end() if suffix else start
        stop = min(len(self.text), start + size)
        cut = SENTENCE_BREAK.search(self.text, start, stop)
        return start, cut.start() if cut else stop

    def anchored(
        self,
        keyword: re.Pattern[str],
        number: re.Pattern[str],
        accept: Callable[[re.Match[str]], str | None],
        kind: str,
        size: int = 40,
    ) -> None:
        """The first acceptable number after each keyword (within ``size`` characters) is ``kind``."""
        for hit in keyword.finditer(self.text):
            start, stop = self.window_after(hit, size)
            for candidate in number.finditer(self.text, start):
                if candidate.start(1) >= stop:
                    break
                if not self.free(candidate.start(1), candidate.end(1)):
                    continue
                if OTHER_NOUN.search(self.text, start, candidate.start(1)):
                    break  # "checking on order 123456": the number belongs to another noun
                placeholder = accept(candidate)
                if placeholder is not None:
                    self.add(kind, candidate.start(1), candidate.end(1), placeholder)
                    break


def _ibans(text: str) -> Iterator[tuple[int, int, str]]:
    """IBAN candidates: country, check digits, then alphanumerics grouped by single spaces or dashes."""
    for start in IBAN_START.finditer(text):
        country = start.group(1).upper()
        wanted = [IBAN_LENGTHS[country]] if country in IBAN_LENGTHS else list(range(15, 35))
        compact, position = 0, start.start()
        while position < len(text) and compact < max(wanted):
            char = text[position]
            if char.isascii() and char.isalnum():
                compact += 1
                position += 1
                at_boundary = position >= len(text) or not (text[position].isascii() and text[position].isalnum())
                if compact in wanted and at_boundary and iban_valid(text[start.start() : position]):
                    yield start.start(), position, text[start.start() : position]
                    break
            elif char in " -" and position + 1 < len(text) and text[position + 1].isalnum() and compact >= 4:
                position += 1
            else:
                break


def normalise(text: str) -> tuple[str, list[int]]:
    """``text`` as detection reads it, and for each of its characters the index it came from.

    NFKC folds look-alike characters to their plain form (full-width ``４１１１`` → ``4111``, other
    scripts' digits stay digits), and invisible format characters (zero-width spaces and joiners,
    soft hyphens, direction marks: Unicode category Cf) are dropped, so a number cannot hide behind
    either. Detection runs on this text; the spans it finds map back to the original, so what is
    kept of a message is kept exactly as the customer wrote it.
    """
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cf":
            continue
        plain = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        for piece in plain:
            folded.append(piece)
            origin.append(index)
    return "".join(folded), origin


def find_pii(text: str, keep: Collection[str] | None = None) -> list[Entity]:
    """Every piece of personal data in ``text``, in order. ``keep``: numbers/addresses never redacted
    (``Settings.pii_public_numbers``; None: the default list, never the process's global settings).

    Offsets are into ``text`` as given; detection itself reads its normalised form (``normalise``).
    """
    if text.isascii():
        return _find_pii(text, keep)
    folded, origin = normalise(text)
    return [Entity(e.kind, origin[e.start], origin[e.end - 1] + 1, e.placeholder) for e in _find_pii(folded, keep)]


def _find_pii(text: str, keep: Collection[str] | None = None) -> list[Entity]:
    public = _normalise_public(tuple(PII_PUBLIC_NUMBERS if keep is None else keep))
    finder = _Finder(text, public)

    for match in EMAIL.finditer(text):
        if match.group(0).lower() not in public:
            finder.add("email", match.start(), match.end(), "[EMAIL]")

    for start, end, value in _ibans(text):
        compact = re.sub(r"[ -]", "", value).upper()
        finder.add("iban", start, end, f"[IBAN {compact[:2]}••{compact[-4:]}]")

    for match in CARD.finditer(text):
        digits = _digits(match.group(0))
        # One kind of separator between the groups (" / " is one; any white space counts as a space, so a
        # number wrapped across lines still matches), so two numbers written next to each other with
        # different punctuation are not read as one card.
        separators = {re.sub(r"\s+", " ", run) for run in re.findall(r"\D+", match.group(0))}
        if 13 <= len(digits) <= 19 and len(separators) <= 1 and luhn_valid(digits):
            finder.add("card", match.start(), match.end(), f"[CARD ••••{digits[-4:]}]")

    def ssn_shape(area: str, group: str, serial: str, itin: bool = False) -> bool:
        if area in ("000", "666") or group == "00" or serial == "0000":
            return False
        return itin or not area.startswith("9")

    for match in SSN_DELIMITED.finditer(text):
        before = text[max(0, match.start() - 40) : match.start()]
        itin = bool(SSN_KEYWORD.search(before))
        if ssn_shape(match.group(1), match.group(3), match.group(4), itin):
            finder.add("ssn", match.start(), match.end(), "[SSN]")

    for match in NANP.finditer(text):
        if _phone_key(match.group(0)) not in public:
            finder.add("phone", match.start(), match.end(), f"[PHONE ••••{match.group(4)}]")
    for match in INTERNATIONAL.finditer(text):
        digits = _digits(match.group(0).replace("(0)", ""))
        if 8 <= len(digits) <= 15 and _phone_key(match.group(0)) not in public:
            finder.add("phone", match.start(), match.end(), f"[PHONE ••••{digits[-4:]}]")

    def routing(candidate: re.Match[str]) -> str | None:
        digits = _digits(candidate.group(1))
        return "[ROUTING]" if aba_valid(digits) and digits not in public else None

    finder.anchored(ROUTING_KEYWORD, NINE_DIGITS, routing, "routing")

    def ssn(candidate: re.Match[str]) -> str | None:
        digits = _digits(candidate.group(1))
        return "[SSN]" if len(digits) == 9 and ssn_shape(digits[:3], digits[3:5], digits[5:], itin=True) else None

    finder.anchored(SSN_KEYWORD, NINE_DIGITS, ssn, "ssn", size=30)
    for hit in SSN_KEYWORD.finditer(text):  # "the last 4 of my social are 6789": an identity-check secret
        start, stop = finder.window_after(hit, 30)
        around = text[max(0, hit.start() - 30) : stop]
        if LAST_HINT.search(around):
            for candidate in LAST_FOUR.finditer(text, start):
                if candidate.start() >= stop:
                    break
                if finder.add("ssn", candidate.start(1), candidate.end(1), "[SSN]"):
                    break

    def account(candidate: re.Match[str]) -> str | None:
        digits = _digits(candidate.group(1))
        if len(digits) < 6 or AMOUNT_AFTER.match(text, candidate.end(1)):
            return None
        gap = text[max(0, candidate.start(1) - 20) : candidate.start(1)]
        if AMOUNT_BEFORE.search(gap) and not re.search(r"(?i)number|no\b|#|:", gap):
            return None  # "my savings has 150000 in it" is a balance
        return f"[ACCOUNT ••••{digits[-4:]}]"

    finder.anchored(ACCOUNT_KEYWORD, ACCOUNT_NUMBER, account, "account")

    def bare_phone(candidate: re.Match[str]) -> str | None:
        digits = _digits(candidate.group(0))
        if not 10 <= len(digits) <= 11 or _phone_key(digits) in public:
            return None
        return f"[PHONE ••••{digits[-4:]}]"

    for hit in PHONE_KEYWORD.finditer(text):
        start, stop = finder.window_after(hit, 40)
        for candidate in BARE_PHONE.finditer(text, start):
            if candidate.start() >= stop:
                break
            placeholder = bare_phone(candidate)
            if placeholder and finder.add("phone", candidate.start(), candidate.end(), placeholder):
                break

    return sorted(finder.entities, key=lambda e: e.start)


def redact(text: str, keep: Collection[str] | None = None) -> Redaction:
    """``text`` with every piece of personal data replaced by its placeholder, and what was found."""
    entities = find_pii(text, keep)
    found: dict[str, int] = {}
    pieces: list[str] = []
    position = 0
    for entity in entities:
        pieces.append(text[position : entity.start])
        pieces.append(entity.placeholder)
        position = entity.end
        found[entity.kind] = found.get(entity.kind, 0) + 1
    pieces.append(text[position:])
    return Redaction(text="".join(pieces), found=found, entities=tuple(entities))
