"""What to do with a message once we know what the customer wants: the routing policy.

Order (first match wins), documented in docs/architecture.md:

1. prompt injection or jailbreak (``chatbot.guard.injection``) → refusal (unless it only resembles
   an attack and confidently asks for a person, reports an emergency or asks for their own account
   data: none of those answers reveals anything; nor for a follow-up that only resembles an attack
   as typed while its resolved query does not);
   an emergency the classifier has no intent for (``chatbot.nlu.rules``: someone got into the
   customer's online banking, a code or password given to a scammer, a stolen phone with the app;
   also a follow-up that opens by admitting the code was given after a turn describing someone asking
   for it, ``rules.emergency_after``) → its security flow, quoted from ``urgent-help``, with the 24/7
   number and a person;
2. ``human_agent`` → handoff;
3. an action intent above ``flow_threshold`` → its flow: the bank's procedure, quoted from the
   knowledge-base passage the flow names (``urgent-help`` sections), with its source; where a person
   must act now (a fraud claim, an account closure) the answer starts a handoff, otherwise it
   offers one as a quick reply (a knowledge base without that passage gets the retrieval routes;
   a question about a dispute already made, ``chatbot.nlu.rules.dispute_underway``, skips the
   flows for reporting an unrecognised payment: "i disputed it 2 weeks ago, do i get the money back
   while you look into it" asks how the process works);
   then a card emergency in words the classifier missed (``chatbot.nlu.rules.card_emergency``: "someones
   using my card RIGHT NOW") → that flow; it comes first where the classifier guesses a payment report
   for a stolen card with no payment named ("someone stole my wallet, my debit card was in it"), and the
   classifier's lost-phone flow needs something lost ("can I just do it from my phone?" skips it);
   then a request for the customer's own balances, transactions or payments (``chatbot.nlu.rules``)
   → the ``account_data`` flow: the assistant cannot see accounts, here is where to look (quoted
   from ``online-and-mobile-banking``), and the offer of a person;
4. greeting / goodbye / thanks (short messages only) → a short friendly reply; a request for
   investment advice ("should i put my savings in bitcoin", ``chatbot.nlu.rules``), school work or tax
   advice asked of the assistant ("can u do my taxes", ``rules.asks_off_topic_task``) → 6's refusal;
5. a follow-up (resolved from the previous turns) → retrieval on the resolved query;
   then a message that names only a broad subject ("card", "limits?", "need help w my card and a
   transfer": ``chatbot.nlu.rules.vague``) → a clarifying question whose quick replies are the bank's
   own FAQ questions closest to it, one per document;
6. ``out_of_scope`` above ``oos_refusal_confidence`` and nothing relevant in the knowledge base
   (best cosine under ``relevance_threshold``, where retrieval would fall back anyway) → a refusal
   that says what the assistant can help with;
7. two close, unconfident intents where at least one would change the route, no FAQ answer close
   enough to send verbatim, and a short message (``clarify_max_words``) → a clarifying question
   (kind ``clarification``) with the options as quick replies;
8. everything else → retrieval, unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from chatbot.config import Settings
from chatbot.dialogue.extractive import is_external
from chatbot.guard.injection import REFUSAL_TEXT, InjectionVerdict
from chatbot.knowledge.retriever import Hit
from chatbot.nlu import rules
from chatbot.schema import AnswerKind, IntentRef

OUT_OF_SCOPE = "out_of_scope"
DIRECT_DEBIT = "direct_debit_payment_not_recognised"

HANDOFF_REPLY = "Talk to an agent"


@dataclass(frozen=True)
class Flow:
    intent: str
    passage_id: str  # the knowledge-base passage that states the procedure
    label: str  # what a clarifying question calls it
    handoff: bool  # a person must act now: the answer starts a handoff
    lead: str = ""  # said before the quoted procedure


FLOWS: dict[str, Flow] = {
    flow.intent: flow
    for flow in [
        Flow(
            "lost_or_stolen_card", "urgent-help#card-lost-or-stolen-what-to-do-now", "My card is lost or stolen", False
        ),
        Flow(
            "compromised_card",
            "urgent-help#card-details-compromised-or-used-by-someone-else",
            "Someone used my card details",
            True,
        ),
        Flow("card_swallowed", "urgent-help#card-kept-by-an-atm", "An ATM kept my card", False),
        Flow("lost_or_stolen_phone", "urgent-help#phone-with-the-kestrel-app-lost-or-stolen", "I lost my phone", False),
        Flow("transaction_charged_twice", "urgent-help#charged-twice-for-one-purchase", "I was charged twice", False),
        Flow(
            "card_payment_not_recognised",
            "urgent-help#card-payment-you-don-t-recognize",
            "A card payment I don't recognize",
            True,
        ),
        Flow(
            DIRECT_DEBIT,
            "urgent-help#direct-debit-you-don-t-recognize",
            "A direct debit I don't recognize",
            True,
        ),
        Flow(
            "cash_withdrawal_not_recognised",
            "urgent-help#cash-withdrawal-you-don-t-recognize",
            "A cash withdrawal I don't recognize",
            True,
        ),
        Flow("pin_blocked", "urgent-help#pin-blocked-after-wrong-attempts", "My PIN is blocked", False),
        Flow("terminate_account", "urgent-help#closing-your-kestrel-account", "Close my account", True),
        # Emergencies BANKING77 has no intent for, recognised by chatbot.nlu.rules.
        Flow(
            rules.ACCOUNT_COMPROMISED,
            "urgent-help#someone-got-into-your-online-banking",
            "Someone got into my online banking",
            True,
        ),
        Flow(
            rules.PAYMENT_SCAM,
            "fraud-and-disputes#scams-and-payments-you-authorized",
            "I paid a scammer",
            True,
        ),
        # BANKING77's intent; the bank's procedure is on its ATM page
        Flow(
            "wrong_amount_of_cash_received",
            "branches-and-atms#kestrel-atm-didn-t-give-you-your-cash",
            "The ATM didn't give me my cash",
            False,
        ),
        Flow(
            rules.SHARED_SECURITY_CODE,
            "urgent-help#you-shared-a-code-or-password-with-a-scammer",
            "I shared a code or password with a scammer",
            True,
        ),
    ]
}

ACCOUNT_DATA_LEAD = (
    "I can't see your accounts, so I can't tell you your balance or look up your transactions and payments. "
    "You can see them yourself:"
)
# Not in FLOWS: no classifier intent leads here, and the passage is a product page, not urgent-help.
ACCOUNT_DATA_FLOW = Flow(
    rules.ACCOUNT_DATA, "online-and-mobile-banking#intro", "My balance or transactions", False, ACCOUNT_DATA_LEAD
)

SMALL_TALK = {
    "greeting": "Hello! I'm Kestrel Bank's assistant. Ask me about accounts, cards, payments, loans or fees.",
    "goodbye": "Thanks for chatting with Kestrel Bank. Goodbye!",
    "thanks": "You're welcome! Is there anything else I can help you with?",
}
SMALL_TALK_MAX_WORDS = 8

OFFER_TEXT = "If you'd like, I can connect you with a member of our team."
STARTED_TEXT = "I'm connecting you with a member of our team now; they will join this chat shortly."
HANDOFF_TEXT = "Of course. I'm connecting you with a member of our team; they will join this chat shortly."
OUT_OF_SCOPE_TEXT = (
    "Sorry, I can't help with that. I'm Kestrel Bank's assistant: I can answer questions about our accounts, "
    "cards, payments and transfers, loans, fees and rates, and help if your card is lost or you see a payment "
    "you don't recognize."
)
CLARIFY_TEXT = "Just to be sure I help with the right thing: which of these is it?"
# Read alone where a channel shows no quick replies (the OpenAI-compatible API, the CLI).
VAGUE_TEXT = "Happy to help. What would you like to know? Ask in your own words, or pick a common question."


def intent_label(name: str) -> str:
    """A quick-reply label for an intent: the flow's own label, else the intent name made readable."""
    if name in FLOWS:
        return FLOWS[name].label
    if name == "human_agent":
        return HANDOFF_REPLY
    words = name.replace("_", " ").strip(" ?")
    return words[:1].upper() + words[1:]


def is_short(text: str, limit: int = SMALL_TALK_MAX_WORDS) -> bool:
    return len(re.findall(r"\w+", text)) <= limit


def flow_body(passage_text: str) -> str:
    """A chunk's text without the "Title — heading" line the chunker puts first."""
    return passage_text.split("\n", 1)[-1].strip()


@dataclass(frozen=True)
class Understanding:
    """What the engine knows about a message before it answers."""

    ranking: list[IntentRef]  # the classifier's top intents for the message as typed (empty without one)
    resolved_ranking: list[IntentRef]  # the same for the resolved follow-up (= ranking for a standalone turn)
    injection: InjectionVerdict | None
    hits: list[Hit]  # retrieval on the resolved query
    best_score: float  # best cosine among the hits
    query_vector: np.ndarray | None = None  # the resolved query's embedding, for the flow's source score
    resolved_injection: InjectionVerdict | None = None  # the check on the resolved follow-up (None: not rewritten)
    faq_hits: list[Hit] = field(default_factory=list)  # the FAQ entries closest to a vague message ("card")
    raw_vector: np.ndarray | None = None  # the message as typed, embedded (a second reading reuses it)


@dataclass(frozen=True)
class Decision:
    route: Literal["retrieval", "refusal", "handoff", "flow", "small_talk", "clarification"]
    intent: IntentRef | None
    kind: AnswerKind = "flow"
    text: str = ""
    handoff: bool = False
    quick_replies: tuple[str, ...] = ()
    flow: Flow | None = None


# The procedures for reporting a payment the customer does not recognise: a question about a dispute
# already made goes to the knowledge base instead (``rules.dispute_underway``).
REPORT_FLOWS = frozenset({"card_payment_not_recognised", DIRECT_DEBIT, "cash_withdrawal_not_recognised"})

# A quick reply sent back verbatim always means its option, whatever the classifier thinks of it.
QUICK_REPLY_INTENTS = {HANDOFF_REPLY.lower(): "human_agent", **{f.label.lower(): f.intent for f in FLOWS.values()}}


def decide(
    raw: str, understood: Understanding, settings: Settings, followup: bool = False, previous: str = ""
) -> Decision:
    """The route for one message, by the order in the module docstring.

    Actions (handoff, flows, refusals, small talk, clarification) are decided on the message as
    typed: a follow-up such as "is there a fee for that?" after a flow asks about the flow's topic
    and must not run the flow again. Its answer carries the resolved query's intent. ``previous``: the
    customer's turn before, for a follow-up that reports doing what it described ("too late, i already
    read it to him" after a question about a caller asking for a code).
    """
    ranking = understood.ranking
    top = ranking[0] if ranking else None
    chosen = QUICK_REPLY_INTENTS.get(raw.strip().lower().rstrip(".!"))
    if chosen is not None:
        top = IntentRef(name=chosen, confidence=1.0)
    injection = understood.injection
    wants_person = top is not None and top.name == "human_agent" and top.confidence >= settings.flow_threshold
    if chosen is None and not wants_person and rules.asks_for_person(raw):  # the classifier read the topic
        wants_person, top = True, IntentRef(name="human_agent", confidence=1.0)
    emergency = rules.emergency(raw) if chosen is None else None
    if emergency is None and chosen is None and previous:
        emergency = rules.emergency_after(raw, previous)
    own_data = chosen is None and rules.asks_for_account_data(raw, ranking)
    # A message that only resembles an attack gets its answer when that answer reveals nothing: a
    # person ("I want to talk to a human" is close to "act as a Kestrel employee"), the security
    # procedure ("someone got into my online banking" is close to "how do I break into someone else's
    # online banking"), or "I can't see your accounts". So does a follow-up whose resolved query is
    # ordinary: "is there a minimum balance?" alone resembles "tell me the balance on account ...".
    similar_only = injection is not None and injection.reason == "similar"
    resolved_check = understood.resolved_injection
    greets = top is not None and top.name in SMALL_TALK and top.confidence >= settings.flow_threshold and is_short(raw)
    harmless = wants_person or emergency is not None or own_data or greets  # "hello" resembles an attack too
    if followup and resolved_check is not None and not resolved_check.attack:
        harmless = True
    if injection is not None and injection.attack and chosen is None and not (similar_only and harmless):
        return Decision("refusal", top, "refusal", REFUSAL_TEXT)
    if emergency is not None and emergency in FLOWS:
        return Decision("flow", IntentRef(name=emergency, confidence=1.0), "flow", flow=FLOWS[emergency])
    if top is not None and (wants_person or (top.name == "human_agent" and chosen)):
        return Decision("handoff", top, "handoff", HANDOFF_TEXT, handoff=True)
    card = rules.card_emergency(raw) if chosen is None else None
    if top is not None and top.name == DIRECT_DEBIT and card is not None:
        top = IntentRef(name=card, confidence=1.0)  # "a charge on my debit card": the card, not a direct debit
    elif top is not None and top.name == DIRECT_DEBIT and rules.debit_card_only(raw):
        top = None if len(ranking) < 2 else ranking[1]  # "left my debit card at the bar": not a direct debit
    if (
        top is not None
        and top.name in REPORT_FLOWS
        and card == rules.LOST_OR_STOLEN_CARD
        and not rules.names_a_transaction(raw)
    ):
        top = IntentRef(name=card, confidence=1.0)  # "someone stole my wallet, my debit card was in it": no payment
    if top is not None and top.name == rules.LOST_OR_STOLEN_CARD and rules.reports_identity_theft(raw):
        top = None if len(ranking) < 2 else ranking[1]  # "someone opened a card in my name": identity theft
    if top is not None and top.name == rules.LOST_OR_STOLEN_PHONE and not rules.reports_a_loss(raw):
        top = None if len(ranking) < 2 else ranking[1]  # "it's $80k, can I just do it from my phone?": nothing lost
    if (
        top is not None
        and top.name in FLOWS
        and top.confidence >= settings.flow_threshold
        and not (top.name in REPORT_FLOWS and rules.dispute_underway(raw))
    ):
        return Decision("flow", top, "flow", flow=FLOWS[top.name])
    if card is not None and card in FLOWS:
        return Decision("flow", IntentRef(name=card, confidence=1.0), "flow", flow=FLOWS[card])
    if own_data:
        return Decision("flow", IntentRef(name=rules.ACCOUNT_DATA, confidence=1.0), "flow", flow=ACCOUNT_DATA_FLOW)
    if top is None:
        return Decision("retrieval", None)
    if top.name in SMALL_TALK and is_short(raw):
        return Decision("small_talk", top, "flow", SMALL_TALK[top.name])
    # retrieval would quote the savings rates, or the mortgage page's tax forms
    if chosen is None and (rules.asks_investment_advice(raw) or rules.asks_off_topic_task(raw)):
        return Decision("refusal", top, "refusal", OUT_OF_SCOPE_TEXT)
    if followup:
        resolved = understood.resolved_ranking
        return Decision("retrieval", resolved[0] if resolved else top)
    if rules.vague(raw):  # "card", "transfer", "limits?": ask what about it, with common questions
        questions = common_questions(understood.faq_hits or understood.hits)
        if len(questions) >= 2:
            return Decision("clarification", top, "clarification", VAGUE_TEXT, quick_replies=questions)
    # Off-topic: nothing relevant found. A message the classifier is certain is off-topic must match
    # a passage's own text: the customer questions indexed for a section ("does the app work on my
    # iphone") also resemble off-topic chat ("is android better than iphone").
    if (
        top.name == OUT_OF_SCOPE
        and top.confidence >= settings.oos_refusal_confidence
        and (
            understood.best_score < settings.relevance_threshold
            or (
                top.confidence >= settings.oos_certain_confidence
                and max((h.text_cosine for h in understood.hits), default=0.0) < settings.relevance_threshold
            )
        )
    ):
        return Decision("refusal", top, "refusal", OUT_OF_SCOPE_TEXT)
    # A long message whose intents are close is still specific enough to answer ("my bag got stolen
    # on the metro ... my debit card was in my wallet. what do i do"); asking it back which of two
    # procedures it meant only delays the customer.
    long_message = len(raw.split()) > settings.clarify_max_words
    options = () if long_message else clarification_options(ranking, understood.best_score, settings)
    if options:
        return Decision("clarification", top, "clarification", CLARIFY_TEXT, quick_replies=options)
    return Decision("retrieval", top)


def common_questions(hits: list[Hit], limit: int = 4) -> tuple[str, ...]:
    """The bank's own FAQ questions closest to a vague message, one per document: quick replies that,
    tapped, are answered like any question."""
    questions: list[str] = []
    documents: set[str] = set()
    for hit in sorted(hits, key=lambda h: -h.score):
        passage = hit.passage
        if passage.kind != "faq" or is_external(passage) or passage.source_id in documents:
            continue
        documents.add(passage.source_id)
        questions.append(passage.text)
        if len(questions) == limit:
            break
    return tuple(questions)


def clarification_options(ranking: list[IntentRef], best_score: float, settings: Settings) -> tuple[str, ...]:
    """The options to offer when the best intents are close, none is confident, and at least one of
    them would change the route (a flow or a handoff), and no curated FAQ answer matches well enough to be
    returned verbatim; empty when we should just answer."""
    if len(ranking) < 2 or best_score >= settings.faq_threshold:
        return ()
    first = ranking[0]
    if first.confidence >= settings.clarify_confidence:
        return ()
    close = [
        r
        for r in ranking[1:3]
        if r.confidence >= settings.clarify_min_second and first.confidence - r.confidence < settings.clarify_margin
    ]
    names = [first.name, *(r.name for r in close)]
    routed = set(FLOWS) | {"human_agent"}
    if len(names) < 2 or OUT_OF_SCOPE in names or not routed & set(names):
        return ()
    return tuple(intent_label(name) for name in names)
