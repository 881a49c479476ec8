"""A logging filter that redacts personal data (chatbot/guard/pii.py) from every log record.

Callers already log only redacted customer text, but a log line can still carry personal data by
accident: an exception message quoting a request body, a third-party library echoing input, a new
``log.info(f"... {text}")``. ``configure_logging`` installs this filter on the root handler, so
every record from every logger (uvicorn's included) is rewritten before it is formatted: the
message with its arguments merged in, every string in the extras (also inside dicts, lists and
tuples), the formatted exception and the stack. It is separate from the secrets filter
(chatbot/server/log_filters.py), which removes credentials.
"""

from __future__ import annotations

import logging
from typing import Any

from chatbot.guard.pii import redact

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_MAX_DEPTH = 5


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with personal data redacted from every string in it (nested containers included)."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return redact(value).text
    if isinstance(value, dict):
        return {key: redact_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item, depth + 1) for item in value)
    return value


class PiiRedactionFilter(logging.Filter):
    """Rewrites a record in place; never drops one (a log line is kept, only its personal data goes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, redacted
            message = str(record.msg)
        record.msg, record.args = redact(message).text, ()
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD:
                record.__dict__[name] = redact_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text).text
        if record.stack_info:
            record.stack_info = redact(record.stack_info).text
        return True


def install(handler: logging.Handler) -> None:
    """Put the filter on ``handler`` once (a handler filter sees records propagated from every logger)."""
    if not any(isinstance(f, PiiRedactionFilter) for f in handler.filters):
        handler.addFilter(PiiRedactionFilter())
