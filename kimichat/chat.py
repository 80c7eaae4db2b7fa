"""Persona + history + message -> a stream of chat updates for the UI.

The path of one message: gates (guard) -> files made ready (attachments) -> messages
(conversation) -> an upstream slot -> Kimi's requests (answer) -> the reply as it grows (reply).
Nothing here knows Gradio, so it is tested and benchmarked without a browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from .answer import Answerer, Events, target_for, told
from .attachments import (
    Attachment,
    Attachments,
    FileUnreadable,
    kind_of,
)
from .conversation import (
    Turn,
    VisitorMessage,
    build_messages,
    cache_key,
    conversation_tokens,
    turns,
    with_message,
)
from .failures import classify, log_failure, where_to_fix
from .guard import Guard, Visitor
from .i18n import Lang, Refusal, t
from .kimi import make_client, stream_reply
from .models import ModelCatalog, ModelInfo
from .personas import Persona, PersonaFile
from .reply import Reply, Update, note
from .settings import Settings


def refused(refusal: Refusal, lang: Lang, visitor: Visitor, settings: Settings) -> Update:
    """A refusal as the chat shows it: a note in the visitor's words."""
    return Update([note(told(refusal, lang, visitor, settings), lang)])


@dataclass
class ChatService:
    """Answers messages; shares only the client, the caches and the gates."""

    settings: Settings
    personas: PersonaFile
    catalog: ModelCatalog
    client: AsyncOpenAI | None
    guard: Guard
    attachments: Attachments
    answerer: Answerer

    @classmethod
    def from_settings(cls, settings: Settings, personas: PersonaFile, events: Events = stream_reply) -> ChatService:
        """The service as the app runs it: one Kimi client (if the Space has a key), its model list, the
        gates, the document cache; ``events`` is Kimi's event stream (tests may feed events directly)."""
        client = make_client(settings) if settings.has_key else None
        catalog = ModelCatalog(
            client, settings.default_model, settings.models_cache_seconds, settings.models_timeout, settings.allowed
        )
        guard = Guard(settings)
        answerer = Answerer(settings, guard, catalog, events)
        return cls(settings, personas, catalog, client, guard, Attachments(settings.max_file_mb), answerer)

    def persona(self, persona_id: str | None) -> Persona:
        """The persona by id; an unknown id (an old API script) gets the default one."""
        return self.personas.by_id.get(persona_id or "", self.personas.first)

    async def reply(
        self,
        message: str | Mapping[str, Any],
        history: list[Mapping[str, Any]],
        persona_id: str | None,
        model_id: str | None = None,
        temperature: float | None = None,
        lang: Lang = "en",
        visitor: Visitor | None = None,
    ) -> AsyncIterator[Update]:
        """Stream the reply to ``message`` (text, or Gradio's {"text", "files"}) as chat updates. Every
        refusal and failure becomes a note in the chat; nothing raises. A stop (Gradio cancels the task)
        closes the upstream stream wherever the reply is: waiting for a slot, reading a document, streaming."""
        visitor = visitor or Visitor()
        persona = self.persona(persona_id)
        visitor_message = VisitorMessage.parse(message)
        segment, stale = with_message(history, persona.id, visitor_message)
        conversation = turns(segment)
        refusal = await self._refusal(conversation, visitor_message, visitor, stale)
        async with self.guard.replying(visitor) as busy:
            refusal = refusal or busy or await self.guard.check_space(visitor)
            if refusal:
                yield refused(refusal, lang, visitor, self.settings)
                return
            earlier_tokens = conversation_tokens(segment)  # the page's own count, for the usage line only
            async for update in self._reply(
                persona, conversation, visitor_message, model_id, temperature, lang, visitor
            ):
                if update.usage is not None:
                    update.conversation_tokens = earlier_tokens + update.usage.total_tokens
                yield update

    async def _reply(
        self,
        persona: Persona,
        conversation: list[Turn],
        visitor_message: VisitorMessage,
        model_id: str | None,
        temperature: float | None,
        lang: Lang,
        visitor: Visitor,
    ) -> AsyncIterator[Update]:
        """A message past the gates: its model, its files made ready, an upstream slot, the answer."""
        own_client = make_client(self.settings, visitor.api_key) if visitor.api_key else None
        client = own_client or self.client
        assert client is not None
        try:
            model = await self.catalog.resolve(model_id or persona.model)
            if visitor_message.continues and model.always_thinks:  # Partial Mode is not documented with thinking
                yield refused(Refusal("cannot_continue_model", {"model": model.id}), lang, visitor, self.settings)
                return
            reply = Reply(persona, lang)
            ready: dict[str, Attachment] | None = None
            async for item in self._files(client, conversation, visitor_message, model, reply, visitor):
                if isinstance(item, Update):
                    yield item
                else:
                    ready = item
            if ready is None:  # refused: the notes say why
                return
            if self.guard.upstream_full(own_key=own_client is not None):
                yield Update([*reply.messages(), note(t("waiting", lang), lang)])
            async with self.guard.upstream_slot(own_key=own_client is not None):
                messages = build_messages(persona, conversation, lang, ready)
                key, continuing = cache_key(persona.id, conversation), visitor_message.continues
                target = target_for(self.settings, client, model, temperature, visitor, persona, key, continuing)
                async for update in self.answerer.answer(target, messages, reply):
                    yield update
        finally:
            if own_client is not None:
                await own_client.close()

    async def _files(
        self,
        client: AsyncOpenAI,
        conversation: list[Turn],
        visitor_message: VisitorMessage,
        model: ModelInfo,
        reply: Reply,
        visitor: Visitor,
    ) -> AsyncIterator[Update | dict[str, Attachment]]:
        """The files made ready for Kimi (documents read, images encoded); the last item is the files,
        or none when they are refused (the notes say why)."""
        persona, lang = reply.persona, reply.lang
        chosen = self.attachments.choose([turn.files for turn in conversation], visitor_message.files, persona, model)
        if isinstance(chosen, Refusal):
            yield refused(chosen, lang, visitor, self.settings)
            return
        documents = [p for p in chosen if kind_of(p) == "document"]
        names = ", ".join(Path(p).name for p in documents)
        if documents:
            reading = reply.step(t("reading", lang, names=names))
            yield Update(reply.messages())
        try:
            ready = await self.attachments.prepare(client, chosen)
        except FileUnreadable as exc:
            yield refused(Refusal("file_unreadable", {"name": exc.name}), lang, visitor, self.settings)
            return
        except Exception as exc:  # the files API failed: the same plain sentences as a chat failure
            failure = classify(exc)
            log_failure(failure, persona.id, model.id)
            yield refused(failure.refusal(self.settings.settings_url), lang, visitor, self.settings)
            return
        if documents:
            reply.step(t("read", lang, names=names), reading, done=True)
        yield ready

    async def _refusal(
        self, conversation: list[Turn], visitor_message: VisitorMessage, visitor: Visitor, stale: bool
    ) -> Refusal | None:
        """Why this message will not be sent; None if it may. Every message counts against the
        visitor's rate limit first, refused or not: refusals are requests too, and a flood of them
        must run out like any other (a ``stale`` Continue too). The visit's token budget is the
        server's own count."""
        earlier_turns = sum(turn.role == "user" for turn in conversation) - 1
        text = visitor_message.text or " ".join(visitor_message.files)
        files = len(visitor_message.files)
        refusal = await self.guard.check_rate(visitor) or self.guard.check_input(text, earlier_turns, files)
        if refusal or stale:
            return refusal or Refusal("cannot_continue")
        if self.client is None and not visitor.api_key:
            return Refusal("no_key", {"where": where_to_fix(self.settings.settings_url)})
        return await self.guard.check_visit(visitor)
