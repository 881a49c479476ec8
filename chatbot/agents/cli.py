"""``chatbot agents create NAME --role agent|admin`` and ``chatbot agents list``.

Accounts are made on the server's machine, against the configured database: there is no
sign-up route, so nobody can give themselves an agent account over the network.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

agents_app = typer.Typer(help="Support-agent accounts for the console.", no_args_is_help=True)
console = Console(stderr=True)


def _store():  # type: ignore[no-untyped-def]
    from chatbot.config import get_settings
    from chatbot.store import Store

    return Store(get_settings().resolved_database_url)


@agents_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Login name: 1-40 characters A-Z a-z 0-9 _ . -")],
    role: Annotated[str, typer.Option(help="agent or admin (admins also see analytics).")] = "agent",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
) -> None:
    """Create an agent account; the password is prompted for twice (hidden) unless --password-stdin."""
    from chatbot.agents.auth import AGENT_NAME, MIN_PASSWORD_CHARS, ROLES, hash_password
    from chatbot.store import AgentExists
    from chatbot.store.cli import operator_id

    if not AGENT_NAME.fullmatch(name):
        console.print("[red]The name must be 1-40 characters: letters, digits, '_', '.' or '-'.[/red]")
        raise typer.Exit(2)
    if role not in ROLES:
        console.print(f"[red]The role must be one of: {', '.join(ROLES)}.[/red]")
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_CHARS:
        console.print(f"[red]The password must have at least {MIN_PASSWORD_CHARS} characters.[/red]")
        raise typer.Exit(2)
    store = _store()
    try:
        agent = store.create_agent(name, role, hash_password(password))
        store.audit("operator", operator_id(), "agent.create", "agent", agent.id, detail={"role": agent.role})
    except AgentExists:
        console.print(f"[red]An agent named {name!r} already exists.[/red]")
        raise typer.Exit(1) from None
    finally:
        store.close()
    console.print(f"created {agent.role} {agent.name} ({agent.id})")


def _set_active(name: str, active: bool) -> None:
    from chatbot.store.cli import operator_id

    store = _store()
    try:
        found = store.set_agent_active(name, active)
        agent = store.agent_by_name(name) if found else None
        if agent is not None:
            action = "agent.enable" if active else "agent.disable"
            store.audit("operator", operator_id(), action, "agent", agent.id)
    finally:
        store.close()
    if not found:
        console.print(f"[red]No agent named {name!r}.[/red]")
        raise typer.Exit(1)
    console.print(f"{'enabled' if active else 'disabled'} {name}")


@agents_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="The agent's login name.")]) -> None:
    """Disable an account: its sign-in and every token it holds stop working at once (for good: see enable)."""
    _set_active(name, False)


@agents_app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="The agent's login name.")]) -> None:
    """Enable a disabled account again; the agent signs in anew (tokens from before the disable stay revoked)."""
    _set_active(name, True)


@agents_app.command("password")
def password(
    name: Annotated[str, typer.Argument(help="The agent's login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from the first line of stdin.")
    ] = False,
) -> None:
    """Set a new password: every token the agent holds stops working at once (all devices sign in again)."""
    from chatbot.agents.auth import MIN_PASSWORD_CHARS, hash_password
    from chatbot.store.cli import operator_id

    new = (
        sys.stdin.readline().rstrip("\r\n")
        if password_stdin
        else typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    )
    if len(new) < MIN_PASSWORD_CHARS:
        console.print(f"[red]The password must have at least {MIN_PASSWORD_CHARS} characters.[/red]")
        raise typer.Exit(2)
    store = _store()
    try:
        changed = store.agents.change_password(name, hash_password(new))
        agent = store.agent_by_name(name) if changed else None
        if agent is not None:
            store.audit("operator", operator_id(), "agent.password_change", "agent", agent.id)
    finally:
        store.close()
    if not changed:
        console.print(f"[red]No agent named {name!r}.[/red]")
        raise typer.Exit(1)
    console.print(f"password changed for {name}; its earlier sessions are signed out")


@agents_app.command("list")
def list_agents() -> None:
    """List the agent accounts (never their passwords)."""
    store = _store()
    try:
        agents = store.list_agents()
    finally:
        store.close()
    table = Table("id", "name", "role", "active", "created")
    for agent in agents:
        table.add_row(agent.id, agent.name, agent.role, "yes" if agent.active else "no", agent.created_at.isoformat())
    Console().print(table)
