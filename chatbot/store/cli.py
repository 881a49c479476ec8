"""Database commands: ``chatbot db upgrade|current``, ``chatbot purge`` and ``chatbot audit list``.

They run on the server's machine against the configured database (``CHATBOT_DATABASE_URL``, or
SQLite in the data dir), like ``chatbot agents``. Operator actions that change data are written to
the audit log with actor type ``operator`` and the operating-system user as the actor id.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log of agent, admin, API-key and operator actions.", no_args_is_help=True)
console = Console(stderr=True)

if TYPE_CHECKING:  # the commands import the store lazily, so `chatbot --help` stays fast
    from chatbot.store.repository import Store


def operator_id() -> str | None:
    """Who runs the command: the OS user, recorded as the actor of operator actions."""
    try:
        return getpass.getuser()[:60]
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return None


def _url() -> str:
    from chatbot.config import get_settings
    from chatbot.store.migrate import engine_url

    return engine_url(get_settings().resolved_database_url)


def _store() -> Store:
    from chatbot.store import Store

    return Store(_url())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema (the server also does this when it starts)."""
    from sqlalchemy import create_engine

    from chatbot.store.migrate import UnknownRevision, migrate

    engine = create_engine(_url())
    try:
        result = migrate(engine)
    except UnknownRevision as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if result.before == result.after:
        console.print(f"database already at revision {result.after} (head)")
        return
    adopted = " (an unversioned database of an earlier release, adopted)" if result.adopted else ""
    console.print(f"database upgraded from {result.before or 'nothing'} to {result.after}{adopted}")
    if result.added_columns:
        console.print(f"columns added before the baseline: {', '.join(result.added_columns)}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one, without changing anything (exit 1 when behind)."""
    from sqlalchemy import create_engine, inspect

    from chatbot.store.migrate import current_revision, head_revision, known_revision

    engine = create_engine(_url())
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
            tables = inspect(connection).get_table_names()
    finally:
        engine.dispose()
    head = head_revision()
    if current is None:
        state = "unversioned (an earlier release's database)" if tables else "empty"
    else:
        state = "up to date" if current == head else "behind: run `chatbot db upgrade`"
        if not known_revision(current):
            state = "unknown revision: a newer release upgraded this database"
    print(f"current: {current or '-'}\nhead: {head}\nstate: {state}")
    if current != head:
        raise typer.Exit(1)


def purge(
    days: Annotated[
        int | None, typer.Option(min=1, help="Purge conversations inactive this many days (default retention_days).")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="delete or anonymise (default retention_mode).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10000, help="Conversations per transaction.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Delete or anonymise transcripts inactive for N days; open handoffs are kept (docs/data-retention.md)."""
    from chatbot.config import get_settings
    from chatbot.store.retention import MODES
    from chatbot.store.retention import purge as run_purge

    settings = get_settings()
    chosen_days = days if days is not None else settings.retention_days
    if chosen_days < 1:
        console.print(
            "[red]No retention period: set CHATBOT_RETENTION_DAYS or pass --days N "
            "(conversations inactive for N days are purged).[/red]"
        )
        raise typer.Exit(2)
    chosen_mode = mode or settings.retention_mode
    if chosen_mode not in MODES:
        console.print(f"[red]--mode must be one of: {', '.join(MODES)}.[/red]")
        raise typer.Exit(2)
    store = _store()
    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=dry_run or as_json,
        ) as bar:
            task = bar.add_task(f"{chosen_mode} conversations", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = run_purge(
                store,
                chosen_days,
                chosen_mode,  # type: ignore[arg-type]
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
                actor_id=operator_id(),
            )
    finally:
        store.close()
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    verb = "would be" if dry_run else ("deleted" if chosen_mode == "delete" else "anonymised")
    table = Table("rows", "count", title=f"{verb} (inactive since {report.cutoff:%Y-%m-%d %H:%M} UTC)")
    for name, count in report.counts().items():
        table.add_row(name.replace("_", " "), str(count))
    Console().print(table)


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many events (newest first).")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. conversation.claim.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor id (agent id, key id, OS user).")] = None,
    before: Annotated[int | None, typer.Option(min=1, help="Only events older than this seq (paging).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show audit events, newest first."""
    store = _store()
    try:
        events = store.audit_log.events(before, limit, action, actor)
    finally:
        store.close()
    if as_json:
        for event in events:
            print(json.dumps(event.as_dict()))
        return
    table = Table("seq", "time (UTC)", "actor", "action", "target", "ip", "detail")
    for event in events:
        actor_text = f"{event.actor_type}:{event.actor_id}" if event.actor_id else event.actor_type
        target = f"{event.target_type}:{event.target_id}" if event.target_id else (event.target_type or "")
        table.add_row(
            str(event.seq),
            event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            actor_text,
            event.action,
            target,
            event.ip or "",
            json.dumps(event.detail),
        )
    Console().print(table)
