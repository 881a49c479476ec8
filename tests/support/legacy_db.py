"""A database as the first release created it, for the tests that upgrade one in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

FIRST_RELEASE_SCHEMA = """
CREATE TABLE conversations (id VARCHAR(40) NOT NULL PRIMARY KEY, channel VARCHAR(20) NOT NULL,
    status VARCHAR(20) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL);
CREATE TABLE messages (seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, id VARCHAR(40) NOT NULL,
    conversation_id VARCHAR(40) NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role VARCHAR(20) NOT NULL, text TEXT NOT NULL, kind VARCHAR(20), intent VARCHAR(60),
    confidence FLOAT, sources JSON NOT NULL, handoff BOOLEAN NOT NULL, latency_ms INTEGER,
    created_at DATETIME NOT NULL);
"""


def first_release_sqlite(path: Path, conversation_id: str, message_id: str, text: str) -> None:
    """The first release's two tables (its create_all: no handoff columns, no agents) with one message."""
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_RELEASE_SCHEMA)
        db.execute(
            "INSERT INTO conversations VALUES (?, 'web', 'bot', '2026-01-01 10:00:00', '2026-01-01 10:00:00')",
            (conversation_id,),
        )
        db.execute(
            "INSERT INTO messages (id, conversation_id, role, text, sources, handoff, created_at)"
            " VALUES (?, ?, 'user', ?, '[]', 0, '2026-01-01 10:00:01')",
            (message_id, conversation_id, text),
        )
