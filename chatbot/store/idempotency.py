"""Stored responses of POSTs sent with an ``Idempotency-Key``: the ``idempotency_keys`` table.

The rules (claim, replay, 409 while in flight, 422 for another body, expiry) are in
``chatbot/integration/idempotency.py``; this module holds the operations they need, each one
statement, so that the database's primary key ``(scope, key)`` decides which of two concurrent
requests claims a key, in one process or several.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from chatbot.store.base import Repository, changed_rows
from chatbot.store.models import IdempotencyRecord, aware


@dataclass(frozen=True)
class IdempotencyEntry:
    scope: str
    key: str
    request_hash: str
    status_code: int | None  # None while the first request is still running
    response: Any
    created_at: datetime


def _entry(row: IdempotencyRecord) -> IdempotencyEntry:
    return IdempotencyEntry(
        scope=row.scope,
        key=row.key,
        request_hash=row.request_hash,
        status_code=row.status_code,
        response=row.response,
        created_at=aware(row.created_at) or row.created_at,
    )


class IdempotencyRepository(Repository):
    """The ``idempotency_keys`` table."""

    def insert_claim(self, scope: str, key: str, fingerprint: str, moment: datetime) -> bool:
        """Claim the key with a row that has no response yet; False when a row for it exists already."""
        try:
            with self._sessions.begin() as session:
                session.add(IdempotencyRecord(scope=scope, key=key, request_hash=fingerprint, created_at=moment))
            return True
        except IntegrityError:
            return False

    def get(self, scope: str, key: str) -> IdempotencyEntry | None:
        with self._sessions() as session:
            row = session.scalar(
                select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            )
            return _entry(row) if row is not None else None

    def delete_entry(self, entry: IdempotencyEntry) -> None:
        """Delete this very row (expired or abandoned), not a newer claim another process made meanwhile."""
        with self._sessions.begin() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.scope == entry.scope,
                    IdempotencyRecord.key == entry.key,
                    IdempotencyRecord.created_at == entry.created_at,
                )
            )

    def complete(self, scope: str, key: str, status_code: int, response: Any) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
                .values(status_code=status_code, response=response)
            )

    def release(self, scope: str, key: str) -> None:
        """Forget an unfinished claim (the request failed), so a retry runs again."""
        with self._sessions.begin() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.status_code.is_(None),
                )
            )

    def delete_before(self, cutoff: datetime) -> int:
        """Delete the records created before ``cutoff``; returns how many."""
        with self._sessions.begin() as session:
            return changed_rows(session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)))
