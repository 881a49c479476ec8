"""Fault test: ``kill -9`` a server mid-conversation, restart it, check every acknowledged message.

    python benchmarks/crash_restart.py                                   # SQLite, 20 customers x 10 messages
    python benchmarks/crash_restart.py --database-url postgresql+psycopg://user@host/db
    python benchmarks/crash_restart.py --customers 50 --kill-at 0.5 --generation --out crash.json

1. Start ``chatbot serve`` (a fresh SQLite database by default, or ``--database-url``; rate limits off).
2. Customers talk to it over ``/ws/chat``, one message after another's answer, from the
   development-set pool (as benchmarks/load_ws.py).
3. Once ``--kill-at`` of all messages are acknowledged, the server gets SIGKILL: no shutdown hook, no
   flush, answers cut off mid-stream, WebSockets dropped.
4. The server is started again on the same port and database; each customer reconnects to *its*
   conversation (id and token) and sends the rest of its messages.
5. Check, through the store: every acknowledged message is stored exactly once; a message that was
   sent but not acknowledged when the server died is stored at most once (the customer may retry
   it); no message appears that nobody sent. Also reported: messages acknowledged before and after
   the crash, answers cut off, seconds to restart.

JSON with ``--out``; exit status 1 when an acknowledged message is missing or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.exceptions import ConnectionClosed

from benchmarks._support import (
    Customer,
    Exchange,
    ServerProcess,
    customer_script,
    free_port,
    machine,
    question_pool,
    server_env,
    storage_check,
)


async def play(customer: Customer, prefix: str, start: int, phase: str) -> int:
    """Send the script from ``start``; return the index of the first message not sent."""
    try:
        socket = await customer.open()
    except Exception as error:  # the server is down or not up yet
        customer.connect_error = type(error).__name__
        return start
    index = start
    try:
        while index < len(customer.script):
            if customer.status != "bot":  # a person has the chat: continue in a new one (see load_ws.py)
                await socket.close()
                customer.conversation_id = customer.token = None
                socket = await customer.open()
            category, text = customer.script[index]
            exchange = Exchange(category, text, f"{prefix}-{index}-{phase}")
            customer.exchanges.append(exchange)
            index += 1
            try:
                await customer.exchange(socket, exchange)
            except ConnectionClosed:
                exchange.error = exchange.error or "disconnected"
                return index
            if exchange.error in ("timeout", "disconnected"):
                return index
    except (ConnectionClosed, OSError):
        return index
    finally:
        await socket.close()
    return index


async def crash_run(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    pool = question_pool()
    rng = random.Random(args.seed)
    customers = [
        Customer(server.ws_url, customer_script(pool, args.messages, rng), answer_timeout=120)
        for _ in range(args.customers)
    ]
    total = args.customers * args.messages
    threshold = max(1, int(total * args.kill_at))
    positions = [0] * len(customers)

    async def first(number: int, customer: Customer) -> None:
        await asyncio.sleep(number * 0.05)
        positions[number] = await play(customer, f"c{number}", 0, "before")

    tasks = [asyncio.create_task(first(n, c)) for n, c in enumerate(customers)]

    def acked() -> int:
        return sum(1 for c in customers for e in c.exchanges if e.message_id)

    while acked() < threshold and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    acked_before = acked()
    killed_at = time.perf_counter()
    await asyncio.to_thread(server.kill9)
    await asyncio.gather(*tasks)
    before = [e for c in customers for e in c.exchanges]
    in_flight_at_kill = sum(1 for e in before if e.message_id is None and e.error == "disconnected")
    answering_at_kill = sum(1 for e in before if e.message_id and e.answer_ms is None and e.error == "disconnected")
    conversation_at_kill = [c.conversation_id for c in customers]
    print(f"killed with {acked_before} of {total} messages acknowledged; restarting…", file=sys.stderr)
    restart_s = await asyncio.to_thread(server.start)
    down_s = time.perf_counter() - killed_at
    for customer in customers:
        customer.connect_error = None
    await asyncio.gather(
        *(play(c, f"c{n}", positions[n], "after") for n, c in enumerate(customers) if positions[n] < args.messages)
    )
    exchanges = [e for c in customers for e in c.exchanges]
    return {
        "customers": args.customers,
        "messages_per_customer": args.messages,
        "messages_planned": total,
        "kill_threshold_acks": threshold,
        "acked_before_kill": acked_before,
        "sent_not_acked_at_kill": in_flight_at_kill,
        "answers_cut_off_at_kill": answering_at_kill,
        "restart_s": round(restart_s, 1),
        "down_s": round(down_s, 1),
        "messages_sent": len(exchanges),
        "acked_total": sum(1 for e in exchanges if e.message_id),
        "acked_after_restart": sum(1 for e in exchanges if e.message_id and e.client_id.endswith("-after")),
        "answered_after_restart": sum(
            1 for e in exchanges if e.answer_ms is not None and e.client_id.endswith("after")
        ),
        "customers_continuing": sum(1 for p in positions if p < args.messages),
        "resumed_same_conversation": sum(
            1
            for c, at_kill in zip(customers, conversation_at_kill, strict=True)
            if any(e.client_id.endswith("-after") and e.conversation_id == at_kill for e in c.exchanges)
        ),
        "errors": {
            "disconnected": sum(1 for e in exchanges if e.error == "disconnected"),
            "timeout": sum(1 for e in exchanges if e.error == "timeout"),
            "error_frames": sorted(
                {str(e.error) for e in exchanges if e.error not in (None, "disconnected", "timeout")}
            ),
            "internal_error_frames": sum(1 for c in customers for f in c.frames if f.get("code") == "internal_error"),
        },
        "_customers": customers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="Default: a fresh SQLite database in a temporary folder.")
    parser.add_argument(
        "--postgres", action="store_true", help="Start a throwaway PostgreSQL cluster (Debian's postgresql) and use it."
    )
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--kill-at", type=float, default=0.5, help="Fraction of all messages acked before the kill.")
    parser.add_argument("--generation", action="store_true", help="Generation on (answers in flight are longer).")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="kestrel-crash-"))
        database_url = args.database_url or f"sqlite:///{workdir / 'crash.db'}"
        if args.postgres:
            from tests.support.services import postgres_server  # the test suite's real PostgreSQL helper

            database_url = stack.enter_context(postgres_server()).create_database("kestrel_crash")
        env = server_env(database_url, generation=args.generation)
        server = ServerProcess(env, free_port(), workdir / "server.log")
        print(f"starting chatbot serve on {server.url}…", file=sys.stderr)
        server.start()
        try:
            result = asyncio.run(crash_run(args, server))
        finally:
            server.stop()
        customers = result.pop("_customers")
        result["storage"] = storage_check(customers, database_url, server.url)
    report = {
        "command": "python benchmarks/crash_restart.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "label": args.label,
        "machine": machine(),
        "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
        "generation": args.generation,
        "server_log": str(server.log),
        **result,
    }
    storage = report["storage"]
    print(
        f"{report['database']}: killed -9 after {report['acked_before_kill']} of {report['messages_planned']} "
        f"messages acked ({report['sent_not_acked_at_kill']} sent and not yet acked, "
        f"{report['answers_cut_off_at_kill']} answers cut off); back in {report['restart_s']} s; "
        f"{report['acked_after_restart']} acked after the restart.\n"
        f"storage: {storage['stored_exactly_once']} of {storage['acked']} acked messages stored exactly once; "
        f"missing {storage['missing']}, duplicated {storage['duplicated']}; sent-not-acked stored "
        f"{storage['sent_not_acked_but_stored']}; unexpected {storage['unexpected_stored']}"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 1 if storage["missing"] or storage["duplicated"] or storage["unexpected_stored"] else 0


if __name__ == "__main__":
    sys.exit(main())
