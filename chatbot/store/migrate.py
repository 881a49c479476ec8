"""Bring an existing database up to the current tables: create missing tables, add missing columns.

``Base.metadata.create_all`` creates tables that do not exist but never touches a table that does,
and the first release's ``var/chatbot.db`` lives on users' machines. Until Alembic arrives, this
small idempotent step runs when the Store opens: for every mapped table that exists, each column
the model has and the database lacks is added with ``ALTER TABLE … ADD COLUMN``. That is safe
because every column added after the first release is nullable or carries a server default (the
rule to keep until migrations exist). Foreign-key constraints of added columns are not created
(SQLite cannot add them to an existing table); the application enforces those references.
"""

from __future__ import annotations

import logging

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.schema import Column

log = logging.getLogger(__name__)


def _column_ddl(column: Column[object], engine: SqlEngine) -> str:
    preparer = engine.dialect.identifier_preparer
    ddl = f"{preparer.quote(column.name)} {column.type.compile(dialect=engine.dialect)}"
    default = column.server_default
    if default is not None:
        argument = getattr(default, "arg", None)
        if argument is not None:
            value = argument if isinstance(argument, str) else argument.compile(dialect=engine.dialect)
            ddl += f" DEFAULT {value}"
    if not column.nullable and default is None:
        raise RuntimeError(
            f"column {column.table.name}.{column.name} is NOT NULL without a server default; "
            "it cannot be added to an existing table"
        )
    return ddl


def upgrade(engine: SqlEngine, metadata: MetaData) -> list[str]:
    """Create missing tables and add missing columns; return the ``table.column`` names added."""
    metadata.create_all(engine)
    inspector = inspect(engine)
    existing_tables = set(inspector.get_table_names())
    added: list[str] = []
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name not in existing_tables:
                continue
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                name = engine.dialect.identifier_preparer.quote(table.name)
                connection.execute(text(f"ALTER TABLE {name} ADD COLUMN {_column_ddl(column, engine)}"))
                added.append(f"{table.name}.{column.name}")
    if added:
        log.info("database upgraded", extra={"added_columns": added})
    return added
