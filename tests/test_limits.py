"""What the owner's money is guarded by: token and message ceilings per visitor, per visit and
Space-wide, one reply at a time, through ChatService against the local Kimi server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import answer_of, eventually, make_service, notes_of, run

from kimichat.guard import Visitor
from kimichat.settings import Settings, SettingsError

# A short message then reserves about 1,050 tokens: its ~50 and a reply budget of 1,000.
SMALL = {"max_request_tokens": 1000, "max_reply_tokens": 1000, "thinking_reply_tokens": 1000}


def visitors(n: int) -> list[Visitor]:
    """``n`` different people: their own address and browser session each."""
    return [Visitor([f"ip:198.51.100.{i}", f"session:s{i}"]) for i in range(n)]


def answered(updates) -> bool:
    return answer_of(updates[-1].messages).startswith("Echo")


async def test_the_space_wide_message_ceiling_holds_whoever_asks(upstream, caplog):
    service = make_service(upstream.base_url, space_messages_per_minute=3)
    with caplog.at_level(logging.WARNING, logger="kimichat"):
        results = [await run(service, "hi", visitor=v) for v in visitors(5)]
    assert [answered(r) for r in results] == [True] * 3 + [False] * 2
    assert "This Space has reached its limit for now" in notes_of(results[-1][-1].messages)
    assert len(upstream.calls) == 3
    assert "the Space reached its ceiling: messages" in caplog.text  # the owner is told


async def test_the_space_wide_token_ceiling_settles_to_what_replies_used(upstream):
    """Each request reserves its estimate plus its reply budget (about 1,050 here) and settles to the
    usage Kimi reports: with 5,000 tokens a minute, six short replies (~140 each) all go, where
    holding their reservations would have stopped the fifth; then full-length ones (~1,040) fill
    what is left, and the first that finds no room is refused."""
    service = make_service(upstream.base_url, space_tokens_per_minute=5000, **SMALL)
    upstream.tokens = 100
    short = [await run(service, "hi", visitor=v) for v in visitors(6)]
    assert all(answered(r) for r in short)
    upstream.tokens = 2000  # cut at max_tokens (1,000), as Kimi does
    long = [await run(service, "hi", visitor=v) for v in visitors(6)]
    flags = [answered(r) for r in long]
    sent = sum(flags)
    assert flags == [True] * sent + [False] * (6 - sent) and 2 <= sent < 6  # about 4,160 left: three or four
    assert "reached its limit" in notes_of(long[sent][-1].messages)
    assert sum(r[-1].usage.total_tokens for r in short + long[:sent]) <= 5000


async def test_replies_at_once_cannot_pass_the_token_ceiling_together(upstream):
    """Ten visitors at the same moment: a reservation is held from before the request until its
    usage is known, so no more start than the ceiling can pay for (5,000 / ~1,050 each: four)."""
    upstream.tokens, upstream.token_delay = 40, 0.05  # two seconds a reply: all ten ask while two stream
    service = make_service(upstream.base_url, space_tokens_per_minute=5000, **SMALL)
    results = await asyncio.gather(*(run(service, "hi", visitor=v) for v in visitors(10)))
    assert sum(answered(r) for r in results) == 4 and len(upstream.calls) == 4


async def test_a_visitor_has_a_token_allowance_of_their_own(upstream):
    upstream.tokens = 2000
    service = make_service(upstream.base_url, visitor_tokens_per_hour=5000, **SMALL)
    alice, bob = visitors(2)
    results = [await run(service, "hi", visitor=alice) for _ in range(5)]  # ~1,040 tokens each
    assert [answered(r) for r in results] == [True] * 4 + [False]
    assert "You have used this Space's token allowance" in notes_of(results[-1][-1].messages)
    assert answered(await run(service, "hi", visitor=bob))  # others are not held back


async def test_a_new_session_from_the_same_address_gets_no_new_allowance(upstream):
    upstream.tokens = 2000
    service = make_service(upstream.base_url, visitor_tokens_per_hour=5000, **SMALL)
    results = [await run(service, "hi", visitor=Visitor(["ip:203.0.113.9", f"session:new{i}"])) for i in range(5)]
    assert [answered(r) for r in results] == [True] * 4 + [False]


async def test_web_search_rounds_count_against_the_same_budget(upstream):
    """A search loop is paid round by round, each round reserving its request (~700 tokens of
    message here) plus its reply budget and settling to its usage: with 3,500 an hour a round
    before the fifth finds no room, and the reply stops there with a note."""
    limits = {**SMALL, "max_request_tokens": 2000}
    service = make_service(upstream.base_url, visitor_tokens_per_hour=3500, **limits)
    updates = await run(service, "dig [[searchloop]] " + "x" * 1800, persona="web-scout", visitor=visitors(1)[0])
    assert 1 < len(upstream.calls) < 5  # a search loop's cap is 5 rounds and an answer: it never got there
    assert "token allowance" in notes_of(updates[-1].messages)


async def test_a_visitor_on_their_own_key_is_not_counted_against_the_owners_ceilings(upstream):
    upstream.extra_keys.add("sk-test-visitor-own")
    service = make_service(upstream.base_url, space_messages_per_minute=1)
    assert answered(await run(service, "hi", visitor=visitors(1)[0]))
    own = Visitor(["ip:198.51.100.77", "session:own"], "sk-test-visitor-own")
    assert all([answered(await run(service, "mine", visitor=own)) for _ in range(3)])


async def test_a_signed_in_visitor_has_higher_limits_on_their_account(upstream):
    service = make_service(upstream.base_url, rate_limit_per_minute=2, signed_in_factor=3)
    anonymous = [await run(service, "hi", visitor=Visitor(["ip:198.51.100.3", f"session:a{i}"])) for i in range(3)]
    assert [answered(r) for r in anonymous] == [True, True, False]
    account = [await run(service, "hi", visitor=Visitor(["user:ada", f"session:u{i}"])) for i in range(7)]
    assert [answered(r) for r in account] == [True] * 6 + [False]


async def test_one_reply_at_a_time_per_session(upstream):
    """A second message while the first is still streaming is refused at once (a client queueing
    jobs it never reads cannot pile up spending); after the first ends, the visitor goes on."""
    upstream.token_delay = 0.05
    service = make_service(upstream.base_url)
    me = visitors(1)[0]
    first = asyncio.create_task(run(service, "slow one", visitor=me))
    assert await eventually(lambda: upstream.open_streams == 1)  # the first reply is streaming
    second = await run(service, "impatient", visitor=me)
    assert "Your previous reply is still being written" in notes_of(second[-1].messages)
    assert answered(await first)
    assert answered(await run(service, "next", visitor=me))
    assert len(upstream.calls) == 2


async def test_an_address_has_a_few_replies_at_once(upstream):
    upstream.token_delay = 0.05
    service = make_service(upstream.base_url, address_replies=2)
    lab = [Visitor(["ip:192.0.2.1", f"session:lab{i}"]) for i in range(3)]
    results = await asyncio.gather(*(run(service, "hi", visitor=v) for v in lab))
    assert sorted(answered(r) for r in results) == [False, True, True]


async def test_replicas_share_the_space_ceiling_through_redis(upstream, redis_url):
    replicas = [make_service(upstream.base_url, space_messages_per_minute=3, rate_limit_storage_url=redis_url)]
    replicas.append(make_service(upstream.base_url, space_messages_per_minute=3, rate_limit_storage_url=redis_url))
    results = [await run(replicas[i % 2], "hi", visitor=v) for i, v in enumerate(visitors(6))]
    assert sum(answered(r) for r in results) == 3 and len(upstream.calls) == 3


async def test_replicas_share_the_token_ceiling_through_redis(upstream, redis_url):
    """Reservations and settlements are counters in Redis (``incr`` there is atomic, negative
    amounts included), so two replicas together stay under one Space-wide token ceiling."""
    upstream.tokens = 2000  # cut at 1,000: about 1,040 a reply
    settings = {"space_tokens_per_minute": 5000, "rate_limit_storage_url": redis_url.replace("/0", "/1"), **SMALL}
    replicas = [make_service(upstream.base_url, **settings) for _ in range(2)]
    results = await asyncio.gather(*(run(replicas[i % 2], "hi", visitor=v) for i, v in enumerate(visitors(8))))
    sent = [r for r in results if answered(r)]
    assert 0 < len(sent) < 8 and sum(r[-1].usage.total_tokens for r in sent) <= 5000


async def test_one_reply_at_a_time_holds_across_replicas_through_redis(upstream, redis_url):
    upstream.token_delay = 0.05
    settings = {"rate_limit_storage_url": redis_url.replace("/0", "/2")}
    first, second = (make_service(upstream.base_url, **settings) for _ in range(2))
    me = Visitor(["ip:198.51.100.200", "session:both-replicas"])
    running = asyncio.create_task(run(first, "slow one", visitor=me))
    assert await eventually(lambda: upstream.open_streams == 1)  # the first reply is streaming
    refused = await run(second, "on the other replica", visitor=me)
    assert "still being written" in notes_of(refused[-1].messages)
    assert answered(await running)
    assert answered(await run(second, "now", visitor=me))  # let go when the reply ended


def test_a_token_ceiling_below_one_request_stops_startup():
    with pytest.raises(SettingsError, match="SPACE_TOKENS_PER_HOUR=1000 is below one request's reservation"):
        Settings.from_env({"SPACE_TOKENS_PER_HOUR": "1000"})
