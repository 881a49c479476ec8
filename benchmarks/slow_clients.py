"""Slow clients against a real `chatbot serve`: thousands of sockets that never finish their headers.

Starts ``chatbot serve`` (generation off unless ``--generation``; its own SQLite database; default
limits: headers within ``CHATBOT_HTTP_HEADER_TIMEOUT_S``, ``CHATBOT_MAX_CONNECTIONS_PER_IP``, …) and,
for ``--duration`` seconds, from loopback addresses only (127.0.0.2 … 127.0.0.N: as many distinct
clients as ``--addresses``; the tricklers from 127.0.1.x; Linux routes all of 127/8 to the server):

- holds ``--sockets`` sockets that send half a request line and never finish their headers; each one
  the server closes is opened again at once, so the pressure stays up for the whole run;
- runs ``--tricklers`` sockets that send one header line every ``--trickle-every`` seconds (the
  29-second trickle of the report, faster), measuring how long the server lets each live;
- meanwhile, from 127.0.0.1, asks ``/healthz`` every ``--probe-every`` seconds and, every
  ``--answer-every`` seconds, a customer answer (``POST /v1/conversations``, then a message).

Reports the sockets opened, refused at once (503: over a cap), held until the server closed them
(408: the header deadline), still open at the end; the time to close a held socket and a trickler;
``/healthz`` and answer latency p50/p95 during the attack. Everything stops by itself after
``--duration`` (plus the last deadline). Exit status 1 if ``/healthz`` or an answer failed, or a
socket outlived the header deadline by more than ``--slack`` seconds.

    python benchmarks/slow_clients.py                       # 4,000 sockets, 20 tricklers, 60 s
    python benchmarks/slow_clients.py --sockets 8000 --addresses 40 --duration 120 --out slow.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._support import ServerProcess, free_port, machine, percentile, server_env
from chatbot.connections import raise_open_file_limit

SERVER = "127.0.0.1"


@dataclass
class Tally:
    opened: int = 0
    refused: int = 0  # a 503 at once: over the per-address or total cap
    timed_out: int = 0  # a 408: the header deadline
    closed_silently: int = 0  # closed with no reply (reset, or closed while we were still writing)
    connect_failed: int = 0
    held_for: list[float] = field(default_factory=list)  # seconds from connect to the server's close (admitted)
    trickle_lived: list[float] = field(default_factory=list)
    trickle_lines: list[int] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    health_failed: list[str] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    answer_failed: list[str] = field(default_factory=list)
    peak_open: int = 0
    open_now: int = 0


async def _open(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(SERVER, port, local_addr=(source, 0))


async def holder(source: str, port: int, stop: float, tally: Tally) -> None:
    """One slot of the attack: half a request, then wait for the server to close; again until ``stop``."""
    while time.monotonic() < stop:
        try:
            reader, writer = await _open(source, port)
        except OSError:
            tally.connect_failed += 1
            await asyncio.sleep(0.5)
            continue
        tally.opened += 1
        tally.open_now += 1
        tally.peak_open = max(tally.peak_open, tally.open_now)
        started = time.monotonic()
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: kestrel\r\n")  # no blank line: never finished
            await writer.drain()
            reply = await reader.read(64)
            while reply and await reader.read(4096):
                pass
        except OSError:
            reply = b""
        finally:
            tally.open_now -= 1
            writer.close()
        if reply.startswith(b"HTTP/1.1 503"):
            tally.refused += 1
            await asyncio.sleep(1.0)  # a refused client comes back a second later
        elif reply.startswith(b"HTTP/1.1 408"):
            tally.timed_out += 1
            tally.held_for.append(time.monotonic() - started)
        else:
            tally.closed_silently += 1
            tally.held_for.append(time.monotonic() - started)


async def trickler(source: str, port: int, every: float, tally: Tally) -> None:
    """One header line every ``every`` seconds until the server closes the socket."""
    try:
        reader, writer = await _open(source, port)
    except OSError:
        tally.connect_failed += 1
        return
    started, lines = time.monotonic(), 0
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    try:
        while True:
            writer.write(f"X-Trickle-{lines}: {'a' * 20}\r\n".encode())
            await writer.drain()
            lines += 1
            try:
                async with asyncio.timeout(every):
                    data = await reader.read(4096)
            except TimeoutError:
                continue
            if not data or data.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")):
                break
    except OSError:
        pass
    finally:
        writer.close()
    tally.trickle_lived.append(time.monotonic() - started)
    tally.trickle_lines.append(lines)


async def http(port: int, method: str, path: str, body: bytes = b"", token: str = "") -> tuple[int, bytes]:
    """A whole HTTP/1.1 request from 127.0.0.1 on a fresh connection; (status, body)."""
    async with asyncio.timeout(10):
        reader, writer = await _open("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: kestrel\r\nConnection: close\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    async with asyncio.timeout(60):
        data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data.partition(b"\r\n\r\n")[2]


async def prober(port: int, stop: float, every: float, tally: Tally) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            status, _ = await http(port, "GET", "/healthz")
            if status == 200:
                tally.health_ms.append((time.monotonic() - started) * 1000)
            else:
                tally.health_failed.append(f"status {status}")
        except (OSError, TimeoutError) as error:
            tally.health_failed.append(type(error).__name__)
        await asyncio.sleep(every)


async def customer(port: int, stop: float, every: float, tally: Tally) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            status, created = await http(port, "POST", "/v1/conversations")
            if status != 201:
                raise RuntimeError(f"create {status}")
            conversation = json.loads(created)
            body = json.dumps({"text": "how do I report a lost card?"}).encode()
            path = f"/v1/conversations/{conversation['id']}/messages"
            status, answer = await http(port, "POST", path, body, conversation["token"])
            if status != 200 or not json.loads(answer).get("text"):
                raise RuntimeError(f"message {status}")
            tally.answer_ms.append((time.monotonic() - started) * 1000)
        except (OSError, TimeoutError, RuntimeError, ValueError) as error:
            tally.answer_failed.append(str(error) or type(error).__name__)
        await asyncio.sleep(every)


async def attack(args: argparse.Namespace, port: int, tally: Tally) -> float:
    stop = time.monotonic() + args.duration
    sources = [f"127.0.0.{2 + i}" for i in range(args.addresses)]
    tasks = [asyncio.create_task(prober(port, stop, args.probe_every, tally)),
             asyncio.create_task(customer(port, stop, args.answer_every, tally))]  # fmt: skip
    for i in range(args.sockets):  # ramp up over a second or two; the loop paces itself
        tasks.append(asyncio.create_task(holder(sources[i % len(sources)], port, stop, tally)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    # each trickler from an address of its own (127.0.1.x), so that it is admitted and its deadline measured
    tricklers = [
        asyncio.create_task(trickler(f"127.0.1.{1 + i % 250}", port, args.trickle_every, tally))
        for i in range(args.tricklers)
    ]
    started = time.monotonic()
    await asyncio.gather(*tasks, *tricklers)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=4000, help="slow sockets held at once (each reopened)")
    parser.add_argument("--addresses", type=int, default=20, help="loopback source addresses they come from")
    parser.add_argument("--tricklers", type=int, default=20)
    parser.add_argument("--trickle-every", type=float, default=2.0, help="seconds between a trickler's lines")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds the attack lasts")
    parser.add_argument("--probe-every", type=float, default=0.25)
    parser.add_argument("--answer-every", type=float, default=2.0)
    parser.add_argument("--header-timeout", type=float, default=10.0, help="CHATBOT_HTTP_HEADER_TIMEOUT_S")
    parser.add_argument("--slack", type=float, default=5.0, help="allowed lateness of a close past the deadline")
    parser.add_argument("--generation", action="store_true", help="generation on (default off)")
    parser.add_argument("--out", type=Path, help="write the report as JSON")
    args = parser.parse_args()

    files = raise_open_file_limit()  # this process holds every slow socket too
    if files < args.sockets + args.tricklers + 100:
        parser.error(f"the open-file limit here is {files}: too low for {args.sockets} sockets")
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as tmp:
        env = server_env(
            f"sqlite:///{tmp}/slow.db",
            generation=args.generation,
            CHATBOT_HTTP_HEADER_TIMEOUT_S=str(args.header_timeout),
        )
        log = Path(tmp) / "server.log"
        server = ServerProcess(env, free_port(), log)
        print(f"starting chatbot serve on port {server.port} …", flush=True)
        server.start()
        try:
            wall = asyncio.run(attack(args, server.port, tally))
        finally:
            server.stop()
        server_log = log.read_text(errors="replace")
    bound = args.header_timeout + args.slack
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "settings": {"header_timeout_s": args.header_timeout, "per_ip_default": 200, "addresses": args.addresses},
        "wall_s": round(wall, 1),
        "sockets": {
            "held_at_once_target": args.sockets,
            "opened": tally.opened,
            "peak_open": tally.peak_open,
            "refused_503": tally.refused,
            "closed_by_server_408": tally.timed_out,
            "closed_silently": tally.closed_silently,
            "connect_failed": tally.connect_failed,
            "held_s_p50": percentile(tally.held_for, 50),
            "held_s_max": round(max(tally.held_for), 1) if tally.held_for else None,
        },
        "tricklers": {
            "count": len(tally.trickle_lived),
            "lived_s_p50": percentile(tally.trickle_lived, 50),
            "lived_s_max": round(max(tally.trickle_lived), 1) if tally.trickle_lived else None,
            "lines_max": max(tally.trickle_lines, default=0),
        },
        "healthz": {
            "ok": len(tally.health_ms),
            "failed": len(tally.health_failed),
            "failures": sorted(set(tally.health_failed))[:5],
            "p50_ms": percentile(tally.health_ms, 50),
            "p95_ms": percentile(tally.health_ms, 95),
        },
        "answers": {
            "ok": len(tally.answer_ms),
            "failed": len(tally.answer_failed),
            "failures": sorted(set(tally.answer_failed))[:5],
            "p50_ms": percentile(tally.answer_ms, 50),
            "p95_ms": percentile(tally.answer_ms, 95),
        },
        "server_tracebacks": server_log.count("Traceback"),
    }
    late = [t for t in tally.held_for + tally.trickle_lived if t > bound]
    report["late_closes"] = len(late)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    failed = tally.health_failed or tally.answer_failed or not tally.health_ms or not tally.answer_ms or late
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
