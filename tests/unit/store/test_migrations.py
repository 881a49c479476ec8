"""Alembic migrations on real SQLite and real PostgreSQL: fresh databases, databases of earlier releases,
concurrent first starts, and the guard that every model change comes with a migration."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, insert, inspect, text
from sqlalchemy.engine import Engine as SqlEngine

from chatbot.store import Store
from chatbot.store.migrate import UnknownRevision, alembic_config, current_revision, head_revision, migrate
from chatbot.store.migrations import baseline
from chatbot.store.models import Base
from tests.support.legacy_db import first_release_sqlite

ISSUE4_TABLES = {"api_keys", "audit_log", "idempotency_keys", "webhook_deliveries"}
ISSUE4_COLUMNS = {"api_key_id", "customer_id", "anonymised_at"}


def differences(engine: SqlEngine, metadata: MetaData) -> list[Any]:
    """What `alembic revision --autogenerate` would write to turn the database into ``metadata``."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def version(engine: SqlEngine) -> str | None:
    with engine.connect() as connection:
        return current_revision(connection)


def old_release_database(url: str) -> None:
    """A database as the agent-console release left it: its create_all, no alembic_version, one conversation."""
    engine = create_engine(url)
    old = baseline.metadata()
    old.create_all(engine)
    now = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(old.tables["agents"]).values(
                id="agt_old", name="olga", role="admin", password_hash="x", active=True, created_at=now
            )
        )
        connection.execute(
            insert(old.tables["conversations"]).values(
                id="conv_old", channel="web", status="closed", created_at=now, updated_at=now, closed_by="agent"
            )
        )
        connection.execute(
            insert(old.tables["messages"]).values(
                id="msg_old",
                conversation_id="conv_old",
                role="user",
                text="hello from the old release",
                sources=[],
                handoff=False,
                created_at=now,
            )
        )
    engine.dispose()


def test_the_head_revision_is_the_last_file() -> None:
    assert head_revision() == "0003"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_head_matches_the_models_so_a_model_change_needs_a_migration(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    try:
        assert version(store.engine) == head_revision()
        assert set(inspect(store.engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        assert differences(store.engine, Base.metadata) == []
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_baseline_revision_is_the_previous_release_schema(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'base.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        assert version(engine) == "0001"
        assert differences(engine, baseline.metadata()) == []
        assert not ISSUE4_TABLES & set(inspect(engine).get_table_names())
        # ... and the changes can be undone and redone.
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
        assert differences(engine, baseline.metadata()) == []
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        assert differences(engine, Base.metadata) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_of_the_previous_release_is_adopted_and_upgraded(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    old_release_database(url)
    store = Store(url)
    try:
        assert version(store.engine) == head_revision()
        assert differences(store.engine, Base.metadata) == []
        assert [m.text for m in store.messages("conv_old")] == ["hello from the old release"]
        record = store.conversation("conv_old")
        assert record.status == "closed" and record.closed_by == "agent"
        assert store.agent_by_name("olga") is not None
        # The new columns and tables work on the old rows.
        assert set(inspect(store.engine).get_table_names()) >= ISSUE4_TABLES
        columns = {c["name"] for c in inspect(store.engine).get_columns("conversations")}
        assert columns >= ISSUE4_COLUMNS
        store.audit("operator", None, "test.adopted", detail={"ok": 1})
        assert store.audit_events()[0].action == "test.adopted"
    finally:
        store.close()
    again = Store(url)  # opening again changes nothing
    try:
        assert version(again.engine) == head_revision()
    finally:
        again.close()


def test_a_first_release_sqlite_database_gains_the_handoff_columns_then_the_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "first.db"
    first_release_sqlite(path, "conv_1", "msg_1", "first release")
    engine = create_engine(f"sqlite:///{path}")
    try:
        result = migrate(engine)
        assert result.adopted and result.before is None and result.after == head_revision()
        assert {"conversations.token_hash", "conversations.flagged", "messages.agent_id"} <= set(result.added_columns)
        assert version(engine) == head_revision()
        with engine.connect() as connection:
            row = connection.execute(text("SELECT text FROM messages WHERE id = 'msg_1'")).scalar_one()
        assert row == "first release"
        assert migrate(engine).before == head_revision()  # idempotent
    finally:
        engine.dispose()


def test_an_unversioned_database_with_the_current_tables_is_stamped_at_head(tmp_path: Path) -> None:
    """A database made by a build of this release before migrations existed (create_all of today's models)."""
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    try:
        result = migrate(engine)
        assert result.adopted and result.added_columns == () and version(engine) == head_revision()
    finally:
        engine.dispose()


def _open_store(url: str, barrier: Any) -> str | None:
    barrier.wait(timeout=60)
    store = Store(url)
    try:
        with store.engine.connect() as connection:
            return current_revision(connection)
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_at_once_on_a_new_database_migrate_it_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    context = multiprocessing.get_context("spawn")
    processes = 4
    with context.Manager() as manager:
        barrier = manager.Barrier(processes)
        with context.Pool(processes) as pool:
            revisions = pool.starmap(_open_store, [(url, barrier)] * processes, chunksize=1)
    assert revisions == [head_revision()] * processes
    engine = create_engine(url)
    try:
        assert differences(engine, Base.metadata) == []
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_database_from_a_newer_release_is_refused_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Store(url).close()
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        with pytest.raises(UnknownRevision, match="0099"):
            migrate(engine)
    finally:
        engine.dispose()
