"""The bank's term added to what retrieval reads, for what customers describe in other words."""

from __future__ import annotations

import pytest

from chatbot.nlu.lexicon import expand, spell_out


@pytest.mark.parametrize(
    "text",
    [
        "what do you charge if i pay for something with more than i have in checking",
        "i overspent on my card at the mall, is there a fee",
        "my balance is going to go negative tomorrow when rent comes out",
        "account shows -$45 now, what happens",
        "declined and i was only short by $6",
        "not enough money in my account and the payment went through anyway",
    ],
)
def test_an_overdraft_in_the_customers_words_gets_the_banks_term(text: str) -> None:
    assert expand(text) == f"{text} (overdraft)"


@pytest.mark.parametrize(
    "text",
    [
        "how do i pay more than the minimum on my credit card",
        "can interest rates go negative",
        "what is the overdraft fee",  # names it already
        "how much is a wire to mexico",
    ],
)
def test_other_messages_are_left_as_typed(text: str) -> None:
    assert expand(text) == text


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("how do i get my debit card onto my galaxy watch", "mobile wallet"),
        ("can i just tap with my phone at the register", "mobile wallet"),
        ("set up the card on my wife's iphone", "mobile wallet"),
        ("how do i get my debit card into google pay", "mobile wallet"),
        ("shop in spain asked if i want to pay in dollars or euros, which is better", "local currency"),
        ("should i let the atm charge me in usd or in the local money", "local currency"),
        ("got an email that says to click the link to unlock my account, real?", "phishing"),
        ("a text with a link to verify my card, i tapped it", "phishing"),
        ("quickpayed my roommate the wrong amount, can i undo it", "QuickPay"),
        ("can i zelle money to my mom from kestrel", "QuickPay"),
        ("i want to pay my roommate using just his phone number", "QuickPay"),
        ("can i send money to my mom with her email address", "QuickPay"),
        ("is the branch open on christmas eve", "branch hours"),
        ("what time does the one on broad st close", "branch hours"),
        ("what are your hours", "branch hours"),
        ("I can move my other card debt to it?", "balance transfer"),
        ("can i move the balance from my capital one card over to the cash rewards", "balance transfer"),
        ("doesnt the bank cover me if im short on a purchase", "overdraft"),
        ("why wont you let my account go a bit negative like other banks", "overdraft"),
        ("i need to send money to my son, he studies in japan", "international wire"),
        ("my cousin in brazil wants to send me 300 dollars, how", "international wire"),
        ("honestly things are tight, i got laid off last month. any options", "struggling to make payment"),
        ("im behind on my car payments", "struggling to make payment"),
        ("i cant make my mortgage payment this month", "struggling to make payment"),
        ("my money's been tight since march", "struggling to make payment"),
        (
            "the guy at the york branch helped me and was super patient, how do i tell his boss",
            "feedback or compliment an employee",
        ),
        (
            "the teller on 5th st was really kind to my dad, i want to compliment her",
            "feedback or compliment an employee",
        ),
    ],
)
def test_other_concepts_in_the_customers_words_get_the_banks_term(text: str, term: str) -> None:
    assert expand(text) == f"{text} ({term})"


@pytest.mark.parametrize(
    "text",
    [
        "can i change my phone number in the app",
        "where is the link to download my statements",  # a link asked for, not one in a message
        "how many dollars can i wire to mexico",
        "is there a limit on quickpay",  # names it already
        "i paid a bill by phone",
        "is walmart open on sundays",  # another business's hours
        "what time does the restaurant close",
        "can i close my account on saturday",
        "when i close it can you move the balance to my other account",
        # QuickPay named, a card used abroad, the customer abroad moving money at home
        "can i quickpay my friend in canada",
        "will my card work if i pay with it in mexico",
        "im in rome and need to transfer money from savings to checking",
        "im traveling to mexico next week, can i still transfer money in the app?",
        "can i get money out of an atm in mexico?",
        "how hard is it to open an account",  # "hard", not money being tight
        "the app was so slow today, how do i tell if my transfer went through",  # no one praised
        "i want to speak to the branch manager about a complaint",
        "the app is so great, let me know how to add a payee",  # praise of no person
        "Your rates are very nice, can you tell me how the CD works?",
        "can you let the manager know i'm disputing this charge",
        "can i make my payment by phone",
        "i can't make a payment in the app, it keeps erroring",
        "cash is hard to deposit at your atms",
        "im behind on my reading of the statement",
    ],
)
def test_nearby_wordings_are_left_as_typed(text: str) -> None:
    assert expand(text) == text


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("r u guys open saturdays", "are you guys open saturdays"),
        ("whats ur routing number pls", "whats your routing number please"),
        ("thank u.", "thank you."),
        # letters that are not shorthand: an abbreviation, a name
        ("can i wire money to the U.S. from abroad", "can i wire money to the U.S. from abroad"),
        ("R&D tax credit", "R&D tax credit"),
    ],
)
def test_chat_shorthand_is_spelled_out_for_retrieval(text: str, spelled: str) -> None:
    assert spell_out(text) == spelled
    assert expand(text).startswith(spelled)
