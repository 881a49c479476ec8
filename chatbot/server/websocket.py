"""The customer WebSocket: one JSON frame per event, the connection kept through bad frames.

``/ws/chat?conversation_id=&token=&after=``. Without a conversation (or with one that cannot be
resumed) the socket reserves a new one: ``ready`` carries its id and token, and it is stored with
the customer's first message or handoff request, never merely on connect.

Frames from the client: ``{"type": "message", "text", "client_id"?}``, ``{"type": "handoff"}``,
``{"type": "typing"}``. Frames from the server: ``ready`` (conversation id, status, and the token of
a new conversation), ``history`` (what was stored after ``after``), ``ack`` once a message is
stored, then per answer ``start``, ``delta``*, ``message`` (the AnswerObject) — only while the
assistant has the conversation —, ``handoff`` on every status change, ``agent_message`` for a
support agent's reply, or ``error`` with a code and a readable message. docs/agent-api.md
describes every frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chatbot.agents.hub import Connection, DeliveryHub
from chatbot.conversations.handoff import HandoffService, message_out
from chatbot.conversations.text import INVALID_UNICODE, lone_surrogate
from chatbot.conversations.turns import TurnService
from chatbot.dialogue.engine import Engine
from chatbot.errors import InvalidInput, RateLimited
from chatbot.shutdown import AnswerTracker
from chatbot.store import ConversationNotFound, MessageNotFound, Store
from chatbot.tokens import customer_token_hash, customer_token_matches, new_customer_token, reserved_conversation_id

log = logging.getLogger(__name__)
ws_router = APIRouter()


CLIENT_FRAMES = ("message", "handoff", "typing")


def decode_frame(
    raw: Mapping[str, Any], example: str, text_field: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """A received WebSocket message as a JSON object, or ``(None, why)`` naming ``example`` as the shape.

    Shared by the customer and agent sockets: binary frames, invalid JSON, JSON nested past the
    parser's depth (``RecursionError`` on "[[[[…"), non-objects and strings that are not valid
    Unicode (an escaped lone surrogate, which no frame sent back could encode: a 1011 close) are all
    refused the same way. ``text_field`` is left to ``clean_text``, so a message's text gets the
    ``invalid_text`` error every channel gives it.
    """
    if raw.get("bytes") is not None:
        return None, "Binary frames are not supported; send JSON text frames."
    try:
        frame = json.loads(raw.get("text") or "")
    except (json.JSONDecodeError, RecursionError):
        frame = None
    if not isinstance(frame, dict):
        return None, f"Frames must be JSON objects such as {example}."
    if lone_surrogate({key: value for key, value in frame.items() if key != text_field}):
        return None, INVALID_UNICODE
    return frame, None


def _parse_frame(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Return ``(frame, None)`` for a valid client frame, else ``(None, error message)``."""
    frame, problem = decode_frame(raw, '{"type": "message", "text": "Hello"}', text_field="text")
    if frame is None:
        return None, problem
    if frame.get("type") not in CLIENT_FRAMES:
        return None, f"Unknown frame type {frame.get('type')!r}; expected 'message', 'handoff' or 'typing'."
    if frame["type"] == "message" and not isinstance(frame.get("text"), str):
        return None, "A message frame needs a 'text' string."
    client_id = frame.get("client_id")
    if client_id is not None and (not isinstance(client_id, str | int) or len(str(client_id)) > 64):
        return None, "client_id must be a string of 64 characters at most."
    return frame, None


@ws_router.websocket("/ws/chat")
async def customer_chat(websocket: WebSocket) -> None:
    """A customer's socket. A new conversation is only *reserved* here (its id and token go out in ``ready``)
    and stored with the customer's first message or handoff request, so a page view stores nothing."""
    await websocket.accept()
    store: Store = websocket.app.state.store
    server_key: str = websocket.app.state.secret_key
    connection = Connection(websocket, "", websocket.app.state.settings.hub_queue_size)
    connection.start()

    def error(code: str, message: str) -> None:
        connection.send({"type": "error", "code": code, "message": message})

    params = websocket.query_params
    requested, token, after = params.get("conversation_id"), params.get("token"), params.get("after")
    conversation_id: str | None = None
    reserved_hash: str | None = None  # the token hash of a conversation reserved but not stored yet
    status = "bot"
    ready: dict[str, Any] = {"type": "ready"}
    try:
        if requested and len(requested) <= 64:
            try:
                record = await asyncio.to_thread(store.conversation, requested)
            except ConversationNotFound:
                if token and requested == reserved_conversation_id(server_key, token):
                    conversation_id, reserved_hash = requested, customer_token_hash(token)  # reconnected before writing
                else:
                    error("conversation_not_found", "That conversation was not found; starting a new one.")
            else:
                if customer_token_matches(record.token_hash, token):
                    conversation_id, status = record.id, record.status
                else:
                    error("invalid_token", "That conversation needs its token; starting a new one.")
        elif requested:
            error("conversation_not_found", "That conversation was not found; starting a new one.")
        if conversation_id is None:
            new_token, reserved_hash = new_customer_token()
            conversation_id = reserved_conversation_id(server_key, new_token)
            ready |= {"conversation_id": conversation_id, "token": new_token, "status": "bot"}
        else:
            ready |= {"conversation_id": conversation_id, "status": status}
        ready["max_message_chars"] = websocket.app.state.settings.max_message_chars  # the widget's counter
    except Exception:  # e.g. the database is unreachable: say so, and release the writer task
        log.exception("websocket set-up failed")
        error("internal_error", "Something went wrong on our side; please try again.")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await connection.flush()
            await websocket.close(code=1011)
        await connection.stop()
        return
    await _serve_customer(websocket, connection, str(ready["conversation_id"]), ready, after, reserved_hash)


async def _serve_customer(
    websocket: WebSocket,
    connection: Connection,
    conversation_id: str,
    ready: dict[str, Any],
    after: str | None,
    reserved_hash: str | None,
) -> None:
    engine: Engine = websocket.app.state.engine
    store: Store = websocket.app.state.store
    handoff: HandoffService = websocket.app.state.handoff
    hub: DeliveryHub = websocket.app.state.hub
    stored = reserved_hash is None

    def error(code: str, message: str) -> None:
        connection.send({"type": "error", "code": code, "message": message})

    async def store_it() -> None:
        """Store the reserved conversation (once), then join the hub: agents see it from now on."""
        nonlocal stored
        if stored:
            return
        assert reserved_hash is not None
        await asyncio.to_thread(store.conversations.create_reserved, conversation_id, "web", reserved_hash)
        stored = True
        hub.add_customer(conversation_id, connection)
        handoff.presence(conversation_id)

    connection.owner = conversation_id
    connection.send(ready)
    if stored:
        if after and ready.get("token") is None:
            await _send_history(connection, store, conversation_id, after)
        hub.add_customer(conversation_id, connection)
        handoff.presence(conversation_id)
    try:
        while True:
            raw = await websocket.receive()
            if raw.get("type") == "websocket.disconnect":
                return
            frame, problem = _parse_frame(raw)
            if problem is not None or frame is None:
                error("invalid_frame", problem or "invalid frame")
                continue
            if frame["type"] == "typing":
                if stored:  # nobody can see a conversation that is not stored yet
                    handoff.presence(conversation_id, typing=True)
            elif frame["type"] == "handoff":
                await store_it()
                current, changed = await handoff.start_handoff(conversation_id, "customer_request")
                if not changed:
                    connection.send(current)
            else:
                turns: TurnService = websocket.app.state.turns
                if not stored:
                    try:  # a message that would be refused stores nothing, not even its conversation
                        turns.clean(frame["text"])
                    except InvalidInput as refused:
                        error(refused.code, refused.message)
                        continue
                    if not engine.ready:
                        error("not_ready", "The assistant is still starting.")
                        continue
                    await store_it()
                await _customer_message(connection, engine, handoff, turns, conversation_id, frame)
    except WebSocketDisconnect:
        return
    except Exception:  # never drop a customer without a reason
        log.exception("websocket handler failed")
        try:
            error("internal_error", "Something went wrong on our side; please try again.")
            async with asyncio.timeout(2):
                await connection.flush()
            await websocket.close(code=1011)
        except Exception:
            return
    finally:
        if stored:
            hub.remove_customer(conversation_id, connection)
            handoff.presence(conversation_id)
        await connection.stop()


async def _send_history(connection: Connection, store: Store, conversation_id: str, after: str) -> None:
    """What the customer missed while away; an unknown ``after`` id gets the whole conversation."""
    try:
        messages = await asyncio.to_thread(store.messages_after, conversation_id, after)
    except MessageNotFound:
        problem = "That message id is not in this conversation; sending the whole history."
        connection.send({"type": "error", "code": "message_not_found", "message": problem})
        messages = await asyncio.to_thread(store.messages_after, conversation_id, None)
    connection.send({"type": "history", "messages": [message_out(m) for m in messages]})


async def _customer_message(
    connection: Connection,
    engine: Engine,
    handoff: HandoffService,
    turns: TurnService,
    conversation_id: str,
    frame: dict[str, Any],
) -> None:
    """Store, acknowledge, then let the assistant answer — unless a person has (or is about to take) the chat."""
    if not engine.ready and (await handoff.record(conversation_id)).status in ("bot", "closed"):
        connection.send({"type": "error", "code": "not_ready", "message": "The assistant is still starting."})
        return
    try:
        accepted = await turns.accept(conversation_id, frame["text"])
    except InvalidInput as problem:
        connection.send({"type": "error", "code": problem.code, "message": problem.message})
        return
    except RateLimited as limited:  # not stored: the client sends it again after retry_after seconds
        connection.send({"type": "error", "code": limited.code, "message": limited.message,
                         "retry_after": limited.retry_after, "client_id": frame.get("client_id")})  # fmt: skip
        return
    connection.send({"type": "ack", "message_id": accepted.message.id, "client_id": frame.get("client_id")})
    if accepted.status != "bot":
        return  # waiting or assigned: the bot stays silent, the agents have the message
    answers: AnswerTracker = connection.websocket.app.state.answers
    with answers.answering():  # on SIGTERM the server waits for this answer (chatbot/shutdown.py)
        async for event in turns.reply(conversation_id, accepted.message.text):
            connection.send(event.model_dump(mode="json"))  # the answer, then (after it) any handoff frame
        if answers.draining:  # the socket closes next: the answer must have left first
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await connection.flush()
