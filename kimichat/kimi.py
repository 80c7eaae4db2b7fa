"""One streamed Kimi reply as plain events: text, thinking, tool-call fragments, usage, finish.

The openai SDK's typed streaming API does the HTTP, the SSE parsing and the typed errors;
this module reads what Moonshot adds on top of OpenAI's chunk types (``reasoning_content``
in the delta, usage inside ``choices[0]``) from the chunks' extra fields, and turns every
transport failure into one of the app's own errors below. Nothing here knows about Gradio,
so it is tested against the local Kimi server alone and reused by the benchmark.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from openai import APIConnectionError, APITimeoutError, AsyncOpenAI, DefaultAioHttpClient, Timeout

from .models import ModelInfo
from .settings import Settings


class KimiMessage(TypedDict, total=False):
    """One message of a Kimi request: OpenAI's shape plus Moonshot's ``reasoning_content``."""

    role: str
    content: str | list[dict[str, Any]]  # a list carries image parts (vision models only)
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    name: str
    reasoning_content: str
    partial: bool  # Moonshot's Partial Mode: the reply continues this last assistant turn


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call: the first has ``id``, ``type`` and ``name``, later ones more ``arguments``."""

    index: int
    id: str | None
    type: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finish:
    """The stream ended as Kimi meant it to; ``reason`` is its finish_reason."""

    reason: str


Event = TextDelta | ThinkingDelta | ToolCallDelta | Usage | Finish
WEB_SEARCH = [{"type": "builtin_function", "function": {"name": "$web_search"}}]


class ConnectionLost(Exception):
    """The connection to Kimi failed (or timed out) before its headers, or broke inside the stream."""


class StreamTimeout(Exception):
    """Kimi went silent inside a stream for longer than the idle timeout."""


class StreamBroken(Exception):
    """The stream stopped before its finish_reason, or sent something unreadable."""


class StreamEnded(StreamBroken):
    """The stream closed before its finish_reason: for the visitor, a connection that broke."""


@dataclass(frozen=True)
class ChatRequest:
    """Everything one reply needs; ``options()`` keeps only what the model accepts."""

    model: ModelInfo
    messages: list[KimiMessage]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    thinking: Literal["auto", "on", "off"] = "auto"
    web_search: bool = False
    cache_key: str = ""  # prompt_cache_key: requests that share a prefix share Kimi's cache

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``chat.completions.create``; Moonshot's own fields go in ``extra_body``.

        The thinking setting reaches each family its own way: K2.5/K2.6 take a ``thinking`` switch,
        K3 a ``reasoning_effort`` (on: high, off: low; it always thinks), older models nothing.
        """
        options: dict[str, Any] = {"model": self.model.id, "messages": self.messages, "max_tokens": self.max_tokens}
        if self.cache_key:
            options["prompt_cache_key"] = self.cache_key
        if not self.model.fixed_sampling:
            if self.temperature is not None:
                options["temperature"] = self.temperature
            if self.top_p is not None:
                options["top_p"] = self.top_p
        extra: dict[str, Any] = {}
        if self.model.effort_levels and self.thinking != "auto":
            options["reasoning_effort"] = "high" if self.thinking == "on" else "low"
        if self.model.thinking_switch and self.thinking != "auto":
            extra["thinking"] = {"type": "enabled" if self.thinking == "on" else "disabled"}
        if self.web_search:  # a Moonshot-only tool type, outside OpenAI's typed tools
            extra["tools"] = WEB_SEARCH
        if extra:
            options["extra_body"] = extra
        return options


def make_client(settings: Settings, api_key: str | None = None) -> AsyncOpenAI:
    """The process's one Kimi client (or one for a visitor's own key, for one request).

    It runs on aiohttp, the SDK's asyncio-native transport (``openai[aiohttp]``): every
    streamed token is a socket read, and the default transport wraps each one in anyio's
    cancel scopes (aiohttp: 2-3 ms less CPU per reply). ``read`` is the longest silence
    allowed inside a stream. The SDK's own retries are off: they treat every 429 alike,
    while Moonshot's 429 may mean "busy" (retry), "wait N seconds" or "out of money"
    (never retry); failures.py decides.
    """
    return AsyncOpenAI(
        api_key=api_key or settings.api_key,
        base_url=settings.base_url,
        max_retries=0,
        timeout=Timeout(settings.connect_timeout, read=settings.idle_timeout),
        http_client=DefaultAioHttpClient(),
    )


def _usage(raw: Any) -> Usage:
    """Usage from a typed ``CompletionUsage`` or Moonshot's plain dict inside ``choices[0]``. Cached
    tokens are at its top level, and on K2.6 also in ``prompt_tokens_details`` (OpenAI's place)."""
    counts = [int(_field(raw, key) or 0) for key in ("prompt_tokens", "completion_tokens", "total_tokens")]
    cached = _field(raw, "cached_tokens") or _field(_field(raw, "prompt_tokens_details"), "cached_tokens")
    return Usage(*counts, int(cached or 0))


def _field(raw: Any, key: str) -> Any:
    """A field of a plain dict or a typed object (None if either has none)."""
    return raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)


def chunk_events(chunk: Any) -> tuple[list[Event], str | None]:
    """The events in one typed chunk, and its finish_reason (None while the reply goes on)."""
    events: list[Event] = []
    reason = None
    for choice in chunk.choices or ():
        delta = choice.delta
        extra = delta.model_extra or {} if delta is not None else {}
        if thinking := extra.get("reasoning_content"):
            events.append(ThinkingDelta(thinking))
        if delta is not None and delta.content:
            events.append(TextDelta(delta.content))
        for call in (delta.tool_calls if delta is not None else None) or ():
            function = call.function
            events.append(
                ToolCallDelta(
                    call.index,
                    call.id,
                    call.type,
                    function.name if function else None,
                    (function.arguments if function else None) or "",
                )
            )
        if usage := (choice.model_extra or {}).get("usage"):
            events.append(_usage(usage))
        reason = choice.finish_reason or reason
    if chunk.usage is not None:
        events.append(_usage(chunk.usage))
    return events, reason


async def stream_reply(client: AsyncOpenAI, request: ChatRequest) -> AsyncIterator[Event]:
    """Yield the reply's events; the last one is a ``Finish``, else one of this module's errors.

    HTTP errors come out as the SDK's typed ``APIStatusError``s. Leaving the loop early (or
    cancelling the task) closes the upstream connection, so a stopped reply stops being paid for.
    """
    try:
        stream = await client.chat.completions.create(stream=True, **request.options())
    except APIConnectionError:  # APITimeoutError included: nothing was streamed yet
        raise ConnectionLost("Kimi could not be reached") from None
    reason: str | None = None
    async with stream:  # leaving it closes the HTTP response
        try:
            async for chunk in stream:
                events, finish = chunk_events(chunk)
                reason = finish or reason
                for event in events:
                    yield event
        except APITimeoutError:
            raise StreamTimeout from None
        except APIConnectionError:
            raise ConnectionLost("the connection broke") from None
        except json.JSONDecodeError:
            raise StreamBroken("malformed data in the stream") from None
    if reason is None:
        raise StreamEnded("the stream ended before its finish_reason")
    yield Finish(reason)
