"""One reply at a time, held as leases (leases.py): each with its own deadline, renewed while the
reply runs, given back by its holder; in memory and in Redis alike, on a clock the test moves."""

from __future__ import annotations

import uuid

import pytest

from kimichat.leases import LEASE_SECONDS, MemoryLeases, RedisLeases


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def leases(request):
    """Both kinds, on a clock the test moves (Redis gets its times from the app, so it follows)."""
    clock = Clock()
    if request.param == "memory":
        return MemoryLeases(clock), clock
    return RedisLeases(request.getfixturevalue("redis_url"), clock), clock


def address(n: int = 3) -> list[tuple[str, int]]:
    return [(f"ip:test-{uuid.uuid4().hex}", n)]


async def test_an_address_holds_at_most_its_cap(leases):
    held, _ = leases
    lab = address(3)
    tokens = [await held.acquire(lab) for _ in range(4)]
    assert all(tokens[:3]) and tokens[3] is None
    await held.release(tokens[0], [lab[0][0]])
    assert await held.acquire(lab)  # one given back, one more may start


async def test_the_cap_holds_while_some_reply_always_runs_for_hours(leases):
    """A counter whose expiry was set once lost its count after an hour while replies kept running,
    and each reply that then ended pushed it below zero: 6 of 9 admitted at t=3700 s against a cap of 3."""
    held, clock = leases
    lab, key = address(3), None
    key = lab[0][0]
    running = [await held.acquire(lab) for _ in range(3)]
    for _ in range(3700 // 30):  # the replies run on, renewing as they do, and one ends now and then
        clock.now += 30
        for token in running:
            await held.renew(token, [key])
    for token in running[:2]:
        await held.release(token, [key])
    admitted = [await held.acquire(lab) for _ in range(9)]
    assert sum(t is not None for t in admitted) == 2  # 1 still running + 2 new = the cap of 3


async def test_a_crashed_holder_lets_go_after_the_lease(leases):
    held, clock = leases
    me = [(f"session:{uuid.uuid4().hex}", 1)]
    assert await held.acquire(me)
    clock.now += LEASE_SECONDS - 1
    assert await held.acquire(me) is None  # still held
    clock.now += 2  # nobody renewed it: its replica is gone
    assert await held.acquire(me)


async def test_a_lease_is_taken_under_every_id_or_none(leases):
    held, _ = leases
    session, lab = f"session:{uuid.uuid4().hex}", address(3)
    assert await held.acquire([(session, 1), *lab])
    assert await held.acquire([(f"session:{uuid.uuid4().hex}", 1), *lab])
    assert await held.acquire([(session, 1), *lab]) is None  # the session is busy
    assert await held.acquire([(f"session:{uuid.uuid4().hex}", 1), *lab])  # so the lab's count did not move
    assert await held.acquire([(f"session:{uuid.uuid4().hex}", 1), *lab]) is None  # now the lab is full
