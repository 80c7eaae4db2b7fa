"""Persona + history + message -> a stream of chat updates for the UI.

Updates are plain message dicts (Gradio takes them as they are), so this module is
tested and benchmarked without a browser. UI updates are coalesced in time: a person
cannot read 50 redraws a second, and every redraw costs the server a diff and a send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI

from .conversation import build_messages, persona_tag
from .failures import Failure, classify, log_failure
from .i18n import Lang, t
from .kimi import ChatRequest, Finish, StreamBroken, TextDelta, ThinkingDelta, Usage, stream_reply
from .models import ModelCatalog
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


@dataclass
class ChatService:
    """Answers one message at a time per visitor; shares only the client and caches."""

    settings: Settings
    personas: PersonaFile
    catalog: ModelCatalog
    client: AsyncOpenAI | None

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
    ) -> AsyncIterator[Update]:
        """Stream the reply to ``message`` as chat updates; failures become notes."""
        persona = self.persona(persona_id)
        reply = _Reply(persona, lang)
        model_name = model_id or persona.model or self.settings.default_model
        if self.client is None:
            yield Update([note(Failure("no_key").message(lang, self.settings.settings_url), lang)])
            return
        try:
            model = await self.catalog.resolve(model_name)
            model_name = model.id
            request = ChatRequest(
                model=model,
                messages=build_messages(persona, history, message, lang),
                max_tokens=persona.max_tokens or self.settings.max_reply_tokens,
                temperature=temperature if temperature is not None else persona.temperature,
                top_p=persona.top_p,
                thinking=persona.thinking,
            )
            usage: Usage | None = None
            interval = 1.0 / self.settings.updates_per_second
            next_update = 0.0
            async for event in stream_reply(self.client, request):
                if isinstance(event, TextDelta):
                    reply.add_text(event.text)
                elif isinstance(event, ThinkingDelta):
                    reply.add_thinking(event.text)
                elif isinstance(event, Usage):
                    usage = event
                    continue
                elif isinstance(event, Finish):
                    if event.reason == "length":
                        reply.notes.append(t("length", lang))
                    break
                now = time.monotonic()
                if now >= next_update:
                    next_update = now + interval
                    yield Update(reply.messages())
        except Exception as exc:  # every failure becomes a sentence, never a traceback
            reply.end_thinking()
            failure = classify(exc)
            log_failure(failure, persona.id, model_name)
            if isinstance(exc, StreamBroken) and reply.text:
                reply.notes.append(t("cut_off", lang))
            else:
                reply.notes.append(failure.message(lang, self.settings.settings_url))
            yield Update(reply.messages(), model=model_name)
            return
        reply.end_thinking()
        yield Update(reply.messages(), usage=usage, model=model_name)
