"""Opaque cursors: base64url text the client hands back unchanged to get the next page.

A message cursor encodes the last message's ``seq`` (the table's insertion order); a conversation
cursor the last conversation's creation time and id (newest-first order, ties broken by id). The
encoding is not a secret; it is opaque so that it can change without breaking clients.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta

from chatbot.errors import InvalidInput

CURSOR_TEXT = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _b64decode(cursor: str) -> str:
    if not CURSOR_TEXT.fullmatch(cursor):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not base64url") from None


def invalid_cursor() -> InvalidInput:
    return InvalidInput("invalid_cursor", "The cursor is not one this API returned; start again without it.")


def encode_seq(seq: int) -> str:
    return _b64encode(str(seq))


def decode_seq(cursor: str) -> int:
    """The ``seq`` inside a message cursor; InvalidInput (422) ``invalid_cursor`` for anything else."""
    try:
        text = _b64decode(cursor)
    except ValueError:
        raise invalid_cursor() from None
    if not text.isdigit() or len(text) > 18:
        raise invalid_cursor()
    return int(text)


def encode_position(created_at: datetime, item_id: str) -> str:
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return _b64encode(f"{(moment - EPOCH) // timedelta(microseconds=1)}:{item_id}")


def decode_position(cursor: str) -> tuple[datetime, str]:
    """(created_at, id) inside a conversation cursor; InvalidInput (422) ``invalid_cursor`` for anything else."""
    try:
        micros, _, item_id = _b64decode(cursor).partition(":")
        moment = EPOCH + timedelta(microseconds=int(micros))
    except (ValueError, OverflowError, OSError):
        raise invalid_cursor() from None
    if not micros.isdigit() or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", item_id):
        raise invalid_cursor()
    return moment, item_id


def page_limit(limit: int | None, maximum: int) -> int:
    """The page size: ``limit`` when given (1..maximum, else 422), else the largest page."""
    if limit is None:
        return maximum
    if not 1 <= limit <= maximum:
        raise InvalidInput("invalid_request", f"limit must be between 1 and {maximum}.")
    return limit
