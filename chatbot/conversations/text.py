"""The one check a customer's (or an agent's) text passes before anything is done with it.

Every channel validates through ``clean_text`` — the turn service for customers, the handoff service
for agents, the NLU route — so a message is never valid on one route and refused on another, and
the error codes (``invalid_text``, ``empty_message``, ``message_too_long``, ``unreadable_message``)
are the same everywhere.
"""

from __future__ import annotations

import re

from chatbot.errors import InvalidInput

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: object, max_chars: int) -> str:
    """``text`` without control characters and outer blanks; InvalidInput when it cannot be answered as sent."""
    if not isinstance(text, str):
        raise InvalidInput("invalid_text", "The message text must be a string.")
    text = CONTROL_CHARS.sub(" ", text).strip()
    if not text:
        raise InvalidInput("empty_message", "The message is empty.")
    if len(text) > max_chars:
        raise InvalidInput(
            "message_too_long", f"The message is too long ({len(text):,} characters; {max_chars:,} at most)."
        )
    if sum(ch.isalnum() for ch in text) == 0:
        raise InvalidInput("unreadable_message", "The message contains no words I can read.")
    return text
