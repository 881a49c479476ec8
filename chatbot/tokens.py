"""Tokens every layer checks: ``Authorization: Bearer`` parsing, customer tokens, the server's secret key.

They sit at the bottom of the package so that ``llm/openai_server.py`` (a separate server),
``agents/``, ``integration/`` and ``server/`` share one implementation without importing upwards.

- Customer tokens: 32 random bytes, URL-safe, given once when the conversation is created; only
  their SHA-256 is stored, so a leaked database does not let anyone read conversations.
- The secret key signs agent JWTs, identity secrets and webhooks; without ``CHATBOT_SECRET_KEY`` it
  is generated once into ``data_dir/secret.key``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from chatbot.config import Settings


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``""`` for another scheme, None if absent."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def new_customer_token() -> tuple[str, str]:
    """(token given to the customer once, its SHA-256 kept in the database)."""
    token = secrets.token_urlsafe(32)
    return token, customer_token_hash(token)


def customer_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def customer_token_matches(stored_hash: str | None, token: str | None) -> bool:
    if not stored_hash or not token:
        return False
    return hmac.compare_digest(stored_hash, customer_token_hash(token))


def secret_key(settings: Settings) -> str:
    """The configured key, or one generated once into data_dir/secret.key (readable by its owner only)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret.key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
