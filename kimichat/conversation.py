"""Gradio chat history -> the message list Kimi gets.

Gradio 6 hands history over as content blocks with metadata; Kimi wants plain
``{role, content: str}`` turns. Three rules live here:
- messages with a ``metadata.title`` (thinking, notes) are for the eye, never for Kimi;
- each reply is tagged with its persona, so a conversation's persona can be read back
  from the history itself and old turns never travel under another persona's prompt;
- a Continue (the option a reply cut by the length limit offers) is not a question: the reply
  after it goes on from the cut one, word for word, and Kimi sees the two as one answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .attachments import Attachment
from .i18n import LANGS, Lang, t
from .kimi import KimiMessage
from .personas import Persona
from .tags import persona_of, tokens_of, was_cut

CONTINUE = frozenset(t("continue", lang) for lang in LANGS)  # what the Continue option sends, in any language


@dataclass
class Turn:
    """One side's say in the conversation: its text and the files it came with."""

    role: str
    text: str
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VisitorMessage:
    """What a visitor sends: text and the paths of the files with it. The one shape of a new
    message, however it arrives: Gradio's multimodal ``{"text", "files"}`` (the page, /chat;
    files as paths or FileData dicts) or a plain string (an old API script)."""

    text: str
    files: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | None) -> VisitorMessage:
        if value is None or isinstance(value, str):
            return cls(value or "")
        files = (f.get("path") if isinstance(f, Mapping) else f for f in value.get("files") or [])
        return cls(str(value.get("text") or ""), tuple(str(f) for f in files if f))

    @property
    def continues(self) -> bool:
        """Whether this is the Continue option a cut reply offered (a typed "continue" is a question)."""
        return not self.files and self.text.strip() in CONTINUE

    def as_history(self) -> dict[str, Any]:
        """This message as a history entry, files first, as the chat shows them."""
        blocks: list[dict[str, Any]] = [{"type": "file", "file": {"path": p}} for p in self.files]
        if self.text:
            blocks.append({"type": "text", "text": self.text})
        return {"role": "user", "content": blocks}


def conversation_persona(history: list[Mapping[str, Any]]) -> str | None:
    """Whose conversation this is: the persona of its latest tagged message."""
    return next((owner for m in reversed(history) if (owner := persona_of(m))), None)


def with_message(
    history: list[Mapping[str, Any]], persona_id: str, message: VisitorMessage
) -> tuple[list[Mapping[str, Any]], bool]:
    """This persona's part of ``history`` with the new message last, and whether the message is a
    Continue with nothing to continue. A Continue is no question of its own: the conversation ends
    with the cut reply it goes on from."""
    segment = current_segment(history, persona_id)
    if message.continues:
        return segment, not ends_cut(segment, persona_id)
    return [*segment, message.as_history()], False


def ends_cut(history: list[Mapping[str, Any]], persona_id: str) -> bool:
    """Whether the conversation's last word is a reply by ``persona_id`` that the length limit cut
    (only then is there something to continue: not after another question, nor another persona)."""
    said = [m for m in history if not is_shown_only(m)]
    return bool(said) and persona_of(said[-1]) == persona_id and was_cut(said[-1])


def cache_key(persona_id: str, conversation: list[Turn]) -> str:
    """Kimi's ``prompt_cache_key`` for this conversation: the same on every turn (the persona and the
    first question), and saying nothing of who asks."""
    first = conversation[0].text if conversation else ""
    return "kimichat-" + hashlib.sha256(f"{persona_id}\0{first}".encode()).hexdigest()[:32]


def conversation_tokens(history: list[Mapping[str, Any]]) -> int:
    """Tokens spent so far, summed from the counts the replies carry."""
    return sum(tokens_of(message) for message in history)


def text_of(content: Any) -> str:
    """Plain text of a message's content: a string, a list of blocks, or a block."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, Iterable):
        return "".join(text_of(block) for block in content)
    return ""


def files_of(content: Any) -> list[str]:
    """Paths of the files in a message's content blocks."""
    blocks = content if isinstance(content, list) else [content]
    paths = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        file = block.get("file") if block.get("type") == "file" else block  # UI blocks, or API {"path"}
        path = file.get("path") if isinstance(file, Mapping) else None
        if path:
            paths.append(str(path))
    return paths


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


def turns(history: list[Mapping[str, Any]]) -> list[Turn]:
    """History as alternating user/assistant turns with text or files.

    Gradio shows a message's files and its text as separate user messages: they are one
    turn. A question whose reply failed (a note stands after it) gives way to the next
    question; split replies are joined, a continued one word for word (the Continue itself is
    no turn); empty messages are dropped (Kimi rejects them).
    """
    out: list[Turn] = []
    open_turn = False  # may the next user message join the last turn?
    going_on = False  # does the next reply continue the last one?
    for message in history:
        role = message.get("role")
        if is_shown_only(message):
            open_turn = False
            continue
        if role not in ("user", "assistant"):
            continue
        content = message.get("content")
        text, files = text_of(content), files_of(content)
        if role == "user" and out and out[-1].role == "assistant" and VisitorMessage(text, tuple(files)).continues:
            going_on = True
            continue
        if not (text.strip() or files):
            open_turn = open_turn and role == "user"  # an empty reply closes its question
            continue
        text = text if role == "assistant" else text.strip()  # a cut reply may end mid-space
        last = out[-1] if out else None
        if last and last.role == role == "user" and not open_turn:
            out[-1] = Turn("user", text, files)
        elif last and last.role == role:
            joint = "" if going_on and role == "assistant" else "\n\n"  # a continuation goes on mid-sentence
            last.text = joint.join(part for part in (last.text, text) if part)
            last.files += files
        else:
            out.append(Turn(role, text, files))
        open_turn, going_on = True, False
    return out


def build_messages(
    persona: Persona,
    conversation: list[Turn],
    lang: Lang,
    attachments: Mapping[str, Attachment] | None = None,
) -> list[KimiMessage]:
    """System prompt, few-shot examples, then ``conversation`` (this persona's turns, the new one last).

    A document goes in as a system message of its own just before the question it came
    with, as Moonshot documents; images become ``image_url`` parts of their question.
    """
    attachments = attachments or {}
    messages: list[KimiMessage] = [{"role": "system", "content": persona.prompt(lang)}]
    for shot in persona.few_shot:
        messages += [{"role": "user", "content": shot.user}, {"role": "assistant", "content": shot.assistant}]
    for turn in conversation:
        ready = [attachments[path] for path in turn.files if path in attachments]
        messages += [{"role": "system", "content": a.data} for a in ready if a.kind == "document"]
        images = [{"type": "image_url", "image_url": {"url": a.data}} for a in ready if a.kind == "image"]
        text = turn.text or " ".join(Path(path).name for path in turn.files)  # an image-only turn
        if images:
            messages.append({"role": turn.role, "content": [*images, {"type": "text", "text": text}]})
        elif text:
            messages.append({"role": turn.role, "content": text})
    return messages


def estimate_tokens(message: KimiMessage) -> int:
    """A fast, deliberately high guess of a message's tokens, with no network call.

    Moonshot's exact count is an HTTP round trip (/tokenizers/estimate-token-count),
    too slow for every message. Its BPE tokenizer spends about one token on 1.5-2 CJK
    characters and on 4 Latin ones; counting one per CJK (non-ASCII) character and one
    per 3 ASCII characters overestimates both, so trimming happens before Kimi refuses.
    """
    content = message["content"]
    if isinstance(content, list):  # an image costs about a thousand tokens whatever its size
        text = "".join(part.get("text", "") for part in content)
        extra = 1000 * sum(part.get("type") == "image_url" for part in content)
    else:
        text, extra = content, 0
    wide = sum(1 for ch in text if ord(ch) > 0x7F)
    return 4 + extra + wide + (len(text) - wide) // 3


def new_turn_start(messages: list[KimiMessage], keep_head: int) -> int:
    """Where the new question begins: its documents (system messages just before it) belong to it,
    and so do the search rounds after it (a tool-call turn and its answers)."""
    start = max(
        (i for i, m in enumerate(messages) if m["role"] == "user" and i >= keep_head), default=len(messages) - 1
    )
    while start > keep_head and messages[start - 1]["role"] == "system":
        start -= 1
    return start


def fit_to_context(messages: list[KimiMessage], keep_head: int, budget: int) -> list[KimiMessage]:
    """Drop the oldest turns until ``messages`` fits ``budget`` tokens.

    The first ``keep_head`` messages (system prompt, few-shot) and the new question with its
    documents and search rounds always stay; turns go oldest first, a question with its answer.
    """
    tail = new_turn_start(messages, keep_head)
    head, body, last = messages[:keep_head], messages[keep_head:tail], messages[tail:]
    fixed = sum(map(estimate_tokens, head + last))
    sizes = [estimate_tokens(m) for m in body]
    total, start = fixed + sum(sizes), 0
    while total > budget and start < len(body):
        total -= sizes[start]
        start += 1
    while start < len(body) and body[start]["role"] == "assistant":  # never open on an answer
        start += 1
    return head + body[start:] + last
