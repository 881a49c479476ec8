"""Follow-up resolution: turn "what about international ones?" into a standalone query.

Retrieval and the intent classifier see one message at a time, so a follow-up that leans on the
previous turn ("how much is it?", "and for the travel card") must be rewritten before either
runs. The generator (SmolLM2-135M) is too small to rewrite reliably, so this is done by rules that
cost microseconds on a CPU:

1. **Detect** a dependent turn: it opens with a connective ("and", "what about", "how about",
   "also"...), or it is short and names no topic of its own (no product, payment type or banking
   subject), or it is short and refers back with a pronoun ("it", "that", "those", "ones").
2. **Merge** it with the previous user turn's resolved query, through slots: a product, payment
   type, scope (international / domestic), direction, speed or aspect (fee, limit, time, rate)
   named in the follow-up replaces the same slot of the previous query ("and for domestic ones?"
   after "how much is an international wire?" → "how much is an domestic wire?"); a follow-up with
   its own question gets the previous topic in place of its pronoun ("how long does it take?" →
   "how long does international wire take?").

The previous turns come from the Store (the engine folds them oldest first, so a follow-up of a
follow-up resolves too). ``chatbot eval dialogue`` measures retrieval recall on follow-up turns
with and without this step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chatbot.nlu.lexicon import HOLDS

# Slot name → alternatives (regex, longest first). A value found in a follow-up replaces the value
# of the same slot in the previous query.
SLOTS: dict[str, list[str]] = {
    "account": [
        r"(?:kestrel )?(?:everyday|premier|student) checking(?: accounts?)?",
        r"(?:kestrel )?(?:basic|high[- ]yield) savings(?: accounts?)?",
        r"money market(?: accounts?)?",
        r"certificates? of deposit|\bcds?\b",
        r"checking(?: accounts?)?|savings(?: accounts?)?|joint accounts?|business accounts?",
        # the modifier alone names one account ("the atm refund on premier"); CANONICAL completes it
        r"(?:kestrel )?premier|(?:kestrel )?high[- ]yield",
    ],
    "card": [
        r"(?:kestrel )?(?:cash rewards|travel|secured)(?: visa)?(?: credit)?(?: cards?)?",
        r"(?:visa )?debit cards?|credit cards?",
        r"(?:gold|platinum|silver|black|business|student|prepaid|virtual|metal) cards?",
    ],
    "payment": [
        r"wire transfers?|wires?",
        r"quick ?pay|zelle",
        r"ach(?: transfers?)?|external transfers?|direct deposits?|mobile (?:check )?deposits?|bill pay",
        r"cashier'?s checks?|money orders?|checks?",
    ],
    "loan": [r"(?:auto|car) loans?|personal loans?|mortgages?|helocs?|home equity(?: line of credit)?|student loans?"],
    # Services and features a conversation can be about; customers name some by what happens, so
    # CANONICAL gives the name the knowledge base uses ("my balance goes negative" is an overdraft).
    "feature": [
        r"overdraft(?: protection| coverage| grace| fees?)?|overdrawn|overdraw|negative balance|nsf|"
        r"(?:balance|account) (?:goes|went|is|gets|going|got) (?:negative|below zero)|bounced? (?:checks?|payments?)",
        r"2-step verification|two[- ]step verification|two[- ]factor(?: authentication)?|2fa",
        r"online banking|mobile banking|(?:kestrel |banking |mobile )app",
    ],
    "scope": [
        r"international(?:ly)?|foreign|overseas|abroad|outside (?:the )?(?:us|u\.s\.|united states|country)",
        r"domestic(?:ally)?|within the (?:us|u\.s\.)|inside the (?:us|u\.s\.)|in the (?:us|u\.s\.)",
    ],
    "direction": [r"incoming|receiving|receive|received", r"outgoing|sending|send"],
    "speed": [r"expedited|express|overnight|rush|same[- ]day", r"standard"],
    "aspect": [
        r"fees?|cost|costs|charge|price",
        r"limits?|maximum|max",
        r"cut-?off(?: time)?|hours",
        r"interest(?: rates?)?|rates?|apys?|aprs?",
        r"minimum(?: balance| deposit| opening deposit)?",
    ],
}

# Subjects that make a message stand on its own even without a product name.
TOPIC_WORDS = re.compile(
    r"\b(?:pin|overdraft|atms?|statements?|routing|dispute|fraud|app|online banking|branch(?:es)?|"
    r"password|stolen|lost|loan|mortgage|account|card|transfer|deposit|balance|refund|charge[ds]?|"
    r"payment|withdraw\w*|cash|credit score|close|open|travel\w*|phone|address|name)\b",
    re.I,
)
CONNECTIVE = re.compile(
    r"^\s*(?:ok(?:ay)?[,.]?\s+|thanks[,.]?\s+|cool[,.]?\s+|great[,.]?\s+)?"
    r"(?:and what about|and how about|what about|how about|and for|and if|and|also|same for|what if|"
    r"then|or|but)\b[\s,]*",
    re.I,
)
PRONOUN = re.compile(r"\b(?:it|that|this|they|them|those|these|ones?)\b", re.I)
# Words that only make sense after something was said: "i have premier checking tho", "my husband too?"
BACK_REFERENCE = re.compile(r"\b(?:tho|though)\b|\b(?:too|either|instead|then|also)\b[\s?.!,]*$", re.I)
_SAME_AGAIN = (
    r"(?:same (?:deal|thing|question|for me|rules?|answer|there)|(?:is|does|would|will)\s+(?:it|that)\s+"
    r"(?:\w+\s+)?(?:the same|same|different|change|changes|matter|apply)(?:\s+anything)?|any different|"
    r"what then|then what|what about then)"
)
# "oh wait i have premier checking", "actually im on student": only which product the customer holds, said
# after a question, asks that question again for it (``holds_only``).
_NOT_HELD = r"(?!(?:and|but|so|i|it|is|was|to|for|with)\b)"
HOLDING_ONLY = re.compile(
    r"^\s*(?:(?:oh|ah|ahh|oops|wait|ok(?:ay)?|actually|sorry|btw|well|hmm|um|but|and|also|fyi)[\s,.!]+)*"
    rf"{HOLDS}\s+(?:(?:the|a|an|just|only|regular|plain)\s+)*"
    rf"(?P<held>{_NOT_HELD}[\w'-]+(?:\s+{_NOT_HELD}[\w'-]+){{0,3}})"
    r"(?:\s+(?:actually|tho|though|btw|too|if that (?:changes|matters)\b[\w ]*))?"
    # "oh wait i have student checking, same deal?": the question before, asked again for it
    rf"(?:[\s,.!?-]+{_SAME_AGAIN})?[\s.!?]*$",
    re.I,
)
_HELD_WORDS = frozenset(
    {"kestrel", "account", "accounts", "acct", "card", "one", "visa", "debit", "credit", "btw", "tho", "though"}
)
# A holding said at the end of a turn that asks something else: "its a 7k check btw, i have everyday checking",
# "There is fee for receive it? I have the Everyday checking" (``is_dependent`` reads the rest).
# (each separator is matched from its first character, and the fillers at most 3 times: linear on long turns)
HOLDING_AFTER = re.compile(
    rf"(?:(?<![,.;!?])[,.;!?]+\s*|(?<!\s)\s+(?:and|but|btw)\s+)(?:(?:and|but|btw|also|oh)[\s,]+){{0,3}}{HOLDS}\s+"
    r"(?:(?:the|a|an|just|only|regular|plain)\s+)*(?P<held>[\w'-]+(?:\s+[\w'-]+){0,3}?)"
    r"(?:\s+(?:btw|tho|though|too))?[\s.!?]*$",
    re.I,
)
SHORT_FOLLOWUP_WORDS = 10  # a turn with nothing of its own to be about leans on the previous one up to this long
LONG_FOLLOWUP_WORDS = 18  # a turn that points back can be this long and still lean on the previous one
LONG_CONNECTED_WORDS = 24  # ...or this long when it also opens with "and", "ok and", "what about"...
QUESTION = re.compile(
    r"\b(?:how|hows|what|whats|when|where|why|which|who|can|could|do|does|did|is|are|will|would|should|may)\b",
    re.I,
)
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an the i me my we our you your is are was were be do does did can could would should will how what "
        "when where why which who to of for on in at with and or it this that please kestrel bank much many "
        "long get have has there any about tell",
    )
)

_COMPILED = {
    slot: [re.compile(rf"\b(?:{alternative})\b", re.I) for alternative in alternatives]
    for slot, alternatives in SLOTS.items()
}


@dataclass(frozen=True)
class Mention:
    slot: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Resolution:
    query: str  # what retrieval and the classifier see
    dependent: bool  # whether the turn was read as a follow-up
    previous: str | None  # the resolved previous turn it was merged with


def mentions(text: str) -> list[Mention]:
    """Slot values named in ``text``, left to right, without overlaps (longest alternative first)."""
    found: list[Mention] = []
    taken: list[tuple[int, int]] = []
    for slot, patterns in _COMPILED.items():
        for pattern in patterns:
            for match in pattern.finditer(text):
                start, end = match.span()
                if any(start < b and a < end for a, b in taken):
                    continue
                taken.append((start, end))
                found.append(Mention(slot, match.group(0), start, end))
    return sorted(found, key=lambda m: m.start)


SUBJECT_SLOTS = {"account", "card", "payment", "loan", "feature"}

# The knowledge base's name for a subject the customer described in their own words.
CANONICAL: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^(?:{SLOTS['feature'][0]})$", re.I), "overdraft"),
    (re.compile(rf"^(?:{SLOTS['feature'][1]})$", re.I), "2-step verification"),
    (re.compile(r"^interest$", re.I), "interest rate"),  # "and the interest?" asks what it pays
    (re.compile(r"^(?:kestrel )?premier$", re.I), "premier checking"),
    (re.compile(r"^(?:kestrel )?high[- ]yield$", re.I), "high-yield savings"),
]


def canonical(mention: Mention) -> str:
    for pattern, name in CANONICAL:
        if pattern.match(mention.text):
            return name
    return mention.text


def _entities(found: Sequence[Mention]) -> list[Mention]:
    """Mentions that name what the turn is about (aspects such as "fee" are not a subject)."""
    return [m for m in found if m.slot != "aspect"]


def _subjects(found: Sequence[Mention]) -> list[Mention]:
    """Mentions that name a product or payment type: a turn with one can stand on its own."""
    return [m for m in found if m.slot in SUBJECT_SLOTS]


# A turn made only of these words is a reply ("ok thanks", "nope, that's all, bye"), not a question.
SMALL_TALK_WORDS = frozenset(
    re.findall(
        r"[\w']+",
        "ok okay great cool perfect awesome nice good hi hello hey there bye goodbye thanks thank you cheers no "
        "nope yes yep that's that is all very much so a lot for your the help work this it appreciate have day",
    )
)


def is_dependent(text: str) -> bool:
    """Whether ``text`` leans on the previous turn (see the module docstring for the rules)."""
    words = re.findall(r"[\w'$%-]+", text)
    if not words or all(w.lower() in SMALL_TALK_WORDS for w in words):
        return False
    refers_back = bool(PRONOUN.search(text) or BACK_REFERENCE.search(text))
    if CONNECTIVE.match(text) and (len(words) <= 12 or (refers_back and len(words) <= LONG_CONNECTED_WORDS)):
        return True
    found = mentions(text)
    subjects = _subjects(found)
    # "is there a minimum balance?" names only an aspect of whatever the conversation is about: its
    # "balance" is not a topic of its own.
    rest = text
    for mention in sorted((m for m in found if m.slot == "aspect"), key=lambda m: -m.start):
        rest = rest[: mention.start] + " " + rest[mention.end :]
    if subjects:
        if len(words) <= SHORT_FOLLOWUP_WORDS and holds_only(text):
            return True
        asked = _before_holding(text)  # "there is fee for receive it? I have the Everyday checking"
        return asked is not None and is_dependent(asked)
    if TOPIC_WORDS.search(rest):
        # "can i just pick it up from the branch tomorrow?" after the ATM kept the card (8 words: 585
        # of 677 dev turns; 10: 586, none lost)
        return len(words) <= SHORT_FOLLOWUP_WORDS and refers_back
    # Nothing of its own to be about: short, or longer but pointing back ("how far back does it go? i
    # need one from 2016", "does that cover my husband too?").
    return len(words) <= SHORT_FOLLOWUP_WORDS or (refers_back and len(words) <= LONG_FOLLOWUP_WORDS)


def holds_only(text: str) -> bool:
    """Whether ``text`` only says which account or card the customer holds ("oh wait i have premier
    checking"), not "i got scammed on zelle" or "i got a new debit card"."""
    match = HOLDING_ONLY.match(text)
    if match is None:
        return False
    return _names_a_holding(match.group("held"))


def _names_a_holding(held: str) -> bool:
    """Whether ``held`` names an account or card and nothing else ("the premier checking acct", "travel
    card btw"), not "student loans"."""
    owned = [m for m in mentions(held) if m.slot in {"account", "card"}]
    for mention in sorted(owned, key=lambda m: -m.start):
        held = held[: mention.start] + " " + held[mention.end :]
    return bool(owned) and set(held.lower().split()) <= _HELD_WORDS


def _before_holding(text: str) -> str | None:
    """What ``text`` says before a closing clause that only says which account or card the customer holds
    ("its a 7k check btw, i have everyday checking" → "its a 7k check btw"), or ``None`` without one."""
    match = HOLDING_AFTER.search(text)
    if match is None or not text[: match.start()].strip() or not _names_a_holding(match.group("held")):
        return None
    return text[: match.start()].strip()


def _topic(previous: str) -> str:
    """The subject of the previous query: its slot values (not aspects), else its content words."""
    found = _entities(mentions(previous))
    if found:
        return " ".join(canonical(m) for m in found)
    words = [w for w in re.findall(r"[\w'-]+", previous) if w.lower() not in STOPWORDS]
    return " ".join(words)


def _completed(fragment: str, previous: str) -> list[Mention]:
    """A bare modifier ("premier", "high yield") completed by the noun of the subject it replaces in
    the previous query ("everyday checking" → "premier checking"), when that names a subject."""
    # "the high yield one" is "high yield"
    fragment = re.sub(r"^(?:the|that|this)\s+|\s+(?:ones?|accounts?|acct)$", "", fragment.strip(), flags=re.I)
    words = fragment.split()
    if not 1 <= len(words) <= 3:
        return []
    for before in _subjects(mentions(previous)):
        candidate = f"{fragment} {before.text.split()[-1]}"
        found = [m for m in mentions(candidate) if m.slot == before.slot and m.text == candidate]
        if found and found[0].text.lower() != before.text.lower():
            return found
    return []


def _modifier(text: str, previous: str) -> list[Mention]:
    """A bare modifier inside a follow-up's own question ("whats the monthly fee on premier") completed
    by the noun of the previous subject ("everyday checking" → "premier checking")."""
    words = re.findall(r"[\w'-]+", text)
    for size in (2, 1):
        for i in range(len(words) - size + 1):
            if any(w.lower() in STOPWORDS for w in words[i : i + size]):
                continue
            found = _completed(" ".join(words[i : i + size]), previous)
            if found:
                return found
    return []


def _stems(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"\w+", text.lower())}


def _narrows(topic: str, before: Sequence[Mention]) -> bool:
    """Whether the title of what was cited names the previous subject with a scope the customer left
    unsaid: "wire" after a wire to the Philippines was answered from "International wire transfers",
    so the follow-up "how long till it gets there" is about international wires. (Only a scope: a
    title's other words, "Direct deposit and early pay", would pull to a section not asked about.)"""
    subjects = _subjects(before)
    if not subjects or any(m.slot == "scope" for m in before) or not any(m.slot == "scope" for m in mentions(topic)):
        return False
    named = set().union(*(_stems(canonical(m)) for m in subjects))
    return named < _stems(topic)


# Where a turn says which product the customer holds, mid-sentence too ("I've just got a regular Everyday
# checking account with you for years").
HELD_CLAUSE = re.compile(
    rf"\b(?:{HOLDS}|i\s*(?:'ve|ve| have)\s+(?:just|only|always)\s+(?:got|had)|"
    # (up to the clause's end or a conjunction: "I have premier checking and I want to send a wire" asks a wire)
    r"my (?:account|acct) is)\s+(?:(?!\b(?:and|but|so|because|to|for|which|that|if)\b)[^.,;!?]){0,60}",
    re.I,
)


def _held_clauses(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in HELD_CLAUSE.finditer(text)]


def _within(mention: Mention, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start <= mention.start and mention.end <= end for start, end in spans)


def merge(text: str, previous: str, topic: str | None = None) -> str:
    """The standalone query for follow-up ``text`` after the (resolved) ``previous`` query.

    ``topic``: what the assistant's last answer was about (its source's title), the subject when the
    previous query names no product or payment of its own ("need to send money to my mom in portugal"
    then "how long till it gets to her": the answer was about international wire transfers)."""
    remainder = CONNECTIVE.sub("", text, count=1).strip(" ?.!,") or text.strip(" ?.!,")
    if holds_only(text):  # "ah i have student checking, is it the same?": the question before, for that product
        remainder = " ".join(m.text for m in mentions(text) if m.slot in {"account", "card"})
    for mention in reversed([m for m in mentions(remainder) if m.slot == "account"]):  # "premier" alone
        remainder = remainder[: mention.start] + canonical(mention) + remainder[mention.end :]
    current = mentions(remainder)
    before = mentions(previous)
    has_question = bool(QUESTION.search(remainder)) and len(remainder.split()) > 2
    # "what if i did it on the travel card instead" after a question about the cash rewards card asks
    # the same question of another product: it names a subject in place of one before, and no aspect.
    replaces = {m.slot for m in _subjects(current)} & {m.slot for m in _subjects(before)}
    same_question = bool(replaces) and not any(m.slot == "aspect" for m in current)
    if not has_question or same_question:
        # A fragment ("international ones", "for the travel card", "the limit"): substitute slots.
        query = previous.rstrip(" ?.!")
        appended: list[str] = []
        if not current:
            current = _completed(remainder, query)  # "and premier?" after "... everyday checking"
        for mention in current:
            same = [m for m in mentions(query) if m.slot == mention.slot]
            if same:
                target = same[0]
                query = query[: target.start] + canonical(mention) + query[target.end :]
            else:
                appended.append(canonical(mention))
        if not current:
            appended.append(re.sub(r"^(?:for|with|on|in|to)\s+", "", remainder, flags=re.I))
        return " ".join([query, *appended]).strip()
    # The follow-up asks its own question: carry over the previous subject.
    subject_mentions = list(_entities(before))
    if not _subjects(current):
        completed = _modifier(remainder, previous)  # "premier" said alone replaces "everyday checking"
        if completed:
            current = [*current, *completed]
            subject_mentions = [m for m in subject_mentions if m.slot != completed[0].slot] + completed
    named_slots = {m.slot for m in _entities(current) if m not in subject_mentions}
    subject = " ".join(canonical(m) for m in subject_mentions if m.slot not in named_slots) if subject_mentions else ""
    if not subject_mentions:
        subject = _topic(previous)
    # A subject the previous turn named only as what the customer holds ("I've just got a regular Everyday
    # checking account with you. How much will it cost to send it?") is not what it asked about: the cited
    # topic (an international wire) is added as if it had named nothing.
    held = _held_clauses(previous)
    asked_before = [m for m in before if not _within(m, held)]
    if topic and not _subjects(current) and (not _subjects(asked_before) or _narrows(topic, before)):
        subject = f"{subject} {topic}".strip()
    if not subject:
        return remainder
    if PRONOUN.search(remainder):
        return PRONOUN.sub(subject, remainder, count=1)
    return f"{remainder} {subject}"


def swaps_subject(text: str, previous: str) -> bool:
    """Whether ``text`` asks the previous question of another product ("does the student checking have
    that too" after "is there overdraft protection on everyday checking"): short, pointing back, and
    naming a different subject of the same kind as one the previous query named."""
    words = re.findall(r"[\w'$%-]+", text)
    if len(words) > SHORT_FOLLOWUP_WORDS or not (PRONOUN.search(text) or BACK_REFERENCE.search(text)):
        return False
    named = {(m.slot, m.text.lower()) for m in _subjects(mentions(text))}
    before = {(m.slot, m.text.lower()) for m in _subjects(mentions(previous))}
    return bool({slot for slot, _ in named} & {slot for slot, _ in before}) and not named <= before


def points_back(text: str) -> bool:
    """Whether ``text`` refers to something said before ("after that how do i kick off whatever phone
    they used", "how much do i put down for it") without naming a product or payment of its own:
    a turn that may lean on the previous one even when it is too long for ``is_dependent`` to say so."""
    if not (PRONOUN.search(text) or BACK_REFERENCE.search(text)):
        return False
    return not _subjects(mentions(text))


def resolve(text: str, history: Sequence[str], topic: str | None = None, lean: bool = False) -> Resolution:
    """Resolve ``text`` against the previous user turns (oldest first, raw as the customer typed them);
    ``topic``: the title of what the assistant's last answer cited, if anything (see ``merge``).
    ``lean``: merge it with the previous turn even when ``is_dependent`` says it stands alone (the
    engine asks for this reading of a turn that ``points_back``, and keeps it when it finds something
    relevant)."""
    previous: str | None = None
    for turn in history:
        previous = merge(turn, previous) if previous is not None and is_dependent(turn) else turn
    if previous is None or not (lean or is_dependent(text) or swaps_subject(text, previous)):
        return Resolution(text, False, previous)
    return Resolution(merge(text, previous, topic), True, previous)
