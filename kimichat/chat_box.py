"""The chat box: chatbot, message box, saved chats, and the events that run a reply.

Built from plain Gradio blocks rather than ``gr.ChatInterface`` for speed. ChatInterface's
browser sends eight requests per message (two of them queue joins, four carrying the whole
conversation or every saved conversation). Here a message is one request: the queued event
that streams the reply. The page itself moves the message out of the box into the chat
and locks the box (SEND_JS), unlocks it after the reply (IDLE_JS), and keeps and lists the
saved chats in the browser, where they live. A lock made by the server would cost a
request and a rebuilt component per message. Stop is a small request of its own (Stops).

The same steps serve a typed message, an example button, retry and edit: each puts the
message in ``pending`` and at the end of the chat, and the queued ``respond`` answers
whatever is pending.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio_client.utils import get_mimetype

from .chat import split_message
from .conversation import text_of

Message = dict[str, Any]

# Saved chats are keyed and encrypted with fixed values so they survive a restart of the
# Space (Gradio's defaults are random per launch). The data never leaves the browser.
STORAGE_KEY = "kimi-persona-chat/conversations/v1"
STORAGE_SECRET = "kimi-persona-chat-local-history"

STATIC = Path(__file__).parent / "static"
TITLES_JS = (STATIC / "titles.js").read_text(encoding="utf-8").strip()
# save.js and forget.js name the saved chats with titles.js (TITLES): all in the browser.
SAVE_JS = (STATIC / "save.js").read_text(encoding="utf-8").replace("TITLES(", f"({TITLES_JS})(")
FORGET_JS = (STATIC / "forget.js").read_text(encoding="utf-8").replace("TITLES(", f"({TITLES_JS})(")

# The message box while a reply streams: locked, with a stop button; and after it. Set by the
# page (a js step's output may be a prop update), so no request is spent on them.
BUSY = {"__type__": "update", "interactive": False, "submit_btn": False, "stop_btn": True}
IDLE = {"__type__": "update", "interactive": True, "submit_btn": True, "stop_btn": False}
# Each message gets a new ``turn`` (the page's clock), so a stop is for that reply and no later one.
LOCK_JS = f"() => [{json.dumps(BUSY)}, Date.now()]"
IDLE_JS = f"() => ({json.dumps(IDLE)})"
SEND_JS = (STATIC / "send.js").read_text(encoding="utf-8").replace("BUSY", json.dumps(BUSY))


class Stops:
    """The stop button's requests, by page session and turn. The reply checks between two
    pieces of its stream and ends there as a finished reply (a request made while it waits
    in the queue ends it before it starts). Gradio's own ``cancels`` now and then left the
    page showing "Error" over the chat: its page fails on the cancelled event's last message.
    """

    def __init__(self) -> None:
        self._asked: dict[str, float] = {}

    def ask(self, session: str, turn: float | None) -> None:
        if turn is not None:
            self._asked[session] = turn

    def watch(self, session: str, turn: float | None) -> Callable[[], bool]:
        """Whether a stop has been asked for this turn; a stop for an earlier turn (one that
        came after its reply had ended) is dropped."""
        if self._asked.get(session) != turn:
            self._asked.pop(session, None)
        return lambda: turn is not None and self._asked.get(session) == turn

    def forget(self, session: str, turn: float | None) -> None:
        if self._asked.get(session) == turn:
            del self._asked[session]


@dataclass
class ChatBox:
    """The chat's components; ``slot`` is this chat's place among the saved ones (None: unsaved),
    ``pending`` the message the next reply answers (a hidden box, so Gradio checks its files
    as it checks the visible box's: only uploads), ``turn`` that message's mark for stopping."""

    chatbot: gr.Chatbot
    textbox: gr.MultimodalTextbox
    usage: gr.Markdown
    saved: gr.BrowserState
    slot: gr.Number
    history: gr.Dataset
    pending: gr.MultimodalTextbox
    turn: gr.Number
    stops: Stops = field(default_factory=Stops)


def user_messages(message: Any) -> list[Message]:
    """The visitor's message as chat messages: each file, then the text (as ChatInterface shows them)."""
    text, files = split_message(message or "")
    content: list[Any] = [{"path": path} for path in files]
    if text:
        content.append(text)
    return [{"role": "user", "content": content}] if content else []


def for_page(messages: list[Message]) -> list[Message]:
    """Messages in the form the page's chatbot takes, the very form ``gr.Chatbot.postprocess``
    gives (a test holds them equal). The streaming reply skips Gradio's postprocess, which costs
    a worker-thread hop and a pydantic model per message on every update of every stream."""
    return [
        {
            "role": m["role"],
            "metadata": m.get("metadata"),
            "content": [
                _page_part(part) for part in (m["content"] if isinstance(m["content"], list) else [m["content"]])
            ],
            "options": m.get("options"),
        }
        for m in messages
    ]


def _page_part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"text": inspect.cleandoc(part), "type": "text"}
    if hasattr(part, "model_dump"):
        part = part.model_dump()
    if part.get("type") == "text":
        return {"text": part["text"], "type": "text"}
    file = part.get("file") if part.get("type") == "file" else part
    if hasattr(file, "model_dump"):
        file = file.model_dump()
    path = file["path"]
    return {
        "file": {
            "path": path,
            "url": file.get("url"),
            "size": file.get("size"),
            "orig_name": file.get("orig_name"),
            "mime_type": file.get("mime_type") if file is not part else get_mimetype(path),  # as Gradio does
            "is_stream": file.get("is_stream", False),
            "meta": {"_type": "gradio.FileData"},
        },
        "alt_text": part.get("alt_text"),
        "type": "file",
    }


def pop_last_turn(history: list[Message]) -> tuple[list[Message], dict[str, Any]]:
    """The chat without its last user turn and the reply to it, and that turn as a message."""
    i = len(history) - 1
    while i >= 0 and history[i]["role"] == "assistant":
        i -= 1
    while i >= 0 and history[i]["role"] == "user":
        i -= 1
    text, files = "", []
    for message in history[i + 1 :]:
        if message["role"] != "user":
            continue
        content = message["content"]
        for item in content if isinstance(content, list) else [content]:
            if isinstance(item, dict) and item.get("type") == "file":
                files.append(item["file"])
            elif isinstance(item, dict) and "path" in item:
                files.append(item)
            else:
                text += text_of(item)
    return history[: i + 1], {"text": text, "files": files}


def render(first_value: list[Message], avatar: str, placeholder: Any, accepted: list[str], latex: list) -> ChatBox:
    """Lay the chat box out where it is called (inside a ``gr.Blocks``)."""
    saved = gr.BrowserState([], storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
    with gr.Row(equal_height=False, elem_id="chat-row"):
        with gr.Column(scale=1, min_width=160, elem_id="history-column"):
            history = gr.Dataset(
                components=[gr.Textbox(visible=False)],
                show_label=False,
                layout="table",
                type="index",
                elem_id="history",
            )
        with gr.Column(scale=6):
            chatbot = gr.Chatbot(
                value=first_value,
                latex_delimiters=latex,
                buttons=["copy", "copy_all"],
                avatar_images=(None, avatar),
                elem_id="chatbot",
                show_label=False,
                scale=1,
                height="64vh",
                feedback_options=None,
                editable="user",
            )
            textbox = gr.MultimodalTextbox(
                placeholder=placeholder,
                show_label=False,
                submit_btn=True,
                stop_btn=False,
                autofocus=True,
                file_types=accepted,
                file_count="multiple",
                sources=["upload"],
                elem_id="message",
            )
    usage = gr.Markdown(elem_id="usage")
    slot = gr.Number(None, visible=False, precision=0)
    pending = gr.MultimodalTextbox(visible=False)
    turn = gr.Number(None, visible=False, precision=0)
    return ChatBox(chatbot, textbox, usage, saved, slot, history, pending, turn)


def wire(box: ChatBox, respond: Callable[..., AsyncIterator[tuple]], inputs: list[gr.Component], concurrency: int):
    """Connect the chat's events. ``respond(message, history, turn, *inputs)`` streams (chat,
    usage line) and ends early when ``box.stops`` says this turn was stopped."""
    # always_last: a quick step is never dropped for an earlier run of it still marked pending
    # (with Gradio's default "once", stop -> retry -> stop now and then left the chat in an error state)
    quiet: dict[str, Any] = {
        "api_visibility": "undocumented",
        "queue": False,
        "show_progress": "hidden",
        "trigger_mode": "always_last",
    }
    saving = [box.saved, box.slot, box.history]
    save = {"fn": None, "inputs": [box.chatbot, box.saved, box.slot], "outputs": saving, "js": SAVE_JS}
    in_page = {"fn": None, "inputs": None, "outputs": [box.textbox], **quiet}
    again = [box.chatbot, box.pending]  # the chat with the message shown in it, and the message

    def answer(start: Any, locked: bool = False) -> None:
        """After ``start`` has set ``pending`` (and locked the box, if ``locked``): stream the
        reply, save the chat, unlock the box."""
        if not locked:
            start = start.then(js=LOCK_JS, **{**in_page, "outputs": [box.textbox, box.turn]})
        event = start.then(
            respond,
            [box.pending, box.chatbot, box.turn, *inputs],
            [box.chatbot, box.usage],
            api_visibility="undocumented",
            concurrency_limit=concurrency,
            concurrency_id="chat",
            show_progress="minimal",
            # Values as the page sent them (Gradio still checks that files are uploads first):
            # preprocessing would cost a worker-thread hop per input, and attachments.py checks
            # file types itself, with a plainer message than Gradio's error.
            preprocess=False,
            postprocess=False,  # respond yields for_page() messages
        )
        event.then(**save, **quiet).then(js=IDLE_JS, **in_page)

    sending = box.textbox.submit(
        None, [box.textbox, box.chatbot], [box.pending, box.textbox, box.turn, box.chatbot], js=SEND_JS, **quiet
    )
    answer(sending, locked=True)
    answer(box.chatbot.option_select(_option, [box.chatbot], again, **quiet))
    answer(box.chatbot.retry(_retry, [box.chatbot], again, **quiet))
    answer(box.chatbot.edit(_edit, [box.chatbot], again, **quiet))

    async def stop(turn: float | None, request: gr.Request) -> None:
        box.stops.ask(request.session_hash or "", turn)

    box.textbox.stop(stop, [box.turn], None, **quiet)
    box.chatbot.undo(pop_last_turn, [box.chatbot], [box.chatbot, box.textbox], **quiet).then(**save, **quiet)
    box.chatbot.clear(None, [box.saved, box.slot], saving, js=FORGET_JS, **quiet)


async def _retry(chat: list[Message]) -> tuple:
    """Async, as every quick step here: Gradio runs a plain function in a worker thread."""
    rest, message = pop_last_turn(chat)
    return _sent(rest, message)


async def _option(chat: list[Message], option: gr.SelectData) -> tuple:
    """An example button under the greeting sends its text."""
    return _sent(chat, {"text": option.value, "files": []})


async def _edit(chat: list[Message], edit: gr.EditData) -> tuple:
    """An edited message is sent again in place of the old one; what followed it goes."""
    index = edit.index[0] if isinstance(edit.index, (list, tuple)) else edit.index
    return _sent(chat[:index], {"text": str(edit.value), "files": []})


def _sent(chat: list[Message], message: dict[str, Any]) -> tuple:
    """The chat with ``message`` shown at its end (as send.js shows a typed one), and the message."""
    return [*chat, *user_messages(message)], message
