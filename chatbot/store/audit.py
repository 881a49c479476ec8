"""The audit log: who did what, when, from where (``Store.audit`` and ``store.audit_log``).

Auditors ask which agent read or answered a conversation, who created or revoked an API key and
when transcripts were purged. Every such action calls ``Store.audit`` in the same code path that
performs it. The log holds identifiers and action names, never message text, and ``chatbot purge``
keeps it (it has its own retention, decided by the bank).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from chatbot.store.base import Repository
from chatbot.store.models import AuditEvent, aware

ACTOR_TYPES = ("agent", "admin", "api_key", "operator", "system")


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    created_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    ip: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = self.created_at.isoformat()
        return data


class AuditRepository(Repository):
    """The ``audit_log`` table: append and list, nothing else (no update, no delete)."""

    def record(
        self,
        actor_type: str,
        actor_id: str | None,
        action: str,
        target_type: str | None = None,
        target_id: str | None = None,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record one action. ``detail`` carries ids and counts only: never customer text or secrets."""
        if actor_type not in ACTOR_TYPES:
            raise ValueError(f"unknown actor type {actor_type!r}")
        with self._sessions.begin() as session:
            session.add(
                AuditEvent(
                    actor_type=actor_type,
                    actor_id=actor_id,
                    action=action,
                    target_type=target_type,
                    target_id=target_id,
                    ip=ip,
                    detail=detail or {},
                )
            )

    def events(
        self, before_seq: int | None = None, limit: int = 100, action: str | None = None, actor_id: str | None = None
    ) -> list[AuditRecord]:
        """Newest first; ``before_seq`` is the cursor of the next page."""
        query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(AuditEvent.seq < before_seq)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        if actor_id is not None:
            query = query.where(AuditEvent.actor_id == actor_id)
        with self._sessions() as session:
            return [
                AuditRecord(
                    seq=row.seq,
                    created_at=aware(row.created_at) or row.created_at,
                    actor_type=row.actor_type,
                    actor_id=row.actor_id,
                    action=row.action,
                    target_type=row.target_type,
                    target_id=row.target_id,
                    ip=row.ip,
                    detail=dict(row.detail or {}),
                )
                for row in session.scalars(query)
            ]
