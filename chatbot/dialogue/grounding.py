"""Check that what a generated answer says appears, in the same sense, in its sources.

Two checks live here. ``check_grounding`` is the figure check: every figure of the answer appears in
a source passage on the same subject. ``check_claim`` is the stricter, per-sentence check the engine
applies before a sentence is streamed; it keeps the figure check as its first step.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

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
# The day is not the start of a decimal or a percentage: "APR 6.721%" is a rate, not April 6.
DATE = re.compile(
    rf"\b({MONTHS})\.?\s+(\d{{1,2}})(?!\.\d|[\d.,]*\s*(?:%|percent\b))(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b",
    re.IGNORECASE,
)
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


# ---------------------------------------------------------------------------------------------------
# Claims: one sentence, one source sentence
#
# The figure check above accepts "Kestrel High-Yield Savings earns 4.00% APY on all balances, with a
# $5 monthly fee" because $5 is somewhere in the cited document (it is Basic Savings' fee), and it has
# nothing to say about a sentence with no figure that only repeats the customer's words ("I set up
# direct deposit last week"). A claim is therefore held to ONE source sentence, or two adjacent ones:
# its figures, the products it names and its negation must all be there together, with its subject.


@dataclass(frozen=True)
class ClaimVerdict:
    """Whether one answer sentence is supported, and why not.

    ``reason`` is one of: ``supported``, ``no_claim`` (courtesy or a question back, nothing to check),
    ``unsupported_figure`` (a figure no source states), ``figures_apart`` (its figures are in the
    sources but never in one sentence), ``misattributed_figure`` / ``misattributed_product`` (the
    sentence that states it is about another product), ``negation`` (the source says the opposite),
    ``echo`` (it only repeats the customer's question), ``no_support`` (no source sentence says it).
    """

    supported: bool
    reason: str
    detail: str = ""
    evidence: str = ""


UNSUPPORTED_REASONS = (
    "unsupported_figure",
    "figures_apart",
    "misattributed_figure",
    "misattributed_product",
    "negation",
    "echo",
    "no_support",
)

# A name is "Kestrel" and capitalised words ("Kestrel High-Yield Savings", "Kestrel HELOC"), or, in a
# heading or mid-sentence, a run of two or more capitalised words ("High-Yield Savings account").
_CAP = r"[A-Z][A-Za-z0-9&'’-]*"
KESTREL_NAME = re.compile(rf"\bKestrel((?:[ \t]+{_CAP})+)")
CAPITALISED_RUN = re.compile(rf"(?<![\w'’-])({_CAP}(?:[ \t]+{_CAP})+)")


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


NOT_PRODUCT = _wordset(
    "bank bank's customer advocacy office monday tuesday wednesday thursday friday saturday sunday "
    "january february march april may june july august september october november december et pt "
    # what every account has is not a product: "Kestrel ATM", "Kestrel PIN", "Kestrel mobile app"
    "atm atms pin pins app online mobile"
)
CATEGORY_WORDS = frozenset(["checking", "savings", "visa", "card", "account", "loan"])


def _canonical(name: str) -> str:
    """``Kestrel High-Yield Savings`` → ``high yield savings``: what two spellings of one name share."""
    words = re.sub(r"[-‐–’']", " ", name).lower().split()
    if words and words[0] == "kestrel":
        words = words[1:]
    return " ".join(words)


class ProductNames:
    """The product names of a knowledge base, found in its own text rather than listed by hand.

    Sources: every "Kestrel X" name (titles, headings, body) and every run of capitalised words in a
    heading or in mid-sentence. A multi-word name whose last word is a category ("Premier Checking",
    "Travel Visa") is also found by its first words alone ("Premier"), capitalised. Names are compared
    by their canonical form and a shorter name matches a longer one that starts with it ("Travel"
    and "Travel Visa" are one product, "Basic Savings" and "High-Yield Savings" are two).
    """

    def __init__(self, names: Iterable[str]) -> None:
        canonical: dict[str, str] = {}
        surfaces: dict[str, set[str]] = {}  # how a name is written ("QuickPay", "HELOC")
        self._originals = sorted({" ".join(name.split()) for name in names})
        for name in self._originals:
            key = _canonical(name)
            words = key.split()
            if not words or words[0] in NOT_PRODUCT or any(w in NOT_PRODUCT for w in words):
                continue
            canonical[key] = key
            written = re.sub(r"^Kestrel\s+", "", name)
            surfaces.setdefault(key, set()).add(written)
            if len(words) > 1 and words[-1] in CATEGORY_WORDS:
                surfaces.setdefault(" ".join(words[:-1]), set()).add(written.rsplit(None, 1)[0])
        # Plurals fold onto a known singular ("cds" → "cd", "visa debit cards" → "visa debit card").
        for key in list(canonical):
            if key.endswith("s") and key[:-1] in canonical:
                canonical[key] = key[:-1]
        self.names = frozenset(canonical.values())
        self._canonical = canonical
        multi: list[str] = []
        single: list[str] = []
        for key in list(canonical):
            words = key.split()
            (multi if len(words) > 1 else single).append(key)
            if len(words) > 1 and words[-1] in CATEGORY_WORDS:
                alias = " ".join(words[:-1])
                if alias not in canonical:
                    single.append(alias) if len(words) == 2 else multi.append(alias)
                    self._canonical.setdefault(alias, canonical[key])

        def pattern(key: str) -> str:
            return r"[\s-]+".join(re.escape(w) for w in key.split())

        # Multi-word names match in any case; a single word only capitalised or after "Kestrel"
        # ("Travel" is the card, "travel" is a verb).
        alternatives = [f"(?i:{pattern(k)})" for k in sorted(multi, key=len, reverse=True)]
        alternatives += [
            "(?:" + "|".join([f"(?i:kestrel\\s+{pattern(k)})", *sorted({re.escape(w) for w in surfaces.get(k, set())}),
                              pattern(k).capitalize(), pattern(k).upper()]) + ")"
            for k in sorted(single, key=len, reverse=True)
        ]  # fmt: skip
        self._pattern = (
            re.compile(r"(?<![\w-])(?:(?i:kestrel)\s+)?(?:" + "|".join(alternatives) + r")(?:s\b)?(?![\w-])")
            if alternatives
            else None
        )

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> ProductNames:
        return cls(_flatten(_names_in(text) for text in texts))

    def find(self, text: str) -> frozenset[str]:
        """The canonical names of the products ``text`` mentions."""
        return frozenset(product for _, _, product in self.mentions(text))

    def strip(self, text: str) -> str:
        """``text`` without its product names."""
        return self._pattern.sub(" ", text) if self._pattern is not None else text

    def mentions(self, text: str) -> Iterable[tuple[int, int, str]]:
        """Each mention of a product in ``text``: start, end, canonical name."""
        if self._pattern is None:
            return
        for match in self._pattern.finditer(text):
            key = _canonical(match.group(0))
            key = self._canonical.get(key) or self._canonical.get(key[:-1] if key.endswith("s") else key) or key
            yield match.start(), match.end(), key


def _names_in(text: str) -> list[str]:
    names = [m.group(1) for m in KESTREL_NAME.finditer(text)]
    for line in text.splitlines():
        body = line.lstrip("#-*| ").strip()
        for sentence in re.split(r"(?<=[.!?:|])\s+", body):
            for match in CAPITALISED_RUN.finditer(sentence):
                run = match.group(1)
                if match.start(1) == 0:
                    run = run.split(None, 1)[1] if " " in run else ""  # "The High-Yield Savings" → "High-Yield Savings"
                if " " in run.strip():
                    names.append(run)
    return names


def _flatten(groups: Iterable[list[str]]) -> list[str]:
    return [name for group in groups for name in group]


@lru_cache(maxsize=8)
def product_names(knowledge_dir: Path) -> ProductNames:
    """The product names of the knowledge base in ``knowledge_dir`` (its documents; read once)."""
    from chatbot.knowledge.sources import discover_files, load_document

    try:
        documents, _ = discover_files(knowledge_dir)
    except ValueError:
        return ProductNames([])
    texts = []
    for path in documents:
        document = load_document(path)
        texts += [document.title, document.text]
    return ProductNames(_flatten(_names_in(text) for text in texts))


def default_product_names() -> ProductNames:
    from chatbot.config import Settings

    return product_names(Path(Settings().knowledge_dir))


def _compatible(claimed: str, stated: str) -> bool:
    a, b = claimed.split(), stated.split()
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _products_agree(claimed: frozenset[str], scope: frozenset[str]) -> bool:
    """Every product the claim names is the one the source sentence is about (or the source names none)."""
    if not claimed or not scope:
        return True
    return all(any(_compatible(c, s) for s in scope) for c in claimed)


# Negation: the claim and its source must agree. "$0", "free" and "waived" count as a "no".
NEGATION = re.compile(
    r"\b(?:no|not|never|none|nothing|without|cannot|free|waived|neither|nor)\b|n[’']t\b|\$0(?:\.00)?(?!\d|[.,]\d)",
    re.IGNORECASE,
)
STRONG_NEGATION = re.compile(
    r"\b(?:no|not|never|without|cannot|neither|nor)\b|n[’']t\b|(?P<zero>\$0(?:\.00)?(?!\d|[.,]\d)|\bnone\b)",
    re.IGNORECASE,
)
NEGATION_FILLER = frozenset(["be", "been", "is", "are", "a", "an", "the", "any", "to", "need", "have", "has", "longer"])
CONVERSATIONAL = _wordset(
    "help happy glad question anything else assist feel free ask let know thank thanks hope sorry welcome sure "
    "great certainly course connect team member agent person chat today pleased like want would other more "
    "further information detail reach out anytime hesitate don't need you're you'd i'm i'll we're we'll "
    "goodbye bye chatting join shortly now "
    "they"
)
PRONOUN_START = re.compile(r"^\W*(?:it|its|it's|this|that|these|they|their|the account|the card)\b", re.IGNORECASE)
CLAUSE_BREAK = re.compile(
    r"\s*;\s*|,\s+(?=(?:and|but|while|whereas|although|though|plus|with|so)\b)|\s+(?=(?:but|while|whereas|unlike)\b)"
    r"|\s+and\s+(?=[$\d])|\s+and\s+(?=(?:it|they|you|there|the|a|an|its|charges?|costs?|earns?|has|have|pays?|is|are|requires?)\b)",
    re.IGNORECASE,
)


def _negated_heads(text: str) -> list[tuple[str, int]]:
    """The words a source's negation applies to, with where the negation is: the first content word
    after "no"/"not" ("no *fee*", "do not *count*"), the one before a "$0" ("monthly *fee*: $0")."""
    heads: list[tuple[str, int]] = []
    for match in STRONG_NEGATION.finditer(text):
        if match.group("zero"):
            # "Monthly maintenance fee: $0" negates the fee; "$20 ($0 for Premier Checking)" nothing before it.
            if re.search(r"(?::|\bis|\bof)\s*$", text[: match.start()]):
                before = [t for t in tokenize(text[: match.start()]) if not t[0].isdigit()]
                heads += [(t, match.start()) for t in before[-1:]]
            continue
        after = [t for t in tokenize(text[match.end() :]) if t not in NEGATION_FILLER and not t[0].isdigit()]
        heads += [(t, match.start()) for t in after[:1]]
    return heads


def _negation_scope(text: str, width: int = 3) -> set[str]:
    """The words a claim's negation may cover: a few after each "no"/"not", a few before "$0"."""
    scope: set[str] = set()
    for match in NEGATION.finditer(text):
        before = tokenize(text[: match.start()])[-width:]
        after = [t for t in tokenize(text[match.end() :]) if t not in NEGATION_FILLER][:width]
        # "$0" and "free" follow what they negate ("a $0 fee", "transfers are free"); "no" precedes it.
        scope.update(after if match.group(0).lower() in {"no", "not", "never", "without", "cannot"} else before + after)
    return scope


@dataclass(frozen=True)
class _Unit:
    text: str
    figures: frozenset[str]
    own: frozenset[str]  # its key words
    context: frozenset[str]  # its heading's (and a table's header, a list's lead-in) key words
    scope: frozenset[str]  # the products it is about
    negated: bool
    heads: tuple[tuple[str, frozenset[str]], ...]  # each word it negates, with the product that negation is about
    owners: tuple[tuple[str, frozenset[str]], ...] = ()  # figure → the products named just before it
    negations: tuple[frozenset[str], ...] = ()  # each negation → the products named just before it
    parts: tuple[_Unit, ...] = ()  # a pair's two sentences

    @property
    def words(self) -> frozenset[str]:
        return self.own | self.context

    def score(self, words: set[str]) -> float:
        """How much this unit is about ``words``: its own words count fully, its heading's half; a
        pair is as much about them as the better of its sentences."""
        if self.parts:
            return max(part.score(words) for part in self.parts)
        return len(words & self.own) + 0.5 * len((words & self.context) - self.own)

    def shared(self, words: set[str]) -> int:
        """Key words of ``words`` in the unit's own text (the best sentence's, for a pair)."""
        if self.parts:
            return max(part.shared(words) for part in self.parts)
        return len(words & self.own)

    def denies(self, tokens: set[str], products: frozenset[str]) -> set[str]:
        """Words of ``tokens`` this unit negates for ``products`` ("Student Checking, with no monthly
        fee" denies nothing about Premier Checking's monthly fee)."""
        return {h for h, owner in self.heads if h in tokens and (not products or _products_agree(products, owner))}

    def negates_for(self, products: frozenset[str]) -> bool:
        """A negation of this unit belongs to ``products`` ("Cash Rewards charges 3%; the Travel Visa,
        which has no foreign transaction fee" has no "no" for Cash Rewards)."""
        if not products:
            return self.negated
        return any(_products_agree(frozenset([p]), owner) for p in products for owner in self.negations)

    def scope_of(self, figure: str) -> frozenset[str]:
        """The products a figure belongs to: in "Everyday Checking ($10 a month) and Premier Checking
        ($25)" the $10 is Everyday's, not the sentence's; a figure before any name has the unit's scope."""
        owners = [products for form, products in self.owners if form == figure]
        return frozenset().union(*owners) if owners else self.scope


@dataclass(frozen=True)
class _Passage:
    singles: tuple[_Unit, ...]
    pairs: tuple[_Unit, ...]


def _is_heading(line: str, first: bool) -> bool:
    stripped = line.strip()
    if stripped.startswith("#"):
        return True
    # A chunk's or context passage's first line is its "Title — heading"; a FAQ entry's, its question.
    return first and len(stripped.split()) <= 25 and not re.search(r"[.!:]$", stripped)


LIST_GLUE = re.compile(r"^(?:\s|,|and|or|&|the|kestrel|accounts?|cards?)*$", re.IGNORECASE)


def _mention_groups(text: str, names: ProductNames) -> list[tuple[int, int, set[str]]]:
    """Product mentions as groups: names joined only by commas and "and"/"or" are one group."""
    groups: list[tuple[int, int, set[str]]] = []  # (start, end, products)
    for start, end, product in names.mentions(text):
        if groups and LIST_GLUE.match(text[groups[-1][1] : start]):
            groups[-1] = (groups[-1][0], end, groups[-1][2] | {product})
        else:
            groups.append((start, end, {product}))
    return groups


def _negation_owners(text: str, names: ProductNames, scope: frozenset[str]) -> tuple[frozenset[str], ...]:
    groups = _mention_groups(text, names)
    owners = []
    for match in NEGATION.finditer(text):
        before = [g for g in groups if g[1] <= match.start()]
        owners.append(frozenset(before[-1][2]) if before else scope)
    return tuple(owners)


def _owned_heads(text: str, names: ProductNames, scope: frozenset[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    groups = _mention_groups(text, names)
    owned = []
    for head, position in _negated_heads(text):
        before = [g for g in groups if g[1] <= position]
        owned.append((_stem(head), frozenset(before[-1][2]) if before else scope))
    return tuple(owned)


_Owners = tuple[tuple[str, frozenset[str]], ...]


def _figure_owners(text: str, names: ProductNames) -> _Owners:
    """Each figure of a sentence that names several products, with the product(s) named last before
    it. Names joined only by commas and "and"/"or" ("Basic Savings, High-Yield Savings and Money
    Market accounts allow 6 free withdrawals") share what follows them."""
    mentions = list(names.mentions(text))
    owners: list[tuple[str, frozenset[str]]] = []
    if not mentions:
        return ()
    groups: list[tuple[int, set[str]]] = []  # (end of the group's last mention, its products)
    for start, end, product in mentions:
        if groups and LIST_GLUE.match(text[groups[-1][0] : start]):
            groups[-1] = (end, groups[-1][1] | {product})
        else:
            groups.append((end, {product}))
    for end, products in groups:
        following = [m for m in mentions if m[0] >= end]
        stop = following[0][0] if following else len(text)
        owners += [(form, frozenset(products)) for f in extract_figures(text[end:stop]) for form in _comparable(f)]
    return tuple(owners)


@dataclass(frozen=True)
class _Piece:
    text: str
    context: str  # heading, table header
    prose: bool  # a sentence of running text (list items and table rows are not paired)


@lru_cache(maxsize=4096)
def _parse(text: str, names: ProductNames) -> _Passage:
    """A source passage as units: each sentence, list item or table row, and each two adjacent
    sentences of running text. A unit carries its heading's words (and a table row its header's);
    a list item is read with the sentence that introduces it ("The fee is waived if you meet one of
    these: - You keep $1,500"). It is about the products it names and its heading names, else the
    passage's."""
    lines = [line for line in text.splitlines() if line.strip()]
    passage_products = names.find(text)
    heading, header, lead = "", "", ""
    pieces: list[_Piece] = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if _is_heading(stripped, number == 0 and len(lines) > 1):
            title = stripped.lstrip("# ")
            heading = title if number == 0 or not heading else f"{heading.split(' — ')[0]} — {title}"
            header = lead = ""
            continue
        if stripped.startswith("|"):
            if re.fullmatch(r"[|\s:-]+", stripped):
                continue
            if not header:
                header = stripped
                continue
            pieces.append(_Piece(f"{stripped} {header}", heading, False))  # a row means what its header says
            continue
        header = ""
        if stripped[:1] in "-*•" and stripped[1:2] == " ":
            pieces.append(_Piece(f"{lead} {stripped[2:].strip()}".strip(), heading, False))
            continue
        sentences = [s.strip() for s in SENTENCES.split(stripped) if s.strip()]
        pieces += [_Piece(sentence, heading, True) for sentence in sentences]
        lead = sentences[-1] if sentences and sentences[-1].endswith(":") else ""

    def unit(sentences: list[str], context: str, parts: tuple[_Unit, ...] = ()) -> _Unit:
        joined = " ".join(sentences)
        own = names.find(joined)
        scope = (own | names.find(context)) or passage_products
        return _Unit(
            joined,
            frozenset(form for figure in extract_figures(joined) for form in _comparable(figure)),
            _claim_words(joined),
            _claim_words(context),
            scope,
            bool(NEGATION.search(joined)),
            _owned_heads(joined, names, scope),
            _figure_owners(joined, names) if len(own) > 1 else (),
            _negation_owners(joined, names, scope),
            parts,
        )

    singles = tuple(unit([p.text], p.context) for p in pieces)
    pairs = tuple(
        unit([a.text, b.text], a.context if a.context == b.context else f"{a.context}\n{b.context}", (x, y))
        for (a, x), (b, y) in pairwise(zip(pieces, singles, strict=True))
        if a.prose and b.prose
    )
    return _Passage(singles, pairs)


@lru_cache(maxsize=256)
def _names_for(names: ProductNames, sources: tuple[str, ...]) -> ProductNames:
    extra = set(_flatten(_names_in(text) for text in sources))
    if {_canonical(n) for n in extra} <= set(names._canonical) | {_canonical(n) for n in names._originals}:
        return names
    return ProductNames([*names._originals, *extra])


def _echo(sentence: str, question: str) -> bool:
    """The sentence adds nothing to the customer's own words: no new figure, (almost) no new word."""
    said = set(tokenize(question))
    words = {t for t in tokenize(sentence) if not t[0].isdigit()}
    if len(words) < 3 or extract_figures(sentence) - extract_figures(question):
        return False
    return len(words - said) <= len(words) // 6


def _claim_figures(sentence: str) -> list[str]:
    return sorted(f for f in extract_figures(sentence) if not (f.startswith("number:") and f[7:] in {"0", "1"}))


def _attribution_agrees(products: frozenset[str], figures: list[str], unit: _Unit, claimed: _Owners = ()) -> bool:
    """Each figure belongs to the same product in the claim and in the unit. In a claim that names
    several products ("Everyday Checking needs $25, Premier Checking $100") a figure belongs to the
    one named just before it; otherwise to all the claim's products."""
    if not figures:
        return _products_agree(products, unit.scope)

    def owner(figure: str) -> frozenset[str]:
        owners = [p for form, p in claimed if form == figure]
        return frozenset().union(*owners) if owners else products

    return all(_products_agree(owner(f), unit.scope_of(f)) for f in figures)


def _kinds(figures: Iterable[str]) -> set[str]:
    return {f.partition(":")[0] for f in figures}


def _conflicts(figures: list[str], unit: _Unit) -> bool:
    """The unit states a different figure of the same kind (another fee, another time) instead of the claim's."""
    for kind in _kinds(figures):
        wanted = [f for f in figures if f.startswith(kind + ":")]
        stated = [f for f in unit.figures if f.startswith(kind + ":")]
        if stated and not all(f in unit.figures for f in wanted):
            return True
    return False


CLAIM_GENERIC = frozenset(["kestrel", "bank", "bank's"])


def _stem(token: str) -> str:
    """A light suffix fold so that "opening" meets "open" and "charged" meets "charge"."""
    for suffix, keep in (("ing", 4), ("ed", 4), ("ly", 4), ("es", 4), ("s", 4), ("e", 4)):
        if token.endswith(suffix) and len(token) - len(suffix) >= keep:
            token = token[: -len(suffix)]
    return token


def _claim_words(text: str) -> frozenset[str]:
    """Content words for matching a claim to a source sentence: no stop words, no numbers, stemmed."""
    return frozenset(_stem(t) for t in tokenize(text) if not t[0].isdigit() and len(t) > 2 and t not in CLAIM_GENERIC)


COURTESY = frozenset(_stem(w) for w in CONVERSATIONAL)


def _check_one(
    sentence: str, passages: Sequence[_Passage], names: ProductNames, inherited: frozenset[str]
) -> tuple[ClaimVerdict, frozenset[str]]:
    """One clause against every unit; returns the verdict and the products it is about.

    A unit supports the clause when it holds all of its figures (each belonging to the clause's
    product), shares enough of its key words and agrees with its negation. Then the unit must also be
    what the sources say on the clause's subject: a unit that is more about the clause (more shared
    words) but states another figure of the same kind, or negates what the clause asserts, refutes it
    ("an international wire costs $30" is refuted by "Outgoing international wire: $45" although the
    domestic wire's "$30" shares two of its words).
    """
    figures = _claim_figures(sentence)
    named = names.find(sentence)
    products = named or inherited
    claimed = _figure_owners(sentence, names) if len(named) > 1 else ()
    # Product names are checked as products; the words left say what is claimed about them.
    words = set(_claim_words(names.strip(sentence)))
    tokens = {_stem(t) for t in tokenize(sentence)}
    negated = bool(NEGATION.search(sentence))
    scope = {_stem(t) for t in _negation_scope(sentence)}
    denied = {_stem(t) for t, _ in _negated_heads(sentence)}  # what "no"/"not" directly denies ("no *markup*")
    if not figures and not named and (not words - COURTESY or sentence.rstrip().endswith("?")):
        return ClaimVerdict(True, "no_claim"), products
    # A figure found with its product is strong evidence: one shared word then says it is the same fact.
    needed = min(1 if figures else 3, (len(words) + 1) // 2)
    singles = [u for p in passages for u in p.singles]
    pairs = [u for p in passages for u in p.pairs]
    missing = [f for f in figures if not any(f in u.figures for u in singles)]
    if missing:
        return ClaimVerdict(False, "unsupported_figure", ", ".join(missing)), products

    def negation_agrees(u: _Unit) -> bool:
        return (not negated or u.negates_for(products)) and not (u.denies(tokens, products) - scope)

    def refutes(u: _Unit) -> str:
        if figures and _conflicts(figures, u):
            return "misattributed_figure"
        if u.denies(tokens, products) - scope or (negated and not u.negated and denied & u.own):
            return "negation"
        return ""

    flipped: _Unit | None = None
    for level in (singles, pairs):
        candidates = [
            u
            for u in level
            if all(f in u.figures for f in figures)
            and _attribution_agrees(products, figures, u, claimed)
            and len(words & u.words) >= needed
        ]
        agreeing = [u for u in candidates if negation_agrees(u)]
        if not agreeing:
            flipped = flipped or (max(candidates, key=lambda u: u.score(words)) if candidates else None)
            continue
        best = max(agreeing, key=lambda u: u.score(words))
        bar, own = best.score(words), best.shared(words)
        for rival in sorted(singles, key=lambda u: -u.score(words)):
            if rival.score(words) <= bar:
                break
            if rival.shared(words) <= own or not _products_agree(products, rival.scope):
                continue
            reason = refutes(rival)
            if reason:
                return ClaimVerdict(
                    False, reason, "a source sentence more about it says otherwise", rival.text
                ), products
        return ClaimVerdict(True, "supported", evidence=best.text), products
    if flipped is not None:
        return ClaimVerdict(False, "negation", evidence=flipped.text), products
    together = [u for u in singles + pairs if all(f in u.figures for f in figures)]
    if figures and not together:
        return ClaimVerdict(False, "figures_apart", ", ".join(figures)), products
    wrong = [
        u for u in together if len(words & u.words) >= needed and not _attribution_agrees(products, figures, u, claimed)
    ]
    if wrong:
        kind = "misattributed_figure" if figures else "misattributed_product"
        about = ", ".join(sorted(wrong[0].scope_of(figures[0]) if figures else wrong[0].scope))
        return ClaimVerdict(False, kind, f"the source is about {about}", wrong[0].text), products
    return ClaimVerdict(False, "no_support"), products


def check_claim(
    sentence: str,
    sources: Iterable[str],
    question: str | None = None,
    previous: str | None = None,
    names: ProductNames | None = None,
) -> ClaimVerdict:
    """Is ``sentence`` supported by one source sentence (or two adjacent ones)?

    Supported means, in that one place: every figure of the sentence (the old figure check, kept as
    the first step), every product it names (or the product of the sentence before, when it opens
    with "it"/"this"), its negation ("no fee" needs a "no", "$0" or "free"; a source that says "no
    fee" refutes "a fee") and at least half of its key words (three at most, two when it states a
    figure; the source's heading counts). A sentence that only repeats ``question`` fails as an echo.
    A sentence that fails as a whole is tried clause by clause ("X earns 4.00% APY, with a $5 fee"),
    each clause keeping the product of the one before, so that a comparison of two products can pass
    while a fee moved from one to the other cannot.
    """
    sources = tuple(sources)
    names = _names_for(names or default_product_names(), sources)
    if question and _echo(sentence, question):
        return ClaimVerdict(False, "echo", "it repeats the question")
    passages = [_parse(text, names) for text in sources]
    inherited: frozenset[str] = frozenset()
    if previous and PRONOUN_START.match(sentence):
        earlier = [names.find(s) for s in SENTENCES.split(previous)]
        inherited = next((found for found in reversed(earlier) if found), frozenset())
    whole, _ = _check_one(sentence, passages, names, inherited)
    if whole.supported:
        return whole
    clauses = [c for c in CLAUSE_BREAK.split(sentence) if c and c.strip(" ,.")]
    if len(clauses) < 2:
        return whole
    context = inherited
    for clause in clauses:
        verdict, context = _check_one(clause, passages, names, context)
        if not verdict.supported:
            # The whole sentence's reason unless the clause says more precisely what is wrong.
            return verdict if verdict.reason != "no_support" or whole.reason == "no_support" else whole
    return ClaimVerdict(True, "supported", "clause by clause")
