"""The in-memory moving window (kimichat/windows.py): exact at every moment, whatever the clock's
minute, through limits' own MovingWindowRateLimiter; its memory goes with the windows."""

from __future__ import annotations

import pytest
from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter

from kimichat.windows import PRUNE_EVERY, MovingWindowMemory

MINUTE_ENDS = 1_000_080.0  # a multiple of 60: where a clock minute (and a fixed window) ends


class Clock:
    def __init__(self, now: float = MINUTE_ENDS - 40) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counted() -> tuple[MovingWindowRateLimiter, MovingWindowMemory, Clock]:
    clock = Clock()
    store = MovingWindowMemory(clock=clock)
    return MovingWindowRateLimiter(store), store, clock


THREE = RateLimitItemPerMinute(3)


async def hits(limiter: MovingWindowRateLimiter, n: int, who: str = "a") -> list[bool]:
    return [await limiter.hit(THREE, "m", who) for _ in range(n)]


async def test_no_sixty_seconds_ever_hold_more_than_the_limit(counted):
    limiter, _, clock = counted
    burst = clock.now = MINUTE_ENDS - 0.5  # the last half second of a clock minute
    assert await hits(limiter, 3) == [True, True, True]
    for later in (1.0, 30.0, 59.0):  # a new clock minute: fixed or weighted windows let more through here
        clock.now = burst + later
        assert await hits(limiter, 1) == [False]
        assert not await limiter.test(THREE, "m", "a")
    clock.now = burst + 60.01  # the three have left the window
    assert await hits(limiter, 4) == [True, True, True, False]


async def test_the_wait_runs_from_the_oldest_event_in_the_window(counted):
    limiter, _, clock = counted
    await hits(limiter, 1)
    clock.now += 20
    await hits(limiter, 2)
    stats = await limiter.get_window_stats(THREE, "m", "a")
    assert stats.remaining == 0
    assert stats.reset_time == pytest.approx(MINUTE_ENDS - 40 + 60)


async def test_ids_and_windows_are_counted_apart(counted):
    limiter, _, _ = counted
    assert await hits(limiter, 3, "a") == [True] * 3
    assert await hits(limiter, 1, "b") == [True]
    assert await limiter.hit(RateLimitItemPerMinute(5), "m", "a")  # another limit, its own window


async def test_a_cost_larger_than_the_limit_is_refused_whole(counted):
    limiter, store, _ = counted
    assert not await limiter.hit(THREE, "m", "a", cost=4)
    assert await store.get_moving_window(THREE.key_for("m", "a"), 3, 60) == (pytest.approx(store.clock()), 0)


async def test_ids_whose_window_has_passed_are_forgotten(counted):
    limiter, store, clock = counted
    for visitor in range(PRUNE_EVERY - 1):
        await limiter.hit(THREE, "m", f"visitor-{visitor}")
    assert len(store.windows) == PRUNE_EVERY - 1
    clock.now += 61
    await limiter.hit(THREE, "m", "one more")  # the thousandth count: a pass over the ids
    assert list(store.windows) == [THREE.key_for("m", "one more")]


async def test_clear_and_reset_empty_the_windows(counted):
    limiter, store, _ = counted
    await hits(limiter, 3)
    await limiter.clear(THREE, "m", "a")
    assert await hits(limiter, 1) == [True]
    await store.reset()
    assert store.windows == {}
