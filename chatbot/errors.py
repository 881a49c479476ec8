"""Domain exceptions: what went wrong, in words the domain knows, with no HTTP in them.

Code below the web layer (the turn and handoff services, the integration API's helpers) raises
these; ``chatbot/server/errors.py`` maps each class to its HTTP status in one place, and the
WebSockets turn them into ``error`` frames with the same ``code``. So a rule such as "a closed
conversation cannot be claimed" is written once, and a CLI or a test can use the services
without a web framework.
"""

from __future__ import annotations


class DomainError(Exception):
    """``code`` is machine-readable (clients branch on it); ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class NotFound(DomainError):
    """The conversation, message or suggestion does not exist (HTTP 404)."""


class Conflict(DomainError):
    """The request does not fit the current state, e.g. claiming a closed conversation (HTTP 409)."""


class InvalidInput(DomainError, ValueError):
    """The text or parameter cannot be used as sent: empty, too long, unreadable, a bad cursor (HTTP 422)."""


class RateLimited(DomainError):
    """Over a rate limit; ``retry_after`` seconds until the next try (HTTP 429 with Retry-After, or an error frame)."""

    def __init__(self, retry_after: int, scope: str = "conversation") -> None:
        noun = {"conversation": "messages in this conversation", "key": "requests with this API key"}
        what = noun.get(scope, "requests from your address")
        super().__init__("rate_limited", f"Too many {what}; try again in {retry_after} s.")
        self.retry_after, self.scope = retry_after, scope
