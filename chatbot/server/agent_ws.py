"""The agent WebSocket ``/ws/agent?token=``: the live queue, every new message, customers' presence.

Server frames: ``queue`` (on connect and whenever a conversation changes status), ``message`` (every
message stored in any conversation, with its conversation id), ``presence`` (customer online /
typing), ``note`` (an internal note was added), ``error``. Client frames: ``{"type": "typing",
"conversation_id"}`` (shown to that conversation's customer as ``{"type": "typing", "agent_name"}``)
and ``{"type": "ping"}`` (answered ``pong``). A bad, expired or forged token gets an ``error`` frame
with its code and the socket is closed with 4401 (browsers cannot read an HTTP status of a refused
WebSocket, but they can read a frame and a close code). The token is checked again with every frame
the client sends (the console pings), so a socket whose token was revoked since it opened (logout,
password change, account disabled) gets ``{"type": "error", "code": "revoked_token"}`` and close 4401
on its next frame instead of reading the queue until the token expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chatbot.agents.hub import Connection, DeliveryHub
from chatbot.conversations.handoff import HandoffService
from chatbot.server.dependencies import authenticate
from chatbot.server.errors import ApiError
from chatbot.server.websocket import decode_frame

log = logging.getLogger(__name__)
agent_ws_router = APIRouter()
UNAUTHORIZED_CLOSE = 4401


def _frame(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    frame, problem = decode_frame(raw, '{"type": "typing", "conversation_id": "conv_…"}')
    if frame is None:
        return None, problem
    if frame.get("type") not in ("typing", "ping"):
        return None, f"Unknown frame type {frame.get('type')!r}; expected 'typing' or 'ping'."
    if frame["type"] == "typing" and not (
        isinstance(frame.get("conversation_id"), str) and 0 < len(frame["conversation_id"]) <= 64
    ):
        return None, "A typing frame needs a 'conversation_id'."
    return frame, None


async def _refuse(websocket: WebSocket, error: ApiError) -> None:
    """An ``error`` frame with the token's problem, then close 4401: the console reads both and signs out."""
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "code": error.code, "message": error.message})
        await websocket.close(code=UNAUTHORIZED_CLOSE)


@agent_ws_router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    store = websocket.app.state.store
    handoff: HandoffService = websocket.app.state.handoff
    hub: DeliveryHub = websocket.app.state.hub
    token = websocket.query_params.get("token") or None
    try:
        agent = await authenticate(store, websocket.app.state.secret_key, token)
    except ApiError as error:
        await _refuse(websocket, error)
        return
    connection = Connection(websocket, agent.id, websocket.app.state.settings.hub_queue_size)
    connection.start()
    connection.send(await handoff.queue_frame())  # the first frame, before any live one
    hub.add_agent(agent.id, connection)
    try:
        while True:
            raw = await websocket.receive()
            if raw.get("type") == "websocket.disconnect":
                return
            try:  # revoked since the socket opened? (one indexed read per frame; the console pings every few s)
                agent = await authenticate(store, websocket.app.state.secret_key, token)
            except ApiError as error:
                hub.remove_agent(agent.id, connection)  # no further frame for a revoked session
                await connection.stop()  # its writer finishes first, so the error frame is the last one sent
                await _refuse(websocket, error)
                return
            frame, problem = _frame(raw)
            if frame is None:
                connection.send({"type": "error", "code": "invalid_frame", "message": problem or "invalid frame"})
            elif frame["type"] == "ping":
                connection.send({"type": "pong"})
            else:
                hub.to_customer(frame["conversation_id"], {"type": "typing", "agent_name": agent.name})
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("agent websocket failed")
        with contextlib.suppress(Exception):
            connection.send({"type": "error", "code": "internal_error", "message": "Something went wrong."})
            async with asyncio.timeout(2):
                await connection.flush()
            await websocket.close(code=1011)
    finally:
        hub.remove_agent(agent.id, connection)
        await connection.stop()
