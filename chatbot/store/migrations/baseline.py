"""The schema of the last release before migrations (the agent console release), frozen.

This is a copy, on purpose: ``chatbot/store/models.py`` moves on with every release, but revision
0001 must always create exactly what that release's ``create_all`` created, with the same index
and constraint names, so that a database made by it and a database made by 0001 are the same
thing. ``chatbot/store/migrate.py`` also uses it to bring an unversioned database (made by that
release, or by the first release, which lacked the handoff columns) up to this baseline before
stamping it. Never edit it; change the schema with a new revision instead.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)


def metadata() -> MetaData:
    """A fresh MetaData holding the baseline tables (fresh, so callers may not alter a shared one)."""
    md = MetaData()
    Table(
        "agents",
        md,
        Column("id", String(40), primary_key=True),
        Column("name", String(40), nullable=False, unique=True, index=True),
        Column("role", String(20), nullable=False),
        Column("password_hash", String(200), nullable=False),
        Column("active", Boolean, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "conversations",
        md,
        Column("id", String(40), primary_key=True),
        Column("channel", String(20), nullable=False),
        Column("status", String(20), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("token_hash", String(64), nullable=True),
        Column("assigned_agent_id", String(40), ForeignKey("agents.id"), nullable=True, index=True),
        Column("handoff_reason", String(60), nullable=True),
        Column("handoff_requested_at", DateTime(timezone=True), nullable=True),
        Column("flagged", Boolean, nullable=False, server_default=false()),
        Column("closed_at", DateTime(timezone=True), nullable=True),
        Column("closed_by", String(20), nullable=True),
    )
    Table(
        "messages",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True, index=True),
        Column(
            "conversation_id",
            String(40),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("role", String(20), nullable=False),
        Column("text", Text, nullable=False),
        Column("kind", String(20), nullable=True),
        Column("intent", String(60), nullable=True),
        Column("confidence", Float, nullable=True),
        Column("sources", JSON, nullable=False),
        Column("handoff", Boolean, nullable=False),
        Column("latency_ms", Integer, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("quick_replies", JSON, nullable=True),
        Column("agent_id", String(40), ForeignKey("agents.id"), nullable=True),
    )
    Table(
        "handoff_events",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column(
            "conversation_id",
            String(40),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("event", String(20), nullable=False),
        Column("reason", String(60), nullable=True),
        Column("agent_id", String(40), ForeignKey("agents.id"), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    )
    Table(
        "notes",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True, index=True),
        Column(
            "conversation_id",
            String(40),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
        Column("text", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "suggestions",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True, index=True),
        Column(
            "conversation_id",
            String(40),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("message_id", String(40), nullable=True),
        Column("agent_id", String(40), ForeignKey("agents.id"), nullable=True),
        Column("kind", String(20), nullable=False),
        Column("text", Text, nullable=False),
        Column("sources", JSON, nullable=False),
        Column("outcome", String(20), nullable=False),
        Column("used_message_id", String(40), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "feedback",
        md,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(40), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True),
        Column(
            "conversation_id",
            String(40),
            ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("rating", String(10), nullable=False),
        Column("comment", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("message_id"),
    )
    return md
