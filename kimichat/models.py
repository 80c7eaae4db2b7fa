"""Which Kimi models the key can use, and what each one accepts.

Moonshot retires model ids often, so the list is read from ``GET /v1/models`` (cached,
short timeout) and the small table below is only the fallback for when that fails.
What a model accepts is read from the listing where Moonshot says it, else inferred
from the id: K2.5 and later fix their sampling and answer 400 to other values.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from functools import cached_property

from openai import AsyncOpenAI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the app needs to know to send a model a valid request."""

    id: str
    context_length: int = 131072
    reasoning: bool = False
    vision: bool = False

    @cached_property  # asked several times per reply; the regex is worth doing once
    def version(self) -> tuple[int, int] | None:
        """(2, 5) for ``kimi-k2.5``, (3, 0) for ``kimi-k3``; None for other families."""
        match = re.match(r"kimi-k(\d+)(?:\.(\d+))?", self.id)
        return (int(match[1]), int(match[2] or 0)) if match else None

    @property
    def fixed_sampling(self) -> bool:
        """K2.5 and later, and the thinking models, reject any temperature/top_p/n but their own
        (`/v1/models` does not say so: decided here by family)."""
        return "thinking" in self.id or (self.version is not None and self.version >= (2, 5))

    @property
    def thinking_switch(self) -> bool:
        """K2.5/K2.6 turn thinking on and off with a ``thinking`` field in the request."""
        return self.version is not None and (2, 5) <= self.version < (3, 0)

    @property
    def effort_levels(self) -> bool:
        """K3 and later always think and take ``reasoning_effort`` (low/high/max) instead of ``thinking``."""
        return self.version is not None and self.version >= (3, 0)

    @property
    def always_thinks(self) -> bool:
        """Models whose thinking cannot be turned off: every tool-call turn they write must go back
        with its ``reasoning_content``."""
        return "thinking" in self.id or self.effort_levels

    def thinks(self, thinking: str) -> bool:
        """Whether a request with this thinking setting (auto/on/off) reasons before it answers
        (so its reply budget must leave room for the reasoning)."""
        if self.thinking_switch:
            return thinking != "off"  # K2.5/K2.6 think unless told not to
        return self.always_thinks or (self.reasoning and thinking == "on")

    @property
    def default_temperature(self) -> float:
        """Moonshot's recommended temperature for models that take one."""
        if self.id.startswith("moonshot-v1"):
            return 0.3
        return 1.0 if "thinking" in self.id else 0.6

    @property
    def rank(self) -> tuple[tuple[int, int], int]:
        """Newer family first, then the larger window: how "best" is judged among listed models."""
        return self.version or (0, 0), self.context_length


# The fallback, used only while /v1/models cannot be read; it is the list as of 2026-12.
FALLBACK_MODELS: tuple[ModelInfo, ...] = (
    # Third-party reports, 2026-04: the K2.5 successor, same 256k window, thinking switch and vision.
    ModelInfo("kimi-k2.6", 262144, reasoning=True, vision=True),
    # Third-party reports, 2026: 1M window, always thinks, reasoning_effort low|high|max.
    ModelInfo("kimi-k3", 1048576, reasoning=True, vision=True),
)
# Left out: kimi-k2.5 (reported discontinued 2026-08-31), kimi-k2-turbo-preview and kimi-k2-thinking
# (reported retired 2026-05), moonshot-v1-* (retired in 2026). A key that still lists them gets them.


def known(model_id: str) -> ModelInfo:
    """What can be said of ``model_id`` without asking Moonshot: the built-in table's entry, else
    what its id tells (kimi-k2.5 and later families reason and see; "thinking" reasons; "vision" sees)."""
    entry = next((m for m in FALLBACK_MODELS if m.id == model_id), None)
    if entry is not None:
        return entry
    family = ModelInfo(model_id)
    modern = family.version is not None and family.version >= (2, 5)
    return ModelInfo(model_id, reasoning=modern or "thinking" in model_id, vision=modern or "vision" in model_id)


def _from_listing(item: object) -> ModelInfo:
    """A ``/v1/models`` entry (Moonshot's extra fields included) as a ``ModelInfo``."""
    extra = getattr(item, "model_extra", None) or {}
    guess = known(str(getattr(item, "id", "")))
    return ModelInfo(
        id=guess.id,
        context_length=int(extra.get("context_length") or guess.context_length),
        reasoning=bool(extra.get("supports_reasoning", guess.reasoning)),
        vision=bool(extra.get("supports_image_in", guess.vision)),
    )


class ModelCatalog:
    """The models offered to this key, fetched at most once per ``ttl`` seconds."""

    def __init__(
        self,
        client: AsyncOpenAI | None,
        default_model: str,
        ttl: float,
        timeout: float,
        allowed: frozenset[str] = frozenset(),
    ):
        self._client = client
        self._default = default_model
        self._ttl = ttl
        self._timeout = timeout
        self._allowed = allowed  # the owner's ALLOWED_MODELS; empty: every listed model
        self._models: tuple[ModelInfo, ...] = self._offered(FALLBACK_MODELS)
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def models(self) -> tuple[ModelInfo, ...]:
        """The current list; one visitor refreshes it while the others reuse it."""
        if self._client is None or time.monotonic() < self._expires:
            return self._models
        async with self._lock:
            if time.monotonic() >= self._expires:
                await self._refresh(self._client)
        return self._models

    async def fetch_with(self, client: AsyncOpenAI) -> None:
        """Fetch the list now through ``client``: at startup, so the page is built with the key's
        models (a page load that had to send the picker a new list cost Gradio a rebuild of its
        config per visitor: 40% of a page load's CPU)."""
        await self._refresh(client)

    async def _refresh(self, client: AsyncOpenAI) -> None:
        try:
            page = await client.with_options(timeout=self._timeout, max_retries=0).models.list()
            listed = tuple(_from_listing(item) for item in page.data if getattr(item, "id", None))
        except Exception as exc:  # unreachable, refused, or an unreadable body (HTML, no `data`): never fatal
            log.warning("model list unavailable (%s); using the built-in table", type(exc).__name__)
            self._expires = time.monotonic() + min(self._ttl, 60.0)
            return
        if listed:
            self._models = self._offered(tuple(sorted(listed, key=lambda m: m.id)))
            if self._default not in {m.id for m in self._models}:  # the owner should know, once a refresh
                log.warning("default model %s is not offered; using %s", self._default, self.pick(None).id)
        self._expires = time.monotonic() + self._ttl

    def _offered(self, models: tuple[ModelInfo, ...]) -> tuple[ModelInfo, ...]:
        """The models visitors may use: those of the owner's list that ``models`` has (the owner's
        ids as given when it has none of them), or all of ``models`` when there is no list."""
        if not self._allowed:
            return models
        offered = tuple(m for m in models if m.id in self._allowed)
        return offered or tuple(known(model_id) for model_id in sorted(self._allowed))

    @property
    def cached_models(self) -> tuple[ModelInfo, ...]:
        """The list as last fetched, without a network call."""
        return self._models

    def pick(self, wanted: str | None) -> ModelInfo:
        """The model a request for ``wanted`` gets, from the list as last fetched: ``wanted`` if
        offered, else the default model, else the best offered model of the default's kind (newest,
        widest; a retired default gives way to its successor), else the best offered model."""
        by_id = {m.id: m for m in self._models}
        if wanted and wanted in by_id:
            return by_id[wanted]
        if self._default in by_id:
            return by_id[self._default]
        default = known(self._default)
        same_kind = [m for m in self._models if (m.reasoning, m.vision) == (default.reasoning, default.vision)]
        return max(same_kind or self._models, key=lambda m: m.rank)

    async def resolve(self, wanted: str | None) -> ModelInfo:
        """``pick`` over the current list (fetched if stale); a substitution is logged."""
        await self.models()
        model = self.pick(wanted)
        if wanted and model.id != wanted:
            log.warning("model %r is not offered; using %s", wanted[:64], model.id)
        return model
