"""Tokens every layer checks: ``Authorization: Bearer`` parsing, customer tokens, the server's secret key.

They sit at the bottom of the package so that ``llm/openai_server.py`` (a separate server),
``agents/``, ``integration/`` and ``server/`` share one implementation without importing upwards.

- Customer tokens: 32 random bytes, URL-safe, given once when the conversation is created; only
  their SHA-256 is stored, so a leaked database does not let anyone read conversations.
- The secret key signs agent JWTs, identity secrets and webhooks; without ``CHATBOT_SECRET_KEY`` it
  is generated once into ``data_dir/secret.key``. A configured key that is weak (a placeholder such as
  ``changeme``, under 32 characters, hardly any distinct characters) is refused: anyone who guesses it
  can mint agent tokens and every partner's identity secret, so the server must not start with it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from chatbot.config import Settings

MIN_SECRET_CHARS = 32
MIN_DISTINCT_CHARS = 10
# Lower-cased, separators removed: what people paste from examples and templates.
PLACEHOLDERS = ("changeme", "changethis", "replaceme", "yoursecret", "secretkey", "placeholder", "example",
                "password", "insecure", "notsecret", "dontuseinproduction", "xxxxxxxx")  # fmt: skip


class WeakSecretKey(ValueError):
    """The configured secret key is empty or guessable; the message says why and how to fix it."""


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is too weak to sign tokens, or None when it is acceptable."""
    stripped = key.strip()
    if not stripped:
        return "it is empty"
    squashed = "".join(c for c in stripped.lower() if c.isalnum())
    for placeholder in PLACEHOLDERS:
        if placeholder in squashed:
            return f"it looks like a placeholder ({placeholder!r})"
    if len(stripped) < MIN_SECRET_CHARS:
        return f"it has {len(stripped)} characters; at least {MIN_SECRET_CHARS} are needed"
    if len(set(stripped)) < MIN_DISTINCT_CHARS:
        return f"it uses only {len(set(stripped))} distinct characters"
    return None


def check_secret_key(key: str, source: str = "CHATBOT_SECRET_KEY") -> None:
    """WeakSecretKey with a message an operator can act on, unless ``key`` is strong enough."""
    problem = secret_key_problem(key)
    if problem is not None:
        raise WeakSecretKey(
            f"{source} is too weak: {problem}. Set it to a long random value, e.g. "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`, the same on every server "
            "process; or unset it to have one generated into the data directory (data_dir/secret.key)."
        )


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


def reserved_conversation_id(server_secret: str, token: str) -> str:
    """The id a customer socket hands out with a new token before anything is stored.

    ``/ws/chat`` stores a conversation only with the customer's first message, so that opening the
    widget (or a bot opening sockets) stores nothing. The id is derived from the token with the
    server's key, so a widget that reconnects before writing can present (id, token) again and any
    server process recognises the reservation without remembering it; nobody without the token can
    produce the id, and 64 bits of HMAC output collide with an existing id no more than random ids do.
    """
    digest = hmac.new(server_secret.encode(), f"conversation:{token}".encode(), hashlib.sha256).hexdigest()
    return f"conv_{digest[:16]}"


def customer_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def customer_token_matches(stored_hash: str | None, token: str | None) -> bool:
    if not stored_hash or not token:
        return False
    return hmac.compare_digest(stored_hash, customer_token_hash(token))


def secret_key(settings: Settings) -> str:
    """The configured key (WeakSecretKey when it is weak), or one generated once into data_dir/secret.key
    (readable by its owner only). An empty setting means "not configured": ``chatbot serve`` refuses an
    explicitly empty ``CHATBOT_SECRET_KEY`` before it gets here (``configured_secret_key_problem``)."""
    if settings.secret_key:
        check_secret_key(settings.secret_key)
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


def configured_secret_key_problem(settings: Settings) -> str | None:
    """For ``chatbot serve`` at start: the message to stop with when the operator configured a weak key
    (an explicitly empty ``CHATBOT_SECRET_KEY`` included), or None. Not configuring one is fine: a strong
    key is then generated once into the data directory, so ``make serve`` works on a fresh machine."""
    if "secret_key" not in settings.model_fields_set:
        return None
    try:
        check_secret_key(settings.secret_key)
    except WeakSecretKey as error:
        return str(error)
    return None
