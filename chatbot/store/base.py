"""What every repository of the store shares: the session factory, id generation and UPDATE row counts.

Each aggregate (conversations, messages, agents, …) is a small repository class over one
``sessionmaker`` that ``Store`` creates once per engine, so they all share its connection pool and
SQLite pragmas. A repository may also be built from a bare SQLAlchemy engine (tests and command-line
tools that only need one aggregate do this).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

Sessions = sessionmaker[Session]


def new_id(prefix: str) -> str:
    """A public id (``conv_…``, ``msg_…``): 64 random bits, so ids are not guessable from one another."""
    return f"{prefix}_{secrets.token_hex(8)}"


def changed_rows(result: Any) -> int:
    """Rows an UPDATE or DELETE changed (a CursorResult's rowcount; the generic Result type does not declare it).

    Conditional UPDATEs are how the store lets the database, not a process, decide races, so this
    count is what tells the caller whether it won.
    """
    return int(getattr(result, "rowcount", 0))


def session_factory(engine: SqlEngine) -> Sessions:
    """Sessions whose objects stay readable after commit: records are built from rows after the transaction."""
    return sessionmaker(engine, expire_on_commit=False)


class Repository:
    """Base of the aggregate repositories: holds the shared session factory."""

    def __init__(self, sessions: Sessions | SqlEngine) -> None:
        self._sessions: Sessions = session_factory(sessions) if isinstance(sessions, SqlEngine) else sessions
