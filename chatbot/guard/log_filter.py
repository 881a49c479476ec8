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
from collections.abc import Collection

from chatbot.guard.pii import redact
from chatbot.log_filters import RewritingFilter


class PiiRedactionFilter(RewritingFilter):
    """Personal data out of every record; a log line is kept, only its personal data goes."""

    def __init__(self, keep: Collection[str] | None = None) -> None:
        super().__init__()
        self.keep = tuple(keep) if keep is not None else None  # Settings.pii_public_numbers

    def rewrite(self, text: str) -> str:
        return redact(text, self.keep).text


def install(handler: logging.Handler, keep: Collection[str] | None = None) -> None:
    """Put the filter on ``handler`` once (a handler filter sees records propagated from every logger)."""
    if not any(isinstance(f, PiiRedactionFilter) for f in handler.filters):
        handler.addFilter(PiiRedactionFilter(keep))
