"""The customer WebSocket: one JSON frame per event, the connection kept through bad frames.

Frames from the client: ``{"type": "message", "text": "..."}``. Frames from the server:
``ready`` (with the conversation id, on connect), then per answer ``start``, ``delta``*,
``message`` (the AnswerObject) — or ``error`` with a code and a readable message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chatbot.dialogue.engine import Engine
from chatbot.store import Store

log = logging.getLogger(__name__)
ws_router = APIRouter()


async def _send_error(websocket: WebSocket, code: str, message: str) -> None:
    await websocket.send_json({"type": "error", "code": code, "message": message})


def _parse_frame(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Return ``(text, None)`` for a valid message frame, else ``(None, error message)``."""
    if raw.get("bytes") is not None:
        return None, "Binary frames are not supported; send JSON text frames."
    try:
        frame = json.loads(raw.get("text") or "")
    except json.JSONDecodeError:
        return None, 'Frames must be JSON objects such as {"type": "message", "text": "Hello"}.'
    if not isinstance(frame, dict):
        return None, 'Frames must be JSON objects such as {"type": "message", "text": "Hello"}.'
    if frame.get("type") != "message":
        return None, f"Unknown frame type {frame.get('type')!r}; expected 'message'."
    text = frame.get("text")
    if not isinstance(text, str):
        return None, "A message frame needs a 'text' string."
    return text, None


@ws_router.websocket("/ws/chat")
async def customer_chat(websocket: WebSocket) -> None:
    await websocket.accept()
    engine: Engine = websocket.app.state.engine
    store: Store = websocket.app.state.store
    requested = websocket.query_params.get("conversation_id")
    conversation_id: str | None = None
    if requested and len(requested) <= 64 and await asyncio.to_thread(store.conversation_exists, requested):
        conversation_id = requested
    elif requested:
        await _send_error(websocket, "conversation_not_found", "That conversation was not found; starting a new one.")
    if conversation_id is None:
        conversation_id, _ = await asyncio.to_thread(store.create_conversation, "web")
    await websocket.send_json({"type": "ready", "conversation_id": conversation_id})
    try:
        while True:
            raw = await websocket.receive()
            if raw.get("type") == "websocket.disconnect":
                return
            text, problem = _parse_frame(raw)
            if problem is not None:
                await _send_error(websocket, "invalid_frame", problem)
                continue
            if not engine.ready:
                await _send_error(websocket, "not_ready", "The assistant is still starting; try again shortly.")
                continue
            async for event in engine.respond(text, conversation_id):
                await websocket.send_json(event.model_dump(mode="json"))
    except WebSocketDisconnect:
        return
    except Exception:  # never drop a customer without a reason
        log.exception("websocket handler failed")
        try:
            await _send_error(websocket, "internal_error", "Something went wrong on our side; please try again.")
            await websocket.close(code=1011)
        except Exception:
            return
