"""What a public Space allows one visitor, and all of them together.

A public Space spends its owner's money, so every message passes three gates before
it reaches Kimi: input limits (length, turns, not empty), a per-visitor rate limit
(the ``limits`` library: in memory, or in Redis so replicas share one count), and a
cap on simultaneous upstream streams (a Tier-0 key allows very few), where visitors
wait their turn instead of getting errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """Why a message was not sent: a key into the i18n table and its values."""

    key: str
    values: Mapping[str, object]


def visitor_ids(headers: Mapping[str, str], client_host: str | None, session: str | None, hops: int) -> list[str]:
    """Who is asking: their address and their Gradio session, each limited on its own.

    Behind ``hops`` trusted proxies ``client_host`` is the nearest proxy, and each proxy
    appends the address it saw to ``x-forwarded-for``: the visitor's address is the entry
    ``hops`` from the end. Everything to its left is whatever the visitor wrote, so it is
    never read (a visitor rotating a made-up first entry stays one visitor). With no
    trusted proxy (``hops == 0``) the header is ignored.
    """
    address = client_host or "unknown"
    forwarded = [entry.strip() for entry in headers.get("x-forwarded-for", "").split(",") if entry.strip()]
    if hops > 0 and forwarded:
        address = forwarded[max(0, len(forwarded) - hops)]
    ids = [f"ip:{address}"]
    if session:
        ids.append(f"session:{session}")
    return ids


def _storage_uri(url: str) -> str:
    """``redis://host`` -> the async form the ``limits`` library wants."""
    return url if url.startswith("async+") else f"async+{url}"


class Guard:
    """The gates; one per process, shared by all visitors (it holds no messages)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        options = {"implementation": "redispy"} if "redis" in settings.rate_limit_storage_url else {}
        self._limiter = MovingWindowRateLimiter(
            storage_from_string(_storage_uri(settings.rate_limit_storage_url), **options)
        )
        self._limits = [
            item
            for item, amount in (
                (RateLimitItemPerMinute(settings.rate_limit_per_minute), settings.rate_limit_per_minute),
                (RateLimitItemPerHour(settings.rate_limit_per_hour), settings.rate_limit_per_hour),
            )
            if amount > 0
        ]
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

    async def check_rate(self, ids: list[str]) -> Refusal | None:
        """Count this message against every id; refuse if any of them is over a limit."""
        for item in self._limits:
            for visitor in ids:
                if not await self._limiter.test(item, "chat", visitor):
                    stats = await self._limiter.get_window_stats(item, "chat", visitor)
                    wait = max(1, int(stats.reset_time - time.time()))
                    log.warning("rate limited kind=%s limit=%s", visitor.split(":")[0], item)
                    return Refusal("rate_limited", {"seconds": wait})
        for item in self._limits:
            for visitor in ids:
                await self._limiter.hit(item, "chat", visitor)
        return None

    def upstream_full(self, own_key: bool = False) -> bool:
        return self._upstream[own_key].locked()

    @asynccontextmanager
    async def upstream_slot(self, own_key: bool = False) -> AsyncIterator[None]:
        """Hold one of the simultaneous upstream streams for the length of a reply: the owner's
        slots, or those of replies on a visitor's own key."""
        async with self._upstream[own_key]:
            yield
