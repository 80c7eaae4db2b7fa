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
    def default_temperature(self) -> float:
        """Moonshot's recommended temperature for models that take one."""
        if self.id.startswith("moonshot-v1"):
            return 0.3
        return 1.0 if "thinking" in self.id else 0.6


# The fallback: models known to exist late in 2026. Only used when /v1/models fails.
FALLBACK_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("kimi-k2.5", 262144, reasoning=True, vision=True),
    ModelInfo("kimi-k2.6", 262144, reasoning=True, vision=True),
    ModelInfo("kimi-k3", 1048576, reasoning=True, vision=True),
    ModelInfo("kimi-k2-turbo-preview", 262144),
    ModelInfo("kimi-k2-thinking", 262144, reasoning=True),
)


def _from_listing(item: object) -> ModelInfo:
    """A ``/v1/models`` entry (Moonshot's extra fields included) as a ``ModelInfo``."""
    extra = getattr(item, "model_extra", None) or {}
    model_id = str(getattr(item, "id", ""))
    guess = next((m for m in FALLBACK_MODELS if m.id == model_id), ModelInfo(model_id))
    return ModelInfo(
        id=model_id,
        context_length=int(extra.get("context_length") or guess.context_length),
        reasoning=bool(extra.get("supports_reasoning", guess.reasoning or "thinking" in model_id)),
        vision=bool(extra.get("supports_image_in", guess.vision or "vision" in model_id)),
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
        self._expires = time.monotonic() + self._ttl

    def _offered(self, models: tuple[ModelInfo, ...]) -> tuple[ModelInfo, ...]:
        """The models visitors may use: those of the owner's list that ``models`` has (the owner's
        ids as given when it has none of them), or all of ``models`` when there is no list."""
        if not self._allowed:
            return models
        offered = tuple(m for m in models if m.id in self._allowed)
        return offered or tuple(ModelInfo(model_id) for model_id in sorted(self._allowed))

    @property
    def cached_models(self) -> tuple[ModelInfo, ...]:
        """The list as last fetched, without a network call."""
        return self._models

    def cached(self, model_id: str) -> ModelInfo:
        """What is known of ``model_id`` without a network call."""
        return next((m for m in self._models if m.id == model_id), ModelInfo(model_id))

    async def resolve(self, wanted: str | None) -> ModelInfo:
        """``wanted`` if the key can use it, else the default model, else the first one."""
        models = await self.models()
        by_id = {m.id: m for m in models}
        for candidate in (wanted, self._default):
            if candidate and candidate in by_id:
                if wanted and candidate != wanted:
                    log.warning("model %r is not offered; falling back to %s", wanted[:64], candidate)
                return by_id[candidate]
        log.warning("neither %r nor %s is offered; using %s", (wanted or "")[:64], self._default, models[0].id)
        return models[0]
