"""A minimal app around one ``RedisHub``, so the hub can be driven through real WebSockets (in a
TestClient or in a child process: ``python -m tests.support.hub_app URL PORT HB TTL PREFIX``) without
loading any model. Not a test module.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from chatbot.agents.hub import Connection
from chatbot.agents.redis_hub import RedisHub


def hub_app(url: str, heartbeat_s: float = 0.3, ttl_s: float = 1.5, prefix: str = "kestrel") -> FastAPI:
    """One RedisHub behind real WebSockets: ``/customer/{conversation}`` and ``/agent/{agent}`` register
    a socket and send ``{"type": "registered"}``; ``POST /publish`` calls ``to_customer`` / ``to_agents``;
    a socket may send ``{"conversation_id", "frame"}`` to publish excluding itself; ``GET /presence``."""
    hub = RedisHub(url, heartbeat_s=heartbeat_s, ttl_s=ttl_s, prefix=prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.hub = hub

    async def serve(websocket: WebSocket, owner: str, customer: bool) -> None:
        await websocket.accept()
        connection = Connection(websocket, owner)
        connection.start()
        (hub.add_customer if customer else hub.add_agent)(owner, connection)
        connection.send({"type": "registered"})
        try:
            while True:
                frame = await websocket.receive_json()
                hub.to_customer(frame["conversation_id"], frame["frame"], exclude=connection)
        except WebSocketDisconnect:
            pass
        finally:
            (hub.remove_customer if customer else hub.remove_agent)(owner, connection)
            await connection.stop()

    @app.websocket("/customer/{conversation_id}")
    async def customer(websocket: WebSocket, conversation_id: str) -> None:
        await serve(websocket, conversation_id, customer=True)

    @app.websocket("/agent/{agent_id}")
    async def agent(websocket: WebSocket, agent_id: str) -> None:
        await serve(websocket, agent_id, customer=False)

    @app.post("/publish")
    async def publish(body: dict[str, Any]) -> dict[str, str]:
        if body.get("conversation_id"):
            hub.to_customer(body["conversation_id"], body["frame"])
        else:
            hub.to_agents(body["frame"], body.get("agent_id"))
        return {"status": "queued"}

    @app.get("/presence")
    async def presence(conversation_id: str = "") -> dict[str, Any]:
        return {"agents_online": hub.agents_online(), "customer_online": hub.customer_online(conversation_id)}

    return app


def run_hub_app(url: str, port: int, heartbeat_s: float, ttl_s: float, prefix: str) -> None:
    """Entry point for a hub in a child process (``python -m tests.support.hub_app URL PORT HB TTL PREFIX``)."""
    import uvicorn

    uvicorn.run(hub_app(url, heartbeat_s, ttl_s, prefix), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    run_hub_app(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
