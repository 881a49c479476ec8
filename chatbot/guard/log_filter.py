"""A logging filter that redacts personal data (chatbot/guard/pii.py) from every log record.

Callers already log only redacted customer text, but a log line can still carry personal data by
accident: an exception message quoting a request body, a third-party library echoing input, a new
``log.info(f"... {text}")``. ``configure_logging`` installs this filter on the root handler, so
every record from every logger (uvicorn's included) is rewritten before it is formatted: the
message with its arguments merged in, every string in the extras (also inside dicts, lists and
tuples), the formatted exception and the stack; percent-encoded URL text (an access log's query
string) is read decoded. It is separate from the secrets filter
(chatbot/log_filters.py), which removes credentials.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from urllib.parse import unquote_plus

from chatbot.guard.pii import redact
from chatbot.log_filters import RewritingFilter

# A run of URL text holding at least one %XX escape: a query string in an access-log line.
PERCENT_ENCODED = re.compile(r"[^\s\"'<>]*%[0-9A-Fa-f]{2}[^\s\"'<>]*")


def _decoded_if_personal(match: re.Match[str], keep: Collection[str] | None) -> str:
    """A percent-encoded run, decoded and redacted when decoding reveals personal data, else unchanged.

    ``customer_id=jane.doe%40example.com`` hides the e-mail address from a reader of the raw text;
    only the runs that turn out to carry personal data are rewritten, so other URLs stay as logged.
    """
    decoded = unquote_plus(match.group(0))
    redacted = redact(decoded, keep)
    return redacted.text if redacted.changed else match.group(0)


class PiiRedactionFilter(RewritingFilter):
    """Personal data out of every record; a log line is kept, only its personal data goes."""

    def __init__(self, keep: Collection[str] | None = None) -> None:
        super().__init__()
        self.keep = tuple(keep) if keep is not None else None  # Settings.pii_public_numbers

    def rewrite(self, text: str) -> str:
        if "%" in text:
            text = PERCENT_ENCODED.sub(lambda match: _decoded_if_personal(match, self.keep), text)
        return redact(text, self.keep).text


def install(handler: logging.Handler, keep: Collection[str] | None = None) -> None:
    """Put the filter on ``handler`` once (a handler filter sees records propagated from every logger)."""
    if not any(isinstance(f, PiiRedactionFilter) for f in handler.filters):
        handler.addFilter(PiiRedactionFilter(keep))
