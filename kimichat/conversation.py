"""Gradio chat history -> the message list Kimi gets.

Gradio 6 hands history over as content blocks with metadata; Kimi wants plain
``{role, content: str}`` turns. Two rules live here:
- messages with a ``metadata.title`` (thinking, notes) are for the eye, never for Kimi;
- each reply is tagged with its persona, so a conversation's persona can be read back
  from the history itself and old turns never travel under another persona's prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from .i18n import Lang
from .personas import Persona

TAG_PREFIX = "persona:"


class KimiMessage(TypedDict):
    role: str
    content: str


def persona_tag(persona_id: str) -> dict[str, str]:
    """The metadata that marks a reply as written by ``persona_id`` (not shown)."""
    return {"id": TAG_PREFIX + persona_id}


def persona_of(message: Mapping[str, Any]) -> str | None:
    """The persona id a history message was tagged with, if any."""
    tag = (message.get("metadata") or {}).get("id")
    return tag[len(TAG_PREFIX) :] if isinstance(tag, str) and tag.startswith(TAG_PREFIX) else None


def conversation_persona(history: list[Mapping[str, Any]]) -> str | None:
    """Whose conversation this is: the persona of its latest tagged message."""
    return next((owner for m in reversed(history) if (owner := persona_of(m))), None)


def text_of(content: Any) -> str:
    """Plain text of a message's content: a string, a list of blocks, or a block."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, Iterable):
        return "".join(text_of(block) for block in content)
    return ""


def is_shown_only(message: Mapping[str, Any]) -> bool:
    """Thinking and notes carry a title: the visitor sees them, Kimi never does."""
    return bool((message.get("metadata") or {}).get("title"))


def current_segment(history: list[Mapping[str, Any]], persona_id: str) -> list[Mapping[str, Any]]:
    """The tail of ``history`` written under ``persona_id``.

    The UI starts a new chat when the persona changes; an API caller may not, so the
    history is cut after the last reply that another persona wrote.
    """
    for index in range(len(history) - 1, -1, -1):
        owner = persona_of(history[index])
        if owner is not None and owner != persona_id:
            return history[index + 1 :]
    return history


def turns(history: list[Mapping[str, Any]]) -> list[KimiMessage]:
    """History as alternating user/assistant turns with non-empty text.

    Kimi expects turns and rejects empty messages: a question that got no answer (its
    reply failed) gives way to the next one, split replies are joined, empties dropped.
    """
    out: list[KimiMessage] = []
    for message in history:
        role = message.get("role")
        if role not in ("user", "assistant") or is_shown_only(message):
            continue
        text = text_of(message.get("content")).strip()
        if not text:
            continue
        if out and out[-1]["role"] == role == "user":
            out[-1]["content"] = text
        elif out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def build_messages(persona: Persona, history: list[Mapping[str, Any]], message: str, lang: Lang) -> list[KimiMessage]:
    """System prompt, few-shot examples, this persona's past turns, then ``message``."""
    messages: list[KimiMessage] = [{"role": "system", "content": persona.prompt(lang)}]
    for shot in persona.few_shot:
        messages += [{"role": "user", "content": shot.user}, {"role": "assistant", "content": shot.assistant}]
    return messages + turns([*current_segment(history, persona.id), {"role": "user", "content": message}])


def estimate_tokens(message: KimiMessage) -> int:
    """A fast, deliberately high guess of a message's tokens, with no network call.

    Moonshot's exact count is an HTTP round trip (/tokenizers/estimate-token-count),
    too slow for every message. Its BPE tokenizer spends about one token on 1.5-2 CJK
    characters and on 4 Latin ones; counting one per CJK (non-ASCII) character and one
    per 3 ASCII characters overestimates both, so trimming happens before Kimi refuses.
    """
    text = message["content"]
    wide = sum(1 for ch in text if ord(ch) > 0x7F)
    return 4 + wide + (len(text) - wide) // 3


def fit_to_context(messages: list[KimiMessage], keep_head: int, budget: int) -> list[KimiMessage]:
    """Drop the oldest turns until ``messages`` fits ``budget`` tokens.

    The first ``keep_head`` messages (system prompt, few-shot) and the last one (the
    new question) always stay; turns go oldest first, a question with its answer.
    """
    head, body, last = messages[:keep_head], messages[keep_head:-1], messages[-1:]
    fixed = sum(map(estimate_tokens, head + last))
    sizes = [estimate_tokens(m) for m in body]
    total, start = fixed + sum(sizes), 0
    while total > budget and start < len(body):
        total -= sizes[start]
        start += 1
    while start < len(body) and body[start]["role"] != "user":  # never open on an answer
        start += 1
    return head + body[start:] + last
