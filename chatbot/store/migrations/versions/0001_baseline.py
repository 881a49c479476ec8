"""Baseline: the schema of the agent-console release (conversations, messages, agents, handoff).

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Created from the frozen copy in chatbot/store/migrations/baseline.py, so that it is exactly what
that release's ``create_all`` made (same types, index and constraint names).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import ForeignKeyConstraint, UniqueConstraint

from chatbot.store.migrations import baseline

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # op.create_table (not create_all) so that `alembic upgrade head --sql` can print the DDL too;
    # it creates each table's indexes, named as create_all names them.
    for table in baseline.metadata().sorted_tables:
        constraints: list[UniqueConstraint | ForeignKeyConstraint] = [
            UniqueConstraint(*constraint.columns.keys(), name=constraint.name)
            for constraint in table.constraints
            if isinstance(constraint, UniqueConstraint)
        ]
        # A copied column leaves its foreign key behind (it belongs to the table's constraint): copy those too.
        constraints += [c._copy() for c in table.constraints if isinstance(c, ForeignKeyConstraint)]
        op.create_table(table.name, *(column._copy() for column in table.columns), *constraints)


def downgrade() -> None:
    for table in reversed(baseline.metadata().sorted_tables):
        op.drop_table(table.name)
