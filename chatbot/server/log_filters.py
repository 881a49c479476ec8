"""Logging filters: request ids on every record, and secrets scrubbed from every record.

Both are installed on the root handler by ``chatbot.logging.configure_logging`` (a filter on the
handler sees records from every logger, including uvicorn's access log). They are separate from
the PII redaction filter on purpose: this one removes credentials (Bearer tokens, ``kst_`` API keys,
JWTs, ``token=`` / ``key=`` / ``password=`` values and password fields), whatever the message says.

The request id lives in a context variable set by ``RequestIdMiddleware`` (chatbot/server/middleware.py);
asyncio tasks and ``asyncio.to_thread`` copy the context, so logs written while serving a request —
in the engine, the store, a worker thread — carry the id of the request that caused them.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

from chatbot.logging import RewritingFilter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REDACTED = "[redacted]"
SECRET_FIELDS = re.compile(
    r"(\w*_)?(password|passwd|passphrase|secret|secret_key|token|api_key|apikey|authorization|cookie|credentials?)",
    re.I,
)

# Order matters: the most specific shapes first.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: Bearer <anything>, Basic <…>
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.I), r"\1 " + REDACTED),
    # API keys: kst_ + URL-safe base64
    (re.compile(r"\bkst_[A-Za-z0-9_\-]{4,}"), "kst_" + REDACTED),
    # JWTs: three base64url parts, the first two JSON objects ("eyJ")
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
    # token=… key=… password=… in URLs, query strings and key=value text
    (
        re.compile(r"((?:access_|api_|refresh_|id_)?(?:token|key|password|passwd|secret)=)[^&\s\"',;]+", re.I),
        r"\1" + REDACTED,
    ),
    # "password": "…" / 'secret': '…' in JSON or repr text
    (
        re.compile(r"""(["']?(?:password|passwd|secret|token|api_key|authorization)["']?\s*[:=]\s*["'])[^"']*""", re.I),
        r"\1" + REDACTED,
    ),
]


def scrub(text: str) -> str:
    """``text`` with every credential-shaped substring replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretScrubFilter(RewritingFilter):
    """Credentials out of every record; a field named like a secret is replaced whole."""

    def rewrite(self, text: str) -> str:
        return scrub(text)

    def rewrite_field(self, name: str, value: Any) -> Any:
        return REDACTED if SECRET_FIELDS.fullmatch(name) else self.rewrite_value(value)

    def rewrite_nested(self, key: Any, value: Any, depth: int) -> Any:
        return REDACTED if isinstance(key, str) and SECRET_FIELDS.fullmatch(key) else self.rewrite_value(value, depth)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the current request's or WebSocket's id) to every record written while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and not getattr(record, "request_id", None):
            record.request_id = request_id
        return True


def install(handler: logging.Handler) -> None:
    """Put both filters on ``handler`` once (configure_logging calls this)."""
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())
    if not any(isinstance(f, SecretScrubFilter) for f in handler.filters):
        handler.addFilter(SecretScrubFilter())
