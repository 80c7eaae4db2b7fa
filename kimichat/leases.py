"""Replies running now, held as leases every replica sees.

Each running reply holds one lease under each of its visitor's ids (session, account, address),
and an id may have at most so many (one per session or account, ``ADDRESS_REPLIES`` per
address). A lease is a member of the id's set with its own deadline, not a shared counter:
taking one prunes the expired members first, and each holder gives back exactly its own, so a
count can neither drift below zero nor lose its expiry while some reply is always running (a
counter whose expiry was set once lost its count after an hour, and the cap then grew by
``ADDRESS_REPLIES`` an hour). A running reply renews its leases every ``RENEW_SECONDS``; a
replica that crashed stops renewing, and its visitors are free again after ``LEASE_SECONDS``.

In memory for one process; in Redis (sorted sets, one script per step) for replicas.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence

LEASE_SECONDS = 120  # a lease nobody renews (its replica crashed) ends after this long
RENEW_SECONDS = 30  # a running reply renews its leases this often: four tries before one ends

Clock = Callable[[], float]


class MemoryLeases:
    """Leases in this process's memory; atomic because nothing here awaits."""

    def __init__(self, clock: Clock = time.time):
        self.clock = clock
        self._held: dict[str, dict[str, float]] = {}  # id -> {token: deadline}

    def _live(self, key: str, now: float) -> dict[str, float]:
        held = {token: end for token, end in self._held.get(key, {}).items() if end > now}
        self._held[key] = held
        return held

    async def acquire(self, caps: Sequence[tuple[str, int]]) -> str | None:
        """A lease under every (id, cap), or None (nothing taken) if any id holds its cap already."""
        now = self.clock()
        if any(len(self._live(key, now)) >= cap for key, cap in caps):
            return None
        token = secrets.token_hex(8)
        for key, _ in caps:
            self._held[key][token] = now + LEASE_SECONDS
        return token

    async def renew(self, token: str, keys: Sequence[str]) -> None:
        end = self.clock() + LEASE_SECONDS
        for key in keys:
            if token in self._held.get(key, {}):
                self._held[key][token] = end

    async def release(self, token: str, keys: Sequence[str]) -> None:
        for key in keys:
            held = self._held.get(key, {})
            held.pop(token, None)
            if not held:
                self._held.pop(key, None)


ACQUIRE = """
local now, token, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, token)
  redis.call('EXPIRE', key, ttl)
end
return 1
"""
RENEW = """
for _, key in ipairs(KEYS) do
  if redis.call('ZADD', key, 'XX', 'CH', ARGV[2], ARGV[1]) == 1 then redis.call('EXPIRE', key, ARGV[3]) end
end
"""


class RedisLeases:
    """Leases in Redis, shared by replicas; each step is one atomic script."""

    def __init__(self, url: str, clock: Clock = time.time):
        from redis.asyncio import Redis

        self.clock = clock
        self._redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._acquire = self._redis.register_script(ACQUIRE)
        self._renew = self._redis.register_script(RENEW)

    @staticmethod
    def _key(owner: str) -> str:
        return f"kimichat:lease:{owner}"

    async def acquire(self, caps: Sequence[tuple[str, int]]) -> str | None:
        token = secrets.token_hex(8)
        keys = [self._key(owner) for owner, _ in caps]
        args = [self.clock(), token, LEASE_SECONDS, *(cap for _, cap in caps)]
        return token if await self._acquire(keys=keys, args=args) == 1 else None

    async def renew(self, token: str, keys: Sequence[str]) -> None:
        end = self.clock() + LEASE_SECONDS
        await self._renew(keys=[self._key(k) for k in keys], args=[token, end, LEASE_SECONDS])

    async def release(self, token: str, keys: Sequence[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(self._key(key), token)
            await pipe.execute()


Leases = MemoryLeases | RedisLeases


def leases_for(storage_url: str, clock: Clock = time.time) -> Leases:
    """Where the counters live (``RATE_LIMIT_STORAGE_URL``), the leases live too."""
    url = storage_url.removeprefix("async+")
    return RedisLeases(url, clock) if url.startswith(("redis://", "rediss://", "unix://")) else MemoryLeases(clock)
