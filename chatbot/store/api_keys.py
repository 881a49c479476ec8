"""API keys of apps and partners: the ``api_keys`` table.

The store keeps only what identifies a key (its SHA-256 and a short prefix for lists), never the
key; generating keys, hashing them and checking scopes is ``chatbot/integration/keys.py``'s work.
Revoking sets ``revoked_at`` and keeps the row, for the audit trail.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from chatbot.store.base import Repository, changed_rows, new_id
from chatbot.store.errors import KeyExists
from chatbot.store.models import ApiKey, aware, utcnow


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def public(self) -> dict[str, Any]:
        """What lists show: never the key or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes or ()),
        created_at=aware(row.created_at) or row.created_at,
        last_used_at=aware(row.last_used_at),
        revoked_at=aware(row.revoked_at),
    )


class ApiKeyRepository(Repository):
    """The ``api_keys`` table."""

    def create(self, name: str, prefix: str, key_hash: str, scopes: tuple[str, ...]) -> ApiKeyRecord:
        """A new key's row; KeyExists when the name is taken (also by a concurrent create)."""
        try:
            with self._sessions.begin() as session:
                if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
                    raise KeyExists(name)
                row = ApiKey(id=new_id("key"), name=name, prefix=prefix, key_hash=key_hash, scopes=list(scopes))
                session.add(row)
                session.flush()
                return _record(row)
        except IntegrityError:  # a concurrent create of the same name
            raise KeyExists(name) from None

    def list(self) -> builtins.list[ApiKeyRecord]:
        with self._sessions() as session:
            return [_record(r) for r in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name))]

    def by_name(self, name: str) -> ApiKeyRecord | None:
        with self._sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.name == name))
            return _record(row) if row is not None else None

    def by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The key's record (revoked ones included: the caller says why it refuses), or None if unknown."""
        with self._sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            return _record(row) if row is not None else None

    def revoke(self, name: str) -> ApiKeyRecord | None:
        """Revoke at once; None for an unknown name. Idempotent: a revoked key keeps its first ``revoked_at``."""
        with self._sessions.begin() as session:
            session.execute(
                update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
            )
            row = session.scalar(select(ApiKey).where(ApiKey.name == name))
            return _record(row) if row is not None else None

    def touch(self, key_id: str, moment: datetime, unless_since: datetime) -> bool:
        """Set ``last_used_at`` unless it is already ``unless_since`` or later; True when this call wrote it.

        The UPDATE is conditional, so processes that see the same key at once write it only once.
        """
        with self._sessions.begin() as session:
            result = session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_since))
                .values(last_used_at=moment)
                .execution_options(synchronize_session=False)
            )
            return changed_rows(result) > 0
