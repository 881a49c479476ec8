"""Rate limits per IP, per API key and per conversation, with the in-memory and the Redis backend.

Real app (real engine, SQLite), real Redis server (tests/support/services.py). Limits are small via Settings.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.errors import RateLimited
from chatbot.integration.keys import ApiKeys
from chatbot.limits import ConversationLimits, MemoryLimiter, RedisLimiter, retry_after_s
from chatbot.server.errors import as_api_error
from chatbot.store import Store
from tests.support.app import app_settings, new_conversation, start, wait_ready
from tests.support.services import RedisServer

LIMITS = {"rate_limit_ip_per_minute": 40, "rate_limit_key_per_minute": 3, "rate_limit_conversation_per_minute": 2}
QUESTION = "My card was stolen, help"


def metric(client: TestClient, name: str, **labels: str) -> float:
    """One sample of /metrics (read as a loopback client, which needs no credentials)."""
    loopback = TestClient(client.app, client=("127.0.0.1", 50001))
    text = loopback.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{re.escape(wanted)}}} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# ---------------------------------------------------------------------------------------- the algorithm
def test_retry_after_counts_down_to_when_one_more_request_fits() -> None:
    # Full: in the next window the 5 weigh 5 * (1 - t/60); one more fits at t = 12 s, 40 + 12 s from now.
    assert retry_after_s(current=5, previous=0, elapsed=20.0, limit=5) == 52
    assert retry_after_s(current=0, previous=10, elapsed=0.0, limit=5) == 36  # 10*(1-t/60) <= 4 at t=36
    assert 1 <= retry_after_s(current=3, previous=4, elapsed=59.9, limit=5) <= 120


def test_memory_limiter_allows_the_limit_then_refuses_per_key() -> None:
    async def run() -> list[Any]:
        limiter = MemoryLimiter()
        results = [await limiter.hit("ip", "10.0.0.1", 3) for _ in range(4)]
        results.append(await limiter.hit("ip", "10.0.0.2", 3))  # another client is not affected
        return results

    results = asyncio.run(run())
    assert [r.allowed for r in results] == [True, True, True, False, True]
    assert 1 <= results[3].retry_after <= 120


def test_redis_limiter_holds_across_processes(redis: RedisServer) -> None:
    """Two limiters (as two server processes) share one budget through Redis."""

    async def run() -> list[Any]:
        first, second = RedisLimiter(redis.url, prefix="t1"), RedisLimiter(redis.url, prefix="t1")
        try:
            results = []
            for i in range(6):
                results.append(await (first if i % 2 else second).hit("key", "abc", 4))
            return results
        finally:
            await first.close()
            await second.close()

    results = asyncio.run(run())
    assert [r.allowed for r in results] == [True, True, True, True, False, False]
    assert all(1 <= r.retry_after <= 120 for r in results[4:])


def test_an_unreachable_redis_lets_requests_through() -> None:
    async def run() -> Any:
        limiter = RedisLimiter("redis://127.0.0.1:1/0")
        try:
            return await limiter.hit("ip", "x", 1), await limiter.hit("ip", "x", 1)
        finally:
            await limiter.close()

    assert all(decision.allowed for decision in asyncio.run(run()))


def test_disabled_conversation_limit_never_refuses() -> None:
    async def run() -> None:
        limits = ConversationLimits(Settings(rate_limit_enabled=False, rate_limit_conversation_per_minute=1),
                                    MemoryLimiter())  # fmt: skip
        for _ in range(5):
            await limits.check("conv_x")

    asyncio.run(run())


# ---------------------------------------------------------------------------------------- through the app
def api_key(settings: Settings, name: str) -> str:
    store = Store(settings.resolved_database_url)
    try:
        return ApiKeys(store.engine).create(name, ("chat",))[1]
    finally:
        store.close()


@pytest.fixture(scope="module", params=["memory", "redis"])
def app_client(request: pytest.FixtureRequest, built_index: Settings, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[TestClient, Settings]]:  # fmt: skip
    changes: dict[str, Any] = dict(LIMITS)
    if request.param == "redis":
        changes["redis_url"] = request.getfixturevalue("redis").url
    settings = app_settings(built_index, tmp_path_factory.mktemp(f"ratelimit-{request.param}"), **changes)
    client = start(settings)
    yield client, settings
    client.__exit__(None, None, None)


def test_api_key_requests_are_limited_per_key_with_retry_after(app_client: tuple[TestClient, Settings]) -> None:
    client, settings = app_client
    key = api_key(settings, f"limited-{settings.redis_url != ''}")
    other = api_key(settings, f"other-{settings.redis_url != ''}")
    before = metric(client, "rate_limited_total", scope="key")
    statuses = [client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    refused = statuses[3]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    # Another key has its own budget; an invalid key is limited before it is even looked up.
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {other}"}).status_code != 429
    fake = "kst_" + "x" * 43
    codes = [client.get("/v1/models", headers={"Authorization": f"Bearer {fake}"}).status_code for _ in range(4)]
    assert codes[:3] == [401, 401, 401] and codes[3] == 429
    assert metric(client, "rate_limited_total", scope="key") == before + 2


def test_conversation_messages_are_limited_and_the_refused_one_is_not_stored(
    app_client: tuple[TestClient, Settings],
) -> None:
    client, _ = app_client
    wait_ready(client)
    conversation, auth = new_conversation(client)
    url = f"/v1/conversations/{conversation}/messages"
    answers = [client.post(url, json={"text": QUESTION}, headers=auth) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    refused = client.post(url, json={"text": "one more"}, headers=auth)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    history = client.get(url, headers=auth).json()["messages"]
    assert [m["text"] for m in history if m["role"] == "user"] == [QUESTION, QUESTION]


def test_websocket_messages_over_the_limit_get_an_error_frame(app_client: tuple[TestClient, Settings]) -> None:
    client, _ = app_client
    wait_ready(client)
    with client.websocket_connect("/ws/chat") as ws:
        ready = ws.receive_json()
        conversation, token = ready["conversation_id"], ready["token"]
        for n in range(2):
            ws.send_json({"type": "message", "text": QUESTION, "client_id": f"c{n}"})
            while (frame := ws.receive_json())["type"] != "message":
                assert frame["type"] != "error", frame
        ws.send_json({"type": "message", "text": "too fast", "client_id": "c2"})
        frame = ws.receive_json()
        while frame["type"] not in ("error", "ack"):
            frame = ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == "rate_limited"
        assert frame["client_id"] == "c2" and 1 <= frame["retry_after"] <= 120
        ws.send_json({"type": "typing"})  # the socket stays open after a refusal
    history = client.get(f"/v1/conversations/{conversation}/messages", headers={"Authorization": f"Bearer {token}"})
    assert "too fast" not in [m["text"] for m in history.json()["messages"]]


def test_every_request_counts_against_the_client_ip(app_client: tuple[TestClient, Settings]) -> None:
    client, settings = app_client
    before = metric(client, "rate_limited_total", scope="ip")
    responses = [client.post("/v1/conversations") for _ in range(settings.rate_limit_ip_per_minute + 1)]
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "the IP limit never refused"
    assert refused[0].json()["error"]["code"] == "rate_limited" and int(refused[0].headers["Retry-After"]) >= 1
    assert all(r.status_code == 429 for r in responses[responses.index(refused[0]) :])
    # Health checks and metrics are exempt; a WebSocket connect is refused with an error frame and 1013.
    assert client.get("/healthz").status_code != 429
    with client.websocket_connect("/ws/chat") as ws:
        frame = ws.receive_json()
        assert frame["type"] == "error" and frame["code"] == "rate_limited" and frame["retry_after"] >= 1
        message = ws.receive()
        assert message["type"] == "websocket.close" and message["code"] == 1013
    # Another address has its own budget.
    elsewhere = TestClient(client.app, client=("203.0.113.7", 40000))
    assert elsewhere.post("/v1/conversations").status_code == 201
    assert metric(client, "rate_limited_total", scope="ip") > before


def test_disabled_setting_turns_every_limit_off(built_index: Settings, tmp_path: Path) -> None:
    settings = app_settings(built_index, tmp_path, rate_limit_enabled=False, rate_limit_ip_per_minute=1,
                            rate_limit_key_per_minute=1)  # fmt: skip
    client = start(settings)
    try:
        assert all(client.post("/v1/conversations").status_code == 201 for _ in range(5))
        fake = {"Authorization": "Bearer kst_" + "y" * 43}
        assert all(client.get("/v1/models", headers=fake).status_code == 401 for _ in range(3))
    finally:
        client.__exit__(None, None, None)


def test_rate_limited_maps_to_429_with_retry_after_and_a_readable_message() -> None:
    error = as_api_error(RateLimited(7, "conversation"))
    assert error.status == 429 and error.code == "rate_limited" and "7 s" in error.message
    assert error.headers is not None and error.headers["Retry-After"] == "7"
