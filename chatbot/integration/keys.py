"""API keys and the identity secret derived from each.

A key is ``kst_`` + 32 random bytes (URL-safe base64), shown once by ``chatbot keys create``. The
database keeps only its SHA-256: keys carry 256 bits of entropy, so a fast hash is enough and the
lookup is one indexed equality. Revoking sets ``revoked_at``; the row stays, for the audit trail.

Each key also has an *identity secret*: HMAC-SHA256(server secret, ``"identity:" + key id``). The
app's back end signs its customer ids with it (``customer_hash``), as chat platforms do for identity
validation, so a phone cannot claim to be another customer. Deriving it means nothing else is
stored, and ``chatbot keys identity-secret NAME`` prints it again whenever needed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine as SqlEngine

from chatbot.store.api_keys import ApiKeyRecord as ApiKeyRecord  # re-exported: callers import it from here
from chatbot.store.api_keys import ApiKeyRepository
from chatbot.store.errors import KeyExists as KeyExists
from chatbot.store.models import utcnow

KEY_PREFIX = "kst_"
KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")
SCOPES = ("chat", "agent", "admin")
PREFIX_CHARS = 12  # "kst_" and 8 random characters: enough to tell keys apart in a list, useless to an attacker
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is written at most once a minute per key
HEX_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


def is_api_key(token: str | None) -> bool:
    return bool(token) and str(token).startswith(KEY_PREFIX)


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"chat,agent"`` → ("chat", "agent"); ValueError for an unknown or empty list."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ValueError(f"scopes must be a comma-separated list of {', '.join(SCOPES)}")
    return scopes


def identity_secret(server_secret: str, key_id: str) -> str:
    """The key's identity-verification secret, derived (never stored) from the server's secret key."""
    return hmac.new(server_secret.encode(), f"identity:{key_id}".encode(), hashlib.sha256).hexdigest()


def customer_hash(secret: str, customer_id: str) -> str:
    """What the app's back end sends with a customer id: hex HMAC-SHA256(identity secret, customer id)."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def identity_valid(secret: str, customer_id: str, given: str | None) -> bool:
    if not given or not HEX_HASH.fullmatch(given):
        return False
    return hmac.compare_digest(customer_hash(secret, customer_id), given.lower())


class ApiKeys:
    """Keys of apps and partners: made, hashed and checked here, stored by the store's ``ApiKeyRepository``.

    Takes the Store's SQLAlchemy engine, so it works wherever the Store does.
    """

    def __init__(self, engine: SqlEngine) -> None:
        self._keys = ApiKeyRepository(engine)

    def create(self, name: str, scopes: tuple[str, ...]) -> tuple[ApiKeyRecord, str]:
        """A new key: its record and the key itself (shown once, never stored)."""
        if not KEY_NAME.fullmatch(name):
            raise ValueError("the name must be 1-60 characters: letters, digits, '_', '.' or '-'")
        key = new_api_key()
        return self._keys.create(name, key[:PREFIX_CHARS], key_hash(key), scopes), key

    def list(self) -> list[ApiKeyRecord]:
        return self._keys.list()

    def by_name(self, name: str) -> ApiKeyRecord | None:
        return self._keys.by_name(name)

    def revoke(self, name: str) -> ApiKeyRecord | None:
        """Revoke at once (the next request with it is a 401); None for an unknown name. Idempotent."""
        return self._keys.revoke(name)

    def authenticate(self, key: str) -> ApiKeyRecord | None:
        """The key's record (revoked ones included: the caller says why it refuses), or None if unknown."""
        return self._keys.by_hash(key_hash(key))

    def touch(self, record: ApiKeyRecord, now: datetime | None = None) -> bool:
        """Record a use, at most once a minute per key (across processes: the UPDATE is conditional)."""
        moment = now or utcnow()
        if record.last_used_at is not None and moment - record.last_used_at < LAST_USED_EVERY:
            return False
        return self._keys.touch(record.id, moment, unless_since=moment - LAST_USED_EVERY)
