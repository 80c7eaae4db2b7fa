"""What a public Space allows one visitor, and all of them together.

A public Space spends its owner's money, so every message passes these gates before it reaches
Kimi: a per-visitor message rate (the ``limits`` library: in memory, or in Redis so replicas
share one count), input limits, one reply at a time per visitor, a Space-wide message ceiling,
then per request a token reservation against the visitor's and the Space's token ceilings
(spend.py); and a cap on simultaneous upstream streams (a Tier-0 key allows very few), where
visitors wait their turn instead of getting errors. Visitors on their own key pay their own
tokens: they pass the rate and input gates only, and have upstream slots of their own.

Every gate fails closed: if the limits store (Redis, for replicas) cannot be reached, nothing
goes upstream unchecked; the visitor reads that the limits cannot be checked right now, the log
gets one line when the store goes away and one when it is back, and the chat works again as
soon as it is.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from .i18n import Refusal
from .leases import RENEW_SECONDS, Leases, leases_for
from .settings import Settings
from .spend import DAY, HOUR, MINUTE, Ceiling, Over, Reservation, TokenMeter
from .windows import MovingWindowMemory

log = logging.getLogger(__name__)
STORE_ERRORS = (StorageError, RedisError, OSError)  # the limits store cannot be reached
T = TypeVar("T")


@dataclass(frozen=True)
class Visitor:
    """Who is asking: their ids for the limits (address and browser session, or their Hugging Face
    account and session when signed in) and, if they typed one, their own key.

    The key lives in this object for one request and nowhere else; ``repr`` hides it.
    """

    ids: list[str] = field(default_factory=list)
    api_key: str = field(default="", repr=False)

    @property
    def signed_in(self) -> bool:
        return any(i.startswith("user:") for i in self.ids)

    @property
    def session(self) -> str:
        return next((i for i in self.ids if i.startswith("session:")), "")


def visitor_ids(address: str, session: str | None, user: str | None = None) -> list[str]:
    """Who is asking: their Hugging Face account when signed in (the Space's OAuth says who, so
    people sharing a campus address do not share its limits), else their address (address.py);
    and their Gradio session. Each is limited on its own."""
    ids = [f"user:{user}" if user else f"ip:{address}"]
    if session:
        ids.append(f"session:{session}")
    return ids


def _storage_uri(url: str) -> str:
    """``redis://host`` -> the async form the ``limits`` library wants."""
    return url if url.startswith("async+") else f"async+{url}"


def _limit_items(windows: tuple[tuple[type[RateLimitItem], int], ...], factor: int = 1) -> list[RateLimitItem]:
    """Counts per window (``factor`` times each amount); a window set to 0 has no limit."""
    return [item(amount * factor) for item, amount in windows if amount > 0]


def _ceilings(name: str, windows: tuple[tuple[int, int], ...], factor: int = 1) -> list[Ceiling]:
    """Token ceilings per window (``factor`` times each limit); a window set to 0 has no ceiling."""
    return [Ceiling(name, window, limit * factor) for window, limit in windows if limit > 0]


def _minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))


class Counts:
    """Moving-window counts of events (messages, uploads, direct calls) per id, on the shared storage
    (in memory: ``windows.MovingWindowMemory``)."""

    def __init__(self, storage: Storage):
        self._limiter = MovingWindowRateLimiter(storage)

    async def admit(
        self, items: list[RateLimitItem], namespace: str, ids: list[str]
    ) -> tuple[RateLimitItem, int] | None:
        """Count one event against every id under every limit, unless one of them has reached a
        limit: then nothing is counted, and that limit and the seconds until it has room return."""
        for item in items:
            for owner in ids:
                if not await self._limiter.test(item, namespace, owner):
                    stats = await self._limiter.get_window_stats(item, namespace, owner)
                    return item, max(1, int(stats.reset_time - time.time()))
        for item in items:
            for owner in ids:
                await self._limiter.hit(item, namespace, owner)
        return None


def _storage(settings: Settings) -> Storage:
    """The counters' home: in memory, or Redis when replicas share them (``RATE_LIMIT_STORAGE_URL``).
    Its errors arrive as ``StorageError``, after at most a short wait (a message is not held
    for long by a store that is away)."""
    url = settings.rate_limit_storage_url
    options: dict[str, object] = {"wrap_exceptions": True}
    if url.startswith(("memory:", "async+memory:")):
        return MovingWindowMemory(**options)
    if "redis" in url:
        options |= {"implementation": "redispy", "socket_timeout": 2, "socket_connect_timeout": 2}
    return storage_from_string(_storage_uri(url), **options)


STORE_DOWN = Refusal("limits_down", {})


class StoreHealth:
    """Whether the limits store answers, so an outage is one log line (and one when it is back),
    not a traceback per message."""

    def __init__(self) -> None:
        self.down = False

    async def check(self, call: Awaitable[T]) -> T:
        """``call``'s result; a store error is logged once per outage and raised again."""
        try:
            result = await call
        except STORE_ERRORS as exc:
            if not self.down:
                self.down = True
                log.error(
                    "the limits store cannot be reached (%s): messages are refused until it is back", type(exc).__name__
                )
            raise
        if self.down:
            self.down = False
            log.warning("the limits store is back: messages go through again")
        return result

    async def or_refuse(self, call: Awaitable[T]) -> T | Refusal:
        """``call``'s result, or ``STORE_DOWN`` if the store is away: a gate fails closed."""
        try:
            return await self.check(call)
        except STORE_ERRORS:
            return STORE_DOWN

    async def settle(self, call: Awaitable[None]) -> None:
        """A step after the reply (settling tokens, giving a lease back): logged, never raised."""
        with suppress(*STORE_ERRORS):
            await self.check(call)


def fail_closed(method: Callable[..., Awaitable[Refusal | None]]) -> Callable[..., Awaitable[Refusal | None]]:
    """A gate whose store is away refuses (``STORE_DOWN``): nothing is sent unchecked."""

    async def gate(self, *args):  # type: ignore[no-untyped-def]
        return await self.health.or_refuse(method(self, *args))

    gate.__doc__, gate.__name__ = method.__doc__, method.__name__
    return gate


class EdgeGate:
    """Per-address limits on what reaches Gradio before any message (the middleware asks, before a
    body is read): uploads, counted per file and per byte (``UPLOADS_PER_MINUTE``/``_HOUR`` files,
    ``UPLOAD_MB_PER_HOUR``), and the page's direct calls (``DIRECT_CALLS_PER_MINUTE``), which run
    past the queue and can each leave a session's state in memory."""

    def __init__(self, settings: Settings, storage: Storage, health: StoreHealth):
        self.health = health
        self._counts, self._meter = Counts(storage), TokenMeter(storage)
        s = settings
        self._files = _limit_items(
            ((RateLimitItemPerMinute, s.uploads_per_minute), (RateLimitItemPerHour, s.uploads_per_hour))
        )
        self._calls = _limit_items(((RateLimitItemPerMinute, s.direct_calls_per_minute),))
        mb = s.upload_mb_per_hour
        self._bytes = [Ceiling("upload", HOUR, int(mb * 2**20))] if mb > 0 else []

    async def _admit(self, items: list[RateLimitItem], namespace: str, address: str) -> Refusal | None:
        over = await self._counts.admit(items, namespace, [f"ip:{address}"])
        if over:
            log.warning("%s limited limit=%s", namespace, over[0])
            return Refusal("edge_limited", {"seconds": over[1]})
        return None

    @fail_closed
    async def upload_file(self, address: str) -> Refusal | None:
        """Count one uploaded file against the address's upload limits."""
        return await self._admit(self._files, "upload", address)

    @fail_closed
    async def upload_bytes(self, address: str, size: int) -> Refusal | None:
        """Count an upload's ``size`` bytes (its Content-Length) against the address's hourly bytes."""
        if not self._bytes:
            return None
        reservation = await self._meter.reserve([(c, f"ip:{address}") for c in self._bytes], size)
        if isinstance(reservation, Over):
            log.warning("upload limited limit=%s bytes per hour", reservation.ceiling.limit)
            return Refusal("edge_limited", {"seconds": reservation.seconds})
        return None

    @fail_closed
    async def direct_call(self, address: str) -> Refusal | None:
        """Count one direct call (``/run/...``) against the address's limit."""
        return await self._admit(self._calls, "direct", address)


class Guard:
    """The gates; one per process, shared by all visitors (it holds no messages)."""

    def __init__(self, settings: Settings, leases: Leases | None = None):
        self.settings = settings
        self.health = StoreHealth()  # one store, one health: an outage is one log line for every gate
        self.addresses = settings.address_reader  # one reader: the page's and the middleware's
        storage = _storage(settings)
        self.edge = EdgeGate(settings, storage, self.health)  # the middleware's gates (middleware.py)
        self._leases = leases or leases_for(settings.rate_limit_storage_url)
        self._counts = Counts(storage)
        self._meter = TokenMeter(storage)
        s = settings
        scale = {False: 1, True: max(1, s.signed_in_factor)}  # signed in: the owner's factor times the limits
        visitor_rates = (
            (RateLimitItemPerMinute, s.rate_limit_per_minute),
            (RateLimitItemPerHour, s.rate_limit_per_hour),
        )
        visitor_tokens = ((HOUR, s.visitor_tokens_per_hour), (DAY, s.visitor_tokens_per_day))
        self._rates = {signed_in: _limit_items(visitor_rates, factor) for signed_in, factor in scale.items()}
        self._visitor_tokens = {
            signed_in: _ceilings("visitor", visitor_tokens, factor) for signed_in, factor in scale.items()
        }
        self._space_rates = _limit_items(
            (
                (RateLimitItemPerMinute, s.space_messages_per_minute),
                (RateLimitItemPerHour, s.space_messages_per_hour),
                (RateLimitItemPerDay, s.space_messages_per_day),
            )
        )
        windows = ((MINUTE, s.space_tokens_per_minute), (HOUR, s.space_tokens_per_hour), (DAY, s.space_tokens_per_day))
        self._space_tokens = _ceilings("space", windows)
        self._visit = Ceiling("visit", DAY, sys.maxsize)  # counted per browser session, checked per message
        # Replies on the owner's key, and replies on visitors' own keys: apart, so visitors bringing
        # their own key never hold a slot that the owner's account (and its tier's limit) pays for.
        self._upstream = {own: asyncio.Semaphore(settings.upstream_concurrency) for own in (False, True)}

    def check_input(self, message: str, user_turns: int, files: int = 0) -> Refusal | None:
        """Empty, too long, too many files, or one turn too many: said before anything is spent."""
        if files > self.settings.max_files_per_message:
            return Refusal("too_many_files", {"limit": self.settings.max_files_per_message})
        if not message.strip():
            return Refusal("empty_message", {})
        if len(message) > self.settings.max_message_chars:
            return Refusal("too_long", {"limit": self.settings.max_message_chars, "length": len(message)})
        if user_turns >= self.settings.max_turns:
            return Refusal("too_many_turns", {"limit": self.settings.max_turns})
        return None

    @fail_closed
    async def check_rate(self, visitor: Visitor) -> Refusal | None:
        """Count this message against every id of the visitor; refuse if any is over a limit."""
        over = await self._counts.admit(self._rates[visitor.signed_in], "chat", visitor.ids)
        if over:
            log.warning("rate limited kind=%s limit=%s", visitor.ids[0].split(":")[0], over[0])
            return Refusal("rate_limited", {"seconds": over[1]})
        return None

    @fail_closed
    async def check_space(self, visitor: Visitor) -> Refusal | None:
        """The Space-wide message ceiling, counted for messages that go to Kimi on the owner's key."""
        if visitor.api_key:
            return None
        over = await self._counts.admit(self._space_rates, "space", ["all"])
        if over:
            log.warning("the Space reached its ceiling: messages limit=%s (all visitors together)", over[0])
            return Refusal("space_limit", {"minutes": _minutes(over[1])})
        return None

    @fail_closed
    async def check_visit(self, visitor: Visitor) -> Refusal | None:
        """The visit's token budget (CONVERSATION_TOKEN_BUDGET), counted by the server per browser
        session on the owner's key; a visitor on their own key pays their own."""
        budget = self.settings.conversation_token_budget
        if not budget or visitor.api_key or not visitor.session:
            return None
        spent = await self._meter.spent(self._visit, visitor.session)
        return Refusal("budget", {"used": spent, "limit": budget}) if spent >= budget else None

    async def reserve(self, visitor: Visitor, tokens: int) -> Reservation | Refusal:
        """Hold ``tokens`` for one request against the visitor's and the Space's token ceilings
        (and count them for the visit); a visitor on their own key pays their own: nothing held."""
        if visitor.api_key:
            return Reservation(self._meter.storage)
        charges = [(ceiling, "all") for ceiling in self._space_tokens]
        charges += [(c, owner) for c in self._visitor_tokens[visitor.signed_in] for owner in visitor.ids]
        charges += [(self._visit, visitor.session)] if visitor.session else []
        reservation = await self.health.or_refuse(self._meter.reserve(charges, tokens))
        if not isinstance(reservation, Over):
            return reservation
        if reservation.ceiling.name == "space":
            log.warning(
                "the Space reached its ceiling: tokens per %ss limit=%s",
                reservation.ceiling.window,
                reservation.ceiling.limit,
            )
            return Refusal("space_limit", {"minutes": _minutes(reservation.seconds)})
        return Refusal("token_limited", {"minutes": _minutes(reservation.seconds)})

    async def settle(self, reservation: Reservation, used: int) -> None:
        """Count what a request used instead of what it held; a store that is away then only costs a log line."""
        await self.health.settle(reservation.settle(used))

    @asynccontextmanager
    async def replying(self, visitor: Visitor) -> AsyncIterator[Refusal | None]:
        """One reply at a time per browser session and per account, so queued jobs whose stream is
        never read cannot pile up spending; at most ADDRESS_REPLIES at once from one address (a lab
        behind one address is many people; 0: no cap). Yields a refusal if busy. Leases (leases.py)
        every replica sees, renewed while the reply runs, given back on every way out."""
        per_address = self.settings.address_replies or sys.maxsize  # 0: no cap per address
        caps = [(i, per_address if i.startswith("ip:") else 1) for i in visitor.ids]
        token = await self.health.or_refuse(self._leases.acquire(caps))
        if not isinstance(token, str):
            yield token or Refusal("one_at_a_time", {})
            return
        keys = [key for key, _ in caps]
        keeping = asyncio.create_task(self._keep(token, keys))
        try:
            yield None
        finally:
            keeping.cancel()
            await self.health.settle(self._leases.release(token, keys))

    async def _keep(self, token: str, keys: list[str]) -> None:
        """Renew a running reply's leases until it ends (a missed renewal is retried at the next)."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            await self.health.settle(self._leases.renew(token, keys))

    def upstream_full(self, own_key: bool = False) -> bool:
        return self._upstream[own_key].locked()

    @asynccontextmanager
    async def upstream_slot(self, own_key: bool = False) -> AsyncIterator[None]:
        """Hold one of the simultaneous upstream streams for the length of a reply: the owner's
        slots, or those of replies on a visitor's own key."""
        async with self._upstream[own_key]:
            yield
