"""RedisHub across "processes": two hubs, each behind its own app and event loop, on a real Redis.

Each hub runs in its own TestClient (its own thread and event loop, like two server processes); a
crash is a real child process killed with SIGKILL; a Redis outage is a real Redis server stopped and
started again. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient

from chatbot.agents.hub import Connection
from chatbot.agents.redis_hub import RedisHub, make_hub, safe_error
from chatbot.agents.redis_throttle import RedisLoginThrottle, make_login_throttle
from chatbot.config import PROJECT_ROOT, Settings
from tests.support.hub_app import hub_app
from tests.support.servers import WsClient, free_port
from tests.support.services import RedisServer, _wait_for_port, redis_bin

_PREFIXES = itertools.count()


def prefix() -> str:
    """Each test its own key space on the session's Redis, so no test sees another's presence."""
    return f"test{os.getpid()}x{next(_PREFIXES)}"


@contextlib.contextmanager
def hub_client(url: str, key_prefix: str, heartbeat_s: float = 0.3, ttl_s: float = 1.5) -> Iterator[TestClient]:
    with TestClient(hub_app(url, heartbeat_s, ttl_s, key_prefix)) as client:
        yield client


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


def presence(client: TestClient, conversation_id: str = "") -> dict[str, Any]:
    response = client.get("/presence", params={"conversation_id": conversation_id})
    assert response.status_code == 200
    return dict(response.json())


def test_a_frame_for_a_conversation_reaches_its_customer_on_the_other_process(redis: RedisServer) -> None:
    key_prefix = prefix()
    with (
        hub_client(redis.url, key_prefix) as a,
        hub_client(redis.url, key_prefix) as b,
        b.websocket_connect("/customer/conv_1") as customer,
        b.websocket_connect("/customer/conv_2") as other,
    ):
        assert customer.receive_json() == {"type": "registered"}
        assert other.receive_json() == {"type": "registered"}
        frame = {"type": "agent_message", "message": {"id": "msg_1", "text": "Hello from an agent"}}
        assert a.post("/publish", json={"conversation_id": "conv_1", "frame": frame}).status_code == 200
        assert customer.receive_json() == frame
        # conv_2's customer got nothing for conv_1: the next frame it reads is its own.
        a.post("/publish", json={"conversation_id": "conv_2", "frame": {"type": "typing", "n": 2}})
        assert other.receive_json() == {"type": "typing", "n": 2}


def test_frames_keep_their_order_across_processes(redis: RedisServer) -> None:
    key_prefix = prefix()
    with (
        hub_client(redis.url, key_prefix) as a,
        hub_client(redis.url, key_prefix) as b,
        b.websocket_connect("/customer/conv_order") as customer,
    ):
        customer.receive_json()
        for n in range(50):
            a.post("/publish", json={"conversation_id": "conv_order", "frame": {"type": "delta", "n": n}})
        assert [customer.receive_json()["n"] for _ in range(50)] == list(range(50))


def test_the_sending_socket_is_excluded_but_every_other_socket_gets_the_frame(redis: RedisServer) -> None:
    key_prefix = prefix()
    with (
        hub_client(redis.url, key_prefix) as a,
        hub_client(redis.url, key_prefix) as b,
        a.websocket_connect("/customer/conv_x") as sender,
        a.websocket_connect("/customer/conv_x") as same_process,
        b.websocket_connect("/customer/conv_x") as other_process,
    ):
        for ws in (sender, same_process, other_process):
            assert ws.receive_json()["type"] == "registered"
        sender.send_json({"conversation_id": "conv_x", "frame": {"type": "typing", "from": "sender"}})
        assert same_process.receive_json() == {"type": "typing", "from": "sender"}
        assert other_process.receive_json() == {"type": "typing", "from": "sender"}
        # The sender's next frame is the one published after: it never got its own.
        b.post("/publish", json={"conversation_id": "conv_x", "frame": {"type": "typing", "from": "b"}})
        assert sender.receive_json() == {"type": "typing", "from": "b"}


def test_agent_frames_fan_out_to_every_process_and_targeted_frames_reach_one_agent(redis: RedisServer) -> None:
    key_prefix = prefix()
    with (
        hub_client(redis.url, key_prefix) as a,
        hub_client(redis.url, key_prefix) as b,
        a.websocket_connect("/agent/agent_a") as agent_a,
        b.websocket_connect("/agent/agent_b") as agent_b,
        b.websocket_connect("/agent/agent_c") as agent_c,
    ):
        for ws in (agent_a, agent_b, agent_c):
            ws.receive_json()
        queue = {"type": "queue", "conversations": [{"id": "conv_q", "status": "waiting"}]}
        a.post("/publish", json={"frame": queue})
        for ws in (agent_a, agent_b, agent_c):
            assert ws.receive_json() == queue
        a.post("/publish", json={"frame": {"type": "note", "for": "b"}, "agent_id": "agent_b"})
        assert agent_b.receive_json() == {"type": "note", "for": "b"}
        a.post("/publish", json={"frame": {"type": "pong", "for": "all"}})
        assert agent_c.receive_json() == {"type": "pong", "for": "all"}  # agent_c never got agent_b's frame
        assert agent_a.receive_json() == {"type": "pong", "for": "all"}


def test_presence_is_shared_and_leaves_at_once_when_a_process_stops(redis: RedisServer) -> None:
    key_prefix = prefix()
    # A TTL far longer than the waits below: leaving presence must come from the change being written
    # at once (and the key deleted on shutdown), not from the key expiring.
    with hub_client(redis.url, key_prefix, heartbeat_s=0.3, ttl_s=30) as b:
        assert presence(b) == {"agents_online": 0, "customer_online": False}
        with hub_client(redis.url, key_prefix, heartbeat_s=0.3, ttl_s=30) as a:
            with a.websocket_connect("/agent/agent_1") as agent, a.websocket_connect("/customer/conv_p") as customer:
                agent.receive_json()
                customer.receive_json()
                eventually(lambda: presence(b, "conv_p") == {"agents_online": 1, "customer_online": True})
                # The same agent on two processes is one agent online.
                with b.websocket_connect("/agent/agent_1") as again:
                    again.receive_json()
                    assert presence(b)["agents_online"] == 1
                    eventually(lambda: presence(a)["agents_online"] == 1)
            # Sockets closed: the change is announced, not left to the TTL.
            eventually(lambda: presence(b, "conv_p") == {"agents_online": 0, "customer_online": False}, timeout=10)
            with a.websocket_connect("/agent/agent_2") as agent:
                agent.receive_json()
                eventually(lambda: presence(b)["agents_online"] == 1)
        # A stopped (lifespan shutdown): it removed its presence instead of waiting for the TTL.
        eventually(lambda: presence(b)["agents_online"] == 0, timeout=10)


def test_the_hub_stops_when_a_socket_leaves_as_it_shuts_down(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A presence change can wake the heartbeat in the very loop step its task is cancelled (the last
    socket closing, or another process announcing, as this one shuts down). Python 3.11's
    ``asyncio.wait_for`` then returned the wake-up and dropped the cancellation, the heartbeat looped
    on, and the server never finished stopping. The change is made 0 to 7 loop steps into ``stop()``
    (the old code hung at 1, 2 and 3); each stop must end, with no task left behind."""
    caplog.set_level(logging.WARNING, logger="chatbot.agents.redis_hub")

    async def stop_while_presence_changes(steps: int) -> None:
        hub = RedisHub(redis.url, heartbeat_s=5.0, ttl_s=10.0, prefix=prefix())
        await hub.start()
        await asyncio.sleep(0.2)  # the heartbeat has written presence and waits for a wake-up

        async def leave_after_steps() -> None:
            for _ in range(steps):
                await asyncio.sleep(0)
            hub.add_customer("conv_leaving", Connection(cast(WebSocket, None), "conv_leaving"))

        leaving = asyncio.create_task(leave_after_steps())
        stopping = asyncio.create_task(hub.stop())
        await asyncio.wait({stopping}, timeout=4)  # a hang detector: a clean stop takes milliseconds
        assert stopping.done(), f"the hub had not stopped 4 s after a presence change {steps} steps into stop()"
        await leaving

    for steps in range(8):
        asyncio.run(stop_while_presence_changes(steps))
    assert not [r for r in caplog.records if "did not stop" in r.getMessage()]


def test_a_killed_process_leaves_presence_within_the_ttl(redis: RedisServer, tmp_path: Path) -> None:
    key_prefix, port, ttl_s = prefix(), free_port(), 2.0
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.hub_app", redis.url, str(port), "0.5", str(ttl_s), key_prefix],
        cwd=PROJECT_ROOT,
        stdout=(tmp_path / "hub.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, 60)
        with hub_client(redis.url, key_prefix, heartbeat_s=0.5, ttl_s=ttl_s) as b:
            agent = WsClient(f"ws://127.0.0.1:{port}/agent/agent_k")
            assert agent.receive() == {"type": "registered"}
            eventually(lambda: presence(b)["agents_online"] == 1, what="the other process's agent counted")
            os.kill(child.pid, signal.SIGKILL)  # no shutdown: its presence key just stops being refreshed
            child.wait(timeout=10)
            # Gone once its key's TTL runs out (the margin is for a busy machine, not a timing condition).
            eventually(lambda: presence(b)["agents_online"] == 0, timeout=ttl_s + 5, what="the killed agent gone")
            with contextlib.suppress(Exception):
                agent.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


@contextlib.contextmanager
def own_redis(port: int, password: str) -> Iterator[subprocess.Popen[bytes]]:
    binary = redis_bin()
    if binary is None:  # this test starts and restarts its own server, so the session's fixture cannot skip it
        pytest.skip("Redis is not installed: apt-get install redis-server (make test does it where it may)")
    root = tempfile.mkdtemp(prefix="kestrel-redis-own-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", root, "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*command, "--requirepass", password], stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(port, 20)
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def test_delivery_resumes_after_redis_restarts_and_the_password_is_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, password = free_port(), "s3cret-Redis-pa55"
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    caplog.set_level(logging.INFO, logger="chatbot.agents.redis_hub")
    key_prefix = prefix()

    def logged(message: str, component: str) -> int:
        return sum(1 for r in caplog.records if r.getMessage() == message and getattr(r, "component", "") == component)

    with (
        own_redis(port, password) as first,
        hub_client(url, key_prefix) as a,
        hub_client(url, key_prefix) as b,
        b.websocket_connect("/customer/conv_r") as customer,
        b.websocket_connect("/customer/conv_r") as local,
    ):
        customer.receive_json()
        local.receive_json()
        a.post("/publish", json={"conversation_id": "conv_r", "frame": {"type": "typing", "n": 1}})
        assert customer.receive_json() == local.receive_json() == {"type": "typing", "n": 1}
        first.kill()  # Redis goes away
        first.wait(timeout=10)
        eventually(lambda: logged("redis unavailable; retrying with backoff", "subscriber") == 2, timeout=15)
        # Each process keeps serving its own sockets meanwhile.
        local_frame = {"type": "typing", "n": "local while redis is down"}
        b.post("/publish", json={"conversation_id": "conv_r", "frame": local_frame})
        assert customer.receive_json() == local_frame
        assert local.receive_json() == local_frame
        with own_redis(port, password):
            # Both subscribers reconnect on their own (backoff), then delivery across processes resumes.
            eventually(lambda: logged("redis connection restored", "subscriber") == 2, timeout=30)
            frame = {"type": "agent_message", "message": {"id": "msg_after_restart"}}
            a.post("/publish", json={"conversation_id": "conv_r", "frame": frame})
            assert customer.receive_json() == frame
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "redis unavailable" in text
    assert password not in text


def test_login_failures_are_counted_across_processes(redis: RedisServer) -> None:
    key_prefix = prefix()
    a = RedisLoginThrottle(redis.url, limit=3, window_s=60, prefix=key_prefix)
    b = RedisLoginThrottle(redis.url, limit=3, window_s=60, prefix=key_prefix)
    try:
        a.failed("10.0.0.1", "Mallory", now=1000)
        b.failed("10.0.0.1", "mallory", now=1001)
        assert a.retry_after("10.0.0.1", "mallory", now=1002) == 0
        a.failed("10.0.0.1", "MALLORY", now=1002)
        assert b.retry_after("10.0.0.1", "mallory", now=1003) == 58  # the oldest failure leaves the window at 1060
        assert b.retry_after("10.0.0.2", "mallory", now=1003) == 0  # another address is not locked out
        assert b.retry_after("10.0.0.1", "mallory", now=1061) == 0  # the window passed
        b.failed("10.0.0.3", "eve", now=2000)
        a.succeeded("10.0.0.3", "eve")
        assert b.retry_after("10.0.0.3", "eve", now=2001) == 0
    finally:
        a.close()
        b.close()


def test_the_throttle_counts_in_process_when_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    throttle = RedisLoginThrottle(url, limit=2, window_s=60)
    caplog.set_level(logging.WARNING, logger="chatbot.agents.redis_throttle")
    throttle.failed("10.0.0.1", "bob", now=0)
    throttle.failed("10.0.0.1", "bob", now=1)
    assert throttle.retry_after("10.0.0.1", "bob", now=2) == 59
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "redis unavailable" in text and "hunter2-secret" not in text
    throttle.close()


def test_settings_choose_the_hub_and_the_throttle(redis: RedisServer) -> None:
    local = Settings(redis_url="")
    assert type(make_hub(local)).__name__ == "InProcessHub"
    assert type(make_login_throttle(local)).__name__ == "LoginThrottle"
    shared = Settings(redis_url=redis.url, presence_heartbeat_s=1.0, presence_ttl_s=4.0)
    hub = make_hub(shared)
    assert isinstance(hub, RedisHub) and (hub.heartbeat_s, hub.ttl_s) == (1.0, 4.0)
    throttle = make_login_throttle(shared)
    assert isinstance(throttle, RedisLoginThrottle)
    throttle.close()


def test_logged_errors_hide_the_password() -> None:
    url = "redis://user:p%40ss-word@redis.internal:6379/0"
    assert "p@ss-word" not in safe_error(RuntimeError("auth failed for p@ss-word"), url)
    assert "p%40ss-word" not in safe_error(RuntimeError(f"cannot connect to {url}"), url)
