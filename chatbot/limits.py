"""Rate-limit counters per client IP, per API key and per conversation (docs/security.md).

The counters and the per-conversation check live here, below the web layer, because the turn
service applies them; the HTTP middleware for the ip and key scopes is chatbot/server/ratelimit.py.

One algorithm, two backends. The algorithm is the *sliding window counter*: a count for the
current minute and one for the previous minute, the previous weighted by how much of it still
lies inside the last 60 seconds. It needs two integers per bucket (not one timestamp per request,
as a sliding log would), never lets a burst through at a window boundary the way a fixed window
does, and is exact enough for abuse control.

- ``MemoryLimiter``: one process (the default).
- ``RedisLimiter``: with ``settings.redis_url``; one Lua script reads both counters and increments
  the current one atomically, with Redis's own clock, so every server process shares one limit.
  If Redis cannot be reached the request is let through and a warning logged: a broken limiter
  must not take the assistant down (docs/security.md says so).

Scopes: ``ip`` (every HTTP request and every WebSocket connect, in ``RateLimitMiddleware``),
``key`` (requests whose Bearer token starts with ``kst_``, keyed on the token's SHA-256 so it works
before the key is validated), ``conversation`` (customer messages, checked by
``TurnService.accept``, the one path every customer message takes). A refused
request gets 429 ``rate_limited`` with ``Retry-After``; a refused WebSocket message gets an
``error`` frame with ``retry_after``, and is not stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from chatbot.config import Settings
from chatbot.errors import RateLimited
from chatbot.telemetry import count_refusal

log = logging.getLogger(__name__)

WINDOW_S = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds; 0 when allowed


def retry_after_s(current: int, previous: int, elapsed: float, limit: int, window: float = WINDOW_S) -> int:
    """Seconds until one more hit fits under ``limit`` (the same arithmetic for both backends).

    The estimate is ``current + previous * (1 - elapsed / window)``; a hit is allowed while the
    estimate plus one stays within ``limit``.
    """
    if current + 1 <= limit:
        # The previous window's weight must fall enough: previous * (1 - t/window) <= limit - current - 1.
        needed = window * (1 - (limit - current - 1) / previous) if previous else elapsed
        wait = needed - elapsed
    else:
        # Only in the next window: current becomes "previous", weighted by (1 - t/window).
        needed = window * (1 - (limit - 1) / current) if current else 0.0
        wait = (window - elapsed) + needed
    return max(1, math.ceil(wait))


class Limiter(Protocol):
    async def hit(self, scope: str, key: str, limit: int) -> Decision: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    """Buckets in a dict, on the event loop (no lock needed); stale buckets are dropped as it grows."""

    def __init__(self, window: float = WINDOW_S, max_buckets: int = 100_000) -> None:
        self.window, self.max_buckets = window, max_buckets
        self._buckets: dict[tuple[str, str], tuple[int, int, int]] = {}  # -> (window index, current, previous)

    async def hit(self, scope: str, key: str, limit: int) -> Decision:
        now = time.time()
        index = int(now // self.window)
        elapsed = now - index * self.window
        start, current, previous = self._buckets.get((scope, key), (index, 0, 0))
        if start != index:
            previous = current if start == index - 1 else 0
            current = 0
        estimate = current + previous * (1 - elapsed / self.window)
        if estimate + 1 > limit:
            self._buckets[(scope, key)] = (index, current, previous)
            return Decision(False, retry_after_s(current, previous, elapsed, limit, self.window))
        self._buckets[(scope, key)] = (index, current + 1, previous)
        if len(self._buckets) > self.max_buckets:
            self._prune(index)
        return Decision(True, 0)

    def _prune(self, index: int) -> None:
        stale = [k for k, (start, _, _) in self._buckets.items() if start < index - 1]
        for key in stale:
            del self._buckets[key]
        while len(self._buckets) > self.max_buckets:  # all fresh: an attack with many keys; drop the oldest
            self._buckets.pop(next(iter(self._buckets)))

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1]: the bucket's base key. ARGV: limit, window (s). Returns {allowed, current, previous, elapsed_ms}.
SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_ms = tonumber(ARGV[2]) * 1000
local index = math.floor(now_ms / window_ms)
local elapsed = now_ms - index * window_ms
local current_key = KEYS[1] .. ':' .. index
local previous_key = KEYS[1] .. ':' .. (index - 1)
local current = tonumber(redis.call('GET', current_key) or '0')
local previous = tonumber(redis.call('GET', previous_key) or '0')
local estimate = current + previous * (1 - elapsed / window_ms)
if estimate + 1 > tonumber(ARGV[1]) then
  return {0, current, previous, elapsed}
end
current = redis.call('INCR', current_key)
if current == 1 then
  redis.call('PEXPIRE', current_key, window_ms * 2 + 1000)
end
return {1, current, previous, elapsed}
"""


class RedisLimiter:
    """The same sliding window in Redis, one atomic script call per hit, shared by every process."""

    def __init__(self, url: str, window: float = WINDOW_S, prefix: str = "kestrel:rl") -> None:
        import redis.asyncio as aioredis

        self.window, self.prefix = window, prefix
        self._redis: Any = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._script = self._redis.register_script(SLIDING_WINDOW_LUA)
        self._warned_at = 0.0

    async def hit(self, scope: str, key: str, limit: int) -> Decision:
        try:
            allowed, current, previous, elapsed_ms = await self._script(
                keys=[f"{self.prefix}:{{{scope}:{key}}}"], args=[limit, int(self.window)]
            )
        except Exception as error:  # fail open: limits are protection, not a dependency of answering
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limiter unavailable; letting requests through", extra={"error": type(error).__name__})
            return Decision(True, 0)
        if int(allowed):
            return Decision(True, 0)
        return Decision(False, retry_after_s(int(current), int(previous), int(elapsed_ms) / 1000, limit, self.window))

    async def close(self) -> None:
        await self._redis.aclose()


def make_limiter(settings: Settings) -> Limiter:
    return RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()


def key_bucket(token: str) -> str:
    """The API-key bucket: the token's SHA-256 (the key itself never sits in memory or Redis as a name)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ConversationLimits:
    """What the turn service (chatbot/conversations/turns.py) calls before it stores a customer message."""

    def __init__(self, settings: Settings, limiter: Limiter) -> None:
        self.settings, self.limiter = settings, limiter

    async def check(self, conversation_id: str) -> None:
        """Raise RateLimited when this conversation sent too many messages in the last minute."""
        if not self.settings.rate_limit_enabled:
            return
        limit = self.settings.rate_limit_conversation_per_minute
        decision = await self.limiter.hit("conversation", conversation_id, limit)
        if not decision.allowed:
            count_refusal("conversation")
            log.info("rate limited", extra={"scope": "conversation", "conversation": conversation_id})
            raise RateLimited(decision.retry_after, "conversation")


async def close_limiter(limiter: Limiter | None) -> None:
    if limiter is not None:
        try:
            async with asyncio.timeout(2):
                await limiter.close()
        except Exception:
            log.debug("closing the rate limiter failed", exc_info=True)
