"""Logging filters: the rewriting base class, request ids on every record, secrets scrubbed from every record.

``RewritingFilter`` is the base of this module's secrets filter and of the PII filter
(chatbot/guard/log_filter.py); it lives here, below both, so neither imports the module that installs
it. The filters are installed on the root handler by ``chatbot.log_setup.configure_logging`` (a filter on the
handler sees records from every logger, including uvicorn's access log). They are separate from
the PII redaction filter on purpose: this one removes credentials (Bearer tokens, ``kst_`` API keys,
JWTs, ``token=`` / ``key=`` / ``password=`` / ``customer_hash=`` values and password fields), whatever
the message says.

The request id lives in a context variable set by ``RequestIdMiddleware`` (chatbot/server/middleware.py);
asyncio tasks and ``asyncio.to_thread`` copy the context, so logs written while serving a request —
in the engine, the store, a worker thread — carry the id of the request that caused them.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RewritingFilter(logging.Filter):
    """A filter that rewrites every text a record carries and never drops the record.

    Subclasses say how one string is rewritten (``rewrite``) and may replace a whole extra field
    (``rewrite_field``). The message (with its arguments merged in), every string in the extras
    (inside dicts, lists and tuples too), the formatted exception and the stack all pass through it,
    so no logger — ours, uvicorn's or a library's — can write the text unchanged.
    """

    max_depth = 5

    def rewrite(self, text: str) -> str:
        raise NotImplementedError

    def rewrite_field(self, name: str, value: Any) -> Any:
        return self.rewrite_value(value)

    def rewrite_value(self, value: Any, depth: int = 0) -> Any:
        if depth > self.max_depth:
            return value
        if isinstance(value, str):
            return self.rewrite(value)
        if isinstance(value, dict):
            return {k: self.rewrite_nested(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.rewrite_value(v, depth + 1) for v in value)
        return value

    def rewrite_nested(self, key: Any, value: Any, depth: int) -> Any:
        return self.rewrite_value(value, depth)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, rewritten
            message = str(record.msg)
        record.msg, record.args = self.rewrite(message), ()
        for name, value in list(record.__dict__.items()):
            if name not in STANDARD_ATTRIBUTES:
                record.__dict__[name] = self.rewrite_field(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.rewrite(record.exc_text)
        if record.stack_info:
            record.stack_info = self.rewrite(record.stack_info)
        return True


request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REDACTED = "[redacted]"
SECRET_FIELDS = re.compile(
    r"(\w*_)?(password|passwd|passphrase|secret|secret_key|token|api_key|apikey|authorization|cookie|credentials?"
    r"|customer_hash)",
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
    # token=… key=… password=… customer_hash=… in URLs, query strings and key=value text (a customer
    # hash is an HMAC a partner's back end signs: whoever holds it can act as that customer)
    (
        re.compile(
            r"((?:access_|api_|refresh_|id_|customer_)?(?:token|key|password|passwd|secret|hash)=)[^&\s\"',;]+", re.I
        ),
        r"\1" + REDACTED,
    ),
    # "password": "…" / 'secret': '…' in JSON or repr text
    (
        re.compile(
            r"""(["']?(?:password|passwd|secret|token|api_key|authorization|customer_hash)["']?\s*[:=]\s*["'])[^"']*""",
            re.I,
        ),
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
