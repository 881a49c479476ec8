"""Persistence of conversations and messages (SQLite by default, any SQLAlchemy URL otherwise)."""

from chatbot.store.repository import ConversationNotFound, Store

__all__ = ["ConversationNotFound", "Store"]
