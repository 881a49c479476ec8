"""``/metrics``: Prometheus text, route templates, answer kinds, gauges and who may read it.

Real app (real engine, SQLite), real prometheus_client parser.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from chatbot.config import Settings
from chatbot.integration.keys import ApiKeys
from chatbot.store import Store
from tests.support.app import app_settings, create_agent, login, new_conversation, start


@pytest.fixture(scope="module")
def metrics_settings(built_index: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return app_settings(built_index, tmp_path_factory.mktemp("metrics"), rate_limit_enabled=False)


@pytest.fixture(scope="module")
def client(metrics_settings: Settings) -> Iterator[TestClient]:
    app_client = start(metrics_settings, ready=True)
    create_agent(metrics_settings, "metrics-admin", role="admin")
    create_agent(metrics_settings, "metrics-agent", role="agent")
    yield app_client
    app_client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def loopback(client: TestClient) -> TestClient:
    """The same app, reached from 127.0.0.1 (the test client's own address is not loopback)."""
    return TestClient(client.app, client=("127.0.0.1", 40001))


def samples(scrape: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = scrape.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_not_raw_path(client: TestClient, loopback: TestClient) -> None:
    conversation, auth = new_conversation(client)
    route = "/v1/conversations/{conversation_id}/messages"
    before = samples(loopback)
    for _ in range(3):
        assert client.get(f"/v1/conversations/{conversation}/messages", headers=auth).status_code == 200
    assert client.get("/v1/conversations/unknown-id/messages").status_code == 404
    after = samples(loopback)
    assert (
        value(after, "http_requests_total", method="GET", route=route, status="200")
        == value(before, "http_requests_total", method="GET", route=route, status="200") + 3
    )
    assert value(after, "http_requests_total", method="GET", route=route, status="404") >= 1
    assert not [key for key in after if conversation in str(key)]  # no series per conversation id
    count = value(after, "http_request_duration_seconds_count", route=route)
    assert count == value(before, "http_request_duration_seconds_count", route=route) + 4
    assert value(after, "http_request_duration_seconds_bucket", route=route, le="+Inf") == count


def test_static_files_and_unknown_paths_share_a_few_series(client: TestClient, loopback: TestClient) -> None:
    client.get("/widget/kestrel-chat.js")
    client.get("/no/such/thing/42")
    found = samples(loopback)
    routes = {dict(labels).get("route") for (name, labels) in found if name == "http_requests_total"}
    assert "/widget/*" in routes and ("static" in routes or "unmatched" in routes)
    assert not any(r and "42" in r for r in routes)


def test_answers_are_timed_by_kind(client: TestClient, loopback: TestClient) -> None:
    conversation, auth = new_conversation(client)
    before = samples(loopback)
    answer = client.post(
        f"/v1/conversations/{conversation}/messages", json={"text": "My card was stolen, help"}, headers=auth
    ).json()
    after = samples(loopback)
    kind = answer["kind"]
    assert (
        value(after, "answer_latency_seconds_count", kind=kind)
        == value(before, "answer_latency_seconds_count", kind=kind) + 1
    )
    assert value(after, "answer_latency_seconds_sum", kind=kind) > value(
        before, "answer_latency_seconds_sum", kind=kind
    )


def test_gauges_follow_websockets_and_waiting_handoffs(client: TestClient, loopback: TestClient) -> None:
    before = samples(loopback)
    assert value(before, "generation_queue_depth") == 0
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        during = samples(loopback)
        assert (
            value(during, "websocket_connections", kind="customer")
            == value(before, "websocket_connections", kind="customer") + 1
        )
        ws.send_json({"type": "handoff"})
        while ws.receive_json()["type"] != "handoff":
            pass
    client.app.state.metrics_waiting = None  # the 5-second cache; a scrape after it expires reads the store
    after = samples(loopback)
    assert value(after, "websocket_connections", kind="customer") == value(
        before, "websocket_connections", kind="customer"
    )
    assert value(after, "handoffs_waiting") >= 1 and ready["conversation_id"]


def test_metrics_need_loopback_or_an_admin(client: TestClient, metrics_settings: Settings) -> None:
    assert client.get("/metrics").status_code == 401  # the test client's address is not loopback
    _, agent = login(client, "metrics-agent")
    assert client.get("/metrics", headers=agent).status_code == 403
    _, admin = login(client, "metrics-admin")
    assert client.get("/metrics", headers=admin).status_code == 200
    store = Store(metrics_settings.resolved_database_url)
    try:
        keys = ApiKeys(store.engine)
        _, chat_key = keys.create("metrics-chat", ("chat",))
        _, admin_key = keys.create("metrics-prometheus", ("admin",))
    finally:
        store.close()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {chat_key}"}).status_code == 403
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {admin_key}"})
    assert scraped.status_code == 200 and "http_requests_total" in scraped.text


def test_metrics_public_setting_opens_it(metrics_settings: Settings) -> None:
    from chatbot.server.app import create_app

    bare = TestClient(create_app(metrics_settings.model_copy(update={"metrics_public": True})))
    with bare:
        assert bare.get("/metrics").status_code == 200
