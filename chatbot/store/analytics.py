"""The analytics queries: plain rows for ``chatbot/agents/analytics.py``, which computes the numbers.

Keeping the SQL here and the arithmetic there means the numbers are computed (and tested) in one
place, on data that any backend returns the same way. The window is by conversation creation
time: a conversation counts, with everything that happened in it, in the window it started in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from chatbot.store.base import Repository
from chatbot.store.models import Conversation, Feedback, HandoffEvent, Message, Suggestion


@dataclass(frozen=True)
class AnalyticsData:
    """Plain rows for chatbot/agents/analytics.py, so the numbers are computed (and tested) in one place."""

    conversation_ids: list[str]
    requested: list[tuple[str, str | None]]  # (conversation id, reason) of every handoff request
    agent_conversations: set[str]  # conversations where an agent wrote or claimed
    answers: list[tuple[str, str | None, int | None]]  # (message id, kind, latency_ms) of assistant messages
    feedback: list[tuple[str, str]]  # (message id, rating)
    suggestion_outcomes: list[str]
    unanswered: list[tuple[str, str]]  # (customer question, "fallback" | "refusal" | "thumbs_down")


class AnalyticsQueries(Repository):
    """Read-only queries across conversations, messages, handoff events, feedback and suggestions."""

    def data(self, since: datetime) -> AnalyticsData:
        """Everything of the conversations created since ``since`` that the analytics summary needs."""
        with self._sessions() as session:
            asked = (
                select(Message.conversation_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.created_at >= since, Message.role == "user")
                .distinct()
            )
            conversation_ids = list(session.scalars(asked))
            in_window = Conversation.created_at >= since
            requested = [
                (c, r)
                for c, r in session.execute(
                    select(HandoffEvent.conversation_id, HandoffEvent.reason)
                    .join(Conversation, Conversation.id == HandoffEvent.conversation_id)
                    .where(in_window, HandoffEvent.event == "requested")
                ).all()
            ]
            humans = set(
                session.scalars(
                    select(HandoffEvent.conversation_id)
                    .join(Conversation, Conversation.id == HandoffEvent.conversation_id)
                    .where(in_window, HandoffEvent.event == "claimed")
                )
            ) | set(
                session.scalars(
                    select(Message.conversation_id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(in_window, Message.role == "agent")
                )
            )
            messages = list(
                session.execute(
                    select(
                        Message.id,
                        Message.conversation_id,
                        Message.role,
                        Message.text,
                        Message.kind,
                        Message.latency_ms,
                    )
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(in_window)
                    .order_by(Message.seq)
                ).all()
            )
            feedback = [
                (m, r)
                for m, r in session.execute(
                    select(Feedback.message_id, Feedback.rating)
                    .join(Conversation, Conversation.id == Feedback.conversation_id)
                    .where(in_window)
                ).all()
            ]
            outcomes = list(
                session.scalars(
                    select(Suggestion.outcome)
                    .join(Conversation, Conversation.id == Suggestion.conversation_id)
                    .where(in_window)
                )
            )
        answers: list[tuple[str, str | None, int | None]] = []
        question_of: dict[str, str] = {}
        last_question: dict[str, str] = {}
        for message_id, conversation_id, role, text, kind, latency in messages:
            if role == "user":
                last_question[conversation_id] = text
            elif role == "assistant":
                answers.append((message_id, kind, latency))
                if conversation_id in last_question:
                    question_of[message_id] = last_question[conversation_id]
        unanswered = [
            (question_of[m], str(k)) for m, k, _ in answers if k in ("fallback", "refusal") and m in question_of
        ]
        unanswered += [(question_of[m], "thumbs_down") for m, r in feedback if r == "down" and m in question_of]
        return AnalyticsData(
            conversation_ids=conversation_ids,
            requested=requested,
            agent_conversations=humans,
            answers=answers,
            feedback=feedback,
            suggestion_outcomes=outcomes,
            unanswered=unanswered,
        )
