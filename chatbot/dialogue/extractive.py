"""Extractive answers that answer what was asked: every part of the question, for the product named.

The extractive answer is the bank's own sentences, quoted: grounded by construction, and what the
customer gets whenever the generator declines, fails the figure check or is skipped. Quoting "the
two sentences closest to the question" often answers half a question ("what's the fee and is there a
cutoff?" → the fee only) or quotes the wrong product's figure (a bullet "Monthly maintenance fee:
$5" under Basic Savings for a question about High-Yield Savings). This module chooses instead:

1. **What was asked.** The question is split into parts ("…the fee and is there a cutoff time?" →
   two), and each part's *aspects* are read from its wording: an amount (fee, cost, price,
   minimum), a rate (APY, APR, interest), a time (how long, when, cut-off), how to do something,
   eligibility (requirements, who can), contact (phone), limits.
2. **Which product.** Product names are learnt from the knowledge base itself ("Kestrel Premier
   Checking", "Kestrel High-Yield Savings": a modifier and a family noun shared by sibling
   products). A candidate sentence is about the products it names or, naming none, about those of
   its section heading, so a bullet under "Kestrel Basic Savings" belongs to Basic Savings. When
   the customer names a product, sentences about a sibling product are not quoted. A clause that
   only says which product the customer holds ("…in a day? i have everyday checking") is left out of
   what retrieval searches for (``Catalogue.without_holdings``): it names the product, not the subject.
   **Which kind.** Some things come in kinds whose figures differ and whose sentences read alike:
   a wire is outgoing or incoming ($30 / $15), domestic or international (5:00 / 3:00 p.m. ET).
   When the question takes a side ("wire me money", "to my brother in mexico"), a sentence about
   the other kind (by its own words, else its heading's, else its document's title) is not quoted,
   a FAQ entry about it is not returned verbatim, and its document is less likely to be quoted.
3. **From where.** The best document (the closest passage's, with the bank's own documents
   preferred over Ask CFPB entries and documents naming the customer's product over those that
   do not): all its sections are candidates, so a fee and a cut-off in two sections both count;
   the runner-up document's retrieved passages are candidates too, at a penalty, for a part the
   best document does not answer.
4. **Scoring.** Similarity to the question part (MiniLM, the retriever's embedder; sentence
   vectors are cached per passage) + aspect match + product match; one best unit per part, then
   any aspect still uncovered, then the closest remaining units up to a short cap. A unit stating
   the term, balance or age the customer gives, or the tier holding it ("an 18-month CD" → "18
   months up to 36 months", "my 15 yr old" → "at least 13 years old"), is preferred. Units are
   quoted in the document's order. A bullet quoted alone is prefixed with its product ("Kestrel
   Basic Savings — Monthly maintenance fee: $5."), a table row becomes "cell: cell".
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from chatbot.dialogue.grounding import NUMBER_WORDS
from chatbot.knowledge.index import Passage
from chatbot.knowledge.retriever import Hit
from chatbot.nlu.lexicon import HOLDS, PLACES_PATTERN

Encode = Callable[[list[str]], np.ndarray]
log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------- aspects
# Each aspect: what in a question asks for it, and what in a sentence answers it.
# "up to $50,000" is a limit, not what something costs ("how much is a wire" → "$30")
# A price: a dollar figure, a fee stated as a percentage ("a 3% foreign transaction fee"), or none.
# A fee named before its figure is a price too, a percentage or "up to" one: "Foreign transaction fee:
# 3% of each transaction", "Late payment fee: up to $40".
FIGURE_MONEY = (
    r"(?<!up to )\$\s?\d|\bfree\b|\bno (?:monthly |annual )?fee|\bwaived?\b|\bno charge\b|\b\d+(?:\.\d+)? cents?\b"
    r"|\d(?:\.\d+)?\s?% (?:[\w-]+ ){0,3}(?:fees?|charges?)\b"
    r"|\b(?:fees?|charges?)(?::| is| are| of)\s+(?:up to\s+)?(?:\$\s?\d|\d(?:\.\d+)?\s?%)"
)
FIGURE_PERCENT = r"\d(?:\.\d+)?\s?%|\bpercent\b"
# "1 to 5 business days" is a duration; "up to $25,000 per business day" is a limit, not one, and so is
# "$10,000 per rolling 30 days" ("how fast does she get it" is not answered by a sending limit).
_PERIOD = r"(?<!per )(?<!rolling )"
FIGURE_TIME = (
    rf"{_PERIOD}\b\d+\s+(?:to\s+\d+\s+)?(?:business|calendar)\s+days?\b|{_PERIOD}\b\d+\s+(?:to\s+\d+\s+)?"
    r"(?:minutes?|hours?|days?|weeks?|months?|years?|(?:pay|billing|statement) (?:cycles?|periods?))\b|"
    r"\bimmediately\b|\bsame (?:business )?day\b|"
    r"\bnext business day\b|\bwithin\b"
)
ASPECTS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "amount": (
        re.compile(
            r"\b(?:fees?|cost|costs|charged?|charges|price|pay|paying|how much|penalt(?:y|ies)|expensive|"
            r"cheap|free|minimum (?:deposit|opening|balance)|bucks|dollars?)\b",
            re.I,
        ),
        re.compile(FIGURE_MONEY, re.I),
    ),
    "no_fee": (
        re.compile(
            r"\b(?:no|without|zero|free of|avoid|waive\w*|stop paying|not pay|get rid of)\b(?:\s+\w+){0,3}\s+"
            r"(?:fees?|charges?|cost)\b|\bfree\b",
            re.I,
        ),
        re.compile(r"\$0(?![.,]\d*[1-9])\b|\bno (?:\w+ ){0,3}fees?\b|\bfree\b|\bwaived?\b|\bdoes not charge\b", re.I),
    ),
    "rate": (
        # "cash back" asks what a card earns; "the cash back card" only names one
        re.compile(
            r"\b(?:rates?|apy|apr|interest|earn|earns|yield|dividends?|cash ?back(?!\s+(?:visa\s+)?cards?)|"
            r"pays? (?:the )?(?:most|more|best|better))\b",
            re.I,
        ),
        re.compile(FIGURE_PERCENT, re.I),  # a rate asked is a figure: "no intro APR" does not say the APR
    ),
    "clock": (
        re.compile(
            # "if i pay at 7:30pm on the due date is it on time": a time of day in the question asks one
            r"\b(?:what time|cut-?off|deadline|by when|by what time|how late|open until|hours|latest|earliest|"
            r"on time|\d{1,2}(?::\d{2})?\s?[ap]\.?m)\b",
            re.I,
        ),
        re.compile(r"\b\d{1,2}(?::\d{2})?\s?[ap]\.?m\b|\bcut-?off\b|\bmidnight\b|\bnoon\b", re.I),
    ),
    "duration": (
        re.compile(
            r"\b(?:how long(?!\s+(?:can|could|should|must|may|is|are)\s+(?:\w+\s+){0,3}be\b)"
            r"(?!\s+(?:does|do)\s+(?!(?:i|we|you)\b)(?:\w+\s+){0,3}?(?:need|have|got) to be\s*(?:[?.!,]|$))"
            r"|when|how soon|"
            # "how long does it last", not "my husband lost his job last month"
            # "how much can i deposit in a day" asks a limit: a day that is a period is not a wait
            r"how fast|how quickly|(?<!\ba )(?<!\bper )(?<!\beach )(?<!\bone )days?|weeks?|until|available|arrive|"
            r"take to|expire|"
            r"(?:does|do|will|would) (?:\w+ ){0,3}last|wait|hold)\b",
            re.I,
        ),
        re.compile(FIGURE_TIME, re.I),
    ),
    "howto": (
        re.compile(
            r"\b(?:how (?:do|can|to|would|should) (?:i|we|you)|how to|where (?:do|can) i|steps?|set ?up|"
            r"what (?:should|do|can|must) (?:i|we) do|what (?:am i|are we) supposed to|"
            r"what (?:do|should|must) (?:i|we) (?:write|put|say|enter|type)|"
            r"sign up|apply|turn (?:on|off)|opt (?:in|out)|change|update|order|activate|request)\b",
            re.I,
        ),
        re.compile(
            r"\b(?:in (?:the )?(?:kestrel )?(?:mobile )?app|online banking|under [A-Z][\w ]*>|call|visit|"
            r"go to|tap|select|choose|sign in|log in|fill (?:in|out)|at a branch|request|send us|apply|endorse|"
            r"the words)\b|>",
            re.I,
        ),
    ),
    "eligibility": (
        re.compile(
            # "what do i need", not "i need to wire money" (what the customer wants to do)
            # "can i ..." opening a question asks whether one may; "how many times can i" asks a limit
            r"\b(?:qualify|eligible|eligibility|requirements?|required|need(?!\s+to\b)|needs|who can|"
            r"am i able|allowed|age|old|credit score|income|do i have to|must|(?:what|do|does) (?:\w+ )?need)\b|"
            r"(?:^|[,.;!?]\s*)(?:so |and |but |also |ok |okay )?can i\b",
            re.I,
        ),
        re.compile(
            r"\b(?:must|need|required?|requirements?|at least|eligible|only if|open for|ages?|years? old|"
            r"credit score|you can|cannot|can't|not allowed)\b"
            # a product that does not do it answers "can i" too: "does not offer balance transfers"
            r"|\b(?:does|do|is|are)(?: not|n't)\s+(?:offer(?:ed)?|available|allow(?:ed)?|accept(?:ed)?|"
            r"support(?:ed)?|eligible)\b",
            re.I,
        ),
    ),
    "contact": (
        re.compile(r"\b(?:phone|call|number to|contact|reach|speak|talk to|email|address)\b", re.I),
        re.compile(r"\d{3}[\s.-]\d{3}[\s.-]\d{4}|\bcall\b|\bvisit\b|[\w.+-]+@[\w-]+\.\w", re.I),
    ),
    "limit": (
        re.compile(
            # "how much cash can i pull out", "how much money am i allowed to send": what one may move
            r"\b(?:limits?|maximum|max|most|up to|how much (?:can|could|would|will)|how many|how often|cap|restrict\w*|"
            r"how much (?:\w+ ){1,2}(?:can|could|may) (?:i|we|u|you|one)|how much (?:\w+ )?(?:am i|are we) allowed|"
            r"smallest|biggest|largest)\b",
            re.I,
        ),
        re.compile(
            r"\b(?:limits?|up to|maximum|at most|\d+ free|per (?:\w+ ){0,2}(?:day|week|month|cycle|year)|"
            r"ranges? from)\b",
            re.I,
        ),
    ),
    # "am i stuck paying for it", "do i have to eat those charges": who pays for what the customer did
    # not do, answered by the protection, not by a price
    "liability": (
        re.compile(
            r"\b(?:stuck|on the hook|eat (?:the|those|these|that) (?:charges?|costs?|money))\b"
            r"|\b(?:am i|are we|i'?m|i am|be held|be) (?:still )?(?:responsible|liable)\b"
            r"|\b(?:have|need) to pay (?:for )?(?:it|them|that|those|these|the (?:charges?|disputed|amount))\b"
            # "am i going to lose that money", "or am i just out 400 bucks"
            r"|\b(?:lose|lost)\s+(?:that|the|my|this|all (?:that|my|the))\s+(?:money|cash|funds)\b"
            r"|\b(?:am i|i'?m|im)\s+(?:just\s+)?out\s+(?:\$\s?\d|\d)",
            re.I,
        ),
        re.compile(
            r"\b(?:not responsible|zero liability|liab\w*|(?:don't|do not|won't|will not) have to pay|"
            r"provisional credit)\b",
            re.I,
        ),
    ),
    # "the least I can start with" (a money market's $1,000), "the least we can put down" (3%): a
    # minimum, in dollars or as a share
    "minimum": (
        re.compile(
            r"\bleast (?:i|we) (?:can|could|need|have|must)\b|\bleast you (?:need|have|must)\b"
            # "how much money need to open", "how much do i need to start one"
            r"|\bhow much\b(?:\s+\w+){0,6}?\s+(?:to|for)\s+(?:open|start)\b",
            re.I,
        ),
        re.compile(
            r"\b(?:at least|minimum|as little as|needs?|takes|requires?)\b[^.;]{0,40}?(?:\$\s?\d|\d(?:\.\d+)?\s?%)"
            r"|(?:\$\s?\d[\d,.]*|\d(?:\.\d+)?\s?%)\s+(?:to open|down|minimum)\b|^[^.]{0,40}:\s*\$\s?\d|\bno minimum\b",
            re.I,
        ),
    ),
    # "how long can my username be": a length, not a time
    "length": (
        re.compile(
            r"\bhow (?:long|short)\s+(?:can|could|should|must|may|is|are)\s+(?:\w+\s+){0,3}be\b|"
            # "how long does my password need to be" (not "how long does it take to be approved")
            # (the clause ends there: "how long does my account need to be open" asks a time)
            r"\bhow (?:long|short)\s+(?:does|do)\s+(?!(?:i|we|you)\b)(?:\w+\s+){0,3}?(?:need|have|got) to be"
            r"\s*(?:[?.!,]|$)|"
            r"\bhow many (?:characters|digits|letters)\b|\b(?:length|characters)\b",
            re.I,
        ),
        re.compile(r"\b\d+(?: to \d+)? (?:characters|digits|letters|numbers)\b|\b\d+-digit\b|\bcharacters\b", re.I),
    ),
    # "when would the loan money hit my account": when funds arrive, not when a decision is made
    "funding": (
        re.compile(
            r"\b(?:hit|land|show up|arrive|appear|get|receive|see|go)\w*\s+(?:in|into|on)?\s*(?:my|the)\s+"
            r"(?:account|acct|bank)\b|\b(?:money|funds|cash)\b.{0,30}\b(?:hit|land|arrive|show up|deposited|get)\b|"
            r"\b(?:when|how soon|how fast|how quickly)\b.{0,30}\b(?:get|receive)\b.{0,15}\b(?:money|funds|cash)\b",
            re.I,
        ),
        re.compile(
            r"\b(?:deposited|disbursed|funds? (?:are|is) (?:sent|deposited|available|credited)|credited|"
            r"into (?:your|a|an) (?:\w+ )?account|arrives?|appears?)\b",
            re.I,
        ),
    ),
}

# Connectives that separate the parts of a question asking two things at once.
PART_SPLIT = re.compile(
    r"\?+\s*|[;]\s*|,?\s+\b(?:and|also|plus|as well as)\s+(?=(?:is|are|was|what|whats|what's|how|when|where|"
    r"which|who|can|could|do|does|did|will|would|should|there|if|whether|the|any|any\w+)\b)",
    re.I,
)


# "how much interest does it charge" asks a rate: its "how much" and "charge" are the rate's, not a fee's;
# "am i stuck paying for it" asks who pays, not a price.
FEE_NOUNS = re.compile(r"\b(?:fees?|costs?|price|penalt(?:y|ies)|bucks|dollars?)\b", re.I)


# The words of the amount aspect that ask a price; "how much" alone may ask a limit.
PRICE_ASKED = re.compile(
    r"\b(?:fees?|costs?|charged?|charges|price|pay|paying|penalt(?:y|ies)|expensive|cheap|free|bucks|dollars?|"
    r"minimum (?:deposit|opening|balance))\b",
    re.I,
)


def aspects_of(text: str) -> frozenset[str]:
    """The aspects a question (or a part of one) asks for."""
    found = frozenset(name for name, (asks, _) in ASPECTS.items() if asks.search(text))
    if ({"rate", "amount"} <= found or {"liability", "amount"} <= found) and not FEE_NOUNS.search(text):
        found -= {"amount"}
    if {"limit", "amount"} <= found and not PRICE_ASKED.search(text):
        found -= {"amount"}  # "how much can i send a day" asks the limit; its "how much" is no price
    return found


# A dollar figure in a sentence that states a limit ("Per day $2,500") is not a price: without one of
# these words it does not answer "is there a fee".
PRICE_WORDS = re.compile(r"\b(?:fees?|costs?|charged?|charges|price|free|waived?|penalt(?:y|ies)|pay)\b", re.I)


def answers_aspect(text: str, aspect: str) -> bool:
    if ASPECTS[aspect][1].search(text) is None:
        return False
    if aspect != "amount":
        return True
    limit_only = ASPECTS["limit"][1].search(text) is not None and PRICE_WORDS.search(text) is None
    return not limit_only


def question_parts(question: str) -> list[str]:
    """The parts of a question that asks several things; a one-part question is returned as is."""
    parts = [p.strip(" ,.!") for p in PART_SPLIT.split(question)]
    parts = [p for p in parts if len(p.split()) >= 2]
    return parts or [question.strip()]


# -------------------------------------------------------------------------------------- contrasts
# (Places abroad a customer names, "wire 5k to my brother in mexico": ``chatbot.nlu.lexicon.PLACES_ABROAD``.)
@dataclass(frozen=True)
class Contrast:
    """Two kinds of one thing whose facts differ and that a customer means one of: a wire is outgoing
    or incoming ($30 vs $15), domestic or international (5:00 vs 3:00 p.m. ET). A sentence about the
    other kind is the wrong fact for this customer even when it is the closest sentence."""

    name: str
    poles: tuple[str, str]
    asks: tuple[re.Pattern[str], re.Pattern[str]]  # what in a question means each pole
    says: tuple[re.Pattern[str], re.Pattern[str]]  # what in the bank's text is about each pole

    def asked(self, question: str) -> str | None:
        """The pole the question means, or None (neither, or both: "send or receive")."""
        hits = [pole for pole, pattern in zip(self.poles, self.asks, strict=True) if pattern.search(question)]
        return hits[0] if len(hits) == 1 else None

    def about(self, text: str) -> str | None:
        hits = [pole for pole, pattern in zip(self.poles, self.says, strict=True) if pattern.search(text)]
        return hits[0] if len(hits) == 1 else None


_US = r"(?:us|u\.s\.?|united states)"
# "forgot", as typed too: "4got my pin lol"
_FORGOT = r"forg[oe]t\w*|4got\w*|forgt\w*|don'?t remember|can'?t remember|cannot remember"
_MINE = r"(?:me\b|my (?:\w+ )?(?:account|acct|checking|savings)\b)"  # "wire it to my account": incoming
CONTRASTS = (
    Contrast(
        "direction",
        ("outgoing", "incoming"),
        (
            re.compile(
                r"\b(?:outgoing|send|sending|sent)\b(?!\s+(?:me|to me|in|into)\b)|"
                rf"\b(?:wir(?:e|ing)|transfer(?:ring)?|pay(?:ing)?)\b(?:\s+\S+){{0,4}}?\s+to\b(?!\s+{_MINE})",
                re.I,
            ),
            re.compile(
                r"\b(?:incoming|receiv\w*)\b|\bto my (?:\w+ )?(?:account|acct)\b|\b(?:coming|come|comes) in\b|"
                r"\binto my\b|\b(?:send|sent|sending|wire|wired|wiring|transfer\w*|pay\w*)\s+(?:me|to me)\b",
                re.I,
            ),
        ),
        (
            re.compile(
                r"\boutgoing\b|\b(?:send|sending) (?:a |an |the )?(?:\w+ )?(?:wires?|money|payments?)\b|"
                # "send and receive" matches both poles, so the text takes neither side
                r"\bwires? (?:requested|sent)\b|\bsend up to\b|\b(?:send|sending) (?:and|or) receiv\w*",
                re.I,
            ),
            re.compile(  # "the recipient has not received your wire" is about an outgoing one: not here
                r"\bincoming\b|\breceiv(?:e|ing) (?:a |an |the )?(?:\w+ )?(?:wires?|money|payments?|transfers?)\b|"
                r"\b(?:wires?|payments?|transfers?) (?:you )?received\b|\b(?:send|sending) (?:and|or) receiv\w*|"
                r"\b(?:what )?you (?:can )?receive\b"  # "there's no limit on what you can receive"
                # money put in, not sent: "you can deposit up to $5,000 per day" answers no "how much can i send"
                r"|\bdeposit up to\b|\bmobile (?:check )?deposits?\b",
                re.I,
            ),
        ),
    ),
    Contrast(
        "scope",
        ("domestic", "international"),
        (
            re.compile(
                rf"\b(?:domestic|within the (?:{_US}|country)|(?:in|inside) the (?:{_US}|states)|"
                rf"another (?:{_US}|american) bank|same country|stateside)\b",
                re.I,
            ),
            re.compile(
                r"\b(?:international\w*|overseas|abroad|foreign|another country|other countr\w+|"
                rf"out of (?:the )?country|outside (?:of )?(?:the )?(?:{_US}|country)|swift|iban|{PLACES_PATTERN})\b",
                re.I,
            ),
        ),
        (
            re.compile(r"\b(?:domestic|in the United States)\b", re.I),
            re.compile(r"\b(?:international|foreign|abroad|SWIFT|IBAN|countries)\b", re.I),
        ),
    ),
    # A PIN forgotten is reset (with a code, in the app); a PIN known is changed (in the app or at a Kestrel
    # ATM): "forgot my pin lol how do i get a new one" is not answered by "Change your PIN …".
    Contrast(
        "pin",
        ("forgotten", "known"),
        (
            re.compile(
                rf"\b(?:{_FORGOT})\b[^.?!]{{0,25}}?\bpin\b"
                r"|\bdon'?t know (?:my|the|what my|what the) (?:\w+ )?pin\b"
                rf"|\bpin\b[^.?!]{{0,25}}?\b(?:{_FORGOT}|locked|blocked)\b"
                r"|\b(?:locked|blocked)\b[^.?!]{0,15}?\bpin\b",
                re.I,
            ),
            re.compile(
                r"\bchange\b[^.?!]{0,25}?\bpin\b|\bpin\b[^.?!]{0,15}?\bchange\b|\bpin\b[\s\S]{0,120}?\bchange it\b",
                re.I,
            ),
        ),
        (
            re.compile(r"\b(?:forg[oe]t\w*|reset\w*)\b", re.I),
            re.compile(
                r"\bchange (?:your |the |a )?(?:kestrel )?(?:debit card |credit card |card )?pin\b"
                r"|\bchange it at (?:any |a )?(?:kestrel )?atm",
                re.I,
            ),
        ),
    ),
)
# A document is chosen by its closest passage plus this share of its next two: a document whose
# several sections are near the question covers it better than one close entry ("moving my car loan
# to you for a better rate": the bank's auto-loan page over one Ask CFPB entry). Dev set: 0.1, 0.15
# and 0.2 resolved 274-275 of 346 turns (270 without), 0.3 resolved 273.
DOCUMENT_SUPPORT_WEIGHT = 0.15
DOCUMENT_CONTRAST_PENALTY = 0.08  # a passage about the other kind, when choosing the document to quote
FAMILY_PENALTY = 0.2  # a passage only on the kind of account the customer did not name


def asked_kinds(question: str) -> dict[str, str]:
    """For each contrast the question takes a side on, the side: {"direction": "incoming", ...}."""
    return {c.name: pole for c in CONTRASTS if (pole := c.asked(question)) is not None}


def kinds_about(*texts: str) -> dict[str, str]:
    """What a text is about on each contrast, from the most specific text given first (a sentence,
    then its heading, then its document's title): a sentence silent on it inherits its heading's."""
    kinds: dict[str, str] = {}
    for contrast in CONTRASTS:
        for text in texts:
            pole = contrast.about(text) if text else None
            if pole is not None:
                kinds[contrast.name] = pole
                break
    return kinds


def conflicts(asked: dict[str, str], about: dict[str, str]) -> int:
    """How many contrasts the text takes the other side of from the question."""
    return sum(1 for name, pole in asked.items() if about.get(name, pole) != pole)


# --------------------------------------------------------------------------------------- products
PRODUCT_NAME = re.compile(r"\bKestrel((?:[ \t]+[A-Z][\w-]*){1,4})")
NOT_PRODUCT = frozenset(["bank", "atm", "atms", "pin", "pins", "office", "app", "exchange"])
CARD_NOUNS = r"(?:visa |credit |debit )?(?:cards?|visa)"
ACCOUNT_NOUNS = r"(?:accounts?|acct|acc)"


# Kinds of account a customer names without a product ("my savings acct"); a sentence only on the other kind's
# products is about another account.
ACCOUNT_FAMILIES = frozenset({"checking", "savings"})


def _family_said(family: str, text: str) -> bool:
    """Whether ``text`` names the account family as a noun ("my savings acct", "on checking"), not as a verb."""
    return bool(
        re.search(
            rf"\b{family}\s+(?:accounts?|acct|acc)\b|\b(?:my|the|a|your|our|on|in|into|to|from|for|of|joint)\s+"
            rf"(?:\w+\s+)?{family}\b"
            # "checking" is a verb before its object: "checking my balance", "for checking balances"
            + (
                r"(?!\s+(?:my|the|if|whether|on|out|for|to|it|your|balances?|transactions?|statements?|emails?|"
                r"messages?|status|activity|deposits?)\b)"
                if family == "checking"
                else ""
            ),
            text,
            re.I,
        )
    )


def _norm(text: str) -> str:
    return re.sub(r"[\s-]+", " ", text.lower()).strip()


@dataclass(frozen=True)
class Product:
    """A named product in a family of siblings: modifier "premier", family "checking"."""

    name: str  # as the knowledge base writes it: "Kestrel Premier Checking"
    modifier: str
    family: str
    pattern: re.Pattern[str] = field(compare=False, hash=False, repr=False)


class Catalogue:
    """The products a knowledge base names, learnt from its text, and who mentions which."""

    def __init__(self, products: Sequence[Product], distinctive: Collection[str] = ()) -> None:
        self.products = list(products)
        self._modifiers = {p.modifier for p in self.products}
        # Products whose modifier the knowledge base uses for nothing else ("premier", "high-yield"): that
        # word alone names the product anywhere ("premier mobile deposit limits?"), unlike "travel" or
        # "everyday", which are plain words there too (``from_texts``).
        self._distinctive = frozenset(distinctive)
        # A modifier alone ("premier") names its product only beside a sibling, and in a standalone question
        # only as an alternative: "everyday checking vs premier", not "is the travel card secured?" (a
        # plain word) or "can i use my card everyday" (``asked``).
        self._bare: dict[str, re.Pattern[str]] = {}
        self._alternative: dict[str, re.Pattern[str]] = {}
        for p in self.products:
            words = _modifier_words(p.modifier)
            self._bare[p.name] = re.compile(rf"\b{words}\b", re.I)
            self._alternative[p.name] = re.compile(
                rf"\b(?:vs\.?|versus|or|and|than|about|compared (?:to|with)|instead of)\s+(?:the\s+)?{words}\b"
                rf"|\b{words}\s+(?:vs\.?|versus|or)\b",
                re.I,
            )

    @classmethod
    def from_texts(cls, source: Iterable[str]) -> Catalogue:
        texts = list(source)
        names: dict[tuple[str, str], str] = {}
        for text in texts:
            for match in PRODUCT_NAME.finditer(text):
                words = match.group(1).split()
                # Trim trailing words that are not part of a name ("Kestrel Travel cardholders").
                while words and words[-1].lower() in {"card", "cards", "visa", "account", "accounts"}:
                    words.pop()
                if len(words) < 2 or words[0].lower() in NOT_PRODUCT:
                    continue
                family = words[-1].lower()
                modifier = _norm(" ".join(words[:-1]))
                names.setdefault((modifier, family), "Kestrel " + " ".join(words))
        families: dict[str, list[tuple[str, str]]] = {}
        for modifier, family in names:
            families.setdefault(family, []).append((modifier, family))
        products = []
        for family, members in families.items():
            if len(members) < 2:  # a name without siblings cannot be confused with another product
                continue
            for modifier, _ in members:
                products.append(_product(names[(modifier, family)], modifier, family))
        # Cards are named by their modifier and "card" ("Kestrel Travel card", "the Secured Visa").
        card_modifiers: dict[str, str] = {}
        for text in texts:
            for match in re.finditer(r"\bKestrel ((?:[A-Z][\w-]*[ \t]){1,2})cards?\b", text):
                modifier = _norm(re.sub(r"\bVisa\s*$", "", match.group(1)))
                if modifier and modifier.split()[0] not in NOT_PRODUCT and modifier not in {"visa", "visa debit"}:
                    plain = re.sub(r"\s*Visa\s*$", "", match.group(1).strip())
                    card_modifiers.setdefault(modifier, f"Kestrel {plain} card")
        if len(card_modifiers) >= 2:
            for modifier, name in card_modifiers.items():
                products.append(_product(name, modifier, "card"))
        return cls(products, _distinctive(products, texts))

    def mentions(self, text: str) -> frozenset[str]:
        return frozenset(p.name for p in self.products if p.pattern.search(text))

    def families_ruled_out(self, question: str) -> frozenset[str]:
        """The account families a question rules out by naming another one alone: "charged $5 every month on
        my savings acct" is not answered by a sentence on Everyday Checking's fee. Empty when it names a
        product, both families, or neither ("i was checking my balance" uses the word as a verb)."""
        if any(p.pattern.search(question) for p in self.products):
            return frozenset()
        families = {p.family for p in self.products if p.family in ACCOUNT_FAMILIES}
        said = {f for f in families if _family_said(f, question)}
        return frozenset(families - said) if len(said) == 1 else frozenset()

    def asked(self, question: str, context: str = "") -> frozenset[str]:
        """The products a customer's ``question`` names: as the knowledge base does ("premier checking"),
        or by modifier alone beside a sibling named in it or in ``context`` (the conversation so far):
        "the monthly fee on everyday checking vs premier", "ok and premier?" after Everyday Checking."""
        named = [p for p in self.products if p.pattern.search(question)]
        families = {p.family for p in named} | {
            p.family for p in self.products if context and p.pattern.search(context)
        }
        alone = self._bare if context else self._alternative  # a follow-up is short: its modifier is its subject
        bare = [
            p
            for p in self.products
            if p not in named
            and (
                (p.family in families and alone[p.name].search(question))
                or (p.name in self._distinctive and self._bare[p.name].search(question))
            )
        ]
        return frozenset(p.name for p in named + bare)

    def aspects_of(self, question: str) -> frozenset[str]:
        """The aspects a question asks for, its product names left out: "high yield savings" names a
        product, it does not ask for a rate."""
        return aspects_of(self.without_names(question))

    def without_names(self, text: str) -> str:
        """``text`` with the product names in it blanked out (what it says besides naming products)."""
        return _without_names(self.products, text)

    def family_of(self, name: str) -> str:
        return next((p.family for p in self.products if p.name == name), "")

    def only_in(self, names: Collection[str], families: Collection[str]) -> bool:
        """Whether ``names`` (products) are some and all of ``families`` (``families_ruled_out``)."""
        return bool(names) and all(self.family_of(n) in families for n in names)

    def without_holdings(self, text: str) -> str:
        """``text`` less the clauses that only say which product the customer holds ("…in a day? i have
        everyday checking", "I have Premier.", "and i have premier checking if that changes anything"),
        for choosing the document to quote: such a clause names the product, not the subject, and to the
        embedding it makes the product's own page the closest ("whats the most i can quickpay someone in
        a day" went to the checking page). The product still counts where sentences are chosen, from the
        text as typed. ``text`` as it is when nothing else would be left to search with."""
        added = EXPANSION.search(text)  # the bank's terms the lexicon added, "… (QuickPay)": kept
        typed = text[: added.start()] if added else text
        clauses = CLAUSE.split(typed)
        kept = [c for c in clauses if not self._holding(c)]
        if len(kept) == len(clauses):
            return text
        rest = " ".join(c.strip() for c in kept if c.strip())
        if ABOUT_THE_HOLDING.search(rest):  # "i have premier checking tho, does that change the cost?"
            return text
        if len(_content_words(rest)) < MIN_REST_WORDS:
            return text
        return rest + (added.group(0) if added else "")

    def _holding(self, clause: str) -> bool:
        match = HOLDING.match(clause)
        if match is None:
            return False
        held = FILLER_AFTER.sub("", match.group("held")).strip()
        words = held.split()
        if not words or len(words) > 5:
            return False
        # a product ("everyday checking", "the premier account") or its modifier alone ("I have Premier."),
        # not a modifier starting something else ("i have student loans")
        return bool(self.mentions(held)) or _norm(held) in self._modifiers


# A clause that only says what the customer holds: "i have (the regular) everyday checking", "im on premier",
# "ive got the student account"; see ``Catalogue.without_holdings``.
CLAUSE = re.compile(r"(?<=[.,;!?])\s+")  # not at "and": "i have a travel card and i lost it" is about the card
HOLDING = re.compile(
    r"^\s*(?:(?:and|but|also|btw|oh|ok|okay|wait|so)[\s,]+)*"
    rf"(?:{HOLDS}|my (?:account|acct) is)\s+"
    r"(?:(?:the|a|an|just|only|regular|basic|plain|kestrel)\s+)*(?P<held>[^\s.,;!?](?:[^.,;!?]*[^\s.,;!?])?)[.,;!?\s]*$",
    re.I,
)
FILLER_AFTER = re.compile(
    r"\s+(?:(?:if|in case) (?:that|it|this) (?:changes?|matters?|helps?)\b.*|tho|though|actually|btw|too|as well)$",
    re.I,
)
MIN_REST_WORDS = 2
EXPANSION = re.compile(r"\s\([^()]*\)$")  # what ``chatbot.nlu.lexicon.expand`` appends
# The rest asks about the product held: then the holding is the subject.
ABOUT_THE_HOLDING = re.compile(
    r"\b(?:that|it|this|which)\s+(?:\w+\s+)?(?:change|changes|matter|matters|make a difference|makes a difference|"
    r"affect|affects|differ|differs)\b|\b(?:what|how) about\b|\bwhat if\b|\bdoes (?:that|it) count\b",
    re.I,
)


def _distinctive(products: Sequence[Product], texts: Sequence[str]) -> list[str]:
    """The products whose modifier occurs in ``texts`` only in their names: with every product name taken
    out (and "Kestrel Premier", a name cut short), the word is nowhere else. Modifiers shared by two
    products are not distinctive."""
    counts: dict[str, int] = {}
    for p in products:
        counts[p.modifier] = counts.get(p.modifier, 0) + 1
    rest = []
    for text in texts:
        rest.append(re.sub(r"\bKestrel(?:[ \t]+[A-Z][\w-]*)+", " ", _without_names(products, text)))
    plain = "\n".join(rest)
    found = []
    for p in products:
        words = _modifier_words(p.modifier)
        if counts[p.modifier] == 1 and not re.search(rf"\b{words}\b", plain, re.I):
            found.append(p.name)
    return found


def _modifier_words(modifier: str) -> str:
    """A modifier as a pattern, typed with spaces or hyphens: "high yield" matches "high-yield"."""
    return r"[\s-]*".join(map(re.escape, modifier.split()))


def _without_names(products: Sequence[Product], text: str) -> str:
    """``text`` with every product name in it blanked out."""
    for product in products:
        text = product.pattern.sub(" ", text)
    return text


def _product(name: str, modifier: str, family: str) -> Product:
    words = _modifier_words(modifier)
    if family == "card":
        head = rf"(?:\s+\w+){{0,2}}?\s+{CARD_NOUNS}\b"
    else:
        head = rf"[\s-]+(?:{re.escape(family)}|{ACCOUNT_NOUNS})\b"
    return Product(name, modifier, family, re.compile(rf"\b{words}{head}", re.I))


# -------------------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Unit:
    """A quotable unit: a sentence, a bullet, a table row, or a short list with its lead-in."""

    text: str
    passage_id: str
    order: int  # position within its passage
    products: frozenset[str]  # named, or inherited from its heading when it names none
    list_items: int = 0  # > 0: a lead-in with this many bullets
    context: str = ""  # its section heading (a FAQ entry's question): embedded with it, never quoted
    item: str = ""  # a bullet quoted with its lead-in: the bullet alone (to tell it inside its whole list)

    @property
    def embed_text(self) -> str:
        return f"{self.context}: {self.text}" if self.context else self.text


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[$])")
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}")


def _sentence(text: str) -> str:
    text = text.strip(" \t-*#")
    if text and text[-1] not in ".!?:":
        text += "."
    return text


ABBREVIATION = re.compile(r"(?:\b[A-Z]|\b[ap]\.m|\be\.g|\bi\.e|\bU\.S|\betc|\bSt|\bNo|\bMr|\bMs|\bDr|\bvs)\.$", re.I)


def rejoin_abbreviations(pieces: Iterable[str]) -> list[str]:
    """Pieces split at sentence ends, rejoined where the "end" was an abbreviation: "by 3:00 p.m. ET"
    is one sentence."""
    joined: list[str] = []
    for piece in pieces:
        if joined and ABBREVIATION.search(joined[-1]):
            joined[-1] += " " + piece
        else:
            joined.append(piece)
    return joined


def _split_sentences(paragraph: str, min_words: int = 3) -> list[str]:
    pieces = rejoin_abbreviations(SENTENCE.split(paragraph.replace("\n", " ")))
    return [s for s in (_sentence(p) for p in pieces) if len(s.split()) >= min_words]


def passage_units(passage: Passage, catalogue: Catalogue, max_list_words: int = 70) -> list[Unit]:
    """Split a passage into quotable units, each knowing which products it is about."""
    if passage.kind == "faq":
        body, heading = passage.answer or "", passage.text
    else:
        first, _, body = passage.text.partition("\n")
        heading = first.split(" — ", 1)[-1] if " — " in first else ""
    heading_products = catalogue.mentions(heading)
    units: list[Unit] = []

    def add(text: str, list_items: int = 0, item: str = "") -> None:
        named = catalogue.mentions(text)
        products = named or heading_products
        if not named and units and units[-1].products and REFERS_BACK.match(text):
            # "With it, we may pay checks … and charge the $29 overdraft fee" after "Kestrel Everyday Checking and
            # Kestrel Premier Checking include Standard Overdraft Coverage": about what the sentence before named
            products = units[-1].products
        row = text.replace(BULLET_MARK, "")
        label = ""
        if list_items == 0 and not named and BULLET_MARK in text:  # a bullet or a table row naming nothing
            if heading_products:
                label = " and ".join(sorted(heading_products))
            elif not item and heading.startswith("Kestrel ") and LABEL_ROW.match(row) and "Kestrel" not in row:
                # "Minimum opening deposit: $1,000." quoted alone says nothing of whose it is; under
                # "Kestrel Money Market account" (a product's own section) it is that account's, not
                # the savings account asked about. A bullet quoted with its lead-in says so already.
                label = heading
        units.append(
            Unit(f"{label} — {row}" if label else row, passage.id, len(units), products, list_items, heading, item)
        )

    lines = body.splitlines()
    i = 0
    paragraph: list[str] = []
    while i < len(lines):
        line = lines[i].rstrip()
        if line.strip().startswith("|"):
            for sentence in _flush(paragraph):
                add(sentence)
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            for text in _table(rows):
                add(BULLET_MARK + text)
            continue
        if BULLET.match(line):
            lead = paragraph.pop() if paragraph and paragraph[-1].rstrip().endswith(":") else ""
            for sentence in _flush(paragraph):
                add(sentence)
            items = []
            while i < len(lines) and BULLET.match(lines[i]):
                items.append(re.sub(r"[,;]?\s+(?:or|and)$|\.$", "", BULLET.sub("", lines[i]).strip()))
                i += 1
            if lead:
                lead_sentences = _split_sentences(lead, min_words=1)
                for sentence in lead_sentences[:-1]:
                    add(sentence)
                lead = lead_sentences[-1] if lead_sentences else lead.strip()
                block = f"{lead} " + "; ".join(items) + "."
                if len(block.split()) <= max_list_words:
                    add(block, list_items=len(items))
            for item in items:
                if lead:
                    # "To move money to a "safe" account" alone says nothing; with its lead-in it says
                    # what the bank will never ask.
                    add(BULLET_MARK + _sentence(f"{lead} {item[:1].lower()}{item[1:]}"), item=_sentence(item))
                else:
                    add(BULLET_MARK + _sentence(item))
            continue
        if line.strip():
            paragraph.append(line.strip())
        elif not (paragraph and paragraph[-1].endswith(":") and _list_follows(lines, i)):
            for sentence in _flush(paragraph):  # (a lead-in stays open across the blank line before its list)
                add(sentence)
        i += 1
    for sentence in _flush(paragraph):
        add(sentence)
    # A lead-in without its list ("You can close a Kestrel checking or savings account:") says nothing,
    # and nor does a sentence about the page itself ("This page explains how to close...").
    return [
        u
        for u in units
        if len(u.text.split()) >= 3 and not (u.text.endswith(":") and not u.list_items) and not ABOUT_PAGE.match(u.text)
    ]


# A sentence whose subject is the one before's: "It's waived…", "With it, we may pay…", "They're free…".
REFERS_BACK = re.compile(
    r"^(?:(?:with|for|on|under|in|to)\s+)?(?:it|them|its|they)\b(?!(?:'s|'re|’s|’re)?\s+also\b)", re.I
)


ABOUT_PAGE = re.compile(
    r"(?:this|the following) (?:page|section|guide|article|document|faq)s? (?:explains?|describes?|covers?|"
    r"tells?|lists?|shows?|answers?|is about)\b",
    re.I,
)


# A row that is a label and its value ("Minimum opening deposit: $1,000", "$0 to $9,999.99: 1.50%").
LABEL_ROW = re.compile(r"^(?:(?!\.\s)[^:;]){2,48}:\s+\S")
BULLET_MARK = "\u2063"  # an invisible marker: "this unit was a bullet or a table row" while splitting


def _list_follows(lines: list[str], index: int) -> bool:
    """Whether the next non-blank line after ``index`` is a bullet."""
    following = next((line for line in lines[index + 1 :] if line.strip()), "")
    return BULLET.match(following) is not None


def _flush(paragraph: list[str]) -> list[str]:
    text = " ".join(paragraph)
    paragraph.clear()
    return _split_sentences(text) if text else []


def _table(rows: list[str]) -> list[str]:
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    header: list[str] | None = None
    if len(rows) > 1 and TABLE_SEPARATOR.match(rows[1]):
        header, cells = cells[0], cells[2:]
    out = []
    for row in cells:
        if not any(row):
            continue
        if len(row) == 2:
            out.append(_sentence(f"{row[0]}: {row[1]}"))
        elif header and len(header) == len(row):
            out.append(
                _sentence(f"{row[0]}: " + ", ".join(f"{h} {c}" for h, c in zip(header[1:], row[1:], strict=True)))
            )
        else:
            out.append(_sentence(", ".join(row)))
    return out


# -------------------------------------------------------------------------------------- selection
def is_external(passage: Passage) -> bool:
    """An Ask CFPB entry (general federal guidance) rather than Kestrel Bank's own content."""
    return passage.source_id.startswith("cfpb-") or "ask_cfpb" in passage.file


def bank_answers(hits: Sequence[Hit], floor: float, margin: float) -> bool:
    """Kestrel Bank's own content answers the question: its best passage is close to the question
    (``floor``) and not far behind the best Ask CFPB entry (``margin``). Ask CFPB is general federal
    guidance; where the bank has its own policy (funds availability, fees) the customer gets that."""
    own = max((h.score for h in hits if not is_external(h.passage)), default=-1.0)
    external = max((h.score for h in hits if is_external(h.passage)), default=-1.0)
    return own >= floor and own >= external - margin


# The answer is filled with the closest units up to this many (or this many words): the sentences
# the embedder ranks second to fourth are often within 0.01 of each other, and the fact asked is as
# often in the fourth as in the second. Dev set: 2 units / 35 words resolved 253 of 346 turns,
# 3 / 50 resolved 269 (no wrong figure either way); extractive answers average 50 words, not 39.
# Later, with section questions (generation off): 3 / 50 → 295, 4 / 60 → 302, 4 / 70 → 303,
# 5 / 80 → 303; dev_bank answers with their gold figures 70% → 74% → 76%; no wrong figure; the
# extractive answers average 59 words, not 49 (p90 81).
FILL_UNITS, FILL_WORDS = 4, 70
# An aspect nothing chosen answers: the best unit answering it, this close to the best (0.35: the same
# 470 of 552 dev turns, `chatbot eval resolution --no-generation`).
ASPECT_FLOOR = 0.25
# A follow-up as typed, in the closeness of its sentences (see ``SentenceSelector.select``), of 552 dev
# turns: 0 → 467 and 0.5 → 468 (measured before the liability aspect), 0.5 → 470 and 1.0 → 466 (after
# it). The rewrite alone is mostly the question before; the message alone loses its subject.
SAID_WEIGHT = 0.5
# A part's best unit: this x the share of the part's own aspects it answers (0.25: the same 470).
PART_ASPECT_BONUS = 0.15
# How much of a unit's passage closeness, in choosing a part's unit, is the passage's closeness to that part
# (its closest unit's) rather than to the whole question. Generation off: res-z..ac 264 -> 266 of 320, dev
# 1,705 either way (+5 -5); 1.0 gave 264 and 1,705 (+13 -14), 0.3 265 and 1,705.
PART_PASSAGE = 0.5
# The share of the customer's content words a sentence repeats, added to its closeness: the embedding
# misses rare words that decide ("authorized user"). Dev set, no generation: 0 → 472, 0.1 → 475, 0.2 → 474.
LEXICAL_WEIGHT = 0.1
# ...and weighed more among one named product's sentences, where they break the ties the embedding
# leaves ("purchase APR" vs "cash advance APR" of the same card).
WORDS_WEIGHT = 0.3
# Words of asking, not of the subject.
QUESTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "how much many what whats when where why which who do does did i im me my can could would should will "
        "there any get have has u ur need want know tell about just like so also please pls thanks hi hey ok",
    )
)
# A section heading whose own words the question says (``SentenceSelector._heading_share``), when choosing
# the document to quote; words every heading of a kind has do not count. Dev + res-w/x/y (2,029 turns,
# generation off): 0 → 1,699, 0.05 → 1,697, 0.1 → 1,700, 0.15 → 1,702 (12 gained, 9 lost), 0.2 → 1,700.
HEADING_WEIGHT = 0.15
HEADING_GENERIC = frozenset(
    re.findall(r"\w+", "kestrel card cards credit debit account accounts bank your you what how when why do does can")
)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


# Words that ask or name an aspect, not a subject (``SentenceSelector._mentions_subject``).
ASKING_WORDS = frozenset(
    re.findall(
        r"\w+",
        "fee fees charge charges charged cost costs price pay much long take takes whether would could be is was "
        "not no yes there them they he she any anything something too either",
    )
)
SUBJECT_PREFIX = 5
# A unit stating the term a question asks in years (``_in_months``), like a named product's (0.12).
TERM_BONUS = 0.1
# A unit of a section ``prefer`` names (a passage id: the section the previous answer quoted, after a
# procedure or for a follow-up read with the conversation), since the next question is most likely about it.
SECTION_BONUS = 0.05
# The aspects a figure answers: a product's own row answers them for it, whatever else a sentence listing its
# siblings says (``_own_rows_only``).
FIGURE_ASPECTS = frozenset({"amount", "rate", "minimum", "limit", "no_fee"})
PASSAGE_WEIGHT = 0.35  # a unit's score: (1 - this) x its own similarity + this x its passage's
# The passage's similarity is to its own text, not to a customer question indexed for it: a question
# chooses the document and the section, but which sentences answer is read from the sentences
# (`chatbot eval resolution` / dev_bank answers with the gold entry's figures, by
# `benchmarks/answer_kinds.py --sets evaluation/dev_bank.jsonl --generation off`: the question's
# cosine 297 of 346 / 68% of 145; the text's 295 / 71%; no section questions 280 / 71%).


@dataclass(frozen=True)
class Selection:
    text: str
    hits: list[Hit]  # the passages quoted, best first (what the answer cites)


@dataclass
class _Scored:
    unit: Unit
    hit: Hit
    vector: np.ndarray
    aspects: frozenset[str]
    prior: float  # passage closeness, document and product terms: independent of the question part


class SentenceSelector:
    """Chooses the units of an extractive answer (see the module's docstring)."""

    def __init__(
        self,
        encode: Encode,
        catalogue: Catalogue,
        passages: Sequence[Passage],
        max_units: int = 4,
        max_words: int = 90,
        bank_floor: float = 0.6,
        bank_margin: float = 0.15,
        prefer_bonus: float = 0.0,
    ) -> None:
        """``prefer_bonus``: added to the closeness of a document the caller prefers (the documents
        the previous answer cited, for a follow-up) when choosing the document to quote."""
        self.encode = encode
        self.bank_floor = bank_floor
        self.bank_margin = bank_margin
        self.prefer_bonus = prefer_bonus
        self.catalogue = catalogue
        self.max_units = max_units
        self.max_words = max_words
        self._by_source: dict[str, list[Passage]] = {}
        self._position: dict[str, int] = {}
        for position, passage in enumerate(passages):
            self._position[passage.id] = position
            if passage.kind == "chunk":
                self._by_source.setdefault(passage.source_id, []).append(passage)
        self._cache: dict[str, tuple[list[Unit], np.ndarray]] = {}
        self._heading_words: dict[str, frozenset[str]] = {}  # per passage id (``_heading_share``)
        self._passages = list(passages)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_index(cls, passages: Sequence[Passage], encode: Encode, **options: float) -> SentenceSelector:
        """A selector over an index's passages, its product names learnt from the bank's own content."""
        bank = [p.text + "\n" + (p.answer or "") for p in passages if not is_external(p)]
        return cls(encode, Catalogue.from_texts(bank), passages, **options)  # type: ignore[arg-type]

    def prepare_in_background(self) -> threading.Thread:
        """Split and encode the bank's documents now, on a thread, so that customers don't wait for it
        (a passage not done yet is encoded when first needed). ``stop_preparing`` ends it, and so does
        the interpreter's exit: a process must not exit while the thread is inside the encoder."""

        def prepare() -> None:
            for passage in self._passages:
                if self._stop.is_set():
                    return
                if passage.kind == "chunk" and not is_external(passage):
                    try:
                        self.units(passage)
                    except Exception:  # never fatal: the passage is encoded when first needed
                        log.exception("could not prepare the units of %s", passage.id)
                        return

        self._thread = threading.Thread(target=prepare, name="extractive-prepare", daemon=True)
        self._thread.start()
        atexit.register(self.stop_preparing)
        return self._thread

    def stop_preparing(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)  # at most one passage's encoding

    def units(self, passage: Passage) -> tuple[list[Unit], np.ndarray]:
        """A passage's units and their unit vectors, computed once per passage."""
        cached = self._cache.get(passage.id)
        if cached is None:
            units = passage_units(passage, self.catalogue)
            vectors = self.encode([u.embed_text for u in units]) if units else np.zeros((0, 1), dtype=np.float32)
            cached = self._cache[passage.id] = (units, vectors)
        return cached

    def best_document(
        self,
        hits: Sequence[Hit],
        named: frozenset[str],
        prefer: Collection[str] = frozenset(),
        asked: dict[str, str] | None = None,
        question: str | None = None,
        ruled_out: frozenset[str] = frozenset(),
    ) -> list[str]:
        """Source ids by preference: closeness (the closest passage, plus a share of the next two:
        ``DOCUMENT_SUPPORT_WEIGHT``), the bank's own content, the named product, ``prefer``, and not
        being about the other kind of what was asked (``asked``: an international wire) nor only about
        the account family the question rules out (``ruled_out``: ``Catalogue.families_ruled_out``)."""
        scores: dict[str, float] = {}
        support: dict[str, list[tuple[float, float]]] = {}
        own_first = bank_answers(hits, self.bank_floor, self.bank_margin)
        asked_words = {_stem(w) for w in _content_words(question)} if question is not None else set()
        for hit in hits:
            bonus = self.prefer_bonus if hit.passage.source_id in prefer else 0.0
            if ruled_out:  # a section only on the other kind of account than the customer named
                about = self.catalogue.mentions(hit.passage.title + " " + (hit.passage.answer or hit.passage.text))
                if self.catalogue.only_in(about, ruled_out):
                    bonus -= FAMILY_PENALTY
            if asked:
                bonus -= DOCUMENT_CONTRAST_PENALTY * conflicts(asked, _passage_kinds(hit.passage))
            if is_external(hit.passage):
                bonus -= 1.0 if own_first else 0.06
            if named and named & self.catalogue.mentions(hit.passage.text + " " + (hit.passage.answer or "")):
                bonus += 0.05
            if asked_words:
                bonus += HEADING_WEIGHT * self._heading_share(hit.passage, asked_words)
            support.setdefault(hit.passage.source_id, []).append((hit.score + bonus, hit.text_cosine + bonus))
        # Later in a conversation the document just cited is the stronger evidence ("when would i get
        # my deposit back" after the secured card is about its security deposit, however many sections
        # of the funds-availability page mention deposits): closeness alone then.
        # The support is what the next passages' own text scores: a customer question indexed for a
        # section (``Hit.text_cosine``) may make it the best passage, but a page whose questions echo
        # the customer's words ("savings apy you offer" on the rates table) is not thereby a page
        # with more to say ("which savings accounts do you offer": the savings page).
        weight = 0.0 if prefer else DOCUMENT_SUPPORT_WEIGHT
        for source, values in support.items():
            values.sort(reverse=True)
            scores[source] = values[0][0] + weight * sum(sorted((t for _, t in values[1:]), reverse=True)[:2])
        return sorted(scores, key=lambda s: -scores[s])

    def _heading_share(self, passage: Passage, asked_words: set[str]) -> float:
        """The share of a section heading's own words the question says (``asked_words``, stemmed): "add my
        son to my cash rewards card as an authorized user" says all of "Authorized users on Kestrel credit
        cards" (the shared page on credit cards), while the card's own page only names the card."""
        words = self._heading_words.get(passage.id)
        if words is None:
            words = self._heading_words[passage.id] = self._own_heading_words(passage)
        return len(words & asked_words) / len(words) if words else 0.0

    def _own_heading_words(self, passage: Passage) -> frozenset[str]:
        """A section's heading words, stemmed, less product names and the words every heading has."""
        if passage.kind != "chunk" or " — " not in passage.title:
            return frozenset()
        heading = self.catalogue.without_names(passage.title.split(" — ", 1)[1])
        return frozenset(_stem(w) for w in _content_words(heading) - HEADING_GENERIC if w.isalpha())

    def candidates(
        self,
        hits: Sequence[Hit],
        named: frozenset[str],
        prefer: Collection[str] = frozenset(),
        asked: dict[str, str] | None = None,
        question: str | None = None,
    ) -> list[_Scored]:
        ruled_out = self.catalogue.families_ruled_out(question) if question else frozenset()
        ranked = self.best_document(hits, named, prefer, asked, question, ruled_out)
        if not ranked:
            return []
        primary = ranked[0]
        secondary = ranked[1] if len(ranked) > 1 else None
        retrieved = {h.passage.id: h for h in hits}
        own = [h for h in hits if h.passage.source_id == primary]
        best_hit = max(own, key=lambda h: h.score)
        unretrieved = min(h.score for h in own) - 0.05  # a section of the best document nobody retrieved
        chosen: list[tuple[Passage, Hit, float]] = []
        for passage in self._by_source.get(primary, []):  # every section of the best document
            hit = retrieved.get(passage.id)
            chosen.append((passage, hit or _hit(passage, unretrieved), 0.0))
        for hit in hits:
            if hit.passage.source_id == primary and hit.passage.kind == "faq":
                chosen.append((hit.passage, hit, 0.0))
            elif hit.passage.source_id == secondary and not is_external(hit.passage):
                chosen.append((hit.passage, hit, -0.12))
        if not any(p.source_id == primary for p, _, _ in chosen):  # e.g. an Ask CFPB entry
            chosen.append((best_hit.passage, best_hit, 0.0))
        scored = []
        family = {self.catalogue.family_of(n) for n in named}
        for passage, hit, prior in chosen:
            units, vectors = self.units(passage)
            for unit, vector in zip(units, vectors, strict=True):
                product_term = 0.0
                if named and unit.products:
                    if unit.products & named:
                        product_term = 0.12 * len(unit.products & named) / len(unit.products)
                    elif family & {self.catalogue.family_of(p) for p in unit.products}:
                        continue  # a sibling of the product the customer named: never quoted
                if ruled_out and self.catalogue.only_in(unit.products, ruled_out):
                    continue  # only about the other kind of account than the one the customer named
                lead = 0.03 if unit.order == 0 and passage.kind == "faq" else 0.0  # a curated answer's opening
                lead += SECTION_BONUS if passage.id in prefer else 0.0
                if asked and conflicts(asked, kinds_about(unit.text, unit.context, passage.title)):
                    continue  # about the other kind of what was asked (a domestic limit, a wire abroad)
                aspects = frozenset(a for a in ASPECTS if answers_aspect(unit.text, a))
                scored.append(
                    _Scored(unit, hit, vector, aspects, PASSAGE_WEIGHT * hit.text_cosine + prior + product_term + lead)
                )
        return scored

    # ------------------------------------------------------------------ which route serves the question
    def named(self, question: str, said: str | None = None) -> frozenset[str]:
        """The products asked about; a follow-up naming its own ("ok and premier?" after Everyday Checking)
        is about that one, not the earlier one its rewrite ``question`` still names."""
        own = self.catalogue.asked(said, question) if said and said.strip() != question.strip() else frozenset()
        return own or self.catalogue.asked(question)

    def verbatim_fits(self, question: str, faq: Hit, hits: Sequence[Hit], said: str | None = None) -> bool:
        """Whether a curated FAQ answer, close enough to be returned verbatim, answers *this* question.

        Not when it is an Ask CFPB entry and the bank's own content answers the question (the bank's
        policy, not federal generalities); not when it is about a sibling of the product the customer
        named, nor when it states the named product's figures beside its siblings' (the product's own rows
        answer, ``_own_rows_only``); not when the question asks several things and the entry answers only
        some of them.
        ``said``: a follow-up as typed, when ``question`` is its rewrite (its own product counts).
        """
        if is_external(faq.passage) and bank_answers(hits, self.bank_floor, self.bank_margin):
            return False
        entry = faq.passage.text + "\n" + (faq.passage.answer or "")
        if conflicts(asked_kinds(question), kinds_about(faq.passage.text, faq.passage.answer or "")):
            return False  # about the other kind: a domestic limit for a wire abroad
        named = self.named(question, said)
        if _sibling_only(self.catalogue, named, self.catalogue.mentions(entry)):
            return False
        answered = self.catalogue.mentions(faq.passage.answer or "")
        if _with_siblings(self.catalogue, named, answered):
            return False  # "the minimum deposit for Everyday Checking" and an entry listing every account's
        ruled_out = self.catalogue.families_ruled_out(said or question)
        if ruled_out and self.catalogue.only_in(answered, ruled_out):
            return False  # "…on my savings acct" and an entry on Everyday Checking's fee
        pieces = question_parts(question)
        parts = [self.catalogue.aspects_of(p) for p in pieces]
        if len(parts) > 1:
            answer = faq.passage.answer or ""
            if not all(any(answers_aspect(answer, a) for a in aspects) for aspects in parts if aspects):
                return False
            # Each part's own subject is in the entry: "the annual fee on the travel card, and whether it
            # charges a fee on purchases abroad" asks two fees, and an entry on the annual fee answers one.
            return all(self._mentions_subject(entry, piece) for piece in pieces)
        return True

    def _mentions_subject(self, entry: str, part: str) -> bool:
        """Whether ``entry`` shares a word (by its first letters: "abroad"/"abroad.", "purchases"/"purchase")
        with what ``part`` asks about, beyond the words of asking and of the aspect; true for a part that
        names nothing else."""
        words = _content_words(self.catalogue.without_names(part)) - QUESTION_WORDS - ASKING_WORDS
        subject = {w[:SUBJECT_PREFIX] for w in words if w.isalpha()}
        if not subject:
            return True
        return bool(subject & {w[:SUBJECT_PREFIX] for w in _content_words(entry)})

    def generator_fits(self, question: str, hits: Sequence[Hit], min_score: float) -> bool:
        """Whether the generator's answer is likely to be kept; where it is not, the extractive answer
        is sent at once instead of after a generation that would be thrown away.

        Measured on the development sets (benchmarks/answer_kinds.py): the fine-tuned generator's text
        was kept on half the questions whose best passage is the bank's own and close (cosine >= 0.69)
        and on almost none of the others (it declines, or states a figure its sources lack). A question
        asking several things, or naming several products of one family, is answered better by the
        selection here, which covers every part and attributes each figure to its own product.
        """
        if not hits:
            return False
        best = max(hits, key=lambda h: h.score)
        if is_external(best.passage) or best.score < min_score:
            return False
        if sum(1 for aspects in map(self.catalogue.aspects_of, question_parts(question)) if aspects) > 1:
            return False
        return len(self.catalogue.asked(question)) <= 1

    def select(
        self,
        question: str,
        hits: Sequence[Hit],
        named: frozenset[str] | None = None,
        prefer: Collection[str] = frozenset(),
        said: str | None = None,
    ) -> Selection | None:
        """``said``: a follow-up as the customer typed it, when ``question`` is its rewrite with the
        previous turn's subject ("how long do i have after that to pull the money out" after a CD
        question). The rewrite chooses the document; what the customer asks *now* chooses the
        sentences: its aspects (the rewrite's where it names none), and ``SAID_WEIGHT`` of the
        closeness (the rewrite alone is mostly the previous question, whose answer was already given)."""
        named = self.named(question, said) if named is None else named
        pool = self.candidates(hits, named, prefer, asked_kinds(question), said or question)
        if not pool:
            return None
        if not (said and said.strip() and said.strip() != question.strip() and SAID_WEIGHT > 0):
            said = None
        parts = question_parts(question if said is None else said)
        part_aspects = [self.catalogue.aspects_of(p) for p in parts]
        if said is not None and not any(part_aspects):  # the follow-up names no aspect: the rewrite's
            parts = question_parts(question)
            part_aspects = [self.catalogue.aspects_of(p) for p in parts]
        asked = frozenset().union(*part_aspects)
        texts = [question, *([said] if said is not None else []), *(parts if len(parts) > 1 else [])]
        vectors = self.encode(texts)
        whole = vectors[0]
        if said is not None:
            whole = (1 - SAID_WEIGHT) * whole + SAID_WEIGHT * vectors[1]
            whole = whole / max(float(np.linalg.norm(whole)), 1e-9)
        part_vectors = vectors[len(texts) - len(parts) :] if len(parts) > 1 else whole[None, :]
        matrix = np.stack([s.vector for s in pool])
        prior = np.array([s.prior for s in pool])
        asked_text = said or question  # what the customer asks now gives the figures and words to match
        terms = _in_months(asked_text)
        if terms:  # a term asked in years: the unit stating it in months ("one-year CD": "12-month CD")
            prior = prior + TERM_BONUS * np.array([bool(terms & _month_terms(s.unit.text)) for s in pool])
        # A term or a balance the customer gives, and the tier holding it ("an 18-month cd" → "terms of 18
        # months up to 36 months"; "if i keep around 50k" → "$10,000 to $99,999.99").
        months, dollars, ages = _asked_months(asked_text), _asked_dollars(asked_text), _asked_ages(asked_text)
        # (The tier's row is preferred, but the other close units still fill the answer: their bar is set
        # without this bonus. "can my 15 yr old get a card" keeps "Yes, you can add authorized users".)
        tier = np.zeros(len(pool))
        if months or dollars or ages:
            tier = TERM_BONUS * np.array([_holds(s.unit.text, months, dollars, ages) for s in pool])
            prior = prior + tier
        places = {m.group(0).lower() for m in _PLACE.finditer(asked_text)}
        if places:  # "send money to my aunt in cuba": the sentence naming Cuba (the sanctions), like a tier
            named_place = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(places))) + r")\b", re.I)
            prior = prior + TERM_BONUS * np.array([bool(named_place.search(s.unit.text)) for s in pool])
        if _CLOCK.search(asked_text):  # "if i send it at 4pm today": what happens after the cut-off
            prior = prior + TERM_BONUS * np.array([bool(_AFTER_CUTOFF.search(s.unit.text)) for s in pool])
        if _HIGHEST.search(asked_text):  # "which term pays the most": the highest rate's row
            prior = prior + HIGHEST_BONUS * np.array(_states_highest(pool))
        closeness = matrix @ whole
        overall = (1 - PASSAGE_WEIGHT) * closeness + prior
        # The customer's own words, which the embedding can miss ("authorized user", "purchase APR").
        words = _content_words(asked_text) - QUESTION_WORDS
        shared = np.array([_shared(words, s.unit.text) for s in pool])
        overall = overall + LEXICAL_WEIGHT * shared
        aspect_bonus = np.array([0.1 * len(s.aspects & asked) / max(len(asked), 1) for s in pool])
        chosen: list[int] = []

        def take(index: int) -> bool:
            if index in chosen or _redundant(pool, chosen, index):
                return False
            chosen.append(index)
            return True

        for number, (vector, aspects) in enumerate(zip(part_vectors, part_aspects, strict=True)):  # each part's best
            # What this part asks that the others don't: "the cutoff to pay … and how much is the late fee"
            # wants the cutoff from its first part, the fee from the second ("pay" is in both).
            others = frozenset().union(*(a for n, a in enumerate(part_aspects) if n != number))
            aspects = (aspects - others) or aspects
            part_closeness = matrix @ vector
            part_prior = prior
            if len(parts) > 1 and PART_PASSAGE:
                # The passage's closeness to *this* part, not to the whole question: an entry on Face ID
                # that matched the first part must not carry its sentences into "how long does my
                # password need to be". A passage's closeness to the part: its closest unit's.
                best_in: dict[str, float] = {}
                for i, scored in enumerate(pool):
                    key = scored.unit.passage_id
                    best_in[key] = max(best_in.get(key, -1.0), float(part_closeness[i]))
                part_prior = prior + PART_PASSAGE * PASSAGE_WEIGHT * np.array(
                    [best_in[sc.unit.passage_id] - sc.hit.text_cosine for sc in pool]
                )
            own = (1 - PASSAGE_WEIGHT) * 0.5 * (part_closeness + closeness) + part_prior
            own = own + np.array([PART_ASPECT_BONUS * len(s.aspects & aspects) / max(len(aspects), 1) for s in pool])
            for index in np.argsort(-own).tolist():
                if take(index):
                    break
        floor = (overall - tier).max() - ASPECT_FLOOR
        for aspect in sorted(asked):  # an aspect asked that nothing chosen answers yet
            if not any(aspect in pool[i].aspects for i in chosen):
                covering = [i for i in range(len(pool)) if aspect in pool[i].aspects and overall[i] >= floor]
                if covering:
                    take(max(covering, key=lambda i: overall[i]))
        if len(named) > 1:  # several products named ("X or Y?"): something about each
            # the unit that says what was asked in the customer's words ("purchase APR", not "cash advance APR")
            for product in sorted(named):
                if not any(product in pool[i].unit.products for i in chosen):
                    about = [i for i in range(len(pool)) if product in pool[i].unit.products and overall[i] >= floor]
                    if about:
                        take(max(about, key=lambda i: overall[i] + aspect_bonus[i] + WORDS_WEIGHT * shared[i]))
        ranking = np.argsort(-(overall + aspect_bonus)).tolist()
        for index in ranking:  # fill with the closest units, as the answer's context
            if len(chosen) >= FILL_UNITS or _words(pool, chosen) >= FILL_WORDS:
                break
            if overall[index] >= (overall - tier).max() - 0.15 and not _unasked_figures(pool[index].aspects, asked):
                take(index)
        chosen = _own_rows_only(
            pool, _capped(pool, chosen, self.max_units, self.max_words), named, self.catalogue, asked
        )
        chosen = _with_antecedents(pool, chosen)
        chosen.sort(key=lambda i: (self._position.get(pool[i].unit.passage_id, 1 << 30), pool[i].unit.order))
        text = " ".join(pool[i].unit.text for i in chosen)
        cited: dict[str, Hit] = {}
        for i in sorted(chosen, key=lambda i: -pool[i].hit.score):
            cited.setdefault(pool[i].hit.passage.source_id, pool[i].hit)
        return Selection(text, list(cited.values()))


# Aspects whose figures a filler unit may not bring unasked: "how often can i withdraw from high
# yield savings" is answered by the withdrawal limit, and the account's APY beside it reads as the
# answer. Only rates: fees and amounts unasked are as often what the customer needed (dev set: both
# 295 → 303 with 4 / 70 fill, rates and amounts together 295).
UNASKED_FIGURES = frozenset({"rate"})


def _unasked_figures(answers: frozenset[str], asked: frozenset[str]) -> bool:
    """A filler unit that states a figure for an aspect not asked and answers none that was."""
    return bool(asked) and bool((answers & UNASKED_FIGURES) - asked) and not answers & asked


def _passage_kinds(passage: Passage) -> dict[str, str]:
    """What a retrieved passage is about on each contrast: a FAQ entry by its question, then its
    answer; a document chunk by its title and heading, then its text."""
    if passage.kind == "faq":
        return kinds_about(passage.text, passage.answer or "")
    return kinds_about(passage.title, passage.text)


# A sentence that only adds to the one before it ("You can also call 1-800-555-0142 or visit any branch.")
ADDS_TO_PREVIOUS = re.compile(r"^(?:(?:you|we|it|they|this|these)\s+(?:can\s+|may\s+)?also|also|in addition)\b", re.I)


def _with_antecedents(pool: list[_Scored], chosen: list[int]) -> list[int]:
    """``chosen`` with the unit before each chosen unit that only adds to it: "how do i close my checking
    account" must not be answered by "You can also call … or visit any branch" without the way it adds to
    ("Go to Accounts > select the account > Close account")."""
    where = {(s.unit.passage_id, s.unit.order): i for i, s in enumerate(pool)}
    result = list(chosen)
    for i in chosen:
        unit = pool[i].unit
        if ADDS_TO_PREVIOUS.match(unit.text):
            before = where.get((unit.passage_id, unit.order - 1))
            if before is not None and before not in result:
                result.insert(result.index(i), before)
    return result


def _own_rows_only(
    pool: list[_Scored],
    chosen: list[int],
    named: frozenset[str],
    catalogue: Catalogue,
    asked: frozenset[str] = frozenset(),
) -> list[int]:
    """``chosen`` less the units that state the named product's figures beside its siblings' where another
    chosen unit states the same for the named product alone: "atm limit everyday checking?" is answered by
    "Kestrel Everyday Checking: Daily ATM withdrawal limit $1,000", not also by the sentence giving Premier
    Checking's $2,000 beside it." Compared on the figures asked, where the question asks one: "the minimum
    deposit for Everyday Checking" is answered by "Kestrel Everyday Checking: $25", whatever else (Student
    Checking's "$0") the sentence listing every account says."""
    if not named:
        return chosen

    def mixed(i: int) -> bool:
        return _with_siblings(catalogue, named, pool[i].unit.products)

    own = [i for i in chosen if pool[i].unit.products and pool[i].unit.products <= named]
    figures = asked & FIGURE_ASPECTS  # (a figure asked: "when can i move to a regular card" compares in full)

    def said(i: int) -> frozenset[str]:
        return (pool[i].aspects & figures) or pool[i].aspects

    return [i for i in chosen if not (mixed(i) and said(i) and any(said(i) <= pool[j].aspects for j in own))]


def _with_siblings(catalogue: Catalogue, named: frozenset[str], mentioned: frozenset[str]) -> bool:
    """The text states the named product's figures beside those of siblings the customer did not name."""
    if not named or not named & mentioned:
        return False
    families = {catalogue.family_of(n) for n in named}
    return any(catalogue.family_of(m) in families for m in mentioned - named)


def _sibling_only(catalogue: Catalogue, named: frozenset[str], mentioned: frozenset[str]) -> bool:
    """The text is about other products of the family the customer named, and not about theirs."""
    if not named or not mentioned or named & mentioned:
        return False
    families = {catalogue.family_of(n) for n in named}
    return any(catalogue.family_of(m) in families for m in mentioned)


def _hit(passage: Passage, score: float) -> Hit:
    return Hit(passage=passage, score=score, fused=0.0, dense_rank=None, bm25_rank=None)


def _words(pool: list[_Scored], chosen: list[int]) -> int:
    return sum(len(pool[i].unit.text.split()) for i in chosen)


def _redundant(pool: list[_Scored], chosen: list[int], index: int) -> bool:
    """Near-duplicates (a FAQ answer restating a bullet) and a bullet already inside a chosen list."""
    candidate = pool[index]
    for i in chosen:
        other = pool[i]
        mine, theirs = candidate.unit.products, other.unit.products
        if mine and theirs and not mine & theirs:  # the same figure for another product is its own fact
            continue
        if float(candidate.vector @ other.vector) > 0.92 or _restates(candidate.unit.text, other.unit.text):
            return True
        same_passage = other.unit.passage_id == candidate.unit.passage_id
        if same_passage and (other.unit.list_items or candidate.unit.list_items):
            inner, outer = (candidate, other) if other.unit.list_items else (other, candidate)
            core = (inner.unit.item or inner.unit.text.split(" — ", 1)[-1]).rstrip(".")
            if core and core in outer.unit.text:
                return True
    return False


CONTRACTION = re.compile(r"n't\b|'s\b|'re\b|'ll\b|'ve\b", re.I)
STOPWORDS = frozenset(
    {"a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "by", "with", "from", "is", "are", "be"}
    | {"it", "its", "this", "that", "your", "you", "we", "our", "can", "if", "as", "per", "kestrel"}
)


# One way of saying "free", so that "a replacement card at no charge in 7 to 10 business days" restates
# "a replacement card with a new number, free, in 7 to 10 business days" (and is not read as a denial).
FREE = re.compile(
    r"\b(?:at no (?:extra )?(?:charge|cost)|free of charge|no charge|no fee|without (?:a )?(?:fee|charge))\b", re.I
)


def _content_words(text: str) -> set[str]:
    text = FREE.sub("free", text)
    text = re.sub(r"\bcannot\b", "can not", text.replace("\u2019", "'"), flags=re.I)
    text = CONTRACTION.sub(lambda m: " not" if m.group(0).lower() == "n't" else "", text)
    words = re.findall(r"[a-z0-9$%.:]+", text.lower())
    return {w.strip(".:") for w in words if w.strip(".:") and w.strip(".:") not in STOPWORDS}


_YEARS = re.compile(r"\b(\d{1,2}|one|an?|two|three|four|five|six|seven|ten)[\s-]*(?:years?|yrs?)\b(?![\s-]*old)", re.I)
_MONTHS = re.compile(r"\b(\d{1,3})[\s-]*months?\b", re.I)


def _in_months(text: str) -> set[int]:
    """The terms a question gives in years, in months: the bank states them so ("one-year CD" is
    its "12-month CD"; a table's rows differ by the term alone, which the embedding barely reads)."""
    months = set()
    for match in _YEARS.finditer(text):
        count = match.group(1).lower()
        months.add(12 * int(count if count.isdigit() else NUMBER_WORDS.get(count, "1")))  # "a year": 1
    return months


_PLACE = re.compile(rf"\b(?:{PLACES_PATTERN})\b", re.I)  # a country, region or city abroad the customer names
# A time of day the customer gives ("if i send it at 4pm", "drop cash in the atm around 10pm tonight"): the
# unit saying what happens after the day's cut-off ("requests after 3:00 p.m. ET ... are sent the next
# business day") is preferred, like a tier holding a term given; the cut-off itself is usually close anyway.
_CLOCK = re.compile(r"\b\d{1,2}(?::\d\d)?\s?(?:am|pm|a\.m|p\.m)\b|\b(?:noon|midnight)\b", re.I)
_AFTER_CUTOFF = re.compile(
    r"\bafter\s+(?:the\s+)?(?:cut-?off|\d{1,2}(?::\d\d)?\s?[ap]\.?m)|\bnext business day\b", re.I
)
# "which term pays the most", "your highest cd rate": the highest rate asked. (Not "the lowest apr on
# a car loan": the lowest percent on a loan page is its AutoPay discount, and the dev set lost a turn.)
_HIGHEST = re.compile(
    r"\b(?:highest|best|top|biggest|most)\b(?:\s+\w+){0,2}?\s+(?:rates?|apy|yield|interest|returns?)\b"
    r"|\b(?:pays?|earns?|gives?|yields?|offers?)\s+(?:you\s+|me\s+)?(?:the\s+)?(?:most|highest|best|more)\b"
    r"|\b(?:highest|best)[\s-]+(?:yield|paying|earning)\b",
    re.I,
)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
# A question for the highest rate prefers the unit stating the highest rate among its passage's
# units, like a named product's unit (0.12): the closest table row is whichever the embedding likes.
HIGHEST_BONUS = 0.1


def _states_highest(pool: list[_Scored]) -> list[bool]:
    """Whether each unit states the highest rate among its passage's units."""
    rates = [[float(r) for r in _PERCENT.findall(s.unit.text)] if "rate" in s.aspects else [] for s in pool]
    best: dict[str, float] = {}
    for scored, found in zip(pool, rates, strict=True):
        if found:
            best[scored.unit.passage_id] = max(best.get(scored.unit.passage_id, 0.0), *found)
    return [bool(found) and best[s.unit.passage_id] in found for s, found in zip(pool, rates, strict=True)]


def _month_terms(text: str) -> set[int]:
    return {int(m.group(1)) for m in _MONTHS.finditer(text)}


# A term the customer gives in months ("my 18-month cd", "a 6 mo cd"), and one the knowledge base
# states as a range of them ("12 months or less", "18 months up to 36 months", "more than 12 months").
_ASKED_MONTHS = re.compile(r"\b(\d{1,3})[\s-]*(?:months?|mos?)\b", re.I)
_MONTHS_AT_MOST = re.compile(r"\b(\d{1,3})[\s-]*months? or (?:less|shorter|fewer)\b", re.I)
_MONTHS_BETWEEN = re.compile(r"\b(\d{1,3})(?:[\s-]*months?)?\s+(?:up )?to\s+(\d{1,3})[\s-]*months?\b", re.I)
_MONTHS_OVER = re.compile(r"\b(?:more|longer) than (\d{1,3})[\s-]*months?\b", re.I)
# A balance the customer gives ("around 50k", "$50,000", "50 grand") and the tiers of a rate table
# ("$10,000 to $99,999.99", "$100,000 and above", "under $2,500").
_AMOUNT = r"\$?\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"
_ASKED_DOLLARS = re.compile(
    rf"(?<![\w.,])(?!40[13]\s?[kb]\b)({_AMOUNT})\s?(k|grand|thousand)?\b"
    r"(?!\s*(?:yen|euros?|pesos|pounds|francs|won|rupees|yuan))",
    re.I,
)
_DOLLARS_BETWEEN = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)\s*(?:to|-|–)\s*\$(\d[\d,]*(?:\.\d+)?)")
_DOLLARS_ABOVE = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)\s*(?:and (?:above|over|up)|or more|\+)")
_DOLLARS_BELOW = re.compile(r"\b(?:under|below|less than)\s+\$(\d[\d,]*(?:\.\d+)?)", re.I)


# An age the customer gives ("my 15 yr old", "I'm 23") and the ages a rule holds ("at least 13 years old",
# "under age 25", "ages 17 to 24").
_ASKED_AGE = re.compile(
    r"\b(\d{1,2})[\s-]*(?:years?|yrs?|y/?o)?[\s-]*old\b|\b(\d{1,2})\s*y/?o\b"
    r"|\b(?:i'?m|i am|he'?s|hes|she'?s|shes|turning|turned|aged?)\s+(?:only\s+|just\s+)?(\d{1,2})\b"
    r"(?!\s*(?:%|\$|k\b|[,.:]\d|days?|months?|weeks?|years?|yrs?|hours?|minutes?|mins?|dollars?|bucks|grand|"
    r"[ap]\.?m\b))",
    re.I,
)
_AGE_AT_LEAST = re.compile(r"\bat least (\d{1,2}) years? old\b|\b(\d{1,2}) (?:years old )?or older\b", re.I)
_AGE_UNDER = re.compile(r"\bunder (?:age |the age of )?(\d{1,2})\b", re.I)
_AGE_BETWEEN = re.compile(r"\bages? (\d{1,2}) (?:to|through|-|–) (\d{1,2})\b", re.I)


def _asked_ages(text: str) -> set[int]:
    return {int(next(g for g in m.groups() if g)) for m in _ASKED_AGE.finditer(text)}


def _asked_months(text: str) -> set[int]:
    return {int(m.group(1)) for m in _ASKED_MONTHS.finditer(text)}


def _asked_dollars(text: str) -> set[float]:
    """Dollar amounts the customer gives: with a "$", a thousands suffix or thousands separators (not
    "2019", "3 days")."""
    found = set()
    for match in _ASKED_DOLLARS.finditer(text):
        whole, suffix = match.group(1), match.group(4)
        if not (whole.lstrip().startswith("$") or suffix or "," in whole):
            continue
        value = float(re.sub(r"[$,\s]", "", whole))
        found.add(value * 1000 if suffix else value)
    return found


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _within(values: Collection[float], spans: list[tuple[float, float]], slack: float = 0.0) -> bool:
    return any(low <= value <= high + slack for value in values for low, high in spans)


def _holds(text: str, months: Collection[int], dollars: Collection[float], ages: Collection[int] = ()) -> bool:
    """Whether ``text`` states one of the terms asked, or a tier of terms, balances or ages holding one."""
    if ages:
        spans = [(float(next(g for g in m.groups() if g)), float("inf")) for m in _AGE_AT_LEAST.finditer(text)]
        spans += [(0.0, float(m.group(1)) - 1) for m in _AGE_UNDER.finditer(text)]
        spans += [(float(m.group(1)), float(m.group(2))) for m in _AGE_BETWEEN.finditer(text)]
        if _within(ages, spans):
            return True
    if months:
        if set(months) & _month_terms(text):
            return True
        spans = [(0.0, float(m.group(1))) for m in _MONTHS_AT_MOST.finditer(text)]
        spans += [(float(m.group(1)), float(m.group(2))) for m in _MONTHS_BETWEEN.finditer(text)]
        spans += [(float(m.group(1)) + 1, float("inf")) for m in _MONTHS_OVER.finditer(text)]
        if _within(months, spans):
            return True
    if dollars and "%" in text:  # a rate's tier, not "Loan amounts: $3,000 to $50,000"
        tiers = [(_number(m.group(1)), _number(m.group(2))) for m in _DOLLARS_BETWEEN.finditer(text)]
        tiers += [(_number(m.group(1)), float("inf")) for m in _DOLLARS_ABOVE.finditer(text)]
        tiers += [(0.0, _number(m.group(1)) - 0.01) for m in _DOLLARS_BELOW.finditer(text)]
        # "around 100k" is in "$100,000 and above", not "$10,000 to $99,999.99"; a bound's cents are kept
        if _within(dollars, tiers, slack=0.01):
            return True
    return False


def _shared(words: set[str], text: str) -> float:
    """The share of the question's content words ``words`` that ``text`` says too."""
    return len(words & _content_words(text)) / max(len(words), 1)


def _restates(text: str, other: str, overlap: float = 0.75) -> bool:
    """The same sentence twice, or one that says little the other doesn't (a FAQ answer restating a
    document's sentence in other words): most of the shorter one's content words are in the longer one."""
    if text.strip() == other.strip():
        return True
    mine, theirs = _content_words(text), _content_words(other)
    if not mine or not theirs:
        return False
    shorter, longer = (mine, theirs) if len(mine) <= len(theirs) else (theirs, mine)
    if any(any(c.isdigit() for c in w) and w not in longer for w in shorter):
        return False  # a figure of its own: not a restatement
    if ("not" in mine) != ("not" in theirs) or ("no" in mine) != ("no" in theirs):
        return False  # one denies what the other says
    if len(shorter) < 6:  # too short to tell a restatement from a different fact in the same words
        return shorter == longer
    return len(shorter & longer) / len(shorter) >= overlap


def _capped(pool: list[_Scored], chosen: list[int], max_units: int, max_words: int) -> list[int]:
    """The chosen units in choosing order, as many as fit; the first always stays."""
    kept: list[int] = []
    words = 0
    for index in chosen[:max_units]:
        size = len(pool[index].unit.text.split())
        if kept and words + size > max_words:
            continue
        kept.append(index)
        words += size
    return kept
