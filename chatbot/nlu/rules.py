"""What BANKING77 has no intent for, recognised by rules: emergencies and the customer's own account data.

The classifier knows card emergencies (a lost card, a payment not recognised), but not the ones
about the customer's access to the bank: someone signed in to their online banking, a caller who
got a one-time code out of them. Those read like attacks to the injection detector's similarity
("someone got into my online banking" is close to "how do I break into someone else's online
banking"), so they are recognised here, by the situation they report, and routed to the security
procedure before any refusal (``chatbot.dialogue.policy``).

The assistant cannot see anyone's accounts, so a request for the customer's own data ("what's my
balance", "did my rent go through") must be told so, with where to look. General questions about the
same things ("what is the difference between available and current balance") are answered from the
knowledge base: the rules below need the customer to ask for *their* figures or records, in the
first person, with a verb that asks to be told or shown them.

Rules, not a model: they cost microseconds, each one can be read and tested, and what they must not
match is measured by ``chatbot eval dialogue`` (flow rate on the ordinary dev questions).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatbot.schema import IntentRef

ACCOUNT_COMPROMISED = "account_compromised"
SHARED_SECURITY_CODE = "shared_security_code"
PAYMENT_SCAM = "payment_scam"
LOST_OR_STOLEN_PHONE = "lost_or_stolen_phone"
ACCOUNT_DATA = "account_data"
LOST_OR_STOLEN_CARD = "lost_or_stolen_card"
COMPROMISED_CARD = "compromised_card"
CASH_WITHDRAWAL_NOT_RECOGNISED = "cash_withdrawal_not_recognised"
CARD_PAYMENT_NOT_RECOGNISED = "card_payment_not_recognised"
CARD_SWALLOWED = "card_swallowed"

_GAP = r"[^.?!]{0,40}?"  # a few words, within one sentence
_SOMEONE = (
    r"(?:someone|somebody|some one|a stranger|strangers|a hacker|hackers|a scammer|scammers|a fraudster|"
    r"fraudsters|a thief|thieves|they|he|she|my ex|a person|people)"
)
_ACCESS = (
    r"(?:got|gotten|get|getting|broke|broken|logged|log|logging|signed|sign|signing|hacked|"
    r"been)\s+(?:in(?:to)?|on(?:to)?|in\s+to)|accessed|hacked|has access to|had access to|took over|taken over|"
    r"is using|was using|has been using|changed the password (?:on|of|for)|"
    r"(?:is|was|were|are|has been|have been) in(?:side)?"
)
_BANKING = r"(?:online banking|mobile banking|(?:bank(?:ing)?\s+)?account|banking app|kestrel app|app|login|profile)"
_NOT_I = r"(?:don'?t|do not|didn'?t|did not|never)"  # how a customer denies having done something
# Characters within one sentence; the point of an amount ("$89.99") does not end it.
_SPAN = r"(?:[^.?!]|(?<=\d)\.(?=\d))"
_UNRECOGNISED = rf"{_NOT_I}\s+(?:recogni[sz]e|know|make|made|do|did)|wasn'?t me|not me"

_GAVE = (
    r"(?:gave|shared|told|sent|read|texted|typed|entered|provided|forwarded|put in|clicked|"
    r"(?:replied|responded|answered|wrote back|texted back)(?:\s+back)?\s+with)"
)
_CREDENTIAL = (
    r"(?:codes?|otp|one[- ]time (?:pass)?codes?|passcodes?|verification codes?|security codes?|passwords?|pins?|"
    r"card numbers?|card details|log-?ins?|log-?in details|credentials|username)\b"
)
# What only an impostor of the bank asks for: money moved to a "safe account", remote access.
_SCAMMERS_ASK = r"\b(?:safe|protected|secure) account\b|\bremote (?:access|into|in)\b"
# Signs of a scam (security.md: what Kestrel Bank never asks): with something the customer did.
_SCAM = re.compile(
    r"\b(?:claim(?:ed|ing)|pretend(?:ed|ing)|said|saying|says)\b[^.?!]{0,20}?\b(?:from|to be|was|were|is|are)\b"
    r"[^.?!]{0,15}?\b(?:kestrel|the bank|your bank|fraud (?:team|department)|security team|tech support)\b"
    rf"|{_SCAMMERS_ASK}|(?<!\bno )(?<!\bnot a )\bscam(?:med|mer)?\b"
    # "a man called me, caller ID said Kestrel Bank": a spoofed number is how impostors start
    r"|\bcaller[- ]?id\b[^.?!]{0,20}?\b(?:kestrel|the bank|your bank|your number|the bank'?s number)\b",
    re.I,
)
# Credentials typed into a site that turned out fake: "clicked the link and typed in my online banking login
# and password... then realized the site was fake" (the bank's phishing procedure, not a how-to).
_ENTERED = re.compile(
    rf"\b(?:typed|entered|filled)\s+(?:in\s+|out\s+)?(?:all\s+)?(?:my\s+)?(?:[\w-]+\s+){{0,3}}?{_CREDENTIAL}",
    re.I,
)
# ...that the customer found out was not the bank: "then realized the site was fake", "i think it was phishing"
# (not a question, "is the atm fake?", nor a denial, "no scam, i just forgot it")
_DECEIVED = re.compile(
    r"\b(?:was|were|turned out(?: to be)?|realiz\w*|realis\w*|must have been|it'?s|its)\s+(?:\w+\s+){0,3}?"
    r"(?:an?\s+)?(?:fake|phish\w*|scam\w*|bogus|spoof\w*|not (?:real|legit|you|kestrel))\b"
    r"|\bwasn'?t (?:real|legit|you|kestrel)\b|\b(?:got|been|was) (?:phished|scammed)\b",
    re.I,
)
_DID = re.compile(
    r"\bi\s+(?:already\s+|just\s+)?(?:gave|sent|paid|told|shared|clicked|transferred|wired|installed|moved|let|read|"
    r"typed|entered|put)\b",
    re.I,
)

EMERGENCY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        SHARED_SECURITY_CODE,
        re.compile(
            # "i gave him the code from my text", "read a verification code to someone claiming to be kestrel"
            rf"(?:^\s*|\bi\s+(?:just\s+|already\s+|accidentally\s+|stupidly\s+)?){_GAVE}\b"
            rf"[^.?!]{{0,40}}?\b{_CREDENTIAL}"
            # "they talked me into giving them my online banking login", "told the caller my pin"
            rf"|\b(?:giving|gave|give|shared|sharing|told|telling|sent|sending|read|reading)\s+(?:him|her|them|someone|"
            rf"somebody|the caller|a caller|a stranger|the guy|a guy|the scammer|a scammer)\s+{_GAP}\b{_CREDENTIAL}"
            # "they asked me to read back the 6 digit code they texted me so i did"
            rf"|\b(?:they|he|she|someone|somebody|caller|guy|scammer|fraudster)\b[^.?!]{{0,80}}?"
            rf"\b(?:asked|told|wanted|got)\s+me\s+to\s+(?:read|give|send|share|tell|text|forward|confirm)\b"
            rf"[^.?!]{{0,60}}?\b{_CREDENTIAL}[^.?!]{{0,40}}?\b(?:so|and|which)\s+i\s+did\b"
            # "i got phished and they have my password" (a scam with nothing given away is not this: "i got
            # scammed on marketplace and sent money by quickpay" is about the payment, ``payment_scam``)
            r"|\b(?:scammed|phished|conned|tricked|defrauded)\b[^.?!]{0,60}?\b(?:codes?|otp|passwords?|pins?|"
            r"card (?:numbers?|details)|log-?in|credentials)\b"
            r"|\b(?:scammer|fraudster|fake (?:bank|kestrel)\w*|"
            r"pretend(?:ed|ing) to be (?:from )?(?:the bank|kestrel))\b"
            r"[^.?!]{0,80}?\bi\s+(?:gave|sent|paid|told|shared|clicked|transferred|wired|installed|moved)\b"
            r"|\bi\s+(?:gave|sent|paid|told|shared|transferred|wired|moved)\b[^.?!]{0,60}?\b(?:a |the )?"
            r"(?:scammer|fraudster|fake (?:bank|kestrel)\w*|someone pretending to be (?:from )?(?:the bank|kestrel))",
            re.I,
        ),
    ),
    (
        ACCOUNT_COMPROMISED,
        re.compile(
            rf"\b{_SOMEONE}\s+{_GAP}\b(?:{_ACCESS})\s+{_GAP}\b(?:my|our)\s+(?:\w+\s+)?{_BANKING}\b"
            rf"|\b(?:my|our)\s+(?:\w+\s+)?{_BANKING}\s+(?:was|has been|have been|got|is|been|may have been)\s+"
            r"(?:hacked|compromised|taken over|broken into|breached|accessed by someone)"
            r"|\bi(?:'ve| have| was| got| think i(?:'ve| have)? (?:been|got))? (?:been )?hacked\b"
            r"|\b(?:log-?ins?|sign-?ins?|logged in|signed in|log in attempts?|access|new device)\b"
            rf"{_GAP}\b(?:{_UNRECOGNISED})"
            r"|\bunrecogni[sz]ed\s+(?:log-?ins?|sign-?ins?|devices?|access|activity)\b"
            # "theres a sign in on my account from a device i dont recognize"
            r"|\b(?:a|an|the|new|strange|weird|unknown|suspicious)\s+(?:sign|log)[- ]?ins?\b"
            rf"{_GAP}\bdevices?\s+(?:that\s+)?(?:i|we)\s+{_NOT_I}\s+(?:recogni[sz]e|know)"
            # "an alert about a sign-in to my online banking from a device I do not own" (a sign-in that happened)
            rf"|\b(?:sign|log)[- ]?ins?\b{_GAP}\bfrom\s+(?:a|an)\s+(?:\w+\s+)?devices?\s+(?:that\s+)?(?:i|we)\s+"
            rf"{_NOT_I}\s+own\b"
            # "is someone in my online banking??"
            rf"|\b(?:is|are|was|were|has|have)\s+{_SOMEONE}\s+(?:been\s+)?(?:in|into|inside|using|accessing|"
            rf"logged into|logging into|signed into|signing into)\s+(?:my|our)\s+(?:\w+\s+)?{_BANKING}\b"
            rf"|\b(?:someone|somebody|they|a hacker)\s+{_GAP}\bchanged\b{_GAP}"
            r"\b(?:password|email|phone number|username)\b"
            rf"|\b(?:password|email|phone number)\s+(?:was|has been|got)\s+changed{_GAP}(?:{_UNRECOGNISED})"
            # the change and the denial in sentences of their own: "my password was changed and i got an email
            # saying a new device was added. I DID NOT DO THIS", "a new device signed into my online banking and
            # it wasnt me"
            r"|\b(?:(?:password|e-?mail|phone number|username)\s+(?:was|has been|got|were)\s+(?:changed|reset)|"
            r"new (?:device|phone|login|log-?in|sign-?in)s?\s+(?:was\s+|were\s+|has been\s+|got\s+)?"
            r"(?:added|signed|logged|registered|connected|used))\b"
            # (the denial is of the change itself: not "i didnt change anything", "i never requested the code")
            r".{0,100}?\b(?:(?:i|we)\s+(?:did not|didn'?t|never)\s+(?:do|did|make|made|add|added|change|changed|"
            r"authori[sz]e|authori[sz]ed)\s+(?:this|that|it|them)|(?:it|that|this)\s+(?:wasn'?t|was not)\s+(?:me|us)|"
            r"not me)\b"
            # "there was a new sign-in to my online banking from a device in another state. That was not me."
            # (told, not asked: "does a new sign-in trigger a text? ... someone who's not me" is a question)
            r"|\b(?:new|strange|unknown|suspicious)\s+(?:sign|log)[- ]?ins?\s+(?:to|on|into|in)\s+my\b[^?]{0,100}?"
            r"[.!]\s*(?:that|it|this)\s+(?:was not|wasn'?t)\s+me\b",
            re.I,
        ),
    ),
    (
        LOST_OR_STOLEN_PHONE,
        re.compile(
            r"\b(?:phone|mobile|iphone|android|cell)\b[^.?!]{0,30}?\b(?:stolen|lost|missing|nicked|taken|snatched)\b"
            r"[^.?!]{0,60}?\b(?:app|online banking|mobile banking|banking|kestrel)\b"
            # "someone snatched my phone" (not "i grabbed my phone to check my balance")
            rf"|(?:\b(?:stole|steal|lost|took|nicked|left)|(?:{_SOMEONE}|\b(?:a|some|the)\s+\w+)\s+(?:\w+\s+)?"
            r"(?:snatched|grabbed|swiped))\s+my\s+(?:phone|mobile|iphone|android|cell)\b"
            r"[^.?!]{0,60}?\b(?:app|online banking|mobile banking|banking|kestrel|apple pay|google pay|wallet|card)\b",
            re.I,
        ),
    ),
]

# Card emergencies the classifier knows too, in words it can miss ("someones using my card RIGHT NOW",
# "uh oh my card's gone, i think someone grabbed it"): used only when it names no flow itself.
_KIND = r"(?:(?:debit|credit|kestrel|visa|travel|cash rewards|rewards|secured)\s+)*"  # "my travel card"
CARD_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        CASH_WITHDRAWAL_NOT_RECOGNISED,
        re.compile(
            rf"\b{_SOMEONE}s?\s+{_GAP}\b(?:took|taken|withdrew|withdrawn|pulled|got)\b"
            r"[^.?!]{0,30}?\b(?:out of|from)\s+"
            r"(?:an?\s+|the\s+)?(?:atm|cash machine|cashpoint)"
            # "three withdraw from ATM I never make, but my card is still with me"
            r"|(?:\b(?:atm|cash machine|cashpoint)\s+(?:cash\s+)?withdraw\w*|\bwithdraw\w*\s+(?:\w+\s+){0,3}?"
            r"(?:from|at|out of)\s+(?:an?\s+|the\s+)?(?:atm|cash machine|cashpoint)s?\b)"
            # (the denial ends its clause, "…I never make, but", "…that i didnt make": not "if i dont take my card")
            rf"{_SPAN}{{0,60}}?\b(?:(?:i|we)\s+)?(?:have\s+|had\s+)?{_NOT_I}\s+(?:make|made|take|took|recogni[sz]e|authori[sz]e)"
            r"(?:\s+(?:them|those|these|it|that|any of (?:them|those|these)))?"
            r"(?=\s*(?:[,.;!?]|$)|\s+(?:but|and|yesterday|today|last|this|on|at)\b)",
            re.I,
        ),
    ),
    (
        COMPROMISED_CARD,
        re.compile(
            rf"\b(?:{_SOMEONE}|someones)\s+(?:\w+\s+)?(?:is using|are using|has been using|used|using|got|has|have|"
            rf"copied|cloned)\s+my\s+{_KIND}(?:card\s+)?card(?:'s)?(?:\s+(?:number|details|info))?\b"
            # "someone just bought like 900 dollars of stuff with my card"
            r"|\b(?:someone|somebody|some one|a stranger|a hacker|a scammer|a fraudster|a thief|thieves)\s+(?:\w+\s+)?"
            r"(?:bought|spent|charged|ordered|paid for|made (?:purchases|charges))\b"
            rf"{_SPAN}{{0,50}}?\b(?:with|on|using)\s+my\s+{_KIND}card\b",
            re.I,
        ),
    ),
    (
        # Charges on a card that the customer did not make, in the words people use ("charges on my
        # card from some website i never heard of, i didnt buy anything"); a payment taken by direct
        # debit or ACH is another flow, left to the classifier.
        CARD_PAYMENT_NOT_RECOGNISED,
        re.compile(
            # "a charge on my debit": the card, unless it says direct debit
            # "3 charges from some website i have never used on my debit card", "a text asking if a
            # purchase of $640 was me. it was NOT me"
            r"^(?=.*\b(?:cards?|statement|debit|purchases?)\b)(?!.*\b(?:ach|direct debit|standing order|atm|cash)\b)"
            rf".*\b(?:charges?|payments?|transactions?|purchases?)\b{_SPAN}{{0,90}}?"
            rf"(?:\b(?:(?:i|we)\s+)?(?:have\s+|had\s+)?{_NOT_I}\s+(?:make|made|buy|bought|"
            r"authori[sz]ed?|order(?:ed)?|purchased?|recogni[sz]e|heard of|know|used|shopped (?:at|with)|been to)\b"
            r"|\b(?:wasn'?t me|weren'?t me|not mine)\b|\bno idea what (?:that|this|it) (?:is|was)\b)"
            r"|^(?=.*\b(?:cards?|statement|debit|purchases?)\b)(?!.*\b(?:ach|direct debit|standing order|atm|cash)\b)"
            r".*\b(?:charges?|transactions?|purchases?)\b.{0,120}?\b(?:it|that|this|they|those)\s+"
            r"(?:was|were|is|are)\s+not\s+me\b"
            # the denial in the next sentence: "a $450 charge ... on my credit card. i didnt buy anything"
            r"|^(?=.*\bcards?\b)(?!.*\b(?:ach|direct debit|standing order|atm|cash)\b)"
            r".*\b(?:charges?|payments?|transactions?|purchases?)\b.{0,160}?"
            r"\b(?:(?:i|we)\s+)?(?:didn'?t|did not|never)\s+(?:buy|order|make|authori[sz]e)\s+"
            r"(?:anything|this|that|them|those|these|any of (?:it|them|those))\b",
            re.I | re.S,
        ),
    ),
    (
        LOST_OR_STOLEN_CARD,
        re.compile(
            rf"\bmy\s+{_KIND}(?:card|wallet|purse)(?:'s|s)?\s+"
            r"(?:was\s+|got\s+|has been\s+|is\s+|just\s+|been\s+)*(?:stolen|gone|nicked|snatched|pickpocketed)\b"
            rf"|\bmy\s+{_KIND}(?:card|wallet|purse)s?\s+(?:was|got|has been|have been|were)\s+taken\b"
            r"(?!\s+(?:by|in|at)\s+(?:the|an|a)\s+(?:atm|machine|cash))"
            # "card got stolen and i think they know my pin": the customer's own, said without "my"
            rf"|^\W*(?:{_KIND})?(?:card|wallet|purse)\s+(?:was\s+|got\s+|has been\s+|just\s+)+"
            r"(?:stolen|nicked|snatched|pickpocketed)\b"
            rf"|\b(?:stole|steal|stealed|grabbed|nicked|snatched|pickpocketed|took)\s+my\s+{_KIND}"
            r"(?:card|wallet|purse)\b(?!\s+(?:numbers?|information|info|details))"
            # someone "swiped my wallet" (not "i swiped my card")
            r"|\b(?:someone|somebody|they|he|she|(?:a|some|the)\s+\w+)\s+(?:\w+\s+)?swiped\s+my\s+(?:wallet|purse)\b"
            # "i cant find my credit card anywhere", "lost my card somewhere in rome"
            rf"|\b(?:lost|can'?t find|cannot find|misplaced)\s+my\s+{_KIND}card\b"
            r"(?!\s+(?:numbers?|information|info|details|pin))"
            # "i think my card fell out of my pocket on the tram"
            rf"|\bmy\s+{_KIND}(?:card|wallet|purse)\s+"
            r"(?:must have\s+|might have\s+|may have\s+)?(?:fell|fallen|dropped|slipped)\s+out\b"
            # "think i left my debit card at the bar last nite?? not sure": misplaced, maybe
            r"|\b(?:think|maybe|might have|may have|must have|probably|pretty sure)\s+(?:i\s+)?"
            rf"left\s+my\s+{_KIND}card\b(?!\s+at\s+home)"
            # "omg left my wallet in an uber and the driver isnt answering": left where strangers are
            # (not "…but the bartender kept it for me, got it back")
            rf"|\b(?:left|dropped|forgot)\s+my\s+{_KIND}(?:card|wallet|purse)\s+(?:in|on|at)\s+(?:an?|the|some)\s+"
            r"(?:\w+\s+)?(?:uber|lyft|taxi|cab|bus|train|plane|flight|subway|metro|tram|restaurant|bar|club|"
            r"stadium|concert|airport|station)\b"
            r"(?![\s\S]*\b(?:got it back|have it back|kept it for me|(?:they|he|she) (?:has|have|found|returned) it|"
            r"returned it)\b)"
            # "i left my debit card at the bar last night, its not in my wallet and they dont have it"
            rf"|\bleft\s+my\s+{_KIND}card\b{_SPAN}{{0,80}}?"
            r"\b(?:not|don'?t have|can'?t find|cannot find|gone|missing)\b",
            re.I,
        ),
    ),
]
# "my bag got stolen on the metro ... my debit card was in my wallet", "i got mugged, they took
# everything": a theft of what the card was in, when the message says a card (or wallet) went with it.
_THEFT = re.compile(
    r"\bmy\s+(?:\w+\s+)?(?:bag|backpack|handbag|rucksack|jacket|coat|car)\s+"
    r"(?:was\s+|got\s+|has been\s+|just\s+|been\s+)*(?:stolen|snatched|nicked|taken|broken into)\b"
    r"|\b(?:stole|grabbed|snatched|nicked|took)\s+my\s+(?:\w+\s+)?(?:bag|backpack|handbag|rucksack)\b"
    r"|\b(?:got|was|been|were)\s+(?:mugged|robbed|pickpocketed)\b",
    re.I,
)
_CARRIED = re.compile(r"\b(?:cards?|wallet|purse)\b", re.I)
# Identity theft ("someone opened a credit card in my name, pretty sure my identity got stolen") is
# security.md's help, not the lost-card procedure the classifier reads in "stolen" and "credit card".
_IDENTITY = re.compile(
    r"\bidentity\s+(?:theft|(?:was|got|has been|been|is being|were)\s+stolen)|\bstole\s+my\s+identity\b"
    r"|\b(?:opened|took out|applied for|got)\s+(?:a|an|some|two|\d+)\s+(?:[\w-]+\s+){0,3}?(?:in|under|using)\s+my\s+"
    r"(?:name|ssn|social)\b",
    re.I,
)
_CARD_GONE = re.compile(
    rf"\bmy\s+{_KIND}(?:card|wallet|purse)\b[^.?!]{{0,30}}?\b(?:lost|stolen|missing|gone|taken)\b"
    r"|\b(?:lost|stole|took|snatched|nicked|misplaced|can'?t find)\b[^.?!]{0,30}?"
    rf"\bmy\s+{_KIND}(?:card|wallet|purse)\b",
    re.I,
)


def reports_identity_theft(text: str) -> bool:
    """Whether ``text`` reports identity theft with no card of the customer's lost or stolen."""
    return bool(_IDENTITY.search(text)) and not _CARD_GONE.search(text) and card_emergency(text) is None


# "reported my card stolen ... found it", "ran up charges before I called it in": not now
_OVER = re.compile(r"\b(?:reported|found (?:it|my)|called (?:it|them) in\b(?!\s+(?:a|an|the)\b))", re.I)
_MACHINE = re.compile(r"\b(?:atm|machine|cash ?point)\b[^.?!]{0,20}\b(?:took|stole|kept|ate|swallowed)\b", re.I)
# "the atm ATE my card", "cash machine kept my debit card": the kept-card procedure, whatever the classifier says.
_KEPT_CARD = re.compile(
    # (the place may sit between: "the atm at the gas station just ate my debit card")
    r"\b(?:atm|cash machine|cash ?point)\b[^.?!]{0,40}?\b(?:took|kept|ate|swallowed|eaten|retained|grabbed|sucked in|"
    r"(?:won'?t|wouldn'?t|didn'?t) (?:give|spit|return)(?: back)?)(?:\s+it\b|\b[^.?!]{0,12}\bcard\b)",
    re.I,
)

# A third party's shared code must be a report, not a question about the rules ("should I ever share
# my PIN?"): the shared-code rule needs someone on the other side.
_THIRD_PARTY = re.compile(
    r"\b(?:him|her|them|someone|somebody|caller|guy|man|woman|lady|person|scammer|fraudster|stranger|they|he|she|"
    r"called|call|phoned|texted|text|email|link|website|site|fake|rep|pretending)\b",
    re.I,
)

# --- the customer's own account data ------------------------------------------------------------
# What a customer can only read in their own accounts. Qualifiers may sit between "my" and the noun
# ("my checking balance", "my last 5 payments"); a third party ("my wife's balance") may not.
_QUALIFIER = (
    r"(?:checking|savings|current|available|account|accounts|card|credit card|debit card|bank|kestrel|joint|business|"
    r"money market|latest|last|recent|most recent|pending|monthly|total|statement|outstanding|remaining|cd|loan|"
    r"mortgage|auto loan|car loan|personal loan|heloc|visa|\d+|few|couple of|ten|five|three)"
)
_DATA = (
    r"(?:balances?|transac\w*|payments?|purchases?|deposits?|withdrawals?|spending|transfers?|activity|"
    r"charges?|credit limit|available credit|payoff amount|pay-?off|amount due|minimum payment|min(?:imum)? due|"
    r"due date|statement balance|"
    r"paycheck|pay ?check|salary|direct deposits?|refund)"
    # ...but not a product's terms: "my transfer limits", "my payment options"
    r"(?!\s+(?:limits?|fees?|times?|rates?|options?|methods?|settings?|alerts?|protection|coverage|schedule|"
    r"requirements?|disputes?|insurance|cut-?off|rules|cards?|app|accounts?|transfers?|slips?|receipts?)\b)"
)
_MY_DATA = rf"\bmy\s+(?:{_QUALIFIER}\s+){{0,3}}{_DATA}\b"
# "check" is the verb, not the noun: "I need a cashier's check for the deposit on my new apartment".
_ASK = (
    r"(?:what(?:'s| is| are| was| were)|whats|tell me|show(?: me)?|give(?: me)?|"
    r"(?<!'s )(?<!\ba )(?<!\bthe )(?<!\bmy )(?<!\bof )(?<!\bcashier )(?<!\bto )check|(?<!\bto )see|(?<!\bto )view|"
    # "can you send me my statements", not "he wants to send me my salary by wire" (someone else paying)
    r"list|read(?: me)?|display|look up|pull up|(?<!\bto )(?<!\bwant )(?<!\bhe )(?<!\bshe )(?<!\bthey )send me|"
    r"i (?:\w+ )?(?:want|need|would like|'d like|wanna) to (?:know|see|check))"
)
_FILL = r"(?:\s+(?:me|up|out|on|at|please|pls|plz|again|quickly|now|all|of|for|just|the|current))*"
ACCOUNT_DATA_PATTERN = re.compile(
    # "what's my balance", "show my last payments", "can you check my checking balance"
    rf"\b{_ASK}{_FILL}\s+{_MY_DATA}"
    # "what is the balance on my savings account", "give balance details of my checking"
    rf"|\b{_ASK}{_FILL}\s+(?:the\s+)?(?:{_QUALIFIER}\s+){{0,3}}{_DATA}\s+(?:details\s+|info(?:rmation)?\s+)?(?:of|for|on|in)\s+my\b(?!\s+[\w-]+(?:'s|s')(?:\s|$))"
    # "how much do i owe on my card", "how much money do i have", "how much I have in my savings"
    # (not what *will* I earn or owe: "how much will i earn on 10k in a 12 month cd" is about the product)
    r"|\bhow much(?: money| cash(?: ?back)?| cashback| rewards?| points| miles)? (?:(?:do|did|have) )?i (?:still )?"
    r"(?:have|hav|got|owe|spent|spend|left|earned)\b(?! to\b)"
    r"|\bhow much(?: money| cash(?: ?back)?| cashback| rewards?| points| miles)? did i (?:earn|get|pay|make)\b"
    r"|\bhow many (?:\w+ )?(?:points|miles) (?:do |have )?i (?:have|got|earned|racked up)\b(?! to\b)"
    r"|\bhow much (?:money |cash )?(?:is|is left|'s left|remains) (?:in|on) my\b"
    # "how much cash back have i racked up so far" (what *will* I earn is a product question)
    r"|\bhow much (?:[\w-]+ ){0,2}have i (?:\w+ )?(?:racked up|earned|accumulated|saved|spent|paid|got|gotten|"
    r"collected|received|made|built up|taken out|withdrawn|taken)\b"
    # "how much interest has my cd earned so far this year" (not what it *will* earn)
    r"|\bhow much (?:interest|money|cash ?back|rewards?|points|dividends?) (?:has|have|did) my (?:[\w-]+\s+){0,2}?"
    r"(?:earned|made|paid|earn|make|pay|accrued|accumulated)\b"
    # "can u check if its already there" (a refund, a deposit)
    r"|\b(?:check|see|confirm|look)\s+(?:if|whether)\s+(?:it'?s|its|it is|(?:the|my)\s+(?:money|refund|deposit|"
    r"payment|transfer|paycheck|check)\s+is)\s+(?:already\s+)?"
    r"(?:there|posted|through|in(?=\s*(?:[?.!,]|$)|\s+(?:yet|already|my)\b))\b"
    # "can you see if theres anything pending from my employer on my account right now"
    r"|\b(?:check|see|look|tell me)\s+(?:if|whether)\s+(?:there'?s|theres|there is|there are)\s+"
    r"(?:anything|something)\b[^.?!]{0,40}?\b(?:on|in|to|from)\s+my\s+(?:acc?ount|acct|checking|savings|card)\b"
    # "ok can you check if i got charged one this week"
    r"|\b(?:check|see|look|confirm)\s+(?:if|whether)\s+i\s+(?:already\s+)?(?:got|was|have been|been)\s+"
    r"(?:charged|paid|credited|billed|refunded)\b"
    # "is my paycheck in my account", "has my refund hit my card"
    r"|\b(?:is|are|has|have)\s+my\s+(?:[\w'-]+\s+){0,2}?(?:in|on|hit|reached)\s+my\s+(?:acc?ount|acct|checking|"
    r"savings|card)\b"
    # "i deposited $300 at the atm this morning, is it showing in my account yet"
    r"|\b(?:is|has|did)\s+(?:it|that|they|the (?:money|deposit|cash|check|transfer|payment|refund))\s+"
    r"(?:\w+\s+)?(?:showing|shown|showed|posted|show(?:n|ing)? up|hit|reached|land(?:ed)?)\s+(?:up\s+)?"
    r"(?:in\s+|on\s+|into\s+)?my\s+(?:acc?ount|acct|checking|savings|balance|card)\b"
    # "did my rent go through", "has my paycheck arrived", "did the transfer to my landlord clear"
    # "can you check if my first one came in", "see whether the payment went thru"
    # "did the 1200 my dad sent me on quickpay come thru yet", "has mine come in yet"
    rf"|\b(?:(?:did|has|have)\s+(?:my|the|mine)|(?:is|was|were)\s+my"
    rf"|(?:check|see|confirm|tell me|know|look)\s+(?:if|whether)\s+(?:my|the|anything|any money|any|it|mine))"
    rf"\s+(?:[\w'$,.-]+\s+){{0,8}}?(?:go(?:ne)? (?:through|thru)|went (?:through|thru)|(?:is|was) still pending|"
    r"(?:got|been|was) (?:sent back|returned)|"
    r"arrived?|come in|came in|come (?:through|thru)|came (?:through|thru)|clear(?:ed)?|post(?:ed)?|land(?:ed)?|"
    r"hit|bounced?|(?:been|get|gotten) (?:paid|"
    r"deposited|received|credited|processed|sent|posted)|show(?:n|ed)? up|gone out|went out|come out|reach(?:ed)?|"
    r"dropped off|fallen off|fell off)\b"
    # "what was the $212 deposit that hit my account", "what's this charge on my card"
    r"|\bwhat(?:'s| is| was| were| are|s)?\s+(?:this|that|these|those|the\s+\$[\d,.]+)\s+(?:\$[\d,.]+\s+)?"
    r"(?:[\w-]+\s+){0,2}?(?:charges?|deposits?|payments?|transactions?|withdrawals?|transfers?)\s+"
    r"(?:that\s+|which\s+)?(?:hit|on|in|to|from|posted|showed up|came)\b[^?!]{0,30}?\bmy\b"
    # "am i overdrawn", "is my account in the negative"
    r"|\bam i (?:overdrawn|in the negative|in the red|over my (?:limit|credit limit))\b"
    r"|\bis my (?:account|balance|checking|savings) (?:overdrawn|negative|in the negative|in the red)\b"
    # "when is my payment due", "what's due on my card"
    r"|\bwhen is my (?:next )?(?:[\w-]+ ){0,2}?(?:payment|bill|statement|installment) due\b",
    re.I,
)
# Questions about how something works stay with the knowledge base even when they name "my balance":
# "why is my available balance lower than my current balance?", "when will my transfer arrive?"
_EXPLAIN = re.compile(
    r"^\s*(?:why|what(?:'s| is) the difference|difference between|what does|what do|what happens|is it normal|"
    r"how do(?:es)? .{0,30}work|explain)\b"
    r"|\b(?:why|how come|what (?:is )?the reason|how long|how soon|when (?:will|should|would|can|do|does))\b"
    # "what's the minimum payment on my card, how do you calculate it": the rule, not the figure
    r"|\bhow (?:do|does|is|are)\s+(?:you|u|kestrel|the bank|it|that|they|this|the \w+)\s+"
    r"(?:calculated?|figured?|determined?|worked? out|computed?|decided?)\b"
    r"|\bhow (?:is|are) (?:my |the |your )?(?:\w+ ){0,3}?"
    r"(?:calculated|figured|determined|worked out|computed|decided)\b",
    re.I,
)
# A problem report ("I can't see my latest transfer", "my balance hasn't updated") is answered from the
# knowledge base (timings, holds), not told where to look.
_PROBLEM = re.compile(r"n't\b|(?<!\bor )\bnot\b(?! sure)|\bwrong\b|\bmissing\b|\bnever\b|\bcannot\b", re.I)
# The classifier's intents about balances and pending money: with "my <balance/transactions>" in a
# short message ("my balance pls", "current balance on my checking?") they read as a request for it.
BALANCE_INTENTS = frozenset(
    {
        "balance_not_updated_after_bank_transfer",
        "balance_not_updated_after_cheque_or_cash_deposit",
        "pending_transfer",
        "pending_card_payment",
        "pending_cash_withdrawal",
        "pending_top_up",
    }
)
_SHORT_WORDS = 6


# A payment the customer made to a scammer who is not the bank ("paid a guy $600 on quickpay for
# concert tickets, he sent a fake pdf and blocked me"): the bank's scam procedure (call now; payments
# you authorized may not be recoverable), not the shared-code one, which is for a caller posing as
# the bank. Writers of three resolution sets expected it as a procedure, not an answer. (A merchant
# that stops answering is a dispute, not this.)
_PAYMENT_SCAM = re.compile(
    r"\b(?:scam(?:med|mer|mers)?|ripped off|conned|swindled|fake (?:pdf|tickets?|seller|listing|landlord|item|"
    r"website|store|shop)|blocked me|ghosted me|never (?:sent|shipped|delivered))\b",
    re.I,
)
_PAID = re.compile(  # done, not asked about
    r"\b(?:paid|sent|wired|transferred|quick\s?pa(?:yed|id)|zelled|venmoed)\b", re.I
)
_POSING = re.compile(
    r"\b(?:claim(?:ed|ing)|pretend(?:ed|ing)|said|saying|says|posing|posed)\b[^.?!]{0,30}?\b(?:kestrel|the bank|"
    r"your bank|fraud (?:team|department)|security team|tech support|irs|police)\b"
    rf"|{_SCAMMERS_ASK}",
    re.I,
)


def payment_scam(text: str) -> bool:
    """Whether ``text`` reports paying a scammer who did not pose as the bank or get a code."""
    return (
        bool(_PAYMENT_SCAM.search(text) and _PAID.search(text))
        and not _POSING.search(text)
        and not re.search(rf"\b{_CREDENTIAL}", text, re.I)
    )


# Words of _THIRD_PARTY that name nobody: a question whether something is fake ("i typed my pin wrong, is
# the atm fake?", "how do i know the app is not fake before i put in my password") and the bank's own text
# a code came in ("i entered the code from the text into the app").
_NO_THIRD_PARTY = re.compile(
    r"\b(?:is|are|was)\s+(?:the|this|that|it|these)\s+(?:\w+\s+){0,2}?(?:not\s+)?fake\b|\bnot fake\b"
    r"|\b(?:from|in)\s+(?:the|a|your|my)\s+texts?\b",
    re.I,
)


# What a caller claimed, reported: "he stated that my account has been compromised and asked me to move my
# savings to a protected account ... I have not done anything yet" (the bank's never-ask page, not a takeover).
# (within the clause: in "...told me my account was compromised, and someone changed my password" the change is the
# customer's own report)
_REPORTED = re.compile(r"\b(?:said|says|saying|stated|states|claim\w*|told me|telling me|warn\w*)\b[^.?!,;]*$", re.I)


def _told_by_impostor(text: str, start: int) -> bool:
    """Whether the takeover at ``start`` is what a suspected impostor said (``emergency`` has already
    taken the case where the customer then did something)."""
    return bool(_SCAM.search(text) and _REPORTED.search(text[:start]))


def emergency(text: str) -> str | None:
    """The security situation ``text`` reports (an intent name), or ``None``."""
    if payment_scam(text):
        return PAYMENT_SCAM
    if _SCAM.search(text) and _DID.search(text):  # "he said he was from kestrel ... i already sent $2000"
        return SHARED_SECURITY_CODE
    if _ENTERED.search(text) and _DECEIVED.search(text):
        return SHARED_SECURITY_CODE
    for name, pattern in EMERGENCY_PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        gave = re.match(rf"\s*(?:i\s+)?(?:\w+\s+)?{_GAVE}\b", match.group(0), re.I)
        if name == SHARED_SECURITY_CODE and gave and not _THIRD_PARTY.search(_NO_THIRD_PARTY.sub(" ", text)):
            continue
        if name == ACCOUNT_COMPROMISED and all(_told_by_impostor(text, m.start()) for m in pattern.finditer(text)):
            continue  # only what the caller claimed; a takeover reported beside it still counts
        return name
    return None


_DIRECT_DEBIT_WORDS = re.compile(
    r"\b(?:direct debits?|ach|auto-?pay\w*|automatic (?:payments?|debits?|withdrawals?)|recurring|subscriptions?|"
    r"standing orders?|biller|compan(?:y|ies)|gym|insurance|utility|electric|phone bill|membership|signed up)\b",
    re.I,
)


def debit_card_only(text: str) -> bool:
    """The message names a debit card and nothing a direct debit is ("left my debit card at the bar"):
    the classifier can read "debit" as a direct debit."""
    return bool(re.search(r"\bdebit\s+card\b", text, re.I)) and not _DIRECT_DEBIT_WORDS.search(text)


# A payment or withdrawal the message reports, beside a card's theft: "my wallet was stolen and someone took
# out $400" is the withdrawal's procedure; "someone stole my wallet, my debit card was in it" the card's
# (and so is a wallet stolen "with $80 cash and my card": cash carried is no payment).
_TRANSACTION = re.compile(
    r"\b(?:withdr\w*|atms?|took out|taken out|charges?|charged|transactions?|purchases?|payments?|"
    r"debits?(?!\s+cards?)|spent|spending|bought|buying|order\w*|paid|using|used|transfers?|transferred)\b"
    # "swiped my card" is a payment, "swiped my wallet" a theft
    r"|\bswip\w*\b(?!\s+(?:my|our|her|his)\s+(?:wallet|purse|bag|backpack|handbag|phone))",
    re.I,
)


def names_a_transaction(text: str) -> bool:
    return _TRANSACTION.search(text) is not None


# Words of a loss or theft: a lost-phone procedure needs one ("can I just do it from my phone?" names a
# phone and loses nothing).
_LOSS = re.compile(
    r"\b(?:lost|lose|losing|stolen|stole|steal|missing|gone|nicked|taken|took|snatched|grabbed|left|dropped|"
    r"misplaced|robbed|mugged|pickpocket\w*|thief|theft|can[’']?t find|cannot find|can not find|disappeared|"
    r"don[’']?t know where|(?:someone|somebody|a stranger) (?:has|got) (?:my|it))\b",
    re.I,
)


def reports_a_loss(text: str) -> bool:
    return _LOSS.search(text) is not None


def emergency_after(text: str, previous: str) -> str | None:
    """The shared-code situation a follow-up reports by admitting what the turn before described someone
    asking for: "too late i already read it to him. now what" after "a guy saying he's from kestrel asked
    me to read back the code you texted me, is that legit?". The earlier turn asked about an attempt (no
    emergency then); the follow-up opens by saying it succeeded (not "i moved last month, how do i…")."""
    if not _ADMITS.match(text) or emergency(previous) is not None:  # the cheap, anchored test first
        return None
    return SHARED_SECURITY_CODE if _ASKED_ME.search(previous) else None


# Someone else's request for a credential: "asked me to read back the code", "wants me to send them my pin"
_ASKED_ME = re.compile(
    rf"\b(?:asked|asks|asking|told|tells|wanted|wants|want)\s+(?:me\s+)?(?:to\s+)?(?:read|give|send|share|tell|text|"
    rf"forward|confirm|type|enter)\b[^.?!]{{0,60}}?\b{_CREDENTIAL}",
    re.I,
)
# A turn that opens by admitting it was given: "too late i already read it to him", "ugh i did", "yes i sent it"
_ADMITS = re.compile(
    r"^\W*(?:(?:too late|ugh+|oh no|omg|oops|well|but|yes|yeah|ya|yep|ok|okay|already|damn|shoot|crap|sorry)\b[\s,.!]*)"
    r"{0,3}(?:i\s+(?:already\s+|just\s+|kind of\s+|actually\s+)?(?:gave|sent|read|told|shared|typed|entered|texted|"
    r"forwarded|said)\s+(?:it|them|him|her|that|the code|my)\b|i\s+(?:already\s+)?did\b(?!\s*(?:n'?t|not)\b))",
    re.I,
)


def card_emergency(text: str) -> str | None:
    """The card flow ``text`` reports in words the classifier may miss (an intent name), or ``None``."""
    if _OVER.search(text):  # "reported my card stolen ... found it": nothing to do now
        return None
    if _KEPT_CARD.search(text) and re.search(r"\bcard\b", text, re.I):  # "kept it" needs a card said somewhere
        return CARD_SWALLOWED
    if _MACHINE.search(text):  # "the ATM took my money": the classifier tells which
        return None
    for name, pattern in CARD_PATTERNS:
        if pattern.search(text):
            return name
    if _THEFT.search(text) and _CARRIED.search(text):
        return LOST_OR_STOLEN_CARD
    return None


# A request for a person in the words customers use ("i want to talk to someone about getting those
# fees refunded", "connect me to an agent"), whatever else the message is about: the classifier reads
# the topic ("refund") and can miss the request.
_PERSON = re.compile(
    r"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s+|one of (?:your|ur)\s+)?(?:real\s+|actual\s+|live\s+)?"
    r"(?:someone|somebody|person|people|human|agent|representative|rep|operator)\b"
    # "I would like to speak to a manager immediately" (not "speak to a manager at any branch", a complaint's way)
    r"|(?:\b(?<!\bdo )(?<!\bif )(?<!\bwhen )i(?:'d| would)?\s+(?:like|want|wanna|need)\s+to|\blet me"
    r"|\b(?:can|could|may) i)\s+"
    r"(?:talk|speak|chat)\s+(?:to|with)\s+(?:a|your|the|ur|some)\s+(?:manager|supervisor)\b(?!\s+(?:at|in|of|about|to)\b)"
    r"|\b(?:connect|transfer|put)\s+me\s+(?:to|with|through)\b(?!\s+(?:my|your|the)\s+(?:savings|checking|account))"
    # "get me an actual person who can look at MY wire" (not "find me a person to co-sign my loan")
    r"|\b(?:get|give|find)\s+me\s+(?:a\s+|an\s+)?(?:real\s+|actual\s+|live\s+)?(?:human|person|agent|representative)\b"
    r"(?!\s*(?:'s|to\s+(?:co-?sign|sign|be|guarantee)|(?:who|that)\s+(?:can\s+|could\s+|will\s+)?"
    r"(?:co-?sign|sign|guarantee|be)))\b"
    # "get me an actual human on here", "i need a real person", "i want a human now" (but "i need a person who
    # can co-sign" is no request)
    r"|\b(?:(?:get|give|find)\s+me|(?<!\bdo )(?<!\bwould )(?<!\bwill )(?<!\bif )(?:i|we)\s+(?:just\s+)?"
    r"(?:need|want|wanna))\s+(?:a\s+|an\s+)?"
    r"(?:real\s+|actual\s+|live\s+)?(?:human|person|agent|representative)\b"
    r"(?!\s*(?:'s|to\s+(?:co-?sign|sign|be)|who|that)\b)",
    re.I,
)


def asks_for_person(text: str) -> bool:
    """Whether ``text`` asks to talk to a person."""
    return bool(_PERSON.search(text))


# Investment advice, which a bank's assistant must not give ("should i put my savings in bitcoin or an
# index fund"): retrieval would answer it with the savings rates it finds closest.
_ASSETS = (
    r"(?:bitcoin|btc|ethereum|crypto\w*|dogecoin|stocks?|equities|index funds?|s&p(?: 500)?|etfs?|"
    r"mutual funds?|bonds?|nfts?|forex)"
)
_ADVICE = re.compile(
    rf"\b(?:should|shall|would you|do you think i should)\s+(?:i|we)?\s*"
    r"(?:put|invest|move|buy|sell|keep|park|dump|throw|sink|pour|stick|stash)\b"
    rf"{_SPAN}{{0,60}}?\b{_ASSETS}\b"
    rf"|\b(?:best|good|top|which)\s+{_ASSETS}\s+to\s+(?:buy|invest|get)\b"
    # "is better I buy bitcoin or nvidia stock now?", "smart to put it all in an index fund?"
    rf"|\b(?:better|good idea|smart|wise|worth it)\b{_SPAN}{{0,20}}?\b(?:buy|invest|put)\w*\b{_SPAN}{{0,40}}?"
    rf"\b{_ASSETS}\b"
    rf"|\b(?:is|are)\s+{_ASSETS}\s+(?:a good|a safe|worth)\b"
    # "should i use it to buy stocks" (the money, not "should i use my debit card to buy stocks on robinhood")
    r"|\bshould (?:i|we) (?:use|spend) (?:it|that|this|the (?:money|cash|loan|funds)|"
    r"my (?:savings|money|bonus|refund))\b"
    rf"{_SPAN}{{0,40}}?\b{_ASSETS}\b"
    # "or is crypto the better bet right now" (not "would a cd or savings bond be the better option")
    rf"|\b(?:is|are)\s+{_ASSETS}\s+(?:the|a)\s+(?:better|best|safer|smarter)\s+(?:bet|investment|choice|option|move)\b"
    # "should i just take the loan or cash out my 401k instead" (retirement savings: the customer's adviser's call)
    rf"|\b(?<!\bhow )(?<!\bwhen )(?<!\bwhere )should (?:i|we)\b{_SPAN}{{0,60}}?\b(?:cash(?:ing)? out|"
    r"borrow(?:ing)? (?:from|against)|withdraw(?:ing)? from|tap(?:ping)?(?:\s+into)?|raid(?:ing)?|dip(?:ping)? into)\s+"
    r"(?:my|our)\s+"
    r"(?:401\(?k\)?|403\(?b\)?|retirement|pension|ira|roth)",
    re.I,
)


def asks_investment_advice(text: str) -> bool:
    """Whether ``text`` asks what to invest in (refused: the bank's content does not advise)."""
    return bool(_ADVICE.search(text))


# Work that is not the bank's to do, asked in banking words the classifier reads as a topic: school work
# ("can u help me w my econ homework, 500 words on why banks exist", "solve this for my finance class:
# $5000 at 4% compounded daily") and tax advice ("can i deduct my heloc interest on my taxes", "which line
# on my form 1040"). The bank's tax *forms* are its own ("when is my 1098 ready", "statements for taxes").
_OFF_TOPIC_TASK = re.compile(
    r"\b(?:homework|coursework|essay|term paper|cover letter)\b"
    # asked to do the work: "solve this for my finance class", not "pay for the course with my card"
    r"|\b(?:solve|answer|calculate|write|help me (?:with|w))\b[^.?!]{0,60}?\bfor (?:my|our) (?:[\w-]+\s+){0,2}?"
    r"(?:class|course|exam|midterm|final|assignment|professor)\b"
    # asked of the assistant: "can u do my taxes", not "when is my 1099 ready so i can file my taxes"
    r"|\b(?:can|could|will|would)\s+(?:you|u|ya)\s+(?:help\s+(?:me\s+)?)?(?:do|file|prepare)\s+(?:my|our)\s+"
    r"(?:\w+\s+)?taxes\b|\bhelp me (?:do|file|prepare) (?:my|our) taxes\b"
    # tax advice: "can i deduct my heloc interest on my taxes", not "you deducted $35 from my tax refund"
    r"|\b(?:can|could|should|do|may)\s+(?:i|we)\s+(?:still\s+)?(?:deduct|write off)\b|\btax[- ]deductible\b"
    r"|\btax (?:advice|bracket)\b"
    r"|\b(?:form|my|our) 1040\b|\bthe 1040\b(?!\s+(?:charge|payment|transaction|deposit|fee|purchase))|\b1040 form\b"
    r"|\bitemiz\w*|\bstandard deduction\b"
    r"|\bhow much (?:in\s+)?tax(?:es)? (?:will|do|would|should|am) (?:i|we) (?:owe|be owing)\b"
    r"|\b(?:reduce|lower|cut|save (?:on|me))\s+(?:on\s+)?(?:my|our)\s+taxes\b",
    re.I,
)


def asks_off_topic_task(text: str) -> bool:
    """Whether ``text`` asks for school work or tax advice (refused, like investment advice)."""
    return bool(_OFF_TOPIC_TASK.search(text))


# A dispute already under way, asked about ("i disputed a charge 2 weeks ago, do i get the money back
# while u look into it?", "how long does your investigation take"): the customer wants the process
# (its timing, provisional credit), not the report procedure a second time.
_DISPUTE_UNDERWAY = re.compile(
    r"\b(?:disputed|disputing|(?:filed|opened|started|made) (?:a|the|my) (?:dispute|claim)|"
    r"(?:your|the|an) investigation|investigating)\b",
    re.I,
)
_ASKS_ABOUT = re.compile(r"\?|\b(?:how long|how soon|when|do i get|will i|would i|while|status|still have to)\b", re.I)


def dispute_underway(text: str) -> bool:
    """Whether ``text`` asks about a dispute the customer has already made (answered, not a new report)."""
    return bool(_DISPUTE_UNDERWAY.search(text) and _ASKS_ABOUT.search(text))


def asks_for_account_data(text: str, ranking: Sequence[IntentRef] = ()) -> bool:
    """Whether ``text`` asks for the customer's own balances, transactions or payments (which no
    answer from the knowledge base can give). ``ranking``: the classifier's top intents, if any."""
    if _EXPLAIN.search(text) or _PROBLEM.search(text):
        return False
    if ACCOUNT_DATA_PATTERN.search(text):
        return True
    words = re.findall(r"[\w']+", text)
    top = ranking[0].name if ranking else ""
    if top not in BALANCE_INTENTS or len(words) > _SHORT_WORDS or "still" in text.lower():
        return False
    return bool(re.search(_MY_DATA, text, re.I))


# A message that names only a broad subject ("card", "transfer", "limits?", "need help w my card and
# a transfer") says what it is about but not what the customer wants to know: any answer would be a
# guess. Words that carry no question of their own, and subjects too broad to answer alone.
_FILLER = frozenset(
    re.findall(
        r"[\w']+",
        "i im i'm need needs want have got help with w my a an the and or about question questions some info "
        "information on for please pls plz hi hey hello kestrel re regarding thing stuff",
    )
)
_BROAD = frozenset(
    re.findall(
        r"\w+",
        "card cards account accounts acct accts transfer transfers limit limits payment payments money loan loans "
        "problem problems issue issues",
    )
)


def vague(text: str) -> bool:
    """The message names one or two broad subjects and asks nothing about them."""
    words = re.findall(r"[a-z']+|\d+", text.lower())
    subjects = [w for w in words if w not in _FILLER]
    return 0 < len(subjects) <= 2 and len(words) <= 8 and all(w in _BROAD for w in subjects)
