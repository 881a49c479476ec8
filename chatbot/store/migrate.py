"""Bring any database to the current schema with Alembic, when the Store opens it.

Three kinds of database reach ``migrate``:

* a new, empty one: ``upgrade head`` from scratch;
* one Alembic already manages (an ``alembic_version`` table): ``upgrade head``, a no-op when current;
* an unversioned one, made by a release before migrations existed (the first release's
  ``var/chatbot.db`` lives on users' machines, and the agent-console release added columns to it
  with a plain ``ALTER TABLE``): its missing baseline tables and columns are added by
  ``add_missing_columns`` (safe because every column added after the first release is nullable or
  has a server default), it is stamped with the baseline revision 0001, then upgraded to head.

Several server processes may open one PostgreSQL database at the same moment (a rolling deploy,
or two machines booting): the whole step runs under a PostgreSQL advisory lock, so exactly one
process migrates and the others find the work done. A file lock next to an SQLite file does the
same for processes sharing one SQLite file. The Alembic ``Config`` is built in code, so no
``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, event, inspect, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.schema import Column

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001"
# pg_advisory_lock key: any constant 64-bit number the application uses for nothing else ("kestrel" in ASCII).
ADVISORY_LOCK_KEY = 0x6B65737472656C


@dataclass(frozen=True)
class MigrationResult:
    before: str | None  # the revision found (None: new or unversioned database)
    after: str  # the revision now (always head)
    adopted: bool  # an unversioned database of an earlier release was brought to the baseline and stamped
    added_columns: tuple[str, ...] = ()


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` (what operators and hosting providers write) mean psycopg 3.

    SQLAlchemy would pick the psycopg2 driver for them, which is not installed; the issue's
    ``CHATBOT_DATABASE_URL=postgresql://…`` must work as written.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, built in code; ``connection`` is what env.py migrates."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no Alembic revisions in {MIGRATIONS_DIR}")
    return head


def known_revision(revision: str) -> bool:
    """Whether this version of the software ships ``revision`` (a newer release's is unknown to it)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError / CommandError subclasses
        return False


class UnknownRevision(RuntimeError):
    pass


def current_revision(connection: Connection) -> str | None:
    """The revision stamped in the database; None for a new or an unversioned one."""
    return MigrationContext.configure(connection).get_current_revision()


def _column_ddl(column: Column[object], connection: Connection) -> str:
    dialect = connection.dialect
    ddl = f"{dialect.identifier_preparer.quote(column.name)} {column.type.compile(dialect=dialect)}"
    default = column.server_default
    if default is not None:
        argument = getattr(default, "arg", None)
        if argument is not None:
            value = argument if isinstance(argument, str) else argument.compile(dialect=dialect)
            ddl += f" DEFAULT {value}"
    if not column.nullable and default is None:
        raise RuntimeError(
            f"column {column.table.name}.{column.name} is NOT NULL without a server default; "
            "it cannot be added to an existing table"
        )
    return ddl


def add_missing_columns(connection: Connection, metadata: MetaData) -> list[str]:
    """Create the tables of ``metadata`` that do not exist and add the columns existing ones lack.

    Returns the ``table.column`` names added. Foreign-key constraints of added columns are not
    created (SQLite cannot add them to an existing table); the application enforces them.
    """
    metadata.create_all(connection)
    inspector = inspect(connection)
    existing_tables = set(inspector.get_table_names())
    preparer = connection.dialect.identifier_preparer
    added: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = _column_ddl(column, connection)
                connection.execute(text(f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {ddl}"))
                added.append(f"{table.name}.{column.name}")
    return added


def upgrade(engine: SqlEngine, metadata: MetaData) -> list[str]:
    """``add_missing_columns`` in its own transaction (the pre-Alembic entry point, kept for callers)."""
    with engine.begin() as connection:
        return add_missing_columns(connection, metadata)


def _has_every_column(connection: Connection, metadata: MetaData) -> bool:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in tables:
            return False
        if not {c.name for c in table.columns} <= {c["name"] for c in inspector.get_columns(table.name)}:
            return False
    return True


# How long a SQLite connection (the Store's, and the migrating one) waits for another process's lock.
SQLITE_BUSY_TIMEOUT_S = 60.0


def _sqlite_file(engine: SqlEngine) -> str | None:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _transactional_sqlite(engine: SqlEngine) -> SqlEngine:
    """A private engine on the same SQLite file whose transactions cover DDL too.

    Python's sqlite3 driver opens no transaction before DDL, so each CREATE / ALTER would commit on
    its own: a migration interrupted half-way would leave a half-changed file, and every statement
    costs a disk sync. With the driver's own handling off and an explicit BEGIN IMMEDIATE (the
    SQLAlchemy recipe), each revision is one atomic transaction, as on PostgreSQL.
    """
    private = create_engine(engine.url, poolclass=pool.NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(private, "connect")
    def _no_driver_transactions(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    @event.listens_for(private, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return private


@contextlib.contextmanager
def _exclusive(engine: SqlEngine) -> Iterator[Connection]:
    """A connection that alone, among every process on this database, may migrate it."""
    database = _sqlite_file(engine)
    if database is not None:
        private = _transactional_sqlite(engine)
        try:
            with open(f"{database}.migrate-lock", "a+b") as lock, private.connect() as connection:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield connection
                finally:
                    if connection.in_transaction():
                        connection.rollback()
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            private.dispose()
        return
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            connection.commit()  # the lock belongs to the session, not to this transaction
            try:
                yield connection
            finally:
                if connection.in_transaction():
                    connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                connection.commit()
            return
        yield connection  # an in-memory SQLite database: no other process can see it


def migrate(engine: SqlEngine) -> MigrationResult:
    """Bring the database behind ``engine`` to the head revision (see the module docstring)."""
    head = head_revision()
    with engine.connect() as connection:  # the common case, checked without any lock
        if current_revision(connection) == head:
            return MigrationResult(head, head, adopted=False)
    from chatbot.store.migrations import baseline
    from chatbot.store.models import Base

    with _exclusive(engine) as connection:
        before = current_revision(connection)
        if before is not None and not known_revision(before):
            raise UnknownRevision(
                f"the database is at schema revision {before!r}, which this version does not know "
                "(a newer release upgraded it): run the newer release, or restore a backup"
            )
        adopted, added = False, []
        if before is None and inspect(connection).get_table_names():
            adopted = True
            if _has_every_column(connection, Base.metadata):  # made by a build of this release before Alembic
                stamp = head
            else:
                added = add_missing_columns(connection, baseline.metadata())
                stamp = BASELINE_REVISION
            # The stamp joins the transaction of the added columns: both happen, or neither.
            command.stamp(alembic_config(connection), stamp)
            log.info("unversioned database adopted", extra={"revision": stamp, "added_columns": added})
        connection.commit()
        if current_revision(connection) != head:
            connection.commit()  # Alembic runs each revision in a transaction of its own
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
            log.info("database migrated", extra={"from_revision": before, "to_revision": head})
        return MigrationResult(before, head, adopted, tuple(added))
