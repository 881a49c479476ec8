"""Structured (JSON) logs. Only redacted text is passed to loggers; this layer adds no content.

Named ``log_setup`` rather than ``logging`` so it never shadows the standard library's module.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Collection
from typing import Any

from chatbot.guard.log_filter import install as install_pii_filter
from chatbot.log_filters import STANDARD_ATTRIBUTES
from chatbot.log_filters import install as install_log_filters


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRIBUTES})
        if record.exc_info:  # exc_text: already formatted (and scrubbed of secrets) by log_filters
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", public_numbers: Collection[str] | None = None) -> None:
    """JSON lines on stderr through the secrets and PII filters; ``public_numbers``: Settings.pii_public_numbers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    install_log_filters(handler)  # request ids on every record; tokens, keys and passwords scrubbed
    install_pii_filter(handler, public_numbers)  # card, account, SSN, IBAN, e-mail and phone numbers redacted
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
