"""Passwords and agent tokens (customer tokens, ``bearer`` and the secret key: chatbot/tokens.py).

- Agent passwords: argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile); hashes are
  upgraded on login when the parameters change.
- Agent tokens: JWT HS256 (PyJWT) over the agent id, role, expiry and the account's token version
  (``ver``), signed with ``secret_key``. The agent is looked up on every request, so a deactivated
  agent loses access at once and a changed role applies without a new login; and a token whose
  version is not the account's is refused, which is how logout, a password change and disabling
  revoke every earlier token (a JWT cannot be recalled, but the number it carries can go stale).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

AGENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
ROLES = ("agent", "admin")
MIN_PASSWORD_CHARS = 8
_hasher = PasswordHasher()  # argon2id
_DUMMY_HASH = _hasher.hash("not a real password: used to spend the same time on unknown names")


class TokenError(Exception):
    """``code`` is the API error code: missing_token, invalid_token or expired_token."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the agent exists (``None`` hash), so names cannot be probed by timing."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class AgentClaims:
    agent_id: str
    role: str
    expires_at: int
    version: int = 0  # the account's token_version when the token was issued


def issue_agent_token(
    key: str, agent_id: str, role: str, ttl_s: int, now: float | None = None, version: int = 0
) -> tuple[str, int]:
    issued = int(now if now is not None else time.time())
    expires = issued + ttl_s
    claims = {"sub": agent_id, "role": role, "iat": issued, "exp": expires, "typ": "agent", "ver": version}
    return jwt.encode(claims, key, "HS256"), expires


def verify_agent_token(key: str, token: str | None) -> AgentClaims:
    if token is None:
        raise TokenError("missing_token", "Sign in first: this needs an agent token (Authorization: Bearer …).")
    if not token:  # another scheme than Bearer, or an empty one
        raise TokenError("invalid_token", "The agent token is not valid.")
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["sub", "exp", "role"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("expired_token", "Your session has expired; sign in again.") from None
    except jwt.PyJWTError:
        raise TokenError("invalid_token", "The agent token is not valid.") from None
    if claims.get("typ") != "agent" or not isinstance(claims.get("sub"), str):
        raise TokenError("invalid_token", "The agent token is not valid.")
    version = claims.get("ver", 0)  # tokens issued before versions existed are version 0
    if not isinstance(version, int) or isinstance(version, bool):
        raise TokenError("invalid_token", "The agent token is not valid.")
    return AgentClaims(agent_id=claims["sub"], role=str(claims["role"]), expires_at=int(claims["exp"]), version=version)


def token_current(claims: AgentClaims, token_version: int) -> None:
    """TokenError ``revoked_token`` unless the token was issued at the account's current version."""
    if claims.version != token_version:
        raise TokenError("revoked_token", "This session has ended (signed out, password changed or account "
                         "disabled); sign in again.")  # fmt: skip


class LoginThrottle:
    """Refuse logins for a (client address, name) pair after ``limit`` failures within ``window_s``.

    Keyed by address and name together, so a stranger cannot lock a real agent out from elsewhere.
    In-process: each server process counts its own failures; with Redis configured the app uses
    RedisLoginThrottle (chatbot/agents/redis_throttle.py), which counts across processes.
    """

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def retry_after(self, address: str, name: str, now: float | None = None) -> int:
        """Seconds until this pair may try again; 0 when it may try now."""
        moment = time.monotonic() if now is None else now
        recent = self._recent((address, name.lower()), moment)
        if len(recent) < self.limit:
            return 0
        return max(1, int(self.window_s - (moment - recent[0])) + 1)

    def failed(self, address: str, name: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        key = (address, name.lower())
        self._failures[key] = [*self._recent(key, moment), moment]
        if len(self._failures) > 10_000:  # bound the memory an attacker can make us use
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, address: str, name: str) -> None:
        self._failures.pop((address, name.lower()), None)

    def close(self) -> None:
        """Nothing to release here; the Redis-backed throttle (chatbot/agents/redis_throttle.py) closes its pool."""


TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']+")


class TokenRedactingFilter(logging.Filter):
    """Mask ``token=…`` in logged URLs: both WebSockets take their token in the query string, and
    uvicorn logs every WebSocket path with its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = TOKEN_IN_URL.sub(r"\1[redacted]", message), ()
        return True


def install_token_redaction(names: tuple[str, ...] = ("uvicorn.error", "uvicorn.access")) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
            logger.addFilter(TokenRedactingFilter())
