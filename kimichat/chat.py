"""Persona + history + message -> a stream of chat updates for the UI.

Updates are plain message dicts (Gradio takes them as they are), so this module is
tested and benchmarked without a browser. The path of one message:
gates (guard) -> messages (conversation) -> Kimi stream (kimi) -> coalesced updates.
UI updates are coalesced in time: nobody reads 50 redraws a second, and each redraw
costs the server a diff and a send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI

from .conversation import build_messages, current_segment, fit_to_context, persona_tag
from .failures import Failure, FirstTokenTimeout, classify, log_failure
from .guard import Guard
from .i18n import Lang, t
from .kimi import ChatRequest, Event, Finish, TextDelta, ThinkingDelta, Usage, make_client, stream_reply
from .models import ModelCatalog, ModelInfo
from .personas import Persona, PersonaFile
from .settings import Settings

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass
class Update:
    """What the chat shows now; ``usage`` and ``model`` are set on the last update."""

    messages: list[Message]
    usage: Usage | None = None
    model: str = ""


@dataclass(frozen=True)
class Visitor:
    """Who is asking (for rate limits) and, if they typed one, their own key.

    The key lives in this object for one request and nowhere else; ``repr`` hides it.
    """

    ids: list[str] = field(default_factory=list)
    api_key: str = field(default="", repr=False)


def note(text: str, lang: Lang) -> Message:
    """A message styled apart from the answer (it has a title), never sent to Kimi."""
    return {"role": "assistant", "content": text, "metadata": {"title": "⚠️ " + t("note", lang)}}


@dataclass
class _Reply:
    """The reply as it grows; ``messages()`` renders it for the chat."""

    persona: Persona
    lang: Lang
    text: str = ""
    thinking: str = ""
    thinking_started: float = 0.0
    thinking_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def started(self) -> bool:
        return bool(self.text or self.thinking)

    def add_thinking(self, delta: str) -> None:
        if not self.thinking:
            self.thinking_started = time.monotonic()
        self.thinking += delta

    def add_text(self, delta: str) -> None:
        self.end_thinking()
        self.text += delta

    def end_thinking(self) -> None:
        """The first answer token (or the end of the stream) closes the thinking box."""
        if self.thinking and self.thinking_seconds is None:
            self.thinking_seconds = round(time.monotonic() - self.thinking_started, 1)

    def messages(self) -> list[Message]:
        out: list[Message] = []
        if self.thinking:
            metadata: dict[str, Any] = {"title": "💭 " + t("thinking", self.lang)}
            if self.thinking_seconds is None:
                metadata["status"] = "pending"
            else:
                metadata.update(status="done", duration=self.thinking_seconds)
            out.append({"role": "assistant", "content": self.thinking, "metadata": metadata})
        if self.text:
            out.append({"role": "assistant", "content": self.text, "metadata": persona_tag(self.persona.id)})
        out += [note(text, self.lang) for text in self.notes]
        return out


async def _first_token_deadline(events: AsyncIterator[Event], seconds: float) -> AsyncIterator[Event]:
    """Pass ``events`` on; if no text or thinking arrives within ``seconds``, give up."""
    deadline = time.monotonic() + seconds
    async for event in _until_first_token(events, deadline):
        yield event
    async for event in events:
        yield event


async def _until_first_token(events: AsyncIterator[Event], deadline: float) -> AsyncIterator[Event]:
    while True:
        try:
            event = await asyncio.wait_for(events.__anext__(), max(0.0, deadline - time.monotonic()))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise FirstTokenTimeout from None
        yield event
        if isinstance(event, (TextDelta, ThinkingDelta)):
            return


@dataclass
class ChatService:
    """Answers messages; shares only the client, the caches and the gates."""

    settings: Settings
    personas: PersonaFile
    catalog: ModelCatalog
    client: AsyncOpenAI | None
    guard: Guard

    def persona(self, persona_id: str | None) -> Persona:
        """The persona by id; an unknown id (an old API script) gets the default one."""
        return self.personas.by_id.get(persona_id or "", self.personas.first)

    async def reply(
        self,
        message: str,
        history: list[Mapping[str, Any]],
        persona_id: str | None,
        model_id: str | None = None,
        temperature: float | None = None,
        lang: Lang = "en",
        visitor: Visitor | None = None,
    ) -> AsyncIterator[Update]:
        """Stream the reply to ``message`` as chat updates; every failure becomes a note."""
        visitor = visitor or Visitor()
        persona = self.persona(persona_id)
        segment = current_segment(history, persona.id)
        refusal = self.guard.check_input(message, sum(m.get("role") == "user" for m in segment))
        if refusal is None and self.client is None and not visitor.api_key:
            refusal_text = Failure("no_key").message(lang, self.settings.settings_url)
        elif refusal is None:
            refusal = await self.guard.check_rate(visitor.ids)
            refusal_text = t(refusal.key, lang, **refusal.values) if refusal else ""
        else:
            refusal_text = t(refusal.key, lang, **refusal.values)
        if refusal_text:
            yield Update([note(refusal_text, lang)])
            return

        own_client = make_client(self.settings, visitor.api_key) if visitor.api_key else None
        try:
            model = await self.catalog.resolve(model_id or persona.model or self.settings.default_model)
            if self.guard.upstream_full:
                yield Update([note(t("waiting", lang), lang)])
            async with self.guard.upstream_slot():
                async for update in self._answer(
                    own_client or self.client,
                    persona,
                    model,
                    build_messages(persona, segment, message, lang),
                    temperature,
                    lang,
                ):
                    yield update
        finally:
            if own_client is not None:
                await own_client.close()

    async def _answer(
        self,
        client: AsyncOpenAI | None,
        persona: Persona,
        model: ModelInfo,
        messages: list,
        temperature: float | None,
        lang: Lang,
    ) -> AsyncIterator[Update]:
        """Try until text flows; once it does, never again (no text is shown twice)."""
        assert client is not None
        max_tokens = min(persona.max_tokens or self.settings.max_reply_tokens, model.context_length // 4)
        budget = model.context_length - max_tokens
        head = 1 + 2 * len(persona.few_shot)
        attempt, trimmed_harder = 0, False
        while True:
            reply = _Reply(persona, lang)
            request = ChatRequest(
                model=model,
                messages=fit_to_context(messages, head, budget),
                max_tokens=max_tokens,
                temperature=temperature if temperature is not None else persona.temperature,
                top_p=persona.top_p,
                thinking=persona.thinking,
            )
            try:
                async for update in self._stream(client, request, reply):
                    yield update
                return
            except Exception as exc:  # every failure becomes a sentence, never a traceback
                failure = classify(exc)
                log_failure(failure, persona.id, model.id)
            reply.end_thinking()
            if reply.started:
                reply.notes.append(t("cut_off", lang))
            elif failure.kind == "context_too_long" and not trimmed_harder:
                budget, trimmed_harder = budget // 2, True
                continue
            elif (delay := failure.retry_delay(attempt)) is not None and attempt < self.settings.max_retries:
                attempt += 1
                yield Update([note(t("retrying", lang), lang)])
                await asyncio.sleep(delay)
                continue
            else:
                reply.notes.append(failure.message(lang, self.settings.settings_url))
            yield Update(reply.messages(), model=model.id)
            return

    async def _stream(self, client: AsyncOpenAI, request: ChatRequest, reply: _Reply) -> AsyncIterator[Update]:
        """One attempt: Kimi's events folded into the reply, shown at most N times a second."""
        usage: Usage | None = None
        interval = 1.0 / self.settings.updates_per_second
        next_update = 0.0
        async with aclosing(stream_reply(client, request)) as raw:  # closing it ends the HTTP stream
            async for event in _first_token_deadline(raw, self.settings.first_token_timeout):
                if isinstance(event, TextDelta):
                    reply.add_text(event.text)
                elif isinstance(event, ThinkingDelta):
                    reply.add_thinking(event.text)
                elif isinstance(event, Usage):
                    usage = event
                    continue
                elif isinstance(event, Finish):
                    if event.reason in ("length", "content_filter"):
                        reply.notes.append(t("length" if event.reason == "length" else "filtered", reply.lang))
                    break
                now = time.monotonic()
                if now >= next_update:
                    next_update = now + interval
                    yield Update(reply.messages())
        reply.end_thinking()
        yield Update(reply.messages(), usage=usage, model=request.model.id)
