"""Tokens spent (and upload bytes), counted where every replica sees them: per visitor, per
visit, and Space-wide.

A message's cost is known only when its stream ends, so each request *reserves* what it may
cost (the app's estimate of the request plus its reply budget) before it is sent, and
*settles* to the usage Kimi reports when it ends. Reserving first is what makes a ceiling hold
against many requests at once: the counter is raised atomically, and a reservation that takes
it over the limit is taken back and refused, so nothing is sent that the ceiling cannot pay for.

Counts live in fixed windows (minute, hour, day) in the ``limits`` library's storage (memory,
or Redis when replicas must share them), one counter per window: ``incr`` is atomic there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from limits.aio.storage import Storage

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True)
class Ceiling:
    """At most ``limit`` tokens per ``window`` seconds for each id it is applied to."""

    name: str  # "space", "visitor": which refusal it gives
    window: int
    limit: int

    def key(self, owner: str, now: float) -> str:
        return f"kimichat:tokens:{self.name}:{owner}:{self.window}:{int(now // self.window)}"

    def wait(self, now: float) -> int:
        """Seconds until this window starts again from zero."""
        return max(1, int(self.window - now % self.window))


@dataclass(frozen=True)
class Over:
    """A reservation refused: the ceiling it would have passed, and how long until it resets."""

    ceiling: Ceiling
    seconds: int


@dataclass
class Reservation:
    """Tokens held for one request; ``settle`` replaces them with what the request used."""

    storage: Storage
    keys: list[tuple[str, int]] = field(default_factory=list)  # (counter key, its expiry)
    amount: int = 0

    async def settle(self, used: int) -> None:
        """Count ``used`` instead of the amount reserved (the same windows the reservation went in)."""
        for key, expiry in self.keys:
            await self.storage.incr(key, expiry, used - self.amount)
        self.keys = []  # settled once


class TokenMeter:
    """Reserves and settles tokens against ceilings, each applied to a list of owner ids."""

    def __init__(self, storage: Storage):
        self.storage = storage

    async def reserve(self, charges: list[tuple[Ceiling, str]], amount: int) -> Reservation | Over:
        """Hold ``amount`` tokens under every (ceiling, owner); if one would pass its limit, take
        back what was held and say which."""
        now = time.time()
        reservation = Reservation(self.storage, amount=amount)
        for ceiling, owner in charges:
            key, expiry = ceiling.key(owner, now), 2 * ceiling.window
            total = await self.storage.incr(key, expiry, amount)
            reservation.keys.append((key, expiry))
            if total > ceiling.limit:
                await reservation.settle(0)
                return Over(ceiling, ceiling.wait(now))
        return reservation

    async def spent(self, ceiling: Ceiling, owner: str) -> int:
        """Tokens counted in the current window (reservations included)."""
        return await self.storage.get(ceiling.key(owner, time.time()))
