"""Replies suggested to an agent, and what became of each (pending, sent, edited, ignored).

The outcome is what analytics measures suggestions by, so every path that makes a pending
suggestion moot marks it ``ignored``: a newer set of suggestions, an agent reply that used another
one, and the conversation leaving the agent (``lifecycle.py`` calls ``ignore_pending``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chatbot.store.base import Repository, new_id
from chatbot.store.models import Suggestion


@dataclass(frozen=True)
class SuggestionRecord:
    id: str
    conversation_id: str
    message_id: str | None
    kind: str
    text: str
    sources: list[dict[str, Any]]
    outcome: str


def _suggestion(row: Suggestion) -> SuggestionRecord:
    return SuggestionRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        message_id=row.message_id,
        kind=row.kind,
        text=row.text,
        sources=list(row.sources or []),
        outcome=row.outcome,
    )


def ignore_pending(session: Session, conversation_id: str, keep: str | None = None) -> None:
    """Mark the conversation's pending suggestions (but ``keep``) ignored, inside the caller's transaction."""
    query = update(Suggestion).where(Suggestion.conversation_id == conversation_id, Suggestion.outcome == "pending")
    if keep is not None:
        query = query.where(Suggestion.id != keep)
    session.execute(query.values(outcome="ignored").execution_options(synchronize_session=False))


class SuggestionRepository(Repository):
    """The ``suggestions`` table."""

    def add(
        self, conversation_id: str, message_id: str | None, agent_id: str, items: Iterable[tuple[str, str, list[Any]]]
    ) -> list[SuggestionRecord]:
        """Store a new set of suggestions (kind, text, sources); earlier pending ones were not used: ignored."""
        with self._sessions.begin() as session:
            ignore_pending(session, conversation_id)
            rows = [
                Suggestion(
                    id=new_id("sug"),
                    conversation_id=conversation_id,
                    message_id=message_id,
                    agent_id=agent_id,
                    kind=kind,
                    text=text,
                    sources=sources,
                )
                for kind, text, sources in items
            ]
            session.add_all(rows)
            session.flush()
            return [_suggestion(r) for r in rows]

    def get(self, suggestion_id: str) -> SuggestionRecord | None:
        with self._sessions() as session:
            row = session.scalar(select(Suggestion).where(Suggestion.id == suggestion_id))
            return _suggestion(row) if row is not None else None

    def resolve(self, conversation_id: str, used: str | None, outcome: str, message_id: str) -> None:
        """After an agent message: the suggestion it used is sent/edited, every other pending one ignored."""
        with self._sessions.begin() as session:
            if used is not None:
                session.execute(
                    update(Suggestion)
                    .where(Suggestion.id == used)
                    .values(outcome=outcome, used_message_id=message_id)
                    .execution_options(synchronize_session=False)
                )
            ignore_pending(session, conversation_id, keep=used)
