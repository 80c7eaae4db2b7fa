"""A reply as it grows, and what the chat shows of it: plain message dicts (Gradio takes them
as they are), so the reply is rendered and tested without a browser.

Besides the answer, a reply shows its steps (reading, searching), its thinking (a collapsible
box with its duration) and notes (limits, failures); those carry a ``metadata.title``, so they
are for the eye and never go back to Kimi. Redraws are paced: nobody reads 50 a second, and
each one costs the server a diff and a send.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .i18n import Lang, t
from .kimi import Usage
from .markup import as_written, defuse
from .personas import Persona
from .tags import reply_tags

Message = dict[str, Any]
NOTE, THINKING = "⚠️ ", "💭 "  # how a note's title begins, and the thinking box's


@dataclass
class Update:
    """What the chat shows now; ``usage`` and ``model`` are set on the last update."""

    messages: list[Message]
    usage: Usage | None = None
    model: str = ""
    conversation_tokens: int = 0  # on the last update: the whole conversation's tokens, this reply included


def note(text: str, lang: Lang) -> Message:
    """A message styled apart from the answer (it has a title), never sent to Kimi."""
    return {"role": "assistant", "content": text, "metadata": {"title": NOTE + t("note", lang)}}


@dataclass
class Reply:
    """The reply as it grows; ``messages()`` renders it for the chat."""

    persona: Persona
    lang: Lang
    text: str = ""
    thinking: str = ""
    thinking_started: float = 0.0
    thinking_seconds: float | None = None
    steps: list[tuple[str, bool]] = field(default_factory=list)  # (title, done): reading, searching
    notes: list[str] = field(default_factory=list)
    tokens: int = 0
    continuable: bool = False  # the length limit cut the answer, and the model can go on from it

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

    def step(self, title: str, index: int | None = None, done: bool = False) -> int:
        """Show (or, given ``index``, update) a step before the answer: reading, searching."""
        if index is None:
            self.steps.append((title, done))
            return len(self.steps) - 1
        self.steps[index] = (title, done)
        return index

    def messages(self) -> list[Message]:
        out: list[Message] = [
            {"role": "assistant", "content": "", "metadata": {"title": title, "status": "done" if done else "pending"}}
            for title, done in self.steps
        ]
        if self.thinking:
            metadata: dict[str, Any] = {"title": THINKING + t("thinking", self.lang)}
            if self.thinking_seconds is None:
                metadata["status"] = "pending"
            else:
                metadata.update(status="done", duration=self.thinking_seconds)
            out.append({"role": "assistant", "content": defuse(self.thinking), "metadata": metadata})
        if self.text:
            out.append(
                {
                    "role": "assistant",
                    "content": defuse(self.text),
                    "metadata": reply_tags(self.persona.id, self.tokens, cut=self.continuable),
                }
            )
        out += [note(text, self.lang) for text in self.notes]
        if self.continuable:  # the chat shows the last message's options: Continue
            choice = t("continue", self.lang)
            out[-1] = {**out[-1], "options": [{"label": choice, "value": choice}]}
        return out


def plain(messages: list[Message]) -> tuple[str, list[str]]:
    """A reply as an agent reads it: its steps (what it read or searched, a line each) above the
    answer as Kimi wrote it; and its notes (why it stopped, or was refused) apart. No thinking."""
    lines, notes = [], []
    for message in messages:
        title, content = (message.get("metadata") or {}).get("title", ""), str(message.get("content") or "")
        if title.startswith(NOTE):
            notes.append(content)
        elif not title.startswith(THINKING):
            lines.append(title or as_written(content))
    return "\n\n".join(line for line in lines if line), notes


@dataclass
class Pace:
    """When a streaming reply is redrawn: the first piece at once, then one beat per ``interval``.

    Beats are counted from the last beat, not from the last redraw: pieces seldom land on
    the beat, and waiting a whole interval after each late redraw slowed 11 redraws a
    second to the token cadence's 10 (at 50 tokens a second). After a long silence the
    beat starts again from the piece that broke it, so no burst of redraws follows.
    """

    interval: float
    next: float = float("-inf")

    def due(self, now: float) -> bool:
        if now < self.next:
            return False
        late = now - self.next
        self.next = self.next + self.interval if late < self.interval else now + self.interval
        return True
