"""Revocable agent tokens: each agent's token version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

An agent token carries the account's ``token_version`` at issue; logout, a password change and
disabling the account increment it, and a token whose version is not the account's is refused.
Existing rows start at 0, the version that tokens issued before this migration are read as, so an
upgrade does not sign anyone out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("token_version")
