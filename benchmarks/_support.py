"""Shared by the load and fault benchmarks: a real `chatbot serve` process, WebSocket customers, checks.

- ``ServerProcess``: ``chatbot serve`` in a child process with its own database (the tests' own,
  tests/support/servers.py, with longer timeouts); ``kill9`` ends it as
  a crash does (no shutdown hook), ``start`` brings it back on the same port and database.
- ``question_pool``: realistic customer messages from the *development* sets in ``evaluation/``
  (FAQ-style bank questions, CFPB paraphrases, flows and small talk, questions the bank does not
  answer); never a test split.
- ``Customer``: one WebSocket customer that sends a message, waits for the ``ack`` and the answer
  (or only the ack once a person has the chat), and records what happened and how long it took.
- ``stored_messages``: what the store holds for a conversation, read through the store itself when
  the database URL is known, else through the REST API with the customer's token.

Not a test module; the benchmarks are run by hand (docs/load-and-fault.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatbot.config import PROJECT_ROOT
from chatbot.machine import cpu_name
from tests.support.servers import ServerProcess as _ServerProcess
from tests.support.services import free_port as free_port  # re-exported for the benchmarks

EVALUATION = PROJECT_ROOT / "evaluation"


def machine() -> dict[str, Any]:
    return {"cpu": cpu_name(), "cores": os.cpu_count()}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


def server_env(database_url: str, generation: bool = True, **extra: str) -> dict[str, str]:
    """A benchmark server's environment: its own database; rate limits off (the benchmark measures
    capacity, and all its customers share one loopback address), everything else as configured."""
    env = dict(os.environ)
    env.update(
        CHATBOT_DATABASE_URL=database_url,
        CHATBOT_GENERATION_ENABLED="true" if generation else "false",
        CHATBOT_RATE_LIMIT_ENABLED="false",
        CHATBOT_LOG_LEVEL="WARNING",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    env.update(extra)
    return env


class ServerProcess(_ServerProcess):
    """``chatbot serve --port PORT`` in a child process (tests/support/servers.py), with the benchmarks'
    longer timeouts: a model load or a PostgreSQL migration on a busy 2-core machine."""

    cli_timeout = 300
    stop_timeout = 60

    def start(self, timeout: float = 600) -> float:
        """Start and wait for ``/healthz`` 200; returns the seconds it took."""
        return super().start(timeout)


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def request(
    url: str, method: str, path: str, body: Any = None, token: str | None = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON or text); 4xx and 5xx are returned, not raised."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    prepared = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            payload = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        payload, status = error.read(), int(error.code)
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload.decode(errors="replace")


# --------------------------------------------------------------------------- messages
def _jsonl(name: str) -> list[dict[str, Any]]:
    path = EVALUATION / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def question_pool() -> list[tuple[str, str]]:
    """(category, text): every development-set message a load customer may send."""
    pool: list[tuple[str, str]] = []
    for row in _jsonl("dev_bank.jsonl"):
        pool.append(("bank" if row.get("answer_id") else "out_of_scope", row["question"]))
    pool += [("cfpb", row["question"]) for row in _jsonl("dev_cfpb.jsonl")]
    for conversation in _jsonl("dev_dialogue.jsonl"):
        first = conversation["turns"][0]  # later turns are follow-ups that need their first turn
        if first["expect"] in ("flow", "smalltalk", "clarify"):
            pool.append((first["expect"], first["text"]))
    return pool


def customer_script(pool: list[tuple[str, str]], messages: int, rng: random.Random) -> list[tuple[str, str]]:
    """A customer's messages: mostly bank questions, some CFPB ones, flows, small talk, out of scope."""
    weights = {"bank": 0.45, "cfpb": 0.2, "flow": 0.1, "smalltalk": 0.1, "clarify": 0.05, "out_of_scope": 0.1}
    by_category: dict[str, list[str]] = {}
    for category, text in pool:
        by_category.setdefault(category, []).append(text)
    categories = [c for c in weights if c in by_category]
    chosen = rng.choices(categories, [weights[c] for c in categories], k=messages)
    return [(c, rng.choice(by_category[c])) for c in chosen]


# --------------------------------------------------------------------------- customers
@dataclass
class Exchange:
    """One customer message: what was sent, what came back, how long each step took."""

    category: str
    text: str
    client_id: str
    sent_at: float = 0.0
    message_id: str | None = None  # set by the ack
    ack_ms: float | None = None
    first_delta_ms: float | None = None
    answer_ms: float | None = None
    kind: str | None = None  # the answer's kind; "agent" when only the ack was due (a person has the chat)
    error: str | None = None  # an error frame's code, "timeout" or "disconnected"
    conversation_id: str | None = None


@dataclass
class Customer:
    """A WebSocket customer sending its messages one by one, each after the previous answer."""

    ws_url: str
    script: list[tuple[str, str]]
    answer_timeout: float = 300.0
    conversation_id: str | None = None
    token: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    connect_error: str | None = None
    status: str = "bot"
    frames: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # every conversation this customer had, its token
    new_chat_after_handoff: bool = True

    def url(self) -> str:
        if self.conversation_id and self.token:
            query = urlencode({"conversation_id": self.conversation_id, "token": self.token})
            return f"{self.ws_url}/ws/chat?{query}"
        return f"{self.ws_url}/ws/chat"

    async def open(self) -> ClientConnection:
        socket = await connect(self.url(), open_timeout=60, max_size=2**22, ping_interval=None, proxy=None)
        ready = await self._frame(socket, 60)
        if ready.get("type") == "error":  # e.g. an unknown conversation: the next frame is ready
            ready = await self._frame(socket, 60)
        if ready.get("type") != "ready":
            raise RuntimeError(f"expected a ready frame, got {ready}")
        self.conversation_id = str(ready["conversation_id"])
        self.token = ready.get("token") or self.token
        self.status = str(ready.get("status") or "bot")
        if self.token:
            self.tokens[self.conversation_id] = self.token
        return socket

    async def _frame(self, socket: ClientConnection, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            frame = json.loads(await socket.recv())
        self.frames.append({"type": frame.get("type"), "code": frame.get("code")})
        if frame.get("type") == "handoff" and frame.get("status"):
            self.status = str(frame["status"])
        return dict(frame)

    async def exchange(self, socket: ClientConnection, exchange: Exchange) -> None:
        """Send one message; wait for its ack, then its answer (unless a person has the chat)."""
        exchange.sent_at = time.perf_counter()
        exchange.conversation_id = self.conversation_id
        await socket.send(json.dumps({"type": "message", "text": exchange.text, "client_id": exchange.client_id}))
        deadline = time.monotonic() + self.answer_timeout
        answer_id: str | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                exchange.error = "timeout"
                return
            try:
                frame = await self._frame(socket, left)
            except TimeoutError:
                exchange.error = "timeout"
                return
            elapsed = (time.perf_counter() - exchange.sent_at) * 1000
            kind = frame.get("type")
            if kind == "ack" and frame.get("client_id") == exchange.client_id:
                exchange.message_id, exchange.ack_ms = str(frame["message_id"]), elapsed
                if self.status != "bot":
                    exchange.kind = "agent"  # waiting or assigned: the bot stays silent
                    return
            elif kind == "error":
                exchange.error = str(frame.get("code"))
                if exchange.message_id is None:
                    return  # the message was refused (not stored)
            elif kind == "start" and exchange.message_id is not None:
                answer_id = frame.get("id")
            elif kind == "delta" and exchange.first_delta_ms is None and frame.get("id") == answer_id:
                exchange.first_delta_ms = elapsed
            elif kind == "message" and exchange.message_id is not None:
                message = frame.get("message") or {}
                exchange.answer_ms, exchange.kind = elapsed, str(message.get("kind"))
                if message.get("handoff"):
                    self.status = "waiting"
                return

    async def run(self, prefix: str, stop: asyncio.Event | None = None) -> None:
        """Connect and play the script; a dropped connection ends the customer (recorded, not raised)."""
        try:
            socket = await self.open()
        except Exception as error:  # refused, reset, timed out: recorded as this customer's failure
            self.connect_error = type(error).__name__
            return
        try:
            for number, (category, text) in enumerate(self.script):
                if stop is not None and stop.is_set():
                    return
                if self.status != "bot" and self.new_chat_after_handoff:
                    # A person has the chat; the bot stays silent there. This customer starts a new
                    # chat, so every message still gets an answer to time.
                    await socket.close()
                    self.conversation_id = self.token = None
                    try:
                        socket = await self.open()
                    except Exception as error:  # recorded as this customer's failure, like the first connect
                        self.connect_error = type(error).__name__
                        return
                exchange = Exchange(category, text, f"{prefix}-{number}")
                self.exchanges.append(exchange)
                try:
                    await self.exchange(socket, exchange)
                except ConnectionClosed:
                    exchange.error = exchange.error or "disconnected"
                    return
        finally:
            await socket.close()


# --------------------------------------------------------------------------- what was stored
def stored_messages(
    conversation_id: str, store: Any = None, url: str | None = None, token: str | None = None
) -> list[dict[str, Any]]:
    """The conversation's stored messages (id, role): from ``store`` when given, else through REST."""
    if store is not None:
        return [{"id": m.id, "role": m.role} for m in store.messages(conversation_id)]
    assert url is not None
    messages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:  # cursor pagination: ``next_cursor`` until it is null
        path = f"/v1/conversations/{conversation_id}/messages" + (f"?cursor={cursor}" if cursor else "")
        status, body = request(url, "GET", path, token=token)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body}")
        page = body.get("messages") or []
        messages += [{"id": m["id"], "role": m["role"]} for m in page]
        cursor = body.get("next_cursor")
        if not page or not cursor:
            return messages


def storage_check(customers: list[Customer], database_url: str | None, url: str) -> dict[str, Any]:
    """Every acknowledged message stored exactly once; nothing stored that was not sent."""
    acked = missing = duplicated = unacked_stored = extra = 0
    problems: list[str] = []
    store = None
    if database_url:
        from chatbot.store import Store

        store = Store(database_url)
    conversations = 0
    for customer in customers:
        for conversation_id, token in customer.tokens.items():
            conversations += 1
            exchanges = [e for e in customer.exchanges if e.conversation_id == conversation_id]
            rows = stored_messages(conversation_id, store, url, token)
            user_ids = [r["id"] for r in rows if r["role"] == "user"]
            counts = {i: user_ids.count(i) for i in set(user_ids)}
            acked_ids = [e.message_id for e in exchanges if e.message_id]
            sent_unacked = [e for e in exchanges if not e.message_id and e.error in ("disconnected", "timeout")]
            acked += len(acked_ids)
            for message_id in acked_ids:
                if counts.get(message_id, 0) == 0:
                    missing += 1
                    problems.append(f"{conversation_id}: acked {message_id} not stored")
                elif counts[message_id] > 1:
                    duplicated += 1
            others = len(user_ids) - len(set(acked_ids) & set(user_ids))
            unacked_stored += min(others, len(sent_unacked))
            extra += max(0, others - len(sent_unacked))  # stored user messages nobody sent
    if store is not None:
        store.close()
    return {
        "checked_via": "store" if database_url else "rest",
        "conversations": conversations,
        "acked": acked,
        "stored_exactly_once": acked - missing - duplicated,
        "missing": missing,
        "duplicated": duplicated,
        "sent_not_acked_but_stored": unacked_stored,
        "unexpected_stored": extra,
        "problems": problems[:20],
    }
