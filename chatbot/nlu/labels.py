"""The intent inventory: BANKING77's 77 intents plus the five the assistant needs around them.

Why BANKING77: it is the public benchmark of real card-and-account customer questions (Casanueva
et al. 2020), so its labels name what a bank's customers actually ask. The extra five cover the
turns around those questions: greetings, goodbyes, thanks, asking for a person, and anything a bank
assistant should decline (``out_of_scope``).
"""

from __future__ import annotations

BANKING77_INTENTS: tuple[str, ...] = (
    "activate_my_card", "age_limit", "apple_pay_or_google_pay", "atm_support", "automatic_top_up",
    "balance_not_updated_after_bank_transfer", "balance_not_updated_after_cheque_or_cash_deposit",
    "beneficiary_not_allowed", "cancel_transfer", "card_about_to_expire", "card_acceptance", "card_arrival",
    "card_delivery_estimate", "card_linking", "card_not_working", "card_payment_fee_charged",
    "card_payment_not_recognised", "card_payment_wrong_exchange_rate", "card_swallowed", "cash_withdrawal_charge",
    "cash_withdrawal_not_recognised", "change_pin", "compromised_card", "contactless_not_working", "country_support",
    "declined_card_payment", "declined_cash_withdrawal", "declined_transfer", "direct_debit_payment_not_recognised",
    "disposable_card_limits", "edit_personal_details", "exchange_charge", "exchange_rate", "exchange_via_app",
    "extra_charge_on_statement", "failed_transfer", "fiat_currency_support", "get_disposable_virtual_card",
    "get_physical_card", "getting_spare_card", "getting_virtual_card", "lost_or_stolen_card",
    "lost_or_stolen_phone", "order_physical_card", "passcode_forgotten", "pending_card_payment",
    "pending_cash_withdrawal", "pending_top_up", "pending_transfer", "pin_blocked", "receiving_money",
    "Refund_not_showing_up", "request_refund", "reverted_card_payment?", "supported_cards_and_currencies",
    "terminate_account", "top_up_by_bank_transfer_charge", "top_up_by_card_charge", "top_up_by_cash_or_cheque",
    "top_up_failed", "top_up_limits", "top_up_reverted", "topping_up_by_card", "transaction_charged_twice",
    "transfer_fee_charged", "transfer_into_account", "transfer_not_received_by_recipient", "transfer_timing",
    "unable_to_verify_identity", "verify_my_identity", "verify_source_of_funds", "verify_top_up",
    "virtual_card_not_working", "visa_or_mastercard", "why_verify_identity", "wrong_amount_of_cash_received",
    "wrong_exchange_rate_for_cash_withdrawal",
)  # fmt: skip

OUT_OF_SCOPE = "out_of_scope"
EXTRA_INTENTS: tuple[str, ...] = (OUT_OF_SCOPE, "greeting", "goodbye", "thanks", "human_agent")
INTENTS: tuple[str, ...] = BANKING77_INTENTS + EXTRA_INTENTS

# CLINC150 intents that are the same request as a BANKING77 (or extra) intent: their train/val
# examples are added to that intent. Only clear one-to-one matches are listed; see data/nlu/README.md.
CLINC_TO_INTENT: dict[str, str] = {
    "report_lost_card": "lost_or_stolen_card",
    "pin_change": "change_pin",
    "card_declined": "declined_card_payment",
    "exchange_rate": "exchange_rate",
    "greeting": "greeting",
    "goodbye": "goodbye",
    "thank_you": "thanks",
}

# Internal class, never returned by ``parse``: banking requests BANKING77 has no label for (CLINC's
# 27 other banking and credit-card intents: balance, APR, credit limit, ...). Without it the classifier
# learns "not BANKING77 = out_of_scope" and would refuse them; with it they stay in scope, and
# ``parse`` names the closest BANKING77 intent with its (low) confidence, so retrieval answers them.
BANK_OTHER = "_bank_other"
MODEL_LABELS: tuple[str, ...] = (*INTENTS, BANK_OTHER)

# CLINC150 intents outside its banking/credit-card domains that a bank's customers still ask a bank.
CLINC_BANK_EXTRA: frozenset[str] = frozenset({"direct_deposit", "travel_notification"})
# CLINC150 dialogue-control replies ("yes", "cancel"): they mean something only after the assistant's
# previous turn, so they are used neither as an intent nor as out-of-scope.
CLINC_UNUSED: frozenset[str] = frozenset({"yes", "no", "maybe", "cancel", "repeat"})
CLINC_BANK_DOMAINS: tuple[str, ...] = ("banking", "credit_cards")
