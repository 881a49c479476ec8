"""Extractive answers that answer every part of a question, for the product named.

Unit tests of chatbot/dialogue/extractive.py on small hand-made passages, then regression tests through
the real engine over the *shipped* knowledge base (the project's index, built by `make`), with
generation off: the answers asserted here are the extractive selection and the routing in front of it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from chatbot.config import PROJECT_ROOT, Settings
from chatbot.dialogue.engine import Engine, EngineOptions
from chatbot.dialogue.extractive import (
    _HIGHEST,
    REFERS_BACK,
    Catalogue,
    SentenceSelector,
    _restates,
    _split_sentences,
    _unasked_figures,
    answers_aspect,
    asked_kinds,
    aspects_of,
    bank_answers,
    conflicts,
    kinds_about,
    passage_units,
    question_parts,
)
from chatbot.knowledge.embedder import Embedder
from chatbot.knowledge.index import Passage, build_index, is_stale
from chatbot.knowledge.retriever import Hit
from chatbot.llm.pacing import GenerationBreaker
from chatbot.schema import AnswerObject

SAVINGS = Passage(
    id="savings#basic",
    kind="chunk",
    source_id="savings",
    title="Savings",
    url=None,
    text="Savings — Kestrel Basic Savings\nKestrel Basic Savings is a simple account.\n\n"
    "- Interest rate: 0.10% APY\n- Monthly maintenance fee: $5",
)
HIGH_YIELD = Passage(
    id="savings#high-yield",
    kind="chunk",
    source_id="savings",
    title="Savings",
    url=None,
    text="Savings — Kestrel High-Yield Savings\nKestrel High-Yield Savings is our online account.\n\n"
    "- Interest rate: 4.00% APY\n- Monthly maintenance fee: $0",
)
WIRES = Passage(
    id="wires#fees",
    kind="chunk",
    source_id="wires",
    title="Wires",
    url=None,
    text="Wires — Fees and cut-off\nAn outgoing wire costs $45. Wires requested by 3:00 p.m. ET are sent "
    "the same business day. Our branches have free coffee.\n\nTo send one you need:\n"
    "- The recipient's name\n- The SWIFT code",
)
CATALOGUE = Catalogue.from_texts(
    [
        SAVINGS.text,
        HIGH_YIELD.text,
        "Kestrel Everyday Checking and Kestrel Premier Checking accounts.",
        "Use your card for everyday purchases.",  # "everyday" is a plain word here too; "premier" only a name
    ]
)


def chunk(passage_id: str, text: str) -> Passage:
    """A document section (``source#anchor``) titled after its document."""
    source = passage_id.split("#")[0]
    return Passage(id=passage_id, kind="chunk", source_id=source, title=source.title(), url=None, text=text)


def section(source: str, n: int) -> Passage:
    """The ``n``-th section of ``source``, saying only that."""
    return chunk(f"{source}#{n}", f"{source} section {n}")


def hit(passage: Passage, score: float) -> Hit:
    return Hit(passage=passage, score=score, fused=0.0, dense_rank=None, bm25_rank=None)


def quote(embedder: Embedder, passage: Passage, question: str, max_units: int) -> str:
    """The extractive answer to ``question`` from ``passage`` alone, at most ``max_units`` units."""
    selection = SentenceSelector(embedder.encode, CATALOGUE, [passage], max_units=max_units).select(
        question, [hit(passage, 0.7)]
    )
    assert selection is not None
    return selection.text


def external(score: float) -> Hit:
    entry = Passage("cfpb-1", "faq", "cfpb-1", "Ask CFPB", None, "When can I use deposited money?", "Federal rules…")
    return hit(entry, score)


# ------------------------------------------------------------------ what was asked
def test_a_two_part_question_splits_into_its_parts_with_their_aspects() -> None:
    parts = question_parts("sending money to my sister abroad, how much does it cost and is there a deadline?")
    assert len(parts) == 2
    assert "amount" in aspects_of(parts[0])
    assert "clock" in aspects_of(parts[1])
    assert question_parts("what is the fee for a wire") == ["what is the fee for a wire"]


@pytest.mark.parametrize(
    ("question", "aspect"),
    [
        ("how much is it", "amount"),
        ("what apy do i get", "rate"),
        ("how long until the money shows up", "duration"),
        ("how do i turn it off", "howto"),
        ("do i qualify", "eligibility"),
        ("whats the number to call", "contact"),
        ("is there a daily limit", "limit"),
        ("which one has no monthly fee", "no_fee"),
        ("how long can my username be", "length"),
        ("how many characters can a password have", "length"),
        ("when would the loan money actually hit my account", "funding"),
        ("how soon do i get the money", "funding"),
        ("whats the latest i can send it today", "clock"),
        ("do you get any cash back with the secured card", "rate"),
        ("so did i just lose all that money??", "liability"),
        ("or am i out $250 for good", "liability"),
    ],
)
def test_aspects_are_read_from_the_question(question: str, aspect: str) -> None:
    assert aspect in aspects_of(question)


@pytest.mark.parametrize(
    ("question", "aspects"),
    [
        # "how much" asks what one may move, not a price: a fee quoted for it is the wrong fact
        ("how much cash can i pull from the atm in one day", {"limit"}),
        ("how much money am i allowed to deposit with the app", {"limit", "eligibility"}),
        ("how much can i withdraw and is there a fee", {"limit", "amount"}),
        ("how much does a wire cost", {"amount"}),
    ],
)
def test_how_much_one_may_move_is_a_limit_not_a_price(question: str, aspects: set[str]) -> None:
    assert aspects_of(question) == aspects


def test_sentences_answer_aspects_by_their_figures_and_wording() -> None:
    assert answers_aspect("Wires requested by 3:00 p.m. ET go out the same day.", "clock")
    assert answers_aspect("An outgoing wire costs $45.", "amount")
    assert not answers_aspect("An outgoing wire costs $45.", "clock")
    assert answers_aspect("Monthly maintenance fee: $0.", "no_fee")
    # A fee can be a percentage; a product that does not do something answers "can i".
    assert answers_aspect("It charges a 3% foreign transaction fee on purchases abroad.", "amount")
    assert not answers_aspect("It earns 3% cash back on dining.", "amount")
    assert answers_aspect("The Kestrel Secured card does not offer balance transfers.", "eligibility")
    assert answers_aspect("Early Pay isn't available for savings accounts.", "eligibility")


def test_a_card_named_for_its_cash_back_is_not_a_question_about_the_rate() -> None:
    assert "rate" not in aspects_of("if i cancel the cash back card do i lose my rewards")


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("sending 2k to my dad in the philippines, whats the fee", {"direction": "outgoing", "scope": "international"}),
        ("my aunt in toronto is wiring me money", {"direction": "incoming", "scope": "international"}),
        ("does it cost anything to receive a wire", {"direction": "incoming"}),
        ("how late can i wire money to another us bank", {"direction": "outgoing", "scope": "domestic"}),
        ("whats the fee to send or receive a wire", {}),  # both directions: no side taken
        ("my employer is wiring my bonus to my checking account", {"direction": "incoming"}),
        ("what is the overdraft fee", {}),
        # a PIN forgotten is reset; one known is changed
        ("i cant remember my card pin, what now", {"pin": "forgotten"}),
        ("4got my debit pin how do i get another", {"pin": "forgotten"}),
        ("can i change my pin to something easier", {"pin": "known"}),
        ("forgot my pin. or can i just change it at the atm", {}),  # both: no side taken
    ],
)
def test_the_kind_of_payment_asked_is_read_from_the_question(question: str, kinds: dict[str, str]) -> None:
    assert asked_kinds(question) == kinds


def test_a_sentence_is_about_a_kind_by_its_own_words_else_its_heading() -> None:
    assert kinds_about("Incoming domestic wires received by 6:00 p.m. ET are credited the same day.") == {
        "direction": "incoming",
        "scope": "domestic",
    }
    assert kinds_about("Wires requested by 3:00 p.m. ET go out the same day.", "International wire transfers") == {
        "direction": "outgoing",
        "scope": "international",
    }
    # The recipient not having received an outgoing wire is not about incoming wires.
    assert "direction" not in kinds_about("If the recipient has not received your wire, call us.")
    assert "direction" not in kinds_about("QuickPay is free to send and receive.")
    assert conflicts({"scope": "international"}, {"scope": "domestic", "direction": "outgoing"}) == 1
    assert conflicts({"scope": "international"}, {"direction": "incoming"}) == 0


def test_a_product_name_is_not_a_question_and_can_i_mid_sentence_is_not_eligibility() -> None:
    catalogue = Catalogue.from_texts(["Kestrel High-Yield Savings pays 4.00% APY.", "Kestrel Basic Savings is free."])
    question = "how many times a month can i take money out of high yield savings"
    assert "rate" in aspects_of(question)  # "yield", read without knowing the product
    assert catalogue.aspects_of(question) == frozenset({"limit"})
    assert "eligibility" in aspects_of("can i open one online")
    assert "eligibility" in aspects_of("ok, can i open one online")


def test_a_rate_is_answered_by_a_figure() -> None:
    assert answers_aspect("The purchase APR is 21.24% to 29.24% variable.", "rate")
    assert not answers_aspect("The card has no intro APR and no penalty APR.", "rate")


def test_a_limit_is_not_a_price() -> None:
    assert not answers_aspect("You can send up to $50,000 per business day in domestic wires.", "amount")
    assert answers_aspect("An outgoing domestic wire costs $30.", "amount")
    assert "eligibility" not in aspects_of("need to wire money to my landlord, how much is it")
    assert "eligibility" in aspects_of("what do i need to open an account")


def test_a_length_question_is_not_a_time_question() -> None:
    assert "duration" not in aspects_of("how long can my username be")
    assert "duration" in aspects_of("how long does a wire take")
    assert "duration" in aspects_of("how long is the grace period")
    assert aspects_of("also how long does my password need to be") == {"length"}
    assert aspects_of("how long does it take to be approved") == {"duration"}
    assert "length" not in aspects_of("how long do i need to be a customer")
    assert aspects_of("how long does my account need to be open to get the bonus") == {"duration"}


def test_sentences_answer_length_funding_and_per_period_limits() -> None:
    assert answers_aspect("Usernames must be 6 to 20 characters.", "length")
    assert not answers_aspect("Name changes are processed within 3 business days.", "length")
    assert answers_aspect("Funds are deposited into a Kestrel account as soon as the next business day.", "funding")
    assert not answers_aspect("Most applicants receive a decision within minutes.", "funding")
    assert answers_aspect("Savings accounts allow 6 free withdrawals per monthly statement cycle.", "limit")


def test_a_sentence_is_not_quoted_twice_nor_restated_in_other_words() -> None:
    assert _restates("These changes can't be made in the app.", "These changes can't be made in the app.")
    assert _restates(
        "You can't add money to a CD after it's opened, but you can open another one.",
        "You cannot add money to a Kestrel CD after it is opened; to save more, open another CD.",
    )
    assert not _restates("The overdraft fee is $29 per item.", "The returned item fee is $29 per item.")
    assert not _restates("Wires cost $30 each.", "Wires cost $45 each.")  # a figure of its own


def test_abbreviations_inside_a_time_window_do_not_split_it() -> None:
    text = "Call us Monday to Friday from 7:00 a.m. to 10:00 p.m. ET. Use e.g. Zelle for U.S. transfers."
    assert _split_sentences(text) == [
        "Call us Monday to Friday from 7:00 a.m. to 10:00 p.m. ET.",
        "Use e.g. Zelle for U.S. transfers.",
    ]


# ------------------------------------------------------------------ products
def test_products_and_their_siblings_are_learnt_from_the_text() -> None:
    names = {p.name for p in CATALOGUE.products}
    assert {"Kestrel Basic Savings", "Kestrel High-Yield Savings", "Kestrel Premier Checking"} <= names
    assert CATALOGUE.mentions("whats the fee on high yield savings") == {"Kestrel High-Yield Savings"}
    assert CATALOGUE.mentions("premier checking acct fee") == {"Kestrel Premier Checking"}
    assert CATALOGUE.mentions("what about savings in general") == frozenset()


def test_a_modifier_alone_names_its_product_beside_a_sibling_in_the_question_or_the_conversation() -> None:
    both = {"Kestrel Everyday Checking", "Kestrel Premier Checking"}
    assert CATALOGUE.asked("is there a monthly fee on everyday checking or premier") == both
    assert CATALOGUE.asked("and premier?", context="whats the fee on everyday checking") == {"Kestrel Premier Checking"}
    # alone, a modifier the knowledge base uses only in the name names the product; a plain word does not
    assert CATALOGUE.asked("is premier worth it") == {"Kestrel Premier Checking"}
    assert CATALOGUE.asked("is everyday worth it") == frozenset()
    # in a standalone question a plain word names it only as an alternative
    assert CATALOGUE.asked("premier checking: can i use my card everyday abroad") == {"Kestrel Premier Checking"}
    # a follow-up's rewrite still names the earlier product; the follow-up as typed says which one it is about
    selector = SentenceSelector(lambda texts: np.zeros((len(texts), 1)), CATALOGUE, [])
    rewrite = "whats the monthly fee on everyday checking premier checking"
    assert selector.named(rewrite, said="ok and premier?") == {"Kestrel Premier Checking"}
    assert selector.named(rewrite) == both
    # the knowledge base's own text names products in full: a bare word there names none
    assert CATALOGUE.mentions("Kestrel Everyday Checking is our most popular choice, even over premier") == {
        "Kestrel Everyday Checking"
    }


def test_a_bullet_belongs_to_its_sections_product_and_says_so() -> None:
    units = passage_units(SAVINGS, CATALOGUE)
    fee = next(u for u in units if "$5" in u.text)
    assert fee.products == {"Kestrel Basic Savings"}
    assert fee.text == "Kestrel Basic Savings — Monthly maintenance fee: $5."


def test_a_labelled_row_of_a_products_section_is_quoted_with_the_section_it_belongs_to() -> None:
    """The money market has no sibling product, so the catalogue does not know it: its row "Minimum
    opening deposit: $1,000" quoted alone would read as the savings account the customer asked about."""

    passage = chunk(
        "savings#money-market",
        "Savings — Kestrel Money Market account\nThe money market earns tiered interest.\n\n"
        "| Balance | APY |\n|---|---|\n| $0 to $9,999.99 | 1.50% |\n\n- Minimum opening deposit: $1,000\n\n"
        "You will need:\n- Photo ID: a passport or driver's license",
    )
    texts = [u.text for u in passage_units(passage, CATALOGUE)]
    assert "Kestrel Money Market account — Minimum opening deposit: $1,000." in texts
    assert "Kestrel Money Market account — $0 to $9,999.99: 1.50%." in texts
    assert "The money market earns tiered interest." in texts  # a sentence says what it is about itself
    assert "You will need: photo ID: a passport or driver's license." in texts  # a bullet with its lead-in
    general = chunk("fees#atm", "Fees — ATM fees at the bank\n- Out-of-network ATM: $3")
    assert [u.text for u in passage_units(general, CATALOGUE)] == ["Out-of-network ATM: $3."]


def test_a_sentence_about_the_one_before_belongs_to_its_products() -> None:
    """ "With it, we may pay … and charge the $29 overdraft fee" is Everyday and Premier Checking's coverage:
    quoted for a Student Checking question, it would put their fee on the account that has none."""
    passage = chunk(
        "overdraft#standard",
        "Overdraft — Standard coverage\nKestrel Everyday Checking and Kestrel Premier Checking include Standard "
        "Overdraft Coverage. With it, we may pay checks and charge the $29 overdraft fee. Overdrafts are paid "
        "at our discretion. They're free. It's also available by phone.",
    )
    units = passage_units(passage, CATALOGUE)
    both = {"Kestrel Everyday Checking", "Kestrel Premier Checking"}
    assert units[0].products == both
    assert units[1].products == both
    assert units[2].products == frozenset()  # names nothing and does not point back
    assert units[3].products == frozenset()  # points back to a sentence that names nothing
    assert REFERS_BACK.match("They're free.") and not REFERS_BACK.match("It's also available by phone.")


def test_how_much_to_open_asks_a_minimum_and_a_sending_limit_is_no_wait() -> None:
    assert "minimum" in aspects_of("how much money need to open?")
    assert "minimum" in aspects_of("how much do i have to put in to start one")
    assert not answers_aspect("You can send up to $2,500 per day and $10,000 per rolling 30 days.", "duration")
    assert answers_aspect("Standard external transfers arrive in 1 to 3 business days.", "duration")
    assert answers_aspect("It usually takes 1 to 2 pay cycles for your first direct deposit to arrive.", "duration")


def test_a_list_with_its_lead_in_is_one_unit_and_abbreviations_do_not_split_sentences() -> None:
    texts = [u.text for u in passage_units(WIRES, CATALOGUE)]
    assert "Wires requested by 3:00 p.m. ET are sent the same business day." in texts
    assert "To send one you need: The recipient's name; The SWIFT code." in texts


# ------------------------------------------------------------------ selection
@pytest.fixture(scope="module")
def selector(embedder: Embedder) -> SentenceSelector:
    return SentenceSelector(embedder.encode, CATALOGUE, [SAVINGS, HIGH_YIELD, WIRES])


CLOSING = Passage(
    id="cards#closing",
    kind="chunk",
    source_id="cards",
    title="Cards",
    url=None,
    text="Cards — Closing a card\nClosing a credit card ends its rewards program. Unredeemed cash back is "
    "forfeited when you close the card. You must keep paying the balance after you close the card.",
)


def test_the_closest_sentences_fill_the_answer_up_to_three(embedder: Embedder) -> None:
    """Three sentences about closing a card, all close to the question: each may be the fact asked."""
    selector = SentenceSelector(embedder.encode, CATALOGUE, [CLOSING])
    selection = selector.select("what happens when i close my credit card", [hit(CLOSING, 0.7)])
    assert selection is not None
    assert "forfeited" in selection.text and "keep paying" in selection.text and "ends its rewards" in selection.text


def test_a_lead_in_without_its_list_is_not_quotable() -> None:
    passage = Passage(
        "cards#how", "chunk", "cards", "Cards", None, "Cards — How\nYou can close a card:\n\nCall us to close it."
    )
    texts = [u.text for u in passage_units(passage, CATALOGUE)]
    assert "You can close a card:" not in texts
    assert "Call us to close it." in texts


def test_a_bullet_is_quoted_with_its_lead_in_even_across_a_blank_line() -> None:
    """ "To move money to a "safe" account." alone says nothing; the lead-in says the bank never asks it."""
    passage = Passage(
        "security#never",
        "chunk",
        "security",
        "Security",
        None,
        "Security — Never\nKestrel Bank will never ask you for:\n\n- Your PIN\n- To move money to a safe account\n",
    )
    units = passage_units(passage, CATALOGUE)
    texts = [u.text for u in units]
    assert "Kestrel Bank will never ask you for: to move money to a safe account." in texts
    assert "To move money to a safe account." not in texts
    whole = [u for u in units if u.list_items == 2]
    assert whole and "Your PIN; To move money" in whole[0].text  # the whole list, with its lead-in, too


def test_each_part_of_a_question_gets_its_sentence(selector: SentenceSelector) -> None:
    selection = selector.select("how much is a wire and what time do i need to send it by", [hit(WIRES, 0.7)])
    assert selection is not None
    assert "$45" in selection.text and "3:00 p.m." in selection.text
    assert "coffee" not in selection.text


def test_a_term_asked_in_years_finds_the_row_stated_in_months(embedder: Embedder) -> None:
    """Table rows differ by the term alone; "one-year" is the "12-month" row, not the first."""
    rows = chunk(
        "cds#rates",
        "Cds — Kestrel CD terms and rates\n\n| Term | APY |\n|---|---|\n| 3-month CD | 3.00% |\n"
        "| 12-month CD | 4.10% |\n| 24-month CD | 3.70% |",
    )
    selector = SentenceSelector(embedder.encode, CATALOGUE, [rows])
    for question, rate in (("whats the apy on a one-year cd", "4.10%"), ("rate for a 2 yr cd?", "3.70%")):
        selection = selector.select(question, [hit(rows, 0.7)])
        assert selection is not None and rate in selection.text, question


def test_a_term_balance_or_age_given_finds_the_tier_holding_it(embedder: Embedder) -> None:
    """A tier's row holds the customer's figure without stating it: "a 9-month cd" is in "12 months
    or less", "about 40k" in "$10,000 to $99,999.99", a 14-year-old in "at least 13 years old"."""
    penalties = chunk(
        "cds#penalty",
        "Cds — Early withdrawal penalty\n\nWe charge an early withdrawal penalty:\n\n"
        "- CD terms of 12 months or less: 90 days of interest\n- CD terms of 18 months up to 36 months: "
        "180 days of interest\n- 60-month CD: 365 days of interest",
    )
    tiers = chunk(
        "mm#rates",
        "Mm — Money market rates\n\n| Balance | APY |\n|---|---|\n| $0 to $9,999.99 | 1.50% |\n"
        "| $10,000 to $99,999.99 | 3.25% |\n| $100,000 and above | 3.75% |",
    )
    selector = SentenceSelector(embedder.encode, CATALOGUE, [penalties, tiers])
    for question, passage, right in (
        ("penalty for cashing out my 9-month cd early?", penalties, "90 days"),
        ("i have a 24 month cd, what does it cost to break it", penalties, "180 days"),
        ("what apy would i get with about 40k in the money market", tiers, "3.25%"),
        ("rate if i put $150,000 in the money market", tiers, "3.75%"),
    ):
        selection = selector.select(question, [hit(passage, 0.7)])
        assert selection is not None and right in selection.text, (question, selection and selection.text)
    ages = chunk(
        "accounts#who-can-open",
        "Accounts — Who can open one\nThe primary owner of a checking account must be at least 18 years old. "
        "Customers under 18 can open a savings account with a parent as joint owner.",
    )
    assert "under 18" in quote(embedder, ages, "my 17 yo wants her own account, can she open one", 1)


def test_a_time_of_day_given_finds_what_happens_after_the_cut_off(embedder: Embedder) -> None:
    cutoff = chunk(
        "wires#cutoff",
        "Wires — Cut-off time\nWe process wires every business day. Wires requested by 2:00 p.m. ET are sent "
        "the same day. Requests after 2:00 p.m. ET are sent the next business day. Wires cannot be cancelled.",
    )
    assert "next business day" in quote(embedder, cutoff, "if i request a wire at 4pm is it sent the same day", 2)


@pytest.mark.parametrize(
    ("question", "searched"),
    [
        ("whats the daily quickpay limit? i have everyday checking", "whats the daily quickpay limit?"),
        ("I have Premier. How much can I take out of an ATM abroad?", "How much can I take out of an ATM abroad?"),
        ("fee to wire money to canada, i have the premier account if that matters", "fee to wire money to canada,"),
        # the held product is the subject: kept
        ("i have premier checking, does that change the fee?", None),
        ("oh i have everyday checking", None),
        ("i have a question, whats the atm fee", None),  # not a product
        ("can i pause my payments? i have student loans", None),  # a modifier starting something else
        # the bank's term the lexicon added stays
        ("most i can zelle in a day? i have everyday checking (QuickPay)", "most i can zelle in a day? (QuickPay)"),
        ("i have everyday checking and i lost my debit card", None),  # one clause
    ],
)
def test_a_clause_saying_which_product_is_held_is_not_searched_for(question: str, searched: str | None) -> None:
    assert CATALOGUE.without_holdings(question) == (searched or question)


def test_a_named_product_never_gets_its_siblings_figures(selector: SentenceSelector) -> None:
    selection = selector.select(
        "what is the monthly fee on high yield savings", [hit(SAVINGS, 0.7), hit(HIGH_YIELD, 0.6)]
    )
    assert selection is not None
    assert "$0" in selection.text and "$5" not in selection.text


def test_the_banks_own_content_outranks_ask_cfpb_when_it_answers() -> None:
    assert bank_answers([external(0.85), hit(SAVINGS, 0.74)], floor=0.6, margin=0.15)
    assert not bank_answers([external(0.85), hit(SAVINGS, 0.55)], floor=0.6, margin=0.15)
    assert not bank_answers([external(0.95), hit(SAVINGS, 0.7)], floor=0.6, margin=0.15)


def test_a_document_with_several_close_sections_beats_one_slightly_closer_passage(selector: SentenceSelector) -> None:
    spread = [hit(section("savings", n), score) for n, score in enumerate((0.62, 0.60, 0.59))]
    assert selector.best_document([hit(section("rates", 0), 0.64), *spread], frozenset())[0] == "savings"
    # A passage clearly closer than the rest still decides.
    assert selector.best_document([hit(section("rates", 0), 0.80), *spread], frozenset())[0] == "rates"


def test_a_documents_support_is_what_its_text_says_not_what_its_questions_echo(selector: SentenceSelector) -> None:
    def asked(passage: Passage, question: float, text: float) -> Hit:  # a section question scored higher
        return Hit(passage=passage, score=question, fused=0.0, dense_rank=None, bm25_rank=None, text_score=text)

    echoes = [
        hit(section("rates", 0), 0.64),
        asked(section("rates", 1), 0.62, 0.40),
        asked(section("rates", 2), 0.61, 0.40),
    ]
    says = [hit(section("savings", n), score) for n, score in enumerate((0.63, 0.58, 0.58))]
    assert selector.best_document([*echoes, *says], frozenset())[0] == "savings"
    # The best passage itself may be chosen by its question.
    best = [asked(section("rates", 0), 0.72, 0.50), *echoes[1:]]
    assert selector.best_document([*best, *says], frozenset())[0] == "rates"


def test_a_question_about_the_kinds_of_an_account_is_answered_from_its_own_page(shipped: Engine) -> None:
    answer = asyncio.run(shipped.answer("which savings accounts do you offer"))
    assert answer.sources and answer.sources[0].id == "savings-accounts", (answer.sources, answer.text)
    assert "Basic Savings" in answer.text and "Money Market" in answer.text, answer.text


def test_a_curated_answer_is_verbatim_only_when_it_answers_the_question(selector: SentenceSelector) -> None:
    entry = Passage(
        "kb-1", "faq", "wires", "Wires", None, "How much is a wire?", "An outgoing wire costs $45.", "faq/bank.jsonl"
    )
    assert selector.verbatim_fits("how much is a wire", hit(entry, 0.9), [hit(entry, 0.9)])
    assert not selector.verbatim_fits(
        "how much is a wire and whats the cutoff time", hit(entry, 0.9), [hit(entry, 0.9)]
    )
    basic = Passage("kb-2", "faq", "savings", "Savings", None, "Fee on Kestrel Basic Savings?", "It is $5.")
    assert not selector.verbatim_fits("fee on high yield savings?", hit(basic, 0.9), [hit(basic, 0.9)])
    assert not selector.verbatim_fits("when can i use a deposit", external(0.9), [external(0.9), hit(WIRES, 0.8)])
    change = Passage(
        "kb-3", "faq", "pins", "PINs", None, "How do I change my PIN?", "Change your PIN in the app under Change PIN."
    )
    assert selector.verbatim_fits("how can i change my pin", hit(change, 0.9), [hit(change, 0.9)])
    assert not selector.verbatim_fits("forgot my pin, how do i get a new one", hit(change, 0.9), [hit(change, 0.9)])
    # two parts asking the same aspect (two fees): the entry must name what each part is about
    annual = Passage("kb-4", "faq", "cards", "Cards", None, "Annual fee on the card?", "The card's annual fee is $95.")
    assert not selector.verbatim_fits(
        "whats the annual fee on the card, and whether it charges a fee on purchases overseas",
        hit(annual, 0.9),
        [hit(annual, 0.9)],
    )
    assert selector.verbatim_fits(
        "is there an annual fee on the card, and how much is the annual fee", hit(annual, 0.9), [hit(annual, 0.9)]
    )


# ------------------------------------------------------------------ the shipped knowledge base, end to end
@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Engine]:
    """The engine over the shipped knowledge base: the project's index when current, else one built here."""
    project_data = Path(os.environ.get("CHATBOT_DATA_DIR", PROJECT_ROOT / "var"))
    knowledge = PROJECT_ROOT / "knowledge_base"
    defaults = Settings()
    data_dir = project_data
    if is_stale(knowledge, project_data, defaults.embedding_model, defaults.chunk_max_tokens):
        data_dir = tmp_path_factory.mktemp("shipped")
        build_index(knowledge, data_dir, embedder, defaults.chunk_max_tokens, progress=False)
    settings = Settings(
        data_dir=data_dir,
        knowledge_dir=knowledge,
        generation_enabled=False,
        nlu_dir=Settings(data_dir=project_data).resolved_nlu_dir,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'unused.db'}",
    )
    engine = Engine(settings)
    engine.warm_up()
    yield engine
    engine.close()


def ask(engine: Engine, text: str) -> AnswerObject:
    return asyncio.run(engine.answer(text))


def test_a_wire_question_asking_fee_and_cutoff_gets_both(shipped: Engine) -> None:
    answer = ask(shipped, "i want to wire 5k to my brother in mexico, whats the fee and is there a cutoff time?")
    assert answer.kind in {"extractive", "faq"}
    assert "$45" in answer.text
    assert "3:00 p.m." in answer.text


def test_the_premier_checking_fee_is_premiers_not_everydays(shipped: Engine) -> None:
    answer = ask(shipped, "whats the monthly fee for premier checking")
    assert "$25" in answer.text
    assert "$10 monthly" not in answer.text and "Everyday" not in answer.text


def test_savings_comparison_never_puts_basic_savings_fee_on_high_yield(shipped: Engine) -> None:
    answer = ask(
        shipped, "What's the difference between Basic Savings and High-Yield Savings, and which has no monthly fee?"
    )
    assert answer.kind in {"extractive", "faq"}
    for sentence in answer.text.split(". "):
        if "High-Yield" in sentence and "Basic" not in sentence:
            assert "$5" not in sentence, answer.text
    assert "$0" in answer.text or "no monthly fee" in answer.text.lower()


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("is there cash back on the secured visa", "1% cash back"),
        ("any cash back if i use the secured card", "1% cash back"),
        ("can i transfer the balance from my other credit card onto the secured one", "does not offer balance"),
    ],
)
def test_what_a_card_earns_or_does_not_offer_is_answered(shipped: Engine, question: str, fact: str) -> None:
    answer = asyncio.run(shipped.answer(question))
    assert fact in answer.text, answer.text


def test_check_availability_is_the_banks_policy_not_ask_cfpbs(shipped: Engine) -> None:
    answer = ask(shipped, "how long before a check i deposit is available")
    assert "$225" in answer.text
    assert "next business day" in answer.text
    assert all(not s.id.startswith("cfpb-") for s in answer.sources)


def test_how_often_one_can_withdraw_from_a_named_savings_account_gets_the_free_withdrawals(shipped: Engine) -> None:
    answer = ask(shipped, "how often can i pull money out of my high yield savings account per month")
    assert "6 free withdrawals" in answer.text, answer.text
    assert "APY" not in answer.text  # the product's name asked nothing about its rate


@pytest.mark.parametrize(
    ("question", "right", "wrong"),
    [
        # incoming international ($20), not the outgoing ($45) or the domestic incoming ($15) fee
        ("my cousin in portugal wants to wire me money, what does that cost me?", "$20", ["$15", "$45"]),
        ("whats the daily limit for wiring money to canada", "$25,000", ["$50,000"]),
        ("what's the cutoff to send a wire to germany", "3:00 p.m.", ["5:00 p.m.", "6:00 p.m."]),
        ("how late can i send a wire to another bank in the us today", "5:00 p.m.", ["3:00 p.m.", "6:00 p.m."]),
        ("someone is sending me a wire from another US bank, is there a fee", "$15", ["$30", "$45"]),
    ],
)
def test_a_wire_gets_the_figures_of_its_own_kind(shipped: Engine, question: str, right: str, wrong: list[str]) -> None:
    """Domestic and international, outgoing and incoming wires have different fees, limits and
    cut-offs, in sentences that read alike: the customer gets the figure of the kind they mean."""
    answer = ask(shipped, question)
    assert right in answer.text, answer.text
    assert not [figure for figure in wrong if figure in answer.text], answer.text


# ------------------------------------------------------------------ not paying for what is thrown away
def test_the_generator_is_skipped_where_its_text_would_be_thrown_away(selector: SentenceSelector) -> None:
    close = [hit(WIRES, 0.8)]
    assert selector.generator_fits("how much is a wire", close, min_score=0.69)
    assert not selector.generator_fits("how much is a wire", [hit(WIRES, 0.6)], min_score=0.69)  # not confident
    assert not selector.generator_fits("how much is a wire", [external(0.9), hit(WIRES, 0.8)], min_score=0.69)
    assert not selector.generator_fits("how much is a wire and what time is the cutoff", close, min_score=0.69)
    assert not selector.generator_fits("basic savings or high yield savings fee", close, min_score=0.69)


class SlowWorker:
    """A generator that writes ``first`` at once, then nothing for a long time."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.calls = 0

    async def stream(self, messages: object, max_new_tokens: int) -> AsyncIterator[str]:
        self.calls += 1
        if self.first:
            yield self.first + " "
        await asyncio.sleep(60)
        yield "Never sent."

    def stop(self) -> None:
        pass


LATE_FIRST = "You can send an international wire in the Kestrel mobile app."


def _slow_engine(
    shipped: Engine, monkeypatch: pytest.MonkeyPatch, worker: SlowWorker, breaker: GenerationBreaker
) -> None:
    monkeypatch.setattr(shipped, "worker", worker)
    monkeypatch.setattr(shipped, "breaker", breaker)
    changes = {"generation_budget_ms": 300, "generation_min_score": 0.0, "generation_enabled": True}
    monkeypatch.setattr(shipped, "settings", shipped.settings.model_copy(update=changes))


def _ask_wire(shipped: Engine) -> AnswerObject:
    question = "how do i send a wire to another country"
    return asyncio.run(shipped.answer(question, options=EngineOptions(faq_route=False)))


@pytest.mark.parametrize("first", [LATE_FIRST, ""])
def test_generation_past_its_time_budget_gives_the_extractive_answer(
    shipped: Engine, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    worker = SlowWorker(first)
    _slow_engine(shipped, monkeypatch, worker, GenerationBreaker(window=0))
    started = time.perf_counter()
    answer = _ask_wire(shipped)
    assert time.perf_counter() - started < 20
    assert worker.calls == 1
    assert answer.kind == "extractive", answer.text
    assert answer.text != first and "wire" in answer.text.lower()
    assert answer.sources and all(not s.id.startswith("cfpb-") for s in answer.sources)


def test_generation_that_keeps_running_late_is_skipped_until_a_probe_finishes_in_time(
    shipped: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    worker = SlowWorker(LATE_FIRST)
    _slow_engine(shipped, monkeypatch, worker, GenerationBreaker(window=2, cooldown_s=60, clock=lambda: now[0]))
    assert [_ask_wire(shipped).kind for _ in range(2)] == ["extractive", "extractive"]
    assert worker.calls == 2
    skipped = _ask_wire(shipped)  # both ran late: the generator is not started
    assert (skipped.kind, worker.calls) == ("extractive", 2)
    now[0] = 61.0  # after the cooldown one probe is tried; it runs late too, so skipping resumes
    assert _ask_wire(shipped).kind == "extractive" and worker.calls == 3
    _ask_wire(shipped)
    assert worker.calls == 3


# ------------------------------------------------------------------ the next message after an answer
@pytest.mark.parametrize(
    ("before", "cited", "question", "expected", "fact"),
    [
        ("can i get a virtual card number for online shopping", "digital-wallets-and-virtual-cards", "do they expire",
         "digital-wallets-and-virtual-cards", "expiration"),
        ("does the secured visa help me build credit", "secured-credit-card", "when would i get my deposit back",
         "secured-credit-card", "10 business days"),
    ],
)  # fmt: skip
def test_the_next_message_stays_on_the_document_just_cited(
    shipped: Engine, before: str, cited: str, question: str, expected: str, fact: str
) -> None:
    answer = asyncio.run(shipped.answer(question, history=[before], cited=[cited]))
    assert expected in [s.id for s in answer.sources], (answer.sources, answer.text)
    assert fact in answer.text, answer.text


def test_a_follow_up_is_answered_by_what_it_asks_not_by_the_question_before_it(shipped: Engine) -> None:
    """Rewritten with its subject, "do withdrawals at an atm count towards that" is mostly the question
    before it (how many withdrawals), whose answer was already given; the sentences are chosen by what
    the customer asks now too."""
    before = "how often can i take money out of my high yield savings each month"
    first = ask(shipped, before)
    answer = asyncio.run(
        shipped.answer(
            "do withdrawals at an atm count towards that", history=[before], cited=[s.id for s in first.sources]
        )
    )
    assert "don't count" in answer.text, answer.text


def test_a_new_subject_still_wins_over_the_document_just_cited(shipped: Engine) -> None:
    question = "what does it cost to send an international wire"
    answer = asyncio.run(
        shipped.answer(question, history=["does the secured visa help me build credit"], cited=["secured-credit-card"])
    )
    assert answer.sources and answer.sources[0].id == "international-wire-transfers", (answer.sources, answer.text)


def test_the_smallest_and_largest_loan_asked_is_a_limit_and_quoted() -> None:
    """ "smallest"/"biggest" ask a limit, and "loans range from $X to $Y" states one."""
    assert "limit" in aspects_of("whats the smallest and biggest personal loan")
    assert answers_aspect("Kestrel personal loans range from $3,000 to $50,000.", "limit")


def test_a_filler_sentence_does_not_bring_a_rate_nobody_asked_for() -> None:
    """Only rates are held back, and never from a unit that also answers what was asked."""
    assert _unasked_figures(frozenset({"rate", "amount"}), frozenset({"limit"}))
    assert not _unasked_figures(frozenset({"rate", "limit"}), frozenset({"limit"}))
    assert not _unasked_figures(frozenset({"amount"}), frozenset({"limit"}))
    assert not _unasked_figures(frozenset({"rate"}), frozenset())  # nothing read from the question: no rule
    assert "rate" in aspects_of("which savings account pays the most")


def test_a_sentence_about_the_page_itself_is_never_quoted() -> None:
    passage = Passage(
        id="closing#intro",
        source_id="closing",
        kind="chunk",
        title="Closing an account",
        url=None,
        text="Closing an account\nThis page explains how to close an account. Call 1-800-555-0142 to close it.",
    )
    texts = [u.text for u in passage_units(passage, Catalogue([]))]
    assert texts == ["Call 1-800-555-0142 to close it."]


def test_a_dollar_limit_is_not_a_price() -> None:
    """ "Per day $2,500" does not answer "is there a fee to send"; "free to send" and a fee do."""
    assert not answers_aspect("Kestrel Everyday Checking: Per day $2,500, Per rolling 30 days $10,000.", "amount")
    assert answers_aspect("Kestrel QuickPay is free to send and receive.", "amount")
    assert answers_aspect("Each one after the 6th costs $10, up to 6 per cycle.", "amount")
    assert "limit" in aspects_of("how much could i borrow on a heloc")


def test_a_fee_named_before_its_figure_is_a_price() -> None:
    assert answers_aspect("Kestrel Secured card — Foreign transaction fee: 3% of each transaction.", "amount")
    assert answers_aspect("Kestrel Secured card — Late payment fee: up to $40.", "amount")
    # ...but a rebate "up to $20" is a limit, not what something costs
    assert not answers_aspect("We rebate other ATM owners' fees up to $20 per statement cycle.", "amount")


def test_last_asks_a_duration_only_as_a_verb() -> None:
    assert "duration" in aspects_of("will the promo rate last past june")
    assert "duration" not in aspects_of("my wife lost her job last month, can we pause the loan payments")


def test_an_email_address_answers_where_to_write() -> None:
    assert answers_aspect("Forward suspicious emails to phishing@kestrelbank.example and delete them.", "contact")
    assert not answers_aspect("Delete suspicious emails without opening their links.", "contact")


def test_how_much_interest_asks_a_rate_not_a_fee() -> None:
    """ "how much … charge" beside "interest" is the rate's quantity: an APR answers it, a cash advance fee doesn't."""
    assert aspects_of("how much interest does the secured card charge if i carry a balance") == {"rate"}
    assert {"amount", "rate"} <= aspects_of("what is the apr and the annual fee")


def test_the_least_one_can_start_with_is_a_minimum_in_dollars_or_a_share() -> None:
    assert "minimum" in aspects_of("whats the least i can open it with")
    assert answers_aspect("Kestrel Money Market: $1,000.", "minimum")
    assert answers_aspect("Conventional mortgages need at least 5% down.", "minimum")
    assert not answers_aspect("You can fund it with a debit card from another bank (up to $500).", "minimum")


def test_a_per_day_limit_is_not_a_duration_and_cents_are_a_price() -> None:
    assert not answers_aspect("You can send up to $25,000 per business day online.", "duration")
    assert answers_aspect("Most international wires arrive in 1 to 5 business days.", "duration")
    assert answers_aspect("Points redeemed for cash back are worth 0.5 cents each.", "amount")


def test_what_should_i_do_and_what_to_write_ask_how() -> None:
    assert "howto" in aspects_of("my cd matures next week and i want the cash, what should i do")
    assert "howto" in aspects_of("what am i supposed to write on the back")
    assert answers_aspect('Endorse the back with your signature and the words "For deposit only".', "howto")


def test_who_pays_for_charges_one_did_not_make_is_not_a_price_question() -> None:
    assert aspects_of("if a thief already used it am i stuck paying for that") == {"liability"}
    assert "liability" in aspects_of("will i be held responsible for the charges")
    assert "amount" in aspects_of("do i have to pay a fee for that")
    assert answers_aspect(
        "You are not responsible for unauthorized card transactions you report promptly.", "liability"
    )
    assert not answers_aspect(
        "We send a replacement card with a new number, free, in 7 to 10 business days.", "liability"
    )


def test_free_said_two_ways_is_one_fact_not_a_denial() -> None:
    first = "We send a replacement card with a new number, free, in 7 to 10 business days."
    assert _restates("We send a replacement card at no charge in 7 to 10 business days.", first)
    assert not _restates("We send a replacement card for $25 in 2 business days.", first)


def test_a_day_that_is_a_period_asks_a_limit_and_a_time_of_day_asks_a_clock() -> None:
    assert aspects_of("whats the most i can deposit in a day on everyday checking") == {"limit"}
    assert "clock" in aspects_of("if i pay at 7:30pm on the due date is it on time")


def test_the_same_figure_for_another_product_is_not_a_restatement(shipped: Engine) -> None:
    """Both cards' APRs are asked; a travel-card sentence repeating a secured-card figure (both cash
    advance APRs are 29.99%) is still the travel card's fact, and the one naming what was asked wins."""
    answer = ask(shipped, "whats the purchase apr on the travel card vs the secured card")
    assert "27.49%" in answer.text and "21.24%" in answer.text, answer.text


def test_a_limit_on_what_one_receives_is_not_an_answer_about_sending() -> None:
    assert kinds_about("There's no limit on what you can receive.") == {"direction": "incoming"}


@pytest.mark.parametrize(
    ("question", "highest"),
    [
        ("which term currently pays the most", True),
        ("which cd presently offers the highest yield", True),
        ("whats your best savings rate", True),
        ("whats the lowest apr on a car loan", False),
        ("what is the most i can send a day", False),  # a limit, not a rate
        ("which card has the best rewards", False),
    ],
)
def test_the_highest_rate_is_read_from_the_question(question: str, highest: bool) -> None:
    assert bool(_HIGHEST.search(question)) is highest


def test_a_question_for_the_highest_rate_gets_the_row_that_has_it(shipped: Engine) -> None:
    """The closest table row is whichever the embedding likes; the customer asked for the highest."""
    answer = ask(shipped, "thinking of a cd, which term pays the most right now?")
    assert "4.10%" in answer.text, answer.text


def test_a_section_heading_the_question_says_helps_choose_the_document() -> None:
    """'add my son as an authorized user on my card' says the heading "Authorized users on Kestrel credit
    cards" of the shared card page, while the card's own page is only a little closer overall."""
    shared = Passage(
        "card-payments#users",
        "chunk",
        "card-payments",
        "Card payments — Authorized users on Kestrel credit cards",
        None,
        "Add an authorized user aged 13 or older in the app.",
    )
    own = Passage(
        "rewards#earning", "chunk", "rewards", "Rewards card — Earning cash back", None,
        "The rewards card earns 2% on every purchase.",
    )  # fmt: skip
    selector = SentenceSelector(lambda texts: np.zeros((len(texts), 1)), CATALOGUE, [shared, own])
    hits = [hit(own, 0.75), hit(shared, 0.70)]
    question = "can i add my son as an authorized user on my rewards card"
    assert selector.best_document(hits, frozenset(), question=question)[0] == "card-payments"
    assert selector.best_document(hits, frozenset())[0] == "rewards"  # without the question's words
    assert selector.best_document(hits, frozenset(), question="how much cash back do i earn")[0] == "rewards"


def test_a_sentence_that_only_adds_to_the_one_before_is_quoted_with_it(embedder: Embedder) -> None:
    closing = chunk(
        "closing#how",
        "Closing — How to close an account\nIn the app, go to Account settings > Close account. "
        "You can also call 1-800-555-0142 or visit any branch to close it. Closing is free after 90 days.",
    )
    text = quote(embedder, closing, "can i call or visit a branch to close it", 1)
    assert text.startswith("In the app, go to Account settings"), text
    assert "You can also call" in text


def test_a_place_the_customer_names_finds_the_sentence_naming_it(embedder: Embedder) -> None:
    """ "how long will a wire to iran take" is answered by the sanctions sentence naming Iran, beside the time."""
    rules = chunk(
        "wires#rules",
        "Wires — Wire rules\nA wire may be rejected if the recipient's name does not match the account. "
        "We cannot send wires involving countries under US sanctions, including Cuba, Iran and Syria. "
        "Most wires arrive in 1 to 5 business days. Wires sent by 3 p.m. go out the same day.",
    )
    assert "sanctions" in quote(embedder, rules, "how long will a wire to iran take", 2)


@pytest.mark.parametrize(
    ("question", "ruled_out"),
    [
        ("why am i getting charged $5 EVERY month on my savings acct", {"checking"}),
        ("is there a monthly fee on checking", {"savings"}),
        ("move money from savings to checking, is there a fee", set()),  # both named
        ("i was checking my balance and saw a fee", set()),  # a verb
        ("is there a fee for checking balances at an atm on my savings", {"checking"}),  # a verb too
        ("whats the fee on kestrel everyday checking", set()),  # a product named: its own rules apply
    ],
)
def test_an_account_family_named_alone_rules_out_the_other(question: str, ruled_out: set[str]) -> None:
    assert CATALOGUE.families_ruled_out(question) == ruled_out


def test_the_section_the_previous_answer_quoted_is_preferred() -> None:
    """A follow-up is most likely about the section just quoted (``prefer`` names it by passage id): with two
    sections equally close, its sentence is the one quoted."""
    kept = chunk("cards#kept", "Cards — Card kept by an ATM\nWe send a replacement card in 7 to 10 business days.")
    stolen = chunk("cards#stolen", "Cards — Card stolen\nWe send a replacement card in 3 to 5 business days.")
    selector = SentenceSelector(lambda texts: np.zeros((len(texts), 1)), CATALOGUE, [kept, stolen], max_units=1)
    hits = [hit(kept, 0.70), hit(stolen, 0.70)]
    question = "when does the new card come"
    after_stolen = selector.select(question, hits, prefer=frozenset({"cards", "cards#stolen"}))
    after_kept = selector.select(question, hits, prefer=frozenset({"cards", "cards#kept"}))
    assert after_stolen is not None and "3 to 5" in after_stolen.text, after_stolen
    assert after_kept is not None and "7 to 10" in after_kept.text, after_kept


def test_an_entry_listing_the_named_products_figures_beside_its_siblings_is_not_verbatim() -> None:
    """ "the minimum deposit for Everyday Checking" is not answered by an entry giving every account's minimum
    (Premier Checking's $100 read as the answer); a question naming no product still is."""
    entry = Passage(
        "kb-1", "faq", "opening", "How much do I need to open an account?", None,
        "How much do I need to open an account?",
        answer="Kestrel Everyday Checking needs $25 and Kestrel Premier Checking needs $100, no fee to open either.",
    )  # fmt: skip
    row = chunk(
        "opening#minimums",
        "Opening — Minimum deposits\n- Kestrel Everyday Checking: $25\n- Kestrel Premier Checking: $100",
    )
    selector = SentenceSelector(lambda texts: np.ones((len(texts), 1)), CATALOGUE, [entry, row])
    hits = [hit(entry, 0.88), hit(row, 0.9)]
    assert not selector.verbatim_fits("What is the minimum deposit for Everyday Checking?", hits[0], hits)
    assert selector.verbatim_fits("how much do i need to open an account", hits[0], hits)
