"""Delivery and presence across server processes, through Redis pub/sub (``CHATBOT_REDIS_URL``).

Every process keeps its own sockets exactly as ``InProcessHub`` does and delivers to them at once;
what one process publishes also goes to Redis, and every other process delivers it to *its* local
sockets. Why this shape:

- A customer and the agent who answers them may be connected to different processes behind a
  load balancer, so no sticky sessions are needed: any process can publish to any conversation.
- Frames carry the id of the process that sent them. The sender has already delivered locally
  (honouring ``exclude``, the socket that originated the frame), so it ignores its own echo.
- One publisher task sends frames in the order they were queued, so a customer on another process
  sees ``handoff`` before ``agent_message`` just as a local one does.
- Presence stays synchronous for the callers (``agents_online()`` and ``customer_online()`` are
  read while building frames): each process writes the agents and customers connected to it under a
  key with a short TTL every ``heartbeat_s`` and reads the others' keys into a local snapshot. A
  process killed with ``kill -9`` stops refreshing its key and drops out within ``ttl_s``; a local
  change is written at once and announced, so the others refresh within milliseconds instead.
- Delivery is best effort, as for one process: messages are stored before they are published, and
  a client that missed frames (Redis restarting, a process dying) resumes with ``after=``. When Redis
  is unreachable each process keeps serving its own sockets, logs once, and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis

from chatbot.config import Settings

from .hub import Connection, DeliveryHub, InProcessHub

log = logging.getLogger(__name__)

OUTBOX_SIZE = 10_000  # frames waiting for Redis; beyond that the oldest are dropped (clients resume)
STALE_AFTER_S = 10.0  # a frame that waited this long for Redis is dropped rather than delivered late
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 10.0


def make_hub(settings: Settings) -> DeliveryHub:
    """RedisHub when ``redis_url`` is set (several processes), else the single-process hub."""
    if settings.redis_url:
        return RedisHub(settings.redis_url, heartbeat_s=settings.presence_heartbeat_s, ttl_s=settings.presence_ttl_s)
    return InProcessHub()


def safe_error(error: BaseException, url: str) -> str:
    """An exception as text for the logs, with the URL's password (and the URL itself) masked."""
    text = f"{type(error).__name__}: {error}"[:300]
    parts = urlsplit(url)
    for secret in (parts.password, unquote(parts.password or "")):
        if secret:
            text = text.replace(secret, "***")
    return text.replace(url, "redis://***") if url else text


class RedisHub:
    """Local sockets plus Redis channels ``<prefix>:conv:<conversation id>`` and ``<prefix>:agents``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "kestrel",
        heartbeat_s: float = 2.0,
        ttl_s: float = 6.0,
        process_id: str | None = None,
    ) -> None:
        if ttl_s <= heartbeat_s:
            raise ValueError("the presence TTL must be longer than the heartbeat")
        self._url = url
        self.prefix = prefix
        self.heartbeat_s, self.ttl_s = heartbeat_s, ttl_s
        # Unique per hub, not per pid: two hubs in one test process must still tell each other apart.
        self.process_id = process_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._local = InProcessHub()
        self._client: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[tuple[float, str, str]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._wake = asyncio.Event()  # a local presence change, or another process announced one
        self._dirty = True  # local presence changed since the last write
        self._remote_agents: set[str] = set()
        self._remote_customers: set[str] = set()
        self._remote_until = 0.0  # monotonic time until which the remote snapshot is trusted
        self._failing: set[str] = set()  # components currently unable to reach Redis (log once)
        self.dropped = 0  # frames dropped because Redis was unreachable for too long

    # ------------------------------------------------------------------ names
    @property
    def agents_channel(self) -> str:
        return f"{self.prefix}:agents"

    @property
    def presence_channel(self) -> str:
        return f"{self.prefix}:presence"

    def conversation_channel(self, conversation_id: str) -> str:
        return f"{self.prefix}:conv:{conversation_id}"

    def _presence_key(self, process_id: str) -> str:
        return f"{self.prefix}:presence:{process_id}"

    @property
    def _processes_key(self) -> str:
        return f"{self.prefix}:processes"

    # ------------------------------------------------------------------ lifecycle
    async def start(self, wait_s: float = 2.0) -> None:
        """Connect and start the subscriber, publisher and heartbeat tasks.

        Waits up to ``wait_s`` for the subscription, so frames other processes publish right after
        start-up are not missed; if Redis is down the process serves anyway and keeps retrying.
        """
        self._client = aioredis.from_url(
            self._url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15
        )
        self._outbox = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self._subscribed, self._wake = asyncio.Event(), asyncio.Event()  # bound to the loop that runs us
        self._dirty = True
        self._tasks = [
            asyncio.create_task(self._subscribe_forever(), name="redis-hub-subscriber"),
            asyncio.create_task(self._publish_forever(), name="redis-hub-publisher"),
            asyncio.create_task(self._heartbeat_forever(), name="redis-hub-heartbeat"),
        ]
        try:
            async with asyncio.timeout(wait_s):
                await self._subscribed.wait()
        except TimeoutError:
            log.warning("redis not reachable at start-up; serving local sockets and retrying")

    async def stop(self) -> None:
        """Send what is queued (briefly), stop the tasks and leave presence at once (no waiting for the TTL)."""
        if self._outbox is not None and self._tasks and not self._failing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._outbox.join()  # e.g. the last handoff notices
        for task in self._tasks:
            task.cancel()
        # Bounded: a task that ignored its cancellation must not hold the process's shutdown forever.
        _, stuck = await asyncio.wait(self._tasks, timeout=5) if self._tasks else (set(), set())
        if stuck:
            log.warning("redis hub tasks did not stop", extra={"tasks": sorted(t.get_name() for t in stuck)})
        self._tasks = []
        self._outbox = None  # from now on frames go to this process's sockets only
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.delete(self._presence_key(self.process_id))
                    pipe.srem(self._processes_key, self.process_id)
                    pipe.publish(self.presence_channel, json.dumps({"o": self.process_id}))
                    await pipe.execute()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await client.aclose()

    # ------------------------------------------------------------------ sockets (local)
    def add_customer(self, conversation_id: str, connection: Connection) -> None:
        self._local.add_customer(conversation_id, connection)
        self._presence_changed()

    def remove_customer(self, conversation_id: str, connection: Connection) -> None:
        self._local.remove_customer(conversation_id, connection)
        self._presence_changed()

    def add_agent(self, agent_id: str, connection: Connection) -> None:
        self._local.add_agent(agent_id, connection)
        self._presence_changed()

    def remove_agent(self, agent_id: str, connection: Connection) -> None:
        self._local.remove_agent(agent_id, connection)
        self._presence_changed()

    def _presence_changed(self) -> None:
        self._dirty = True
        self._wake.set()

    # ------------------------------------------------------------------ delivery
    def to_customer(self, conversation_id: str, frame: dict[str, Any], exclude: Connection | None = None) -> None:
        self._local.to_customer(conversation_id, frame, exclude)
        self._publish(self.conversation_channel(conversation_id), {"c": conversation_id, "f": frame})

    def to_agents(self, frame: dict[str, Any], agent_id: str | None = None) -> None:
        self._local.to_agents(frame, agent_id)
        self._publish(self.agents_channel, {"a": agent_id, "f": frame})

    def _publish(self, channel: str, body: dict[str, Any]) -> None:
        if self._outbox is None:  # not started: a single process needs nothing more
            return
        payload = json.dumps({"o": self.process_id, **body}, default=str, separators=(",", ":"))
        if self._outbox.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outbox.get_nowait()
                self._outbox.task_done()
                self._dropped()
        self._outbox.put_nowait((time.monotonic(), channel, payload))

    def _dropped(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("frames dropped while redis was unreachable", extra={"dropped": self.dropped})

    def _deliver(self, channel: str, data: str) -> None:
        """A frame from Redis: hand it to this process's sockets unless this process sent it."""
        try:
            body = json.loads(data)
        except (TypeError, json.JSONDecodeError):
            log.warning("ignoring a malformed frame on a redis channel")
            return
        if not isinstance(body, dict) or body.get("o") == self.process_id:
            return
        if channel == self.presence_channel:
            self._wake.set()  # another process's presence changed: refresh the snapshot now
        elif channel == self.agents_channel and isinstance(body.get("f"), dict):
            agent_id = body.get("a")
            self._local.to_agents(body["f"], agent_id if isinstance(agent_id, str) else None)
        elif isinstance(body.get("c"), str) and isinstance(body.get("f"), dict):
            self._local.to_customer(body["c"], body["f"])

    # ------------------------------------------------------------------ presence
    def agents_online(self) -> int:
        agents = self._local.online_agent_ids()
        if time.monotonic() < self._remote_until:
            agents |= self._remote_agents
        return len(agents)

    def customer_online(self, conversation_id: str) -> bool:
        if self._local.customer_online(conversation_id):
            return True
        return time.monotonic() < self._remote_until and conversation_id in self._remote_customers

    async def _beat(self) -> None:
        """Write this process's presence (TTL), read everyone else's, announce a local change."""
        assert self._client is not None
        announce, self._dirty = self._dirty, False
        try:
            mine = json.dumps(
                {
                    "agents": sorted(self._local.online_agent_ids()),
                    "customers": sorted(self._local.online_conversation_ids()),
                }
            )
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._presence_key(self.process_id), mine, px=int(self.ttl_s * 1000))
                pipe.sadd(self._processes_key, self.process_id)
                pipe.smembers(self._processes_key)
                members = (await pipe.execute())[2]
            others = sorted(str(m) for m in members if m != self.process_id)
            values = await self._client.mget([self._presence_key(m) for m in others]) if others else []
            agents: set[str] = set()
            customers: set[str] = set()
            gone = []
            for process_id, value in zip(others, values, strict=True):
                if value is None:  # its key expired: that process stopped (or was killed)
                    gone.append(process_id)
                    continue
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    snapshot = json.loads(value)
                    agents.update(str(a) for a in snapshot.get("agents", ()))
                    customers.update(str(c) for c in snapshot.get("customers", ()))
            if gone:
                await self._client.srem(self._processes_key, *gone)
            self._remote_agents, self._remote_customers = agents, customers
            self._remote_until = time.monotonic() + self.ttl_s
            if announce:
                await self._client.publish(self.presence_channel, json.dumps({"o": self.process_id}))
        except BaseException:
            self._dirty = self._dirty or announce
            raise

    # ------------------------------------------------------------------ background tasks
    def _lost(self, component: str, error: BaseException) -> None:
        if component not in self._failing:
            self._failing.add(component)
            log.warning(
                "redis unavailable; retrying with backoff",
                extra={"component": component, "error": safe_error(error, self._url)},
            )

    def _restored(self, component: str) -> None:
        if component in self._failing:
            self._failing.discard(component)
            log.info("redis connection restored", extra={"component": component})

    async def _subscribe_forever(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            assert self._client is not None
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(f"{self.prefix}:conv:*")
                await pubsub.subscribe(self.agents_channel, self.presence_channel)
                self._subscribed.set()
                self._restored("subscriber")
                self._wake.set()  # re-read presence: we may have missed announcements
                backoff = BACKOFF_MIN_S
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") in ("message", "pmessage"):
                        self._deliver(str(message["channel"]), message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._lost("subscriber", error)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _publish_forever(self) -> None:
        assert self._outbox is not None
        while True:
            queued_at, channel, payload = await self._outbox.get()
            backoff = BACKOFF_MIN_S
            try:
                while True:
                    if time.monotonic() - queued_at > STALE_AFTER_S:
                        self._dropped()
                        break
                    try:
                        assert self._client is not None
                        await self._client.publish(channel, payload)
                        self._restored("publisher")
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:
                        self._lost("publisher", error)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                self._outbox.task_done()

    async def _heartbeat_forever(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            self._wake.clear()
            try:
                await self._beat()
                self._restored("presence")
                backoff = BACKOFF_MIN_S
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._lost("presence", error)
                await asyncio.sleep(min(backoff, self.heartbeat_s))  # not woken early: no tight retry loop
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_s):
                    await self._wake.wait()
            await asyncio.sleep(0.02)  # coalesce a burst of connects into one write
