"""Live delivery of frames to the customers' and agents' WebSockets.

``DeliveryHub`` is the whole interface the server uses; ``InProcessHub`` implements it for one
server process with asyncio. Running several processes needs a hub that fans frames out through
Redis pub/sub: chatbot/agents/redis_hub.py's ``RedisHub`` (chosen when ``CHATBOT_REDIS_URL`` is set).
Delivery is best effort by design: every message is stored before it is delivered, and a
client that missed frames asks for them again with ``after=<last message id>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any, Protocol

from fastapi import WebSocket

log = logging.getLogger(__name__)


class Connection:
    """One socket with an outbound queue, so a slow client never blocks the one publishing to it.

    Frames are sent by one writer task in the order they were queued: the customer's ``ack``,
    the bot's stream and an agent's message cannot interleave out of order on one socket.
    """

    def __init__(self, websocket: WebSocket, owner: str, queue_size: int = 1000) -> None:
        self.websocket = websocket
        self.owner = owner  # a conversation id or an agent id
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=queue_size)  # hub_queue_size
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                if frame is None:
                    return
                if not self.closed:
                    await self.websocket.send_json(frame)
            except Exception:  # the peer went away; the reader notices and unregisters
                self.closed = True
            finally:
                self._queue.task_done()

    def send(self, frame: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:  # a client that reads nothing: drop it, it will resume with after=
            log.warning("dropping a connection that stopped reading")
            self.closed = True
            self._closer = asyncio.get_running_loop().create_task(self._close(1013))

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code)

    async def flush(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        self.closed = True
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
            try:
                async with asyncio.timeout(2):
                    await self._writer
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()


class DeliveryHub(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def add_customer(self, conversation_id: str, connection: Connection) -> None: ...
    def remove_customer(self, conversation_id: str, connection: Connection) -> None: ...
    def add_agent(self, agent_id: str, connection: Connection) -> None: ...
    def remove_agent(self, agent_id: str, connection: Connection) -> None: ...
    def to_customer(self, conversation_id: str, frame: dict[str, Any], exclude: Connection | None = None) -> None: ...
    def to_agents(self, frame: dict[str, Any], agent_id: str | None = None) -> None: ...
    def agents_online(self) -> int: ...
    def customer_online(self, conversation_id: str) -> bool: ...


class InProcessHub:
    """Conversation id → customer sockets, agent id → agent sockets; all on the server's event loop."""

    def __init__(self) -> None:
        self._customers: defaultdict[str, set[Connection]] = defaultdict(set)
        self._agents: defaultdict[str, set[Connection]] = defaultdict(set)

    async def start(self) -> None:
        """Nothing to start: one process delivers to its own sockets (RedisHub starts its tasks here)."""

    async def stop(self) -> None:
        """Nothing to stop; the sockets are closed by their handlers."""

    def add_customer(self, conversation_id: str, connection: Connection) -> None:
        self._customers[conversation_id].add(connection)

    def remove_customer(self, conversation_id: str, connection: Connection) -> None:
        sockets = self._customers.get(conversation_id)
        if sockets is not None:
            sockets.discard(connection)
            if not sockets:
                del self._customers[conversation_id]

    def add_agent(self, agent_id: str, connection: Connection) -> None:
        self._agents[agent_id].add(connection)

    def remove_agent(self, agent_id: str, connection: Connection) -> None:
        sockets = self._agents.get(agent_id)
        if sockets is not None:
            sockets.discard(connection)
            if not sockets:
                del self._agents[agent_id]

    def to_customer(self, conversation_id: str, frame: dict[str, Any], exclude: Connection | None = None) -> None:
        for connection in list(self._customers.get(conversation_id, ())):
            if connection is not exclude:
                connection.send(frame)

    def to_agents(self, frame: dict[str, Any], agent_id: str | None = None) -> None:
        targets = [self._agents.get(agent_id, set())] if agent_id is not None else list(self._agents.values())
        for sockets in targets:
            for connection in list(sockets):
                connection.send(frame)

    def online_agent_ids(self) -> set[str]:
        """Agents with at least one open socket in this process (what RedisHub advertises to the others)."""
        return {agent_id for agent_id, sockets in self._agents.items() if any(not c.closed for c in sockets)}

    def online_conversation_ids(self) -> set[str]:
        """Conversations whose customer has an open socket in this process."""
        return {cid for cid, sockets in self._customers.items() if any(not c.closed for c in sockets)}

    def agents_online(self) -> int:
        return sum(1 for sockets in self._agents.values() if any(not c.closed for c in sockets))

    def customer_online(self, conversation_id: str) -> bool:
        return any(not c.closed for c in self._customers.get(conversation_id, ()))
