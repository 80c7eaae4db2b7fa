"""A reply's requests to Kimi: messages -> requests -> the reply as it grows.

The loop, from the inside out: ``_stream`` folds one request's events into the reply and ends with
what the stream left (``Streamed``); ``_attempt`` is one try (fit the history, hold its cost against
the token ceilings, stream, settle) and ends with how it went (``Attempt``); ``_request`` tries again
while nothing is shown, or trims harder once; ``answer`` runs web-search rounds until Kimi answers.
Kimi's event stream is a parameter (``events``): the SDK's in the app, a script in the tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import astuple, dataclass, field, replace
from typing import Any

from openai import AsyncOpenAI

from .conversation import estimate_tokens, fit_to_context, new_turn_start
from .failures import Failure, FirstTokenTimeout, classify, log_failure
from .guard import Guard, Visitor
from .i18n import Lang, Refusal, t
from .kimi import ChatRequest, Event, Finish, KimiMessage, TextDelta, ThinkingDelta, ToolCallDelta, Usage
from .models import ModelCatalog, ModelInfo
from .personas import Persona
from .reply import Pace, Reply, Update, note
from .settings import Settings

MAX_SEARCH_ROUNDS = 5  # web-search requests in one reply; the next asks for the answer without the tool
Call = dict[str, Any]  # one tool call as Kimi sent it: id, type, function name and arguments
Events = Callable[[AsyncOpenAI, ChatRequest], AsyncIterator[Event]]  # Kimi's event stream for one request


@dataclass(frozen=True)
class Target:
    """Where a reply's requests go and how they are made: the client (the owner's, or one for a
    visitor's own key), the model, the temperature the visitor asked for (None: the persona's),
    whose limits pay, the thinking switch, the reply budget, whether Kimi may search the web,
    whether the reply continues the cut one the messages end with, and the conversation's
    ``prompt_cache_key``."""

    client: AsyncOpenAI
    model: ModelInfo
    temperature: float | None
    visitor: Visitor
    thinking: str
    max_tokens: int
    search: bool = False
    continuing: bool = False
    cache_key: str = ""

    def request(self, messages: list[KimiMessage], reply: Reply, search: bool) -> ChatRequest:
        """One request of the reply: these messages, with or without the web-search tool."""
        persona = reply.persona
        return ChatRequest(
            model=self.model,
            messages=self.prefilled(messages, persona.name.get(reply.lang) if persona.in_character else ""),
            max_tokens=self.max_tokens,
            temperature=self.temperature if self.temperature is not None else persona.temperature,
            top_p=persona.top_p,
            thinking=self.thinking,
            web_search=search,
            cache_key=self.cache_key,
        )

    def prefilled(self, messages: list[KimiMessage], character: str) -> list[KimiMessage]:
        """The messages with Moonshot's Partial Mode turn last: the cut reply to continue, or an empty
        turn named after the character (its role-play recipe), which the answer goes on from without
        repeating. Only where Moonshot documents it: never in a web-search loop, never to a request
        that thinks (undocumented there, so left out; a continuation turns both off)."""
        if self.search or self.model.thinks(self.thinking):
            return messages
        named: KimiMessage = {"name": character} if character else {}
        if self.continuing:
            return [*messages[:-1], {**messages[-1], **named, "partial": True}]
        if character:
            return [*messages, {"role": "assistant", **named, "content": "", "partial": True}]
        return messages


def reply_budget(settings: Settings, model: ModelInfo, persona: Persona, thinking: str) -> int:
    """``max_tokens`` for one request: the persona's or the owner's reply budget; for a request
    that thinks, at least the thinking budget (reasoning counts against it, and Moonshot advises
    16k or more); never more than a quarter of the model's window."""
    budget = persona.max_tokens or settings.max_reply_tokens
    if model.thinks(thinking):
        budget = max(budget, settings.thinking_reply_tokens)
    return min(budget, model.context_length // 4)


def target_for(
    settings: Settings,
    client: AsyncOpenAI,
    model: ModelInfo,
    temperature: float | None,
    visitor: Visitor,
    persona: Persona,
    cache_key: str = "",
    continuing: bool = False,
) -> Target:
    """Where a reply's requests go, and how they think. Moonshot's $web_search wants thinking off where
    it can be turned off: for the whole loop, the answering round too (its tool-call turns carry no
    reasoning to send back). A continuation neither searches nor thinks: Partial Mode goes with neither."""
    search = persona.web_search and not continuing
    thinking = "off" if continuing or (search and model.thinking_switch) else persona.thinking
    budget = reply_budget(settings, model, persona, thinking)
    return Target(client, model, temperature, visitor, thinking, budget, search, continuing, cache_key)


@dataclass(frozen=True)
class Streamed:
    """What one request's stream left, beyond the text: Kimi's usage, and the tool calls it asked for."""

    usage: Usage | None = None
    calls: tuple[Call, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """How one try ended: answered (its usage; the tool-call turn to send back, when Kimi asked to
    search), failed (``failure``: the caller tries again or not), or refused (``refusal``: what the
    visitor is told; nothing more is sent)."""

    usage: Usage | None = None
    tool_turn: list[KimiMessage] = field(default_factory=list)
    failure: Failure | None = None
    refusal: Refusal | None = None


def tool_turn(calls: tuple[Call, ...], content: str, reasoning: str) -> list[KimiMessage]:
    """The assistant's tool-call turn as it came (its content; its reasoning, which models that
    always think refuse a tool-call turn without; the calls unchanged, ``builtin_function`` type
    included), then each call's arguments echoed back: Moonshot runs ``$web_search`` itself and only
    needs the loop closed."""
    turn: KimiMessage = {"role": "assistant", "content": content, "tool_calls": list(calls)}
    if reasoning:
        turn["reasoning_content"] = reasoning
    answers: list[KimiMessage] = [
        {"role": "tool", "tool_call_id": c["id"], "name": c["function"]["name"], "content": c["function"]["arguments"]}
        for c in calls
    ]
    return [turn, *answers]


def _gather(calls: dict[int, Call], delta: ToolCallDelta) -> None:
    """A tool call's fragment added to the call it belongs to (Moonshot's type kept as it came)."""
    call = calls.setdefault(delta.index, {"id": "", "type": "", "function": {"name": "", "arguments": ""}})
    call["id"] = delta.id or call["id"]
    call["type"] = delta.type or call["type"]
    call["function"]["name"] = delta.name or call["function"]["name"]
    call["function"]["arguments"] += delta.arguments


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


def told(refusal: Refusal, lang: Lang, visitor: Visitor, settings: Settings) -> str:
    """A refusal in the visitor's words (every one the chat shows is worded here); a limit that
    signing in would raise says so."""
    if refusal.key in ("rate_limited", "token_limited") and settings.sign_in and not visitor.signed_in:
        refusal = replace(refusal, then=Refusal("sign_in_for_more", {"factor": settings.signed_in_factor}))
    return refusal.words(lang)


def too_big(
    fitted: list[KimiMessage],
    head: int,
    size: int,
    budget: int,
    model: ModelInfo,
    offered: tuple[ModelInfo, ...],
    request_limit: int,
) -> Refusal:
    """Why the request cannot go. A document of the new question that does not fit: say so, and
    name an offered model whose window takes it, if one does (a smaller window than needed first)."""
    if all(m["role"] != "system" for m in fitted[new_turn_start(fitted, head) :]):
        return Refusal("request_too_big", {"tokens": size, "limit": budget})
    roomy = [  # the reply takes at most a quarter of a window: three quarters are the request's
        m
        for m in sorted(offered, key=lambda m: m.rank, reverse=True)
        if min(m.context_length * 3 // 4, request_limit) >= size
    ]
    advice = (
        Refusal("document_try_model", {"model": min(roomy, key=lambda m: m.context_length).id})
        if roomy
        else Refusal("document_space_limit", {"limit": request_limit})
    )
    return Refusal("document_too_big", {"tokens": size, "model": model.id, "limit": budget}, then=advice)


@dataclass
class Answerer:
    """Answers a message past the gates; shares only the settings, the gates and the model list."""

    settings: Settings
    guard: Guard
    catalog: ModelCatalog
    events: Events

    async def answer(self, target: Target, messages: list[KimiMessage], reply: Reply) -> AsyncIterator[Update]:
        """The reply's requests: one, or more when Kimi asks to search the web (each search round is
        a request of its own, up to MAX_SEARCH_ROUNDS); the last update has the usage."""
        lang, usage, searches, search_step = reply.lang, None, 0, None
        while True:
            search = target.search and searches < MAX_SEARCH_ROUNDS
            async for item in self._request(target, messages, reply, search):
                if isinstance(item, Attempt):
                    attempt = item
                    continue
                if search_step is not None and reply.text:  # the search ran in this request; text flows
                    reply.step(t("searched", lang, n=searches), search_step, done=True)
                yield item
            usage = _summed(usage, attempt.usage)
            if attempt.refusal:
                reply.notes.append(told(attempt.refusal, lang, target.visitor, self.settings))
                yield Update(reply.messages(), model=target.model.id)
                return
            if attempt.tool_turn and search:  # Kimi asks to search (as offered): close the loop, go on
                searches += 1
                search_step = reply.step(t("searching", lang), search_step)
                if searches == MAX_SEARCH_ROUNDS:  # the next request asks for the answer, tool not offered
                    reply.notes.append(t("search_cut_short", lang, n=searches))
                yield Update(reply.messages())
                messages = [*messages, *attempt.tool_turn]
                continue
            if search_step is not None:
                reply.step(t("searched", lang, n=searches), search_step, done=True)
            reply.tokens = usage.total_tokens if usage else 0
            yield Update(reply.messages(), usage=usage, model=target.model.id)
            return

    async def _request(
        self, target: Target, messages: list[KimiMessage], reply: Reply, search: bool
    ) -> AsyncIterator[Update | Attempt]:
        """One request, tried again while no text has been shown (never after: no text is shown
        twice), once with the history trimmed harder if Kimi finds it too long; the last item is
        how it ended (a failure that is not tried again ends as a refusal in the visitor's words)."""
        # Every request is bounded here, by the app's own estimate, whatever history the page sent.
        budget = min(target.model.context_length - target.max_tokens, self.settings.max_request_tokens)
        tries, trimmed = 0, False
        while True:
            async for item in self._attempt(target, messages, reply, budget, search):
                if isinstance(item, Attempt):
                    attempt = item
                else:
                    yield item
            failure = attempt.failure
            if failure is None:
                yield attempt
                return
            if not reply.started and failure.kind == "context_too_long" and not trimmed:
                budget, trimmed = budget // 2, True
                continue
            delay = failure.retry_delay(tries)
            if not reply.started and delay is not None and tries < self.settings.max_retries:
                tries += 1
                yield Update([*reply.messages(), note(t("retrying", reply.lang), reply.lang)])
                await asyncio.sleep(delay)
                continue
            wording = failure.midway if reply.started else failure.refusal
            yield replace(attempt, refusal=wording(self.settings.settings_url))
            return

    async def _attempt(
        self, target: Target, messages: list[KimiMessage], reply: Reply, budget: int, search: bool
    ) -> AsyncIterator[Update | Attempt]:
        """One try: fit the history to ``budget`` (the oldest turns go first; what cannot go is
        refused), hold what it may cost against the visitor's and the Space's token ceilings, stream
        it, and settle the hold to its usage. The last item is how it ended."""
        persona = reply.persona
        head = 1 + 2 * len(persona.few_shot)
        fitted = fit_to_context(messages, head, budget)
        size = sum(map(estimate_tokens, fitted))
        if size > budget:
            yield Attempt(
                refusal=too_big(
                    fitted,
                    head,
                    size,
                    budget,
                    target.model,
                    self.catalog.cached_models,
                    self.settings.max_request_tokens,
                )
            )
            return
        request = target.request(fitted, reply, search)
        reservation = await self.guard.reserve(target.visitor, size + target.max_tokens)
        if isinstance(reservation, Refusal):
            yield Attempt(refusal=reservation)
            return
        text_before, thinking_before, streamed = len(reply.text), len(reply.thinking), Streamed()
        try:
            async for item in self._stream(target.client, request, reply):
                if isinstance(item, Streamed):
                    streamed = item
                else:
                    yield item
            turn = (
                tool_turn(streamed.calls, reply.text[text_before:], reply.thinking[thinking_before:])
                if streamed.calls
                else []
            )
            attempt = Attempt(usage=streamed.usage, tool_turn=turn)
        except Exception as exc:  # every failure becomes a sentence, never a traceback
            attempt = Attempt(failure=classify(exc))
            log_failure(attempt.failure, persona.id, target.model.id)
            reply.end_thinking()
        finally:  # usage as Kimi reported it; else (failed, stopped) the request and what came of it
            streamed_text = reply.text[text_before:] + reply.thinking[thinking_before:]
            estimate = size + estimate_tokens({"role": "assistant", "content": streamed_text})
            await self.guard.settle(reservation, streamed.usage.total_tokens if streamed.usage else estimate)
        yield attempt

    async def _stream(
        self, client: AsyncOpenAI, request: ChatRequest, reply: Reply
    ) -> AsyncIterator[Update | Streamed]:
        """One request's events folded into the reply, shown at most N times a second; the last item
        is what the stream left: its usage and the tool calls Kimi asked for."""
        usage, calls, pace = None, {}, Pace(1.0 / self.settings.updates_per_second)
        async with aclosing(self.events(client, request)) as raw:  # closing it ends the HTTP stream
            async for event in _first_token_deadline(raw, self.settings.first_token_timeout):
                if isinstance(event, TextDelta):
                    reply.add_text(event.text)
                elif isinstance(event, ThinkingDelta):
                    reply.add_thinking(event.text)
                elif isinstance(event, ToolCallDelta):
                    _gather(calls, event)
                    continue
                elif isinstance(event, Usage):
                    usage = event
                    continue
                elif isinstance(event, Finish):
                    _finished(event.reason, request.model, reply)
                    break
                if pace.due(time.monotonic()):
                    yield Update(reply.messages())
        if not calls:  # a search round's thinking goes on in the next request
            reply.end_thinking()
        yield Streamed(usage or Usage(), tuple(calls[i] for i in sorted(calls)))


def _finished(reason: str, model: ModelInfo, reply: Reply) -> None:
    """A reply the length limit cut can be continued (Partial Mode), except on a model that always
    thinks; one the filter cut cannot. The note says which."""
    if reason == "length":
        reply.continuable = bool(reply.text) and not model.always_thinks
        reply.notes.append(t("length_continue" if reply.continuable else "length", reply.lang))
    elif reason == "content_filter":
        reply.notes.append(t("filtered", reply.lang))


def _summed(total: Usage | None, more: Usage | None) -> Usage | None:
    """Usage summed over the requests of one reply (search rounds are requests too)."""
    if more is None:
        return total
    if total is None:
        return more
    return Usage(*(a + b for a, b in zip(astuple(total), astuple(more), strict=True)))
