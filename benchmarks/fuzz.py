"""Fuzz run: malformed HTTP bodies from the OpenAPI schema and random WebSocket frames; zero 5xx.

    python benchmarks/fuzz.py                        # start a server, fuzz it, 25 examples per operation
    python benchmarks/fuzz.py --max-examples 100 --out fuzz.json
    python benchmarks/fuzz.py --url http://127.0.0.1:8000 --api-key kst_… --agent-token eyJ…

Three parts, against one real ``chatbot serve`` (started here with a fresh SQLite database, rate
limits off so the fuzzer reaches the handlers, generation off unless ``--generation``):

a. **schemathesis** (the installed 4.x CLI, ``st run``) against the server's ``/openapi.json``: every
   operation, positive and negative examples, the ``not_a_server_error`` check (no 5xx). Routes that
   need credentials get them: an API key with every scope (``chatbot keys create``) is sent as
   ``Authorization: Bearer``; a second pass sends an admin agent's token (``chatbot agents create`` +
   login) so the agent routes are reached past authentication too.
b. **random WebSocket frames** on ``/ws/chat`` and ``/ws/agent``: invalid JSON, binary frames, wrong
   types, huge frames, deep nesting, unicode junk, control characters, rapid bursts. Each must get an
   ``error`` frame (or, above the frame size limit, a close with 1009), never ``internal_error`` nor a
   1011 close, and the connection (or a new one) must keep working.
a3. **malformed text at every entry point that takes text**, with real credentials and real targets
   (so the text reaches validation, not a 401/404 first): a customer message (REST and ``/ws/chat``),
   the OpenAI route, an agent's reply and note on a conversation the agent holds, ``/v1/nlu/parse``,
   a feedback comment and the login name — each with lone surrogates (``\\ud800``, ``\\udfff``, a
   reversed pair), NUL, noncharacters (U+FFFE, U+FFFF, U+FDD0, U+10FFFF), overlong UTF-8 sequences
   and CESU-8 surrogates sent as raw bytes, a BOM and an RTL override. Each must be a 2xx (valid
   Unicode, however odd) or a 4xx, never a 5xx; each frame an answer or an ``error`` frame.
c. **afterwards**: ``/healthz`` answers 200 and a normal chat message gets an answer.

The exit status is 1 on any 5xx, internal error, or a server that stopped serving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from benchmarks._support import ServerProcess, free_port, health, machine, request, server_env

ST = Path(sys.executable).with_name("st")


# --------------------------------------------------------------------------- credentials
def credentials(server: ServerProcess | None, url: str, api_key: str | None, agent_token: str | None) -> dict[str, Any]:
    """An API key with every scope and an admin agent's token: created on a server we started."""
    made: dict[str, Any] = {"api_key": api_key, "agent_token": agent_token, "notes": []}
    if server is None:
        return made
    if api_key is None:
        created = server.cli("keys", "create", "fuzz", "--scopes", "chat,agent,admin")
        found = re.search(r"kst_[A-Za-z0-9_\-]+", created.stdout + created.stderr)
        made["api_key"] = found.group(0) if found else None
        if not found:
            made["notes"].append(f"keys create failed (rc {created.returncode}): {created.stderr[-300:]}")
    if agent_token is None:
        password = "fuzz-password-" + str(random.Random(1).randint(10**8, 10**9))
        created = server.cli("agents", "create", "fuzzadmin", "--role", "admin", "--password-stdin", stdin=password)
        status, body = request(url, "POST", "/v1/agent/login", {"username": "fuzzadmin", "password": password})
        if status == 200 and isinstance(body, dict):
            made["agent_token"] = body.get("token")
        else:
            made["notes"].append(f"agent login answered {status} (create rc {created.returncode})")
    return made


# --------------------------------------------------------------------------- a. schemathesis
def schemathesis(
    url: str, token: str | None, label: str, max_examples: int, workdir: Path, seed: int
) -> dict[str, Any]:
    report = workdir / f"schemathesis-{label}.ndjson"
    command = [
        str(ST),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--no-color",
        "--suppress-health-check",
        "all",
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    statuses: Counter[str] = Counter()
    server_errors: list[str] = []
    operations: set[str] = set()
    if report.exists():
        for line in report.read_text(errors="replace").splitlines():
            _collect(line, statuses, server_errors, operations)
    output = completed.stdout + completed.stderr
    summary = [
        line for line in output.splitlines() if re.search(r"passed|failed|error|operations|test cases", line, re.I)
    ]
    return {
        "label": label,
        "command": " ".join(c if not c.startswith("Authorization") else "Authorization: Bearer …" for c in command),
        "exit_code": completed.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "operations": len(operations),
        "responses_by_status": dict(sorted(statuses.items())),
        "server_errors": len(server_errors) or sum(v for k, v in statuses.items() if k.startswith("5")),
        "server_error_examples": server_errors[:10],
        "summary": summary[-12:],
        "output_tail": output[-2500:] if completed.returncode not in (0, 1) else "",
    }


def _collect(line: str, statuses: Counter[str], server_errors: list[str], operations: set[str]) -> None:
    """Walk one NDJSON event for HTTP interactions (the report's shape varies between versions)."""
    try:
        event = json.loads(line)
    except ValueError:
        return

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            recorder = node.get("recorder")
            if isinstance(recorder, dict) and isinstance(recorder.get("label"), str):
                operations.add(recorder["label"])  # "POST /v1/conversations/{conversation_id}/messages"
            response, req = node.get("response"), node.get("request")
            if isinstance(response, dict) and isinstance(req, dict) and "status_code" in response:
                status = str(response["status_code"])
                statuses[status] += 1
                method, uri = str(req.get("method", "?")), str(req.get("uri") or req.get("url") or "?")
                if status.startswith("5"):
                    server_errors.append(f"{status} {method} {uri[:200]}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(event)


# --------------------------------------------------------------------------- a2. malformed bodies
MALFORMED_BODIES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "application/json"),
    ("truncated", b'{"text": "hi', "application/json"),
    ("not json", b"hello", "application/json"),
    ("null", b"null", "application/json"),
    ("array", b"[1, 2]", "application/json"),
    ("number", b"1e999999", "application/json"),
    ("NaN", b'{"text": NaN}', "application/json"),
    ("deep array", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("deep object", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "application/json"),
    ("invalid utf-8", b'{"text": "\xff\xfe"}', "application/json"),
    ("lone surrogate", b'{"text": "\\ud800"}', "application/json"),
    ("nul bytes", b'{"text": "a\\u0000b"}', "application/json"),
    ("wrong content type", b'{"text": "hi"}', "text/plain"),
    ("form body", b"text=hi", "application/x-www-form-urlencoded"),
    ("huge", b'{"text": "' + b"a" * (1024 * 1024) + b'"}', "application/json"),
    ("duplicate keys", b'{"text": "a", "text": 5}', "application/json"),
]


def malformed_bodies(url: str, tokens: dict[str, str | None]) -> dict[str, Any]:
    """Every operation with a request body, every malformed body above, with each credential."""
    status, schema = request(url, "GET", "/openapi.json")
    if status != 200 or not isinstance(schema, dict):
        return {"error": f"/openapi.json answered {status}", "server_errors": 1}
    statuses: Counter[str] = Counter()
    server_errors: list[str] = []
    sent = 0
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("post", "put", "patch") or "requestBody" not in operation:
                continue
            concrete = re.sub(r"\{[^}]+\}", "conv_fuzz0000", path)
            for token_name, token in tokens.items():
                for name, body, content_type in MALFORMED_BODIES:
                    headers = {"Content-Type": content_type}
                    if token:
                        headers["Authorization"] = f"Bearer {token}"
                    code = _raw_request(url + concrete, method.upper(), body, headers)
                    sent += 1
                    statuses[str(code)] += 1
                    if code == "connection failed" or (isinstance(code, int) and code >= 500):
                        server_errors.append(f"{code} {method.upper()} {path} ({name}, {token_name})")
    return {
        "requests": sent,
        "responses_by_status": dict(sorted(statuses.items())),
        "server_errors": len(server_errors),
        "server_error_examples": server_errors[:20],
    }


def _raw_request(url: str, method: str, body: bytes, headers: dict[str, str]) -> int | str:
    """The status, or ``"refused early"`` when the server answered (or closed) before the whole oversized
    body was sent, as a body-size limit does; ``"connection failed"`` for any other broken exchange."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders()
        with contextlib.suppress(OSError):  # the server stopped reading: its answer may still be readable
            connection.send(body)
        try:
            response = connection.getresponse()
            response.read()
            return int(response.status)
        except (OSError, http.client.HTTPException):
            return "refused early" if len(body) > 64 * 1024 else "connection failed"
    finally:
        connection.close()


# --------------------------------------------------------------------------- a3. malformed text
# (name, the bytes between the quotes of a JSON string): escapes as a client writes them, or raw bytes.
MALFORMED_TEXTS: list[tuple[str, bytes]] = [
    ("lone high surrogate", b"card lost \\ud800"),
    ("lone low surrogate", b"\\udfff help"),
    ("reversed surrogate pair", b"hi \\udc00\\ud800 there"),
    ("surrogate only", b"\\ud800"),
    ("NUL inside", b"my card\\u0000 was stolen"),
    ("NUL only", b"\\u0000\\u0000"),
    ("noncharacter U+FFFE", b"wire fee \\ufffe"),
    ("noncharacter U+FFFF", b"\\uffff wire fee"),
    ("noncharacter U+FDD0", b"wire \\ufdd0 fee"),
    ("noncharacter U+10FFFF", b"wire fee \\udbff\\udfff"),
    ("overlong '/' (2 bytes)", b"wire \xc0\xaf fee"),
    ("overlong '/' (3 bytes)", b"wire \xe0\x80\xaf fee"),
    ("overlong '/' (4 bytes)", b"wire \xf0\x80\x80\xaf fee"),
    ("CESU-8 surrogate bytes", b"wire \xed\xa0\x80 fee"),
    ("BOM and RTL override", "\ufeffwire \u202efee".encode()),
]


def malformed_text(url: str, ws_url: str, creds: dict[str, Any]) -> dict[str, Any]:
    """Every malformed text at every text entry point, past authentication, on real conversations."""
    statuses: Counter[str] = Counter()
    server_errors: list[str] = []
    refused_examples: dict[str, str] = {}

    def new_conversation() -> tuple[str, str]:
        _, created = request(url, "POST", "/v1/conversations")
        return str(created["id"]), str(created["token"])

    agent = creds.get("agent_token")
    held, held_token = new_conversation()  # a conversation the fuzzing agent holds: replies and notes reach it
    request(url, "POST", f"/v1/conversations/{held}/handoff", token=held_token)
    if agent:
        request(url, "POST", f"/v1/agent/conversations/{held}/claim", token=agent)
    rated, rated_token = new_conversation()
    _, answer = request(url, "POST", f"/v1/conversations/{rated}/messages", {"text": "hello"}, token=rated_token)
    answer_id = answer.get("id") if isinstance(answer, dict) else None

    for name, text in MALFORMED_TEXTS:
        conversation, token = new_conversation()
        targets: list[tuple[str, str, bytes, str | None]] = [
            ("customer message", f"/v1/conversations/{conversation}/messages", b'{"text": "%s"}', token),
            ("nlu parse", "/v1/nlu/parse", b'{"text": "%s"}', None),
            ("login name", "/v1/agent/login", b'{"username": "%s", "password": "x"}', None),
            (
                "openai",
                "/v1/chat/completions",
                b'{"model": "kestrel-assist", "messages": [{"role": "user", "content": "%s"}]}',
                creds.get("api_key"),
            ),
        ]
        if agent:
            targets += [
                ("agent reply", f"/v1/agent/conversations/{held}/messages", b'{"text": "%s"}', agent),
                ("agent note", f"/v1/agent/conversations/{held}/notes", b'{"text": "%s"}', agent),
            ]
        if answer_id:
            targets.append(
                ("feedback comment", f"/v1/messages/{answer_id}/feedback", b'{"rating": "down", "comment": "%s"}',
                 rated_token)
            )  # fmt: skip
        for target, path, template, bearer_token in targets:
            headers = {"Content-Type": "application/json"}
            if bearer_token:
                headers["Authorization"] = f"Bearer {bearer_token}"
            code = _raw_request(url + path, "POST", template.replace(b"%s", text), headers)
            statuses[str(code)] += 1
            if code == "connection failed" or (isinstance(code, int) and code >= 500):
                server_errors.append(f"{code} {target} ({name})")
            elif isinstance(code, int) and code >= 400:
                refused_examples.setdefault(f"{target}: {name}", str(code))
    frames = asyncio.run(_malformed_frames(ws_url))
    return {
        "texts": len(MALFORMED_TEXTS),
        "requests": sum(statuses.values()),
        "responses_by_status": dict(sorted(statuses.items())),
        "server_errors": len(server_errors),
        "server_error_examples": server_errors[:20],
        "refused": refused_examples,
        "websocket": frames,
    }


async def _malformed_frames(ws_url: str) -> dict[str, Any]:
    """Each malformed text as a ``/ws/chat`` message frame (text frames must be UTF-8: raw bytes become
    a binary frame); count the replies. The socket must stay open: no internal_error, no 1011."""
    replies: Counter[str] = Counter()
    internal = closes = 0
    socket = await connect(ws_url + "/ws/chat", open_timeout=30, proxy=None)
    async with asyncio.timeout(30):
        await socket.recv()  # ready
    for _, text in MALFORMED_TEXTS:
        frame = b'{"type": "message", "text": "' + text + b'"}'
        try:
            decoded = frame.decode()
        except UnicodeDecodeError:
            decoded = None
        try:
            await socket.send(decoded if decoded is not None else frame)
            for reply in await _drain(socket, 1.5):
                key = f"error:{reply.get('code')}" if reply.get("type") == "error" else str(reply.get("type"))
                replies[key] += 1
                internal += reply.get("code") == "internal_error"
        except ConnectionClosed as closed:
            closes += 1
            internal += bool(closed.rcvd and closed.rcvd.code == 1011)
            socket = await connect(ws_url + "/ws/chat", open_timeout=30, proxy=None)
            async with asyncio.timeout(30):
                await socket.recv()
    await socket.close()
    return {"frames": len(MALFORMED_TEXTS), "replies": dict(replies), "closes": closes, "internal_errors": internal}


# --------------------------------------------------------------------------- b. WebSocket frames
def junk_frames(rng: random.Random, huge: int) -> list[tuple[str, str | bytes]]:
    """(name, frame): what a broken or hostile client sends."""
    unicode_junk = "".join(rng.choice("\u0000\u202e\ufeff\u200b🙂𝔘ñ中\u0007\\\"'{}[]") for _ in range(200))
    frames: list[tuple[str, str | bytes]] = [
        ("empty", ""),
        ("not json", "hello there"),
        ("truncated json", '{"type": "message", "text": "hi'),
        ("json array", "[1, 2, 3]"),
        ("json string", '"message"'),
        ("json null", "null"),
        ("json number", "12345678901234567890"),
        ("unknown type", '{"type": "launch_missiles"}'),
        ("type not string", '{"type": 5}'),
        ("type object", '{"type": {"nested": true}}'),
        ("text not string", '{"type": "message", "text": 12}'),
        ("text list", '{"type": "message", "text": ["a"]}'),
        ("text null", '{"type": "message", "text": null}'),
        ("empty text", '{"type": "message", "text": ""}'),
        ("whitespace text", '{"type": "message", "text": "   \\n\\t "}'),
        ("over-long text", json.dumps({"type": "message", "text": "a" * 5000})),
        ("client_id object", '{"type": "message", "text": "hi", "client_id": {"a": 1}}'),
        ("client_id long", json.dumps({"type": "message", "text": "hi", "client_id": "x" * 500})),
        ("deep nesting", "[" * 5000 + "]" * 5000),
        ("deep object", '{"a":' * 2000 + "1" + "}" * 2000),
        ("unicode junk", unicode_junk),
        ("unicode junk text", json.dumps({"type": "message", "text": unicode_junk}, ensure_ascii=False)),
        ("control characters", json.dumps({"type": "message", "text": "\u0000\u0001\u001b[31m"})),
        ("binary", bytes(rng.randrange(256) for _ in range(512))),
        ("binary json", b'{"type": "message", "text": "hi"}'),
        ("invalid utf-8 bytes", b"\xff\xfe\xfd"),
        ("huge text frame", "x" * huge),
        ("huge json frame", json.dumps({"type": "message", "text": "y" * huge})),
        ("huge binary frame", b"\x00" * huge),
        ("ping frame type", '{"type": "ping"}'),
        ("typing with junk", '{"type": "typing", "extra": [1, {"x": null}]}'),
        ("handoff with junk", '{"type": "handoff", "reason": 42}'),
    ]
    frames += [(f"random bytes {n}", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))) for n in range(5)]
    frames += [
        (f"random text {n}", "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 300))))
        for n in range(10)
    ]
    return frames


async def _drain(socket: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                raw = await socket.recv()
        except TimeoutError:
            break
        try:
            frames.append(json.loads(raw))
        except ValueError:
            frames.append({"type": "unparseable", "raw": str(raw)[:100]})
    return frames


async def fuzz_socket(ws_url: str, path: str, rng: random.Random, huge: int, burst: int) -> dict[str, Any]:
    """Send every junk frame (reconnecting when the server closes), then a burst; count what came back."""
    results: dict[str, Any] = {
        "path": path.split("?")[0],
        "frames_sent": 0,
        "replies": Counter(),
        "closes": Counter(),
        "internal_errors": 0,
        "reconnects": 0,
        "connect_failures": 0,
        "unanswered": [],
    }

    async def open_socket() -> ClientConnection | None:
        try:
            socket = await connect(ws_url + path, open_timeout=30, max_size=2**24, proxy=None, ping_interval=None)
        except (OSError, InvalidStatus, TimeoutError) as error:
            results["connect_failures"] += 1
            results["unanswered"].append(f"connect failed: {type(error).__name__}")
            return None
        await _drain(socket, 0.5)  # ready / queue frames
        return socket

    socket = await open_socket()

    def note(frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            key = f"{frame.get('type')}:{frame.get('code')}" if frame.get("type") == "error" else str(frame.get("type"))
            results["replies"][key] += 1
            if frame.get("code") == "internal_error":
                results["internal_errors"] += 1

    for name, frame in junk_frames(rng, huge):
        if socket is None:
            socket = await open_socket()
            if socket is None:
                continue
            results["reconnects"] += 1
        try:
            await socket.send(frame)
            results["frames_sent"] += 1
            replies = await _drain(socket, 1.0)
            note(replies)
            if not replies:
                results["unanswered"].append(name)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            results["closes"][str(code)] += 1
            if code == 1011:
                results["internal_errors"] += 1
            socket = None
    if socket is None:
        socket = await open_socket()
    if socket is not None:
        try:  # a rapid burst of junk and typing frames, no waiting in between
            for number in range(burst):
                burst_frames: list[str | bytes] = ['{"type": "typing"}', "junk", '{"type": 1}', b"\x00\x01"]
                await socket.send(rng.choice(burst_frames))
                results["frames_sent"] += 1
                if number % 50 == 0:
                    await asyncio.sleep(0)
            note(await _drain(socket, 3.0))
            await socket.close()
        except ConnectionClosed as closed:
            results["closes"][str(closed.rcvd.code if closed.rcvd else None)] += 1
    results["replies"] = dict(results["replies"])
    results["closes"] = dict(results["closes"])
    return results


# --------------------------------------------------------------------------- c. still serving
async def still_serving(ws_url: str) -> dict[str, Any]:
    socket = await connect(ws_url + "/ws/chat", open_timeout=30, proxy=None)
    async with asyncio.timeout(30):
        ready = json.loads(await socket.recv())
    await socket.send(json.dumps({"type": "message", "text": "how do I order a new debit card?"}))
    kinds: list[str] = []
    answer: dict[str, Any] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        async with asyncio.timeout(deadline - time.monotonic()):
            frame = json.loads(await socket.recv())
        kinds.append(str(frame.get("type")))
        if frame.get("type") in ("message", "error"):
            answer = frame
            break
    await socket.close()
    message = answer.get("message") or {}
    return {
        "ready": ready.get("type") == "ready",
        "frames": kinds,
        "answer_kind": message.get("kind"),
        "answered": answer.get("type") == "message" and bool(message.get("text")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="An already running server; default: start one.")
    parser.add_argument("--api-key", help="kst_… key with chat,agent,admin scopes (created when we start the server).")
    parser.add_argument("--agent-token", help="An admin agent's token (created when we start the server).")
    parser.add_argument("--max-examples", type=int, default=25, help="schemathesis examples per operation.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--generation", action="store_true", help="Start the server with generation on.")
    parser.add_argument("--skip-schemathesis", action="store_true")
    parser.add_argument("--burst", type=int, default=500, help="Frames in the rapid burst per socket.")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="kestrel-fuzz-"))
    server: ServerProcess | None = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        env = server_env(f"sqlite:///{workdir / 'fuzz.db'}", generation=args.generation)
        server = ServerProcess(env, free_port(), workdir / "server.log")
        print(f"starting chatbot serve on {server.url}…", file=sys.stderr)
        server.start()
        url = server.url
    ws_url = "ws" + url.removeprefix("http")
    report: dict[str, Any] = {
        "command": "python benchmarks/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "label": args.label,
        "machine": machine(),
        "schemathesis": [],
    }
    try:
        creds = credentials(server, url, args.api_key, args.agent_token)
        report["credentials"] = {
            "api_key": bool(creds["api_key"]),
            "agent_token": bool(creds["agent_token"]),
            "notes": creds["notes"],
        }
        if not args.skip_schemathesis:
            passes = [("api-key", creds["api_key"]), ("agent-token", creds["agent_token"])]
            for label, token in passes:
                if token or label == "api-key":
                    print(f"schemathesis ({label})…", file=sys.stderr)
                    report["schemathesis"].append(
                        schemathesis(url, token, label, args.max_examples, workdir, args.seed)
                    )
        print("malformed bodies…", file=sys.stderr)
        report["malformed_bodies"] = malformed_bodies(
            url, {"none": None, "api-key": creds["api_key"], "agent-token": creds["agent_token"]}
        )
        print("malformed text at every entry point…", file=sys.stderr)
        report["malformed_text"] = malformed_text(url, ws_url, creds)
        max_frame = 16 * 1024  # the default max_frame_bytes; 4x that must be refused, not crash anything
        status, _ = request(url, "GET", "/healthz")
        rng = random.Random(args.seed)
        paths = ["/ws/chat", "/ws/chat?conversation_id=conv_nonexistent&token=bad&after=zzz"]
        paths.append(f"/ws/agent?token={creds['agent_token']}" if creds["agent_token"] else "/ws/agent?token=bad")
        print("websocket frames…", file=sys.stderr)
        report["websocket"] = [asyncio.run(fuzz_socket(ws_url, p, rng, max_frame * 4, args.burst)) for p in paths]
        report["after"] = {"healthz": health(url), **asyncio.run(still_serving(ws_url))}
        report["healthz_before_ws"] = status
    finally:
        if server is not None:
            alive = server.process is not None and server.process.poll() is None
            report["server_process_alive_at_end"] = alive
            server.stop()
            log = server.log.read_text(errors="replace")
            report["server_log_tracebacks"] = log.count("Traceback")
            report["server_log"] = str(server.log)
    five_xx = sum(int(s["server_errors"]) for s in report["schemathesis"])
    five_xx += int(report.get("malformed_bodies", {}).get("server_errors", 0))
    five_xx += int(report.get("malformed_text", {}).get("server_errors", 0))
    internal = sum(int(w["internal_errors"]) for w in report.get("websocket", []))
    internal += int(report.get("malformed_text", {}).get("websocket", {}).get("internal_errors", 0))
    after = report.get("after", {})
    report["verdict"] = {
        "http_5xx": five_xx,
        "ws_internal_errors": internal,
        "still_serving": after.get("healthz") == 200 and bool(after.get("answered")),
        "schemathesis_ran": all(s["exit_code"] in (0, 1) for s in report["schemathesis"]),
    }
    ok = five_xx == 0 and internal == 0 and report["verdict"]["still_serving"] and report["verdict"]["schemathesis_ran"]
    report["verdict"]["passed"] = ok
    print(json.dumps({k: report[k] for k in ("verdict", "credentials")}, indent=2))
    for run in report["schemathesis"]:
        print(
            f"schemathesis {run['label']}: {run['operations']} operations, statuses {run['responses_by_status']}, "
            f"5xx {run['server_errors']} ({run['seconds']} s, exit {run['exit_code']})"
        )
        for line in run["summary"]:
            print("   ", line)
    bodies = report.get("malformed_bodies", {})
    print(
        f"malformed bodies: {bodies.get('requests')} requests, statuses {bodies.get('responses_by_status')}, "
        f"5xx {bodies.get('server_error_examples')}"
    )
    text = report.get("malformed_text", {})
    print(
        f"malformed text: {text.get('texts')} texts, {text.get('requests')} requests, statuses "
        f"{text.get('responses_by_status')}, 5xx {text.get('server_error_examples')}; /ws/chat {text.get('websocket')}"
    )
    for socket in report.get("websocket", []):
        print(
            f"ws {socket['path']}: {socket['frames_sent']} frames, replies {socket['replies']}, closes "
            f"{socket['closes']}, internal errors {socket['internal_errors']}, unanswered {socket['unanswered']}"
        )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
