"""Exceptions the store raises; callers above it translate them (for example into HTTP statuses).

They live apart from the repositories so that every aggregate can raise them, and every caller
can catch them, without importing one another's modules.
"""

from __future__ import annotations


class ConversationNotFound(LookupError):
    pass


class MessageNotFound(LookupError):
    pass


class AgentExists(ValueError):
    pass


class KeyExists(ValueError):
    """An API key of this name exists already (names are unique: they are how operators revoke keys)."""


class LifecycleConflict(Exception):
    """A status change that the conversation's current state forbids; ``code`` is the API error code."""

    def __init__(self, code: str, status: str) -> None:
        super().__init__(code)
        self.code, self.status = code, status
