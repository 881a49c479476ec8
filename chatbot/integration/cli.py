"""``chatbot keys create|list|revoke|identity-secret|webhook-secret``: API keys for apps and partners.

Keys are made on the server's machine against the configured database, like agent accounts: no
route creates them, so a leaked key cannot mint others. Creating and revoking are audited
(actor_type ``operator``).
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

keys_app = typer.Typer(help="API keys for mobile apps and partners (docs/integration-api.md).", no_args_is_help=True)
console = Console(stderr=True)


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (containers)
        return "operator"


def _store():  # type: ignore[no-untyped-def]
    from chatbot.config import get_settings
    from chatbot.store import Store

    return Store(get_settings().resolved_database_url)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name for the key: 1-60 characters A-Z a-z 0-9 _ . -")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: chat, agent, admin.")] = "chat",
) -> None:
    """Create a key; prints it once (only its SHA-256 is stored) with its identity-verification secret."""
    from chatbot.config import get_settings
    from chatbot.integration.keys import ApiKeys, KeyExists, identity_secret, parse_scopes
    from chatbot.tokens import secret_key

    try:
        scope_list = parse_scopes(scopes)
    except ValueError as error:
        console.print(f"[red]{error}.[/red]")
        raise typer.Exit(2) from None
    store = _store()
    try:
        record, key = ApiKeys(store.engine).create(name, scope_list)
        store.audit(
            "operator", _operator(), "api_key.create", "api_key", record.id, detail={"scopes": list(scope_list)}
        )
    except KeyExists:
        console.print(f"[red]A key named {name!r} already exists.[/red]")
        raise typer.Exit(1) from None
    except ValueError as error:
        console.print(f"[red]{error}.[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    secret = identity_secret(secret_key(get_settings()), record.id)
    console.print(f"created key {record.name} ({record.id}) with scopes {', '.join(record.scopes)}")
    console.print("Store the key now: it is not shown again.")
    print(f"key: {key}")
    print(f"identity_secret: {secret}")


@keys_app.command("list")
def list_keys() -> None:
    """List keys: name, prefix, scopes, created, last used, revoked (never the keys)."""
    from chatbot.integration.keys import ApiKeys

    store = _store()
    try:
        records = ApiKeys(store.engine).list()
    finally:
        store.close()
    table = Table("name", "prefix", "scopes", "created", "last used", "revoked")
    for r in records:
        table.add_row(
            r.name,
            r.prefix + "…",
            ",".join(r.scopes),
            r.created_at.isoformat(timespec="seconds"),
            r.last_used_at.isoformat(timespec="seconds") if r.last_used_at else "never",
            r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "no",
        )
    Console(width=200).print(table)


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: every request with it gets 401 revoked_api_key from now on."""
    from chatbot.integration.keys import ApiKeys

    store = _store()
    try:
        record = ApiKeys(store.engine).revoke(name)
        if record is not None:
            store.audit("operator", _operator(), "api_key.revoke", "api_key", record.id)
    finally:
        store.close()
    if record is None:
        console.print(f"[red]No key named {name!r}.[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {record.name} ({record.id})")


@keys_app.command("identity-secret")
def show_identity_secret(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Print the key's identity-verification secret again (derived from the server's secret key)."""
    from chatbot.config import get_settings
    from chatbot.integration.keys import ApiKeys, identity_secret
    from chatbot.tokens import secret_key

    store = _store()
    try:
        record = ApiKeys(store.engine).by_name(name)
    finally:
        store.close()
    if record is None:
        console.print(f"[red]No key named {name!r}.[/red]")
        raise typer.Exit(1)
    print(identity_secret(secret_key(get_settings()), record.id))


@keys_app.command("webhook-secret")
def show_webhook_secret() -> None:
    """Print the secret that signs webhook payloads (CHATBOT_WEBHOOK_SECRET, or the one derived from secret_key)."""
    from chatbot.config import get_settings
    from chatbot.integration.webhooks import webhook_secret
    from chatbot.tokens import secret_key

    settings = get_settings()
    print(webhook_secret(settings, secret_key(settings)))
