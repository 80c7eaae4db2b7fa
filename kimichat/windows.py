"""The limits' in-memory store, with a moving window that costs what one id's count costs.

``limits``' own in-memory moving window keeps one list of events per id, newest first (each count
inserted at the front, a copy of the whole list), and after each count it sweeps every id's
events with a worker-thread hop per id: 4 ms of CPU a count with ten ids, and the sweeps run back
to back while counts keep coming, so a Space's idle CPU went to them, more with every visitor
of the longest window (an hour of visitors for the hourly limits). Here each id keeps the times
of its events in a deque, oldest first, pruned as it is read; ids whose window has passed go in
one pass every ``PRUNE_EVERY`` counts. The counts are exact, as limits' moving window is:
whatever the clock, no window holds more than its limit. The store's other counters (the token
ceilings' fixed windows, the leases) are limits' own. Redis (``RATE_LIMIT_STORAGE_URL``) keeps
its moving windows itself and does not use this.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from limits.aio.storage import MemoryStorage

PRUNE_EVERY = 1000  # counts between passes that drop the ids whose window has passed


@dataclass
class Window:
    """One id's events in its moving window of ``seconds``, oldest first."""

    seconds: float
    times: deque[float] = field(default_factory=deque)

    def live(self, now: float) -> deque[float]:
        """The times still inside the window (the older ones are dropped)."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        return self.times


class MovingWindowMemory(MemoryStorage):
    """``limits.aio.storage.MemoryStorage`` whose moving windows are kept per id, pruned as read."""

    def __init__(self, clock: Callable[[], float] = time.time, **options: object) -> None:
        super().__init__(**options)
        self.clock = clock  # limits' own clock; tests move theirs
        self.windows: dict[str, Window] = {}
        self.counted = 0

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Count ``amount`` events for ``key`` unless its window would hold more than ``limit``."""
        now = self.clock()
        found = self.windows.get(key)
        if found is None:  # setdefault would build a Window (and its deque) at every count
            found = self.windows[key] = Window(expiry)
        times = found.live(now)
        if len(times) + amount > limit:
            return False
        times.extend([now] * amount)
        self.counted += 1
        if self.counted % PRUNE_EVERY == 0:
            self.prune(now)
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(when the oldest event in the window happened, how many events it holds)."""
        now = self.clock()
        found = self.windows.get(key)
        times = found.live(now) if found else None
        return (times[0], len(times)) if times else (now, 0)

    def prune(self, now: float) -> None:
        """Drop the ids with nothing left in their window."""
        for key in [key for key, found in self.windows.items() if not found.live(now)]:
            del self.windows[key]

    async def clear(self, key: str) -> None:
        self.windows.pop(key, None)
        await super().clear(key)

    async def reset(self) -> int | None:
        self.windows.clear()
        return await super().reset()
