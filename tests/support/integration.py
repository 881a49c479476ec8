"""Helpers shared by the integration-API tests (API keys, identity, pagination, idempotency, webhooks).

Each test module starts the real app (real engine without the generator, a SQLite file of its own)
as tests/support/app.py does; keys are created through the same code as ``chatbot keys create``.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.integration.keys import ApiKeyRecord, ApiKeys, customer_hash, identity_secret
from chatbot.store import Store
from chatbot.tokens import secret_key


def make_key(settings: Settings, name: str, scopes: tuple[str, ...] = ("chat",)) -> tuple[ApiKeyRecord, str]:
    store = Store(settings.resolved_database_url)
    try:
        return ApiKeys(store.engine).create(name, scopes)
    finally:
        store.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def signed(settings: Settings, record: ApiKeyRecord, customer_id: str) -> str:
    """The customer_hash an app's back end computes for ``customer_id`` with this key's identity secret."""
    return customer_hash(identity_secret(secret_key(settings), record.id), customer_id)


def key_conversation(client: TestClient, key: str, customer_id: str | None = None, hash_: str | None = None) -> str:
    body = {"customer_id": customer_id, "customer_hash": hash_} if customer_id else None
    response = client.post("/v1/conversations", headers=bearer(key), json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
