"""Where the handoff's records and exceptions were imported from before the store was split by aggregate.

They now live with their aggregate (``agents.py``, ``conversations.py``, ``notes.py``,
``suggestions.py``, ``analytics.py``) and in ``errors.py``, and ``chatbot.store`` exports them all.
This module only re-exports them, so modules outside the store that still import from here keep
working until they import from ``chatbot.store``; it imports nothing that imports it back.
"""

from __future__ import annotations

from chatbot.store.agents import AgentRecord
from chatbot.store.analytics import AnalyticsData
from chatbot.store.conversations import ConversationRecord
from chatbot.store.errors import AgentExists, LifecycleConflict, MessageNotFound
from chatbot.store.notes import NoteRecord
from chatbot.store.suggestions import SuggestionRecord

__all__ = [
    "AgentExists",
    "AgentRecord",
    "AnalyticsData",
    "ConversationRecord",
    "LifecycleConflict",
    "MessageNotFound",
    "NoteRecord",
    "SuggestionRecord",
]
