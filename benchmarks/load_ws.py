"""Load test: N concurrent WebSocket customers on loopback, each sending M messages, against a real server.

    python benchmarks/load_ws.py                                  # 200 customers x 10 messages, generation on
    python benchmarks/load_ws.py --generation off                 # the same without the language model
    python benchmarks/load_ws.py --generation both --out load.json
    python benchmarks/load_ws.py --url http://127.0.0.1:8000      # an already running server

Without ``--url`` the script starts ``chatbot serve`` itself on a free port with a fresh SQLite
database (or ``--database-url``), rate limits off (all customers share one loopback address; this
measures capacity, not the limiter), and the data dir of the environment (``CHATBOT_DATA_DIR``,
default ``var``: models, index, intent classifier as `make` built them).

Each customer opens ``/ws/chat``, then sends its messages one by one from a pool of development-set
questions (evaluation/dev_bank.jsonl, dev_cfpb.jsonl, first turns of dev_dialogue.jsonl: FAQ-style
bank questions, CFPB paraphrases, flows, small talk, questions the bank does not answer), waiting for
each answer before the next. Reported: throughput (answers per second of wall time), p50/p95 latency
of the final answer per answer kind (and of the ack and the first streamed piece), errors (error
frames by code, disconnects, timeouts, failed connects), and then whether every acknowledged message
was stored exactly once (read through the store, or through the REST API with ``--url`` and no
``--database-url``). JSON with ``--out``; a summary on stdout. The exit status is 1 when an
acknowledged message is missing or duplicated, or any customer saw an internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._support import (
    Customer,
    ServerProcess,
    customer_script,
    free_port,
    machine,
    percentile,
    question_pool,
    request,
    server_env,
    storage_check,
)


async def run_customers(
    ws_url: str, customers: int, messages: int, seed: int, answer_timeout: float, ramp_s: float
) -> tuple[list[Customer], float]:
    pool = question_pool()
    rng = random.Random(seed)
    crowd = [
        Customer(ws_url, customer_script(pool, messages, rng), answer_timeout=answer_timeout) for _ in range(customers)
    ]

    async def one(number: int, customer: Customer) -> None:
        await asyncio.sleep(ramp_s * number / max(1, customers))  # spread the connects over ramp_s
        await customer.run(f"c{number}")

    started = time.perf_counter()
    await asyncio.gather(*(one(n, c) for n, c in enumerate(crowd)))
    return crowd, time.perf_counter() - started


def summarise(crowd: list[Customer], wall_s: float) -> dict[str, Any]:
    exchanges = [e for c in crowd for e in c.exchanges]
    answered = [e for e in exchanges if e.answer_ms is not None]
    by_kind: dict[str, list[float]] = {}
    for exchange in answered:
        by_kind.setdefault(exchange.kind or "unknown", []).append(exchange.answer_ms or 0.0)
    latency = {
        kind: {"count": len(values), "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}
        for kind, values in sorted(by_kind.items(), key=lambda item: -len(item[1]))
    }
    every = [e.answer_ms for e in answered if e.answer_ms is not None]
    latency["all"] = {"count": len(every), "p50_ms": percentile(every, 50), "p95_ms": percentile(every, 95)}
    acks = [e.ack_ms for e in exchanges if e.ack_ms is not None]
    deltas = [e.first_delta_ms for e in exchanges if e.first_delta_ms is not None]
    error_codes = Counter(e.error for e in exchanges if e.error)
    return {
        "wall_s": round(wall_s, 1),
        "customers": len(crowd),
        "messages_sent": len(exchanges),
        "acked": sum(1 for e in exchanges if e.message_id),
        "answered": len(answered),
        "ack_only": sum(1 for e in exchanges if e.kind == "agent"),
        "throughput_answers_per_s": round(len(answered) / wall_s, 2) if wall_s else None,
        "throughput_messages_per_s": round(sum(1 for e in exchanges if e.message_id) / wall_s, 2) if wall_s else None,
        "latency_ms_by_kind": latency,
        "ack_ms": {"p50": percentile(acks, 50), "p95": percentile(acks, 95)},
        "first_delta_ms": {"count": len(deltas), "p50": percentile(deltas, 50), "p95": percentile(deltas, 95)},
        "categories_sent": dict(Counter(e.category for e in exchanges)),
        "errors": {
            "error_frames": {k: v for k, v in error_codes.items() if k not in ("timeout", "disconnected")},
            "timeouts": error_codes.get("timeout", 0),
            "disconnects": error_codes.get("disconnected", 0),
            "connect_failures": dict(Counter(c.connect_error for c in crowd if c.connect_error)),
            "internal_error_frames": sum(1 for c in crowd for f in c.frames if f.get("code") == "internal_error"),
        },
    }


def one_configuration(args: argparse.Namespace, generation: bool | None) -> dict[str, Any]:
    """Start a server (unless --url), run the crowd, check storage, stop the server."""
    server: ServerProcess | None = None
    database_url = args.database_url
    workdir = Path(tempfile.mkdtemp(prefix="kestrel-load-"))
    startup_s = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        database_url = database_url or f"sqlite:///{workdir / 'load.db'}"
        server = ServerProcess(
            server_env(database_url, generation=bool(generation)), free_port(), workdir / "server.log"
        )
        print(f"starting chatbot serve on {server.url} (generation {'on' if generation else 'off'})…", file=sys.stderr)
        startup_s = round(server.start(), 1)
        url = server.url
    try:
        status, healthz = request(url, "GET", "/healthz")
        ws_url = "ws" + url.removeprefix("http")
        crowd, wall_s = asyncio.run(
            run_customers(ws_url, args.customers, args.messages, args.seed, args.answer_timeout, args.ramp)
        )
        result = summarise(crowd, wall_s)
        result["storage"] = storage_check(crowd, database_url, url)
    finally:
        if server is not None:
            server.stop()
    result["server"] = {
        "url": url if args.url else "started by the benchmark",
        "generation": generation if generation is not None else "as configured on the server",
        "generator": healthz.get("generator") if isinstance(healthz, dict) else None,
        "healthz_status": status,
        "startup_s": startup_s,
        "database": "given" if args.database_url else ("sqlite (fresh)" if server else "unknown"),
        "log": str(workdir / "server.log") if server else None,
    }
    return result


def human(name: str, result: dict[str, Any]) -> str:
    errors, storage = result["errors"], result["storage"]
    lines = [
        f"## {name}: {result['customers']} customers x {result['messages_sent'] // max(1, result['customers'])} "
        f"messages in {result['wall_s']} s",
        f"throughput {result['throughput_answers_per_s']} answers/s ({result['answered']} answered, "
        f"{result['acked']} acked of {result['messages_sent']} sent, {result['ack_only']} ack-only after a handoff)",
        f"ack p50/p95 {result['ack_ms']['p50']}/{result['ack_ms']['p95']} ms; first streamed piece p50/p95 "
        f"{result['first_delta_ms']['p50']}/{result['first_delta_ms']['p95']} ms",
        "| answer kind | answers | p50 ms | p95 ms |",
        "|---|---|---|---|",
    ]
    for kind, stats in result["latency_ms_by_kind"].items():
        lines.append(f"| {kind} | {stats['count']} | {stats['p50_ms']} | {stats['p95_ms']} |")
    lines.append(
        f"errors: frames {errors['error_frames'] or 'none'}, timeouts {errors['timeouts']}, disconnects "
        f"{errors['disconnects']}, connect failures {errors['connect_failures'] or 'none'}, "
        f"internal_error frames {errors['internal_error_frames']}"
    )
    lines.append(
        f"storage ({storage['checked_via']}): {storage['stored_exactly_once']} of {storage['acked']} acked messages "
        f"stored exactly once; missing {storage['missing']}, duplicated {storage['duplicated']}, "
        f"unexpected {storage['unexpected_stored']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="An already running server (http://host:port); default: start one.")
    parser.add_argument("--database-url", help="The server's database, to check storage through the store.")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="Messages per customer.")
    parser.add_argument("--generation", choices=["on", "off", "both"], default="on", help="For a started server.")
    parser.add_argument("--answer-timeout", type=float, default=1800.0, help="Seconds to wait for one answer.")
    parser.add_argument("--ramp", type=float, default=5.0, help="Seconds over which the customers connect.")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    parser.add_argument("--label", default="", help="A note stored with the results (e.g. 'validation run').")
    args = parser.parse_args(argv)

    configurations: list[tuple[str, bool | None]]
    if args.url:
        configurations = [("server at " + args.url, None)]
    elif args.generation == "both":
        configurations = [("generation on", True), ("generation off", False)]
    else:
        configurations = [(f"generation {args.generation}", args.generation == "on")]
    report: dict[str, Any] = {
        "command": "python benchmarks/load_ws.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "label": args.label,
        "machine": machine(),
        "customers": args.customers,
        "messages_per_customer": args.messages,
        "runs": {},
    }
    for name, generation in configurations:
        result = one_configuration(args, generation)
        report["runs"][name] = result
        print(human(name, result), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    failed = any(
        r["storage"]["missing"] or r["storage"]["duplicated"] or r["errors"]["internal_error_frames"]
        for r in report["runs"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
