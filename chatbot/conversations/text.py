"""The one check a customer's (or an agent's) text passes before anything is done with it.

Every channel validates through ``clean_text`` — the turn service for customers, the handoff service
for agents, the NLU route — so a message is never valid on one route and refused on another, and
the error codes (``invalid_text``, ``empty_message``, ``message_too_long``, ``unreadable_message``)
are the same everywhere.

Text that is not Unicode at all is ``invalid_text`` too: JSON lets a client send half of a surrogate
pair (``"\\ud800"``), which Python decodes into a ``str`` that cannot be encoded as UTF-8 — so it
would pass every other check and then fail in the database or in the next frame sent (a 500, a
WebSocket closed with 1011). ``lone_surrogate`` finds one anywhere in a decoded JSON document; the
web layer applies it to every request body and frame, and ``clean_text`` to every message text.
NUL and other control characters become spaces; noncharacters (U+FFFE, U+FDD0, …) are valid
Unicode and encode fine, so they are kept like any other symbol.
"""

from __future__ import annotations

import re

from chatbot.errors import InvalidInput

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SURROGATES = re.compile("[\ud800-\udfff]")  # in a decoded str, always unpaired (JSON joins valid pairs)
INVALID_UNICODE = "The text is not valid Unicode (it contains half of a surrogate pair, such as \\ud800)."


def lone_surrogate(value: object) -> bool:
    """Whether a string anywhere in ``value`` (a decoded JSON document: dicts, lists, strings) holds a surrogate.

    Keys count too. The walk uses its own stack, not recursion, so a document nested as deep as the
    JSON parser allows cannot turn it into a RecursionError.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if SURROGATES.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def clean_text(text: object, max_chars: int) -> str:
    """``text`` without control characters and outer blanks; InvalidInput when it cannot be answered as sent."""
    if not isinstance(text, str):
        raise InvalidInput("invalid_text", "The message text must be a string.")
    if SURROGATES.search(text):
        raise InvalidInput("invalid_text", INVALID_UNICODE)
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
