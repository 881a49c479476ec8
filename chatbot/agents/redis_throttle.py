"""The agent-login throttle shared by every server process, in Redis.

With several processes behind a load balancer an in-memory throttle lets an attacker multiply
their attempts by the number of processes (each counts only what it saw). ``RedisLoginThrottle``
keeps the same interface as ``LoginThrottle`` — the route does not know which one it has — and
keeps the failures of each (address, name) pair in one sorted set of timestamps that expires with
the window. Keys hold a hash of the pair, not the name or the address.

If Redis cannot be reached the process falls back to its own in-memory counts (the parent class)
rather than letting every attempt through or refusing every sign-in.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

import redis

from chatbot.agents.auth import LoginThrottle
from chatbot.agents.redis_hub import safe_error
from chatbot.config import Settings

log = logging.getLogger(__name__)


def make_login_throttle(settings: Settings) -> LoginThrottle:
    """Shared through Redis when ``redis_url`` is set, else per process."""
    limit, window = settings.login_max_failures, settings.login_window_s
    if settings.redis_url:
        return RedisLoginThrottle(settings.redis_url, limit, window)
    return LoginThrottle(limit, window)


class RedisLoginThrottle(LoginThrottle):
    """``limit`` failures per (address, name) within ``window_s``, counted across all processes.

    The methods block on Redis (a few hundred microseconds on a LAN); the route calls them off the
    event loop. ``now`` is wall-clock seconds here, since the processes share no monotonic clock.
    """

    def __init__(self, url: str, limit: int = 5, window_s: float = 300.0, prefix: str = "kestrel") -> None:
        super().__init__(limit, window_s)
        self._url, self.prefix = url, prefix
        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1, socket_timeout=1)
        self._failing = False

    def _key(self, address: str, name: str) -> str:
        digest = hashlib.sha256(f"{address}\0{name.lower()}".encode()).hexdigest()[:32]
        return f"{self.prefix}:login:{digest}"

    def _unavailable(self, error: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "redis unavailable for the login throttle; counting in this process",
                extra={"error": safe_error(error, self._url)},
            )

    def _available(self) -> None:
        if self._failing:
            self._failing = False
            log.info("redis login throttle restored")

    def retry_after(self, address: str, name: str, now: float | None = None) -> int:
        moment = time.time() if now is None else now
        key = self._key(address, name)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zremrangebyscore(key, "-inf", moment - self.window_s)
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.zcard(key)
            _, oldest, count = pipe.execute()
        except redis.RedisError as error:
            self._unavailable(error)
            return super().retry_after(address, name, now)
        self._available()
        if int(count) < self.limit or not oldest:
            return 0
        return max(1, int(self.window_s - (moment - float(oldest[0][1]))) + 1)

    def failed(self, address: str, name: str, now: float | None = None) -> None:
        moment = time.time() if now is None else now
        key = self._key(address, name)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(key, {f"{moment:.6f}:{secrets.token_hex(4)}": moment})
            pipe.expire(key, int(self.window_s) + 1)
            pipe.execute()
        except redis.RedisError as error:
            self._unavailable(error)
            super().failed(address, name, now)
            return
        self._available()

    def succeeded(self, address: str, name: str) -> None:
        super().succeeded(address, name)
        try:
            self._redis.delete(self._key(address, name))
        except redis.RedisError as error:
            self._unavailable(error)
            return
        self._available()

    def close(self) -> None:
        self._redis.close()
