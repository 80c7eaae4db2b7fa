"""What a public Space allows one visitor, and all of them together.

A public Space spends its owner's money, so every message passes these gates before it reaches
Kimi: a per-visitor message rate (the ``limits`` library: in memory, or in Redis so replicas
share one count), input limits, one reply at a time per visitor, a Space-wide message ceiling,
then per request a token reservation against the visitor's and the Space's token ceilings
(spend.py); and a cap on simultaneous upstream streams (a Tier-0 key allows very few), where
visitors wait their turn instead of getting errors. Visitors on their own key pay their own
tokens: they pass the rate and input gates only, and have upstream slots of their own.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from .settings import Settings
from .spend import DAY, HOUR, MINUTE, Ceiling, Over, Reservation, TokenMeter

log = logging.getLogger(__name__)
REPLY_LEASE = 1800  # seconds: longer than any reply (timeouts bound each request, and the rounds are few)


@dataclass(frozen=True)
class Refusal:
    """Why a message was not sent: a key into the i18n table and its values."""

    key: str
    values: Mapping[str, object]


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


def visitor_ids(
    headers: Mapping[str, str], client_host: str | None, session: str | None, hops: int, user: str | None = None
) -> list[str]:
    """Who is asking: their Hugging Face account when signed in, else their address; and their
    Gradio session. Each is limited on its own.

    Behind ``hops`` trusted proxies ``client_host`` is the nearest proxy, and each proxy
    appends the address it saw to ``x-forwarded-for``: the visitor's address is the entry
    ``hops`` from the end. Everything to its left is whatever the visitor wrote, so it is
    never read (a visitor rotating a made-up first entry stays one visitor). With no
    trusted proxy (``hops == 0``) the header is ignored. A signed-in visitor is their account
    (the Space's OAuth says who), so people sharing a campus address do not share its limits.
    """
    address = client_host or "unknown"
    forwarded = [entry.strip() for entry in headers.get("x-forwarded-for", "").split(",") if entry.strip()]
    if hops > 0 and forwarded:
        address = forwarded[max(0, len(forwarded) - hops)]
    ids = [f"user:{user}" if user else f"ip:{address}"]
    if session:
        ids.append(f"session:{session}")
    return ids


def _storage_uri(url: str) -> str:
    """``redis://host`` -> the async form the ``limits`` library wants."""
    return url if url.startswith("async+") else f"async+{url}"


def _per(windows: tuple[tuple[type[RateLimitItem], int], ...]) -> list[RateLimitItem]:
    return [item(amount) for item, amount in windows if amount > 0]


def _minutes(seconds: int) -> int:
    return max(1, round(seconds / 60))


class Counts:
    """Moving-window counts of events (messages, uploads) per id, on the shared storage."""

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
    """The counters' home: in memory, or Redis when replicas share them (``RATE_LIMIT_STORAGE_URL``)."""
    options = {"implementation": "redispy"} if "redis" in settings.rate_limit_storage_url else {}
    return storage_from_string(_storage_uri(settings.rate_limit_storage_url), **options)


class UploadGate:
    """Uploads per address (``UPLOADS_PER_MINUTE``, ``UPLOADS_PER_HOUR``): a file is stored before
    any message names it, and an upload request carries no session, so the address is who counts."""

    def __init__(self, settings: Settings):
        self._counts = Counts(_storage(settings))
        self._items = _per(
            ((RateLimitItemPerMinute, settings.uploads_per_minute), (RateLimitItemPerHour, settings.uploads_per_hour))
        )
        self._hops = settings.proxy_hops

    async def allows(self, headers: Mapping[str, str], client_host: str | None) -> bool:
        """Count one upload from this address; False if it is over a limit (then nothing is counted)."""
        over = await self._counts.admit(self._items, "upload", visitor_ids(headers, client_host, None, self._hops)[:1])
        if over:
            log.warning("upload limited limit=%s", over[0])
        return over is None


class Guard:
    """The gates; one per process, shared by all visitors (it holds no messages)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        storage = _storage(settings)
        self._counts = Counts(storage)
        self._meter = TokenMeter(storage)
        s = settings
        scale = {False: 1, True: max(1, s.signed_in_factor)}  # signed in: the owner's factor times the limits
        self._rates = {
            signed_in: _per(
                (
                    (RateLimitItemPerMinute, s.rate_limit_per_minute * factor),
                    (RateLimitItemPerHour, s.rate_limit_per_hour * factor),
                )
            )
            for signed_in, factor in scale.items()
        }
        self._space_rates = _per(
            (
                (RateLimitItemPerMinute, s.space_messages_per_minute),
                (RateLimitItemPerHour, s.space_messages_per_hour),
                (RateLimitItemPerDay, s.space_messages_per_day),
            )
        )
        windows = ((MINUTE, s.space_tokens_per_minute), (HOUR, s.space_tokens_per_hour), (DAY, s.space_tokens_per_day))
        self._space_tokens = [Ceiling("space", window, limit) for window, limit in windows if limit > 0]
        self._visitor_tokens = {
            signed_in: [
                Ceiling("visitor", window, limit * factor)
                for window, limit in ((HOUR, s.visitor_tokens_per_hour), (DAY, s.visitor_tokens_per_day))
                if limit > 0
            ]
            for signed_in, factor in scale.items()
        }
        self._visit = Ceiling("visit", DAY, sys.maxsize)  # counted per browser session, checked per message
        # Replies on the owner's key, and replies on visitors' own keys: apart, so visitors bringing
        # their own key never hold a slot that the owner's account (and its tier's limit) pays for.
        self._upstream = {own: asyncio.Semaphore(settings.upstream_concurrency) for own in (False, True)}

    def check_input(self, message: str, user_turns: int) -> Refusal | None:
        """Empty, too long, or one turn too many: said before anything is spent."""
        if not message.strip():
            return Refusal("empty_message", {})
        if len(message) > self.settings.max_message_chars:
            return Refusal("too_long", {"limit": self.settings.max_message_chars, "length": len(message)})
        if user_turns >= self.settings.max_turns:
            return Refusal("too_many_turns", {"limit": self.settings.max_turns})
        return None

    async def check_rate(self, visitor: Visitor) -> Refusal | None:
        """Count this message against every id of the visitor; refuse if any is over a limit."""
        over = await self._counts.admit(self._rates[visitor.signed_in], "chat", visitor.ids)
        if over:
            log.warning("rate limited kind=%s limit=%s", visitor.ids[0].split(":")[0], over[0])
            return Refusal("rate_limited", {"seconds": over[1]})
        return None

    async def check_space(self, visitor: Visitor) -> Refusal | None:
        """The Space-wide message ceiling, counted for messages that go to Kimi on the owner's key."""
        if visitor.api_key:
            return None
        over = await self._counts.admit(self._space_rates, "space", ["all"])
        if over:
            log.warning("the Space reached its ceiling: messages limit=%s (all visitors together)", over[0])
            return Refusal("space_limit", {"minutes": _minutes(over[1])})
        return None

    async def visit_spent(self, visitor: Visitor) -> int:
        """Tokens this browser session has spent on the owner's key (CONVERSATION_TOKEN_BUDGET)."""
        return await self._meter.spent(self._visit, visitor.session) if visitor.session else 0

    async def reserve(self, visitor: Visitor, tokens: int) -> Reservation | Refusal:
        """Hold ``tokens`` for one request against the visitor's and the Space's token ceilings
        (and count them for the visit); a visitor on their own key pays their own: nothing held."""
        if visitor.api_key:
            return Reservation(self._meter.storage)
        charges = [(ceiling, "all") for ceiling in self._space_tokens]
        charges += [(c, owner) for c in self._visitor_tokens[visitor.signed_in] for owner in visitor.ids]
        charges += [(self._visit, visitor.session)] if visitor.session else []
        held = await self._meter.reserve(charges, tokens)
        if not isinstance(held, Over):
            return held
        if held.ceiling.name == "space":
            log.warning(
                "the Space reached its ceiling: tokens per %ss limit=%s", held.ceiling.window, held.ceiling.limit
            )
            return Refusal("space_limit", {"minutes": _minutes(held.seconds)})
        return Refusal("token_limited", {"minutes": _minutes(held.seconds)})

    @asynccontextmanager
    async def replying(self, visitor: Visitor) -> AsyncIterator[Refusal | None]:
        """One reply at a time per browser session and per account, so queued jobs whose stream is
        never read cannot pile up spending; at most ADDRESS_REPLIES at once from one address (a lab
        behind one address is many people; 0: no cap). Yields a refusal if busy. Held in the shared
        counters, so replicas see each other's replies; a holder that crashed lets go after
        REPLY_LEASE seconds."""
        per_address = self.settings.address_replies or sys.maxsize  # 0: no cap per address
        charges = [
            (Ceiling("replying", REPLY_LEASE, per_address if i.startswith("ip:") else 1, lease=True), i)
            for i in visitor.ids
        ]
        held = await self._meter.reserve(charges, 1)
        if isinstance(held, Over):
            yield Refusal("one_at_a_time", {})
            return
        try:
            yield None
        finally:
            await held.settle(0)

    def upstream_full(self, own_key: bool = False) -> bool:
        return self._upstream[own_key].locked()

    @asynccontextmanager
    async def upstream_slot(self, own_key: bool = False) -> AsyncIterator[None]:
        """Hold one of the simultaneous upstream streams for the length of a reply: the owner's
        slots, or those of replies on a visitor's own key."""
        async with self._upstream[own_key]:
            yield
