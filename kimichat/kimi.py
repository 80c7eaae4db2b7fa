"""One streamed Kimi reply as plain events: text, thinking, usage, finish.

The openai SDK does what it is good at (auth, retries before the first byte, typed
HTTP errors, connection pooling); the SSE body is read here as plain JSON because
Moonshot's stream differs from OpenAI's in ways the SDK's types hide: usage sits in
``choices[0]``, ``reasoning_content`` is not a typed field, and only ``data: [DONE]``
tells a finished reply from a dropped one. Skipping the SDK's per-chunk objects also
makes each token cheaper, and posting the body as it is (the SDK's documented way to
call endpoints it has no types for) skips its walk of every message against OpenAI's
request types: 2-4 ms of CPU per reply. Nothing here knows about Gradio.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
from openai import AsyncOpenAI, DefaultAioHttpClient

from .conversation import KimiMessage
from .models import ModelInfo
from .settings import Settings


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call: the first has ``id`` and ``name``, later ones more ``arguments``."""

    index: int
    id: str | None
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
    """The stream ended with ``data: [DONE]``; ``reason`` is the last finish_reason."""

    reason: str | None


Event = TextDelta | ThinkingDelta | ToolCallDelta | Usage | Finish
WEB_SEARCH = [{"type": "builtin_function", "function": {"name": "$web_search"}}]


class StreamBroken(Exception):
    """The stream stopped before ``data: [DONE]``, or sent something unreadable."""


@dataclass(frozen=True)
class ChatRequest:
    """Everything one reply needs; ``body()`` keeps only what the model accepts."""

    model: ModelInfo
    messages: list[KimiMessage]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    thinking: Literal["auto", "on", "off"] = "auto"
    web_search: bool = False

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions``, Moonshot's fields included."""
        body: dict[str, Any] = {
            "model": self.model.id,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "stream": True,
        }
        if not self.model.fixed_sampling:
            if self.temperature is not None:
                body["temperature"] = self.temperature
            if self.top_p is not None:
                body["top_p"] = self.top_p
        thinking = "off" if self.web_search else self.thinking  # $web_search does not work with thinking
        if self.model.thinking_switch and thinking != "auto":
            body["thinking"] = {"type": "enabled" if thinking == "on" else "disabled"}
        if self.web_search:  # a Moonshot-only tool type
            body["tools"] = WEB_SEARCH
        return body


def make_client(settings: Settings, api_key: str | None = None) -> AsyncOpenAI:
    """The process's one Kimi client (or one for a visitor's own key, for one request).

    It runs on aiohttp, the SDK's asyncio-native transport (``openai[aiohttp]``): every
    streamed token is a socket read, and httpx2's default transport wraps each one in
    anyio's cancel scopes and generator layers (aiohttp: 2-3 ms less CPU per reply).
    Its connection pool is shared by every reply, so it is sized for the chat
    concurrency; ``read`` is the longest silence allowed inside a stream. The SDK's own
    retries are off: they treat every 429 alike, while Moonshot's 429 may mean "busy"
    (retry), "wait N seconds" or "out of money" (never retry); failures.py decides.
    """
    return AsyncOpenAI(
        api_key=api_key or settings.api_key,
        base_url=settings.base_url,
        max_retries=0,
        timeout=httpx2.Timeout(settings.connect_timeout, read=settings.idle_timeout),
        http_client=DefaultAioHttpClient(limits=httpx2.Limits(max_connections=settings.chat_concurrency + 10)),
    )


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
        cached_tokens=int(raw.get("cached_tokens") or 0),
    )


def parse_chunk(data: str | bytes) -> list[Event]:
    """The events in one SSE ``data:`` payload (not ``[DONE]``)."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise StreamBroken("malformed data in the stream") from None
    if not isinstance(chunk, dict):
        raise StreamBroken("malformed data in the stream")
    if "error" in chunk:
        error = chunk["error"] if isinstance(chunk["error"], dict) else {}
        raise StreamBroken(str(error.get("type") or "error in the stream"))
    events: list[Event] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if thinking := delta.get("reasoning_content"):
            events.append(ThinkingDelta(thinking))
        if text := delta.get("content"):
            events.append(TextDelta(text))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            events.append(
                ToolCallDelta(
                    int(call.get("index", 0)), call.get("id"), function.get("name"), function.get("arguments") or ""
                )
            )
        if usage := choice.get("usage"):
            events.append(_usage(usage))
        if reason := choice.get("finish_reason"):
            events.append(Finish(reason))
    if usage := chunk.get("usage"):
        events.append(_usage(usage))
    return events


async def stream_reply(client: AsyncOpenAI, request: ChatRequest) -> AsyncIterator[Event]:
    """Yield the reply's events; the last one is a ``Finish``, else ``StreamBroken``.

    HTTP errors before the stream starts come out as the SDK's typed exceptions
    (after its retries). Leaving the loop early closes the upstream connection, so a
    stopped reply stops being paid for.
    """
    reason: str | None = None
    response = await client.post("/chat/completions", body=request.body(), cast_to=httpx2.Response, stream=True)
    try:
        async for data in _sse_data(response.aiter_bytes()):
            if data == b"[DONE]":
                yield Finish(reason)
                return
            for event in parse_chunk(data):
                if isinstance(event, Finish):
                    reason = event.reason
                else:
                    yield event
    finally:
        await response.aclose()
    raise StreamBroken("the stream ended before [DONE]")


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of a server-sent event stream, as bytes.

    Splitting bytes here skips httpx2's text decoder and line splitter, two layers per
    chunk on the hottest path of the app (json.loads reads UTF-8 bytes directly).
    """
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()
