"""The numbers an admin reads to improve the assistant, and the questions it could not answer.

Definitions (docs/agent-api.md): a conversation counts when the customer wrote at least once
(opening the widget creates an empty one). Containment = conversations no human touched (no
handoff request, no claim, no agent message) / conversations. Handoff rate = conversations with
at least one handoff request / conversations. Suggestion use rate = (sent + edited) / decided
suggestions (pending ones are not decided yet). Feedback ratio = up / (up + down).
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from chatbot.evals.metrics import percentile
from chatbot.guard.pii import redact
from chatbot.store import AnalyticsData, Store

TOP_UNANSWERED = 20


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip("?!. ")


def summarise(
    data: AnalyticsData, days: int, top: int = TOP_UNANSWERED, keep: Collection[str] | None = None
) -> dict[str, Any]:
    conversations = set(data.conversation_ids)
    total = len(conversations)
    handed = {c for c, _ in data.requested if c in conversations}
    human = handed | (data.agent_conversations & conversations)
    reasons = Counter(r or "unknown" for c, r in data.requested if c in conversations)
    up = sum(1 for _, r in data.feedback if r == "up")
    down = sum(1 for _, r in data.feedback if r == "down")
    outcomes = Counter(data.suggestion_outcomes)
    decided = outcomes["sent"] + outcomes["edited"] + outcomes["ignored"]
    latencies = [float(latency) for _, _, latency in data.answers if latency is not None]

    grouped: dict[str, dict[str, Any]] = {}
    for question, kind in data.unanswered:
        # Stored redacted already; redacted again in case of an older row (keep: Settings.pii_public_numbers).
        text = redact(question, keep).text
        entry = grouped.setdefault(_normal(text), {"text": text, "count": 0, "kinds": Counter()})
        entry["count"] += 1
        entry["kinds"][kind] += 1
    ranked = sorted(grouped.values(), key=lambda e: (-e["count"], e["text"]))[:top]

    def rounded(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 1)

    return {
        "days": days,
        "conversations": total,
        "containment_rate": _ratio(total - len(human), total),
        "handoff_rate": _ratio(len(handed), total),
        "handoff_reasons": dict(reasons.most_common()),
        "feedback": {"up": up, "down": down, "ratio": _ratio(up, up + down)},
        "suggestions": {
            "shown": len(data.suggestion_outcomes),
            "sent": outcomes["sent"],
            "edited": outcomes["edited"],
            "ignored": outcomes["ignored"],
            "pending": outcomes["pending"],
            "use_rate": _ratio(outcomes["sent"] + outcomes["edited"], decided),
        },
        "answer_kinds": dict(Counter(kind or "unknown" for _, kind, _ in data.answers).most_common()),
        "latency_ms": {"p50": rounded(percentile(latencies, 50)), "p95": rounded(percentile(latencies, 95))},
        "top_unanswered": [
            {"text": e["text"], "count": e["count"], "kind": e["kinds"].most_common(1)[0][0]} for e in ranked
        ],
    }


async def compute(
    store: Store, days: int, top: int = TOP_UNANSWERED, keep: Collection[str] | None = None
) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(days=days)
    data = await asyncio.to_thread(store.analytics_data, since)
    return summarise(data, days, top, keep)


def _cell(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas: customer text must stay text."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def unanswered_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "count", "kind"])
    for row in rows:
        writer.writerow([_cell(row["text"]), row["count"], row["kind"]])
    return out.getvalue()
