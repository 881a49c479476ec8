"""Alembic environment of the conversation store.

Run three ways: by the Store when it opens a database (``chatbot/store/migrate.py`` passes its
open connection in ``config.attributes["connection"]``), by ``chatbot db upgrade``, and by the
``alembic`` command line of a developer (``sqlalchemy.url`` from the ini file, else the URL in
Settings). SQLite cannot alter most of a table in place, so its migrations run in batch mode
(copy, alter, swap), which ``op.batch_alter_table`` makes a no-op where SQLite can ALTER directly.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from chatbot.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from chatbot.config import get_settings

    return get_settings().resolved_database_url


def run_offline() -> None:
    """``alembic upgrade head --sql``: print the DDL instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = given if given is not None else create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
