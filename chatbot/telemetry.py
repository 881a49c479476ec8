"""The Prometheus series, defined below every layer that records into them.

The turn service observes answer latency and the per-conversation limit counts its refusals;
``chatbot/server/prometheus.py`` serves the registry on ``/metrics`` and feeds the HTTP series.
Keeping the definitions here lets the domain record a measurement without importing the web layer.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by method, route template and status.", ["method", "route", "status"],
    registry=REGISTRY,
)  # fmt: skip
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request, by route template.", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY,
)  # fmt: skip
ANSWER_LATENCY = Histogram(
    "answer_latency_seconds", "Time from a customer message to the assistant's finished answer, by answer kind.",
    ["kind"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60), registry=REGISTRY,
)  # fmt: skip
QUEUE_DEPTH = Gauge("generation_queue_depth", "Requests waiting for the generation worker.", registry=REGISTRY)
WEBSOCKETS = Gauge("websocket_connections", "Open WebSocket connections.", ["kind"], registry=REGISTRY)
HANDOFFS_WAITING = Gauge("handoffs_waiting", "Conversations waiting for an agent.", registry=REGISTRY)
RATE_LIMITED = Counter("rate_limited_total", "Requests and messages refused by a rate limit.", ["scope"],
                       registry=REGISTRY)  # fmt: skip
for _kind in ("customer", "agent"):
    WEBSOCKETS.labels(kind=_kind)
for _scope in ("ip", "key", "conversation"):
    RATE_LIMITED.labels(scope=_scope)


def observe_answer(kind: str, latency_ms: int | None) -> None:
    if latency_ms is not None:
        ANSWER_LATENCY.labels(kind=kind).observe(latency_ms / 1000)


def count_refusal(scope_name: str) -> None:
    """One refusal by the ``ip``, ``key`` or ``conversation`` rate limit."""
    RATE_LIMITED.labels(scope=scope_name).inc()
