"""Structured (JSON) logs. Only redacted text is passed to loggers; this layer adds no content."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


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
            if name not in _STANDARD:
                record.__dict__[name] = self.rewrite_field(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.rewrite(record.exc_text)
        if record.stack_info:
            record.stack_info = self.rewrite(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:  # exc_text: already formatted (and scrubbed of secrets) by log_filters
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    from chatbot.server.log_filters import install as install_log_filters

    install_log_filters(handler)  # request ids on every record; tokens, keys and passwords scrubbed
    from chatbot.guard.log_filter import install as install_pii_filter

    install_pii_filter(handler)  # card, account, SSN, IBAN, e-mail and phone numbers redacted
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
