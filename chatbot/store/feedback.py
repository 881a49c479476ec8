"""A customer's thumbs up or down on an assistant answer; a second rating of the same answer replaces the first."""

from __future__ import annotations

from sqlalchemy import select

from chatbot.store.base import Repository
from chatbot.store.models import Feedback, utcnow


class FeedbackRepository(Repository):
    """The ``feedback`` table (read back only by analytics, in ``analytics.py``)."""

    def set(self, message_id: str, conversation_id: str, rating: str, comment: str | None) -> None:
        with self._sessions.begin() as session:
            row = session.scalar(select(Feedback).where(Feedback.message_id == message_id))
            if row is None:
                session.add(
                    Feedback(message_id=message_id, conversation_id=conversation_id, rating=rating, comment=comment)
                )
            else:
                row.rating, row.comment, row.created_at = rating, comment, utcnow()
