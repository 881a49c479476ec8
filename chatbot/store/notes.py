"""Internal notes on a conversation: agents write and read them; the customer never sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from chatbot.store.base import Repository, new_id
from chatbot.store.messages import require_conversation
from chatbot.store.models import Note, aware, utcnow


@dataclass(frozen=True)
class NoteRecord:
    id: str
    conversation_id: str
    agent_name: str
    text: str
    created_at: datetime


def _note(row: Note) -> NoteRecord:
    return NoteRecord(row.id, row.conversation_id, row.agent.name, row.text, aware(row.created_at) or utcnow())


class NoteRepository(Repository):
    """The ``notes`` table."""

    def add(self, conversation_id: str, agent_id: str, text: str) -> NoteRecord:
        with self._sessions.begin() as session:
            require_conversation(session, conversation_id)
            row = Note(id=new_id("note"), conversation_id=conversation_id, agent_id=agent_id, text=text)
            session.add(row)
            session.flush()
            session.refresh(row)  # loads the author, whose name the record carries
            return _note(row)

    def for_conversation(self, conversation_id: str) -> list[NoteRecord]:
        """Oldest first."""
        with self._sessions() as session:
            rows = session.scalars(select(Note).where(Note.conversation_id == conversation_id).order_by(Note.seq))
            return [_note(r) for r in rows]
