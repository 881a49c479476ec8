"""A logging filter that redacts personal data (chatbot/guard/pii.py) from every log record.

Callers already log only redacted customer text, but a log line can still carry personal data by
accident: an exception message quoting a request body, a third-party library echoing input, a new
``log.info(f"... {text}")``. ``configure_logging`` installs this filter on the root handler, so
every record from every logger (uvicorn's included) is rewritten before it is formatted: the
message with its arguments merged in, every string in the extras (also inside dicts, lists and
tuples), the formatted exception and the stack. It is separate from the secrets filter
(chatbot/log_filters.py), which removes credentials.
"""

from __future__ import annotations

import logging

from chatbot.guard.pii import redact
from chatbot.log_filters import RewritingFilter


class PiiRedactionFilter(RewritingFilter):
    """Personal data out of every record; a log line is kept, only its personal data goes."""

    def rewrite(self, text: str) -> str:
        return redact(text).text


def install(handler: logging.Handler) -> None:
    """Put the filter on ``handler`` once (a handler filter sees records propagated from every logger)."""
    if not any(isinstance(f, PiiRedactionFilter) for f in handler.filters):
        handler.addFilter(PiiRedactionFilter())
