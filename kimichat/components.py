"""The chat's message box and chatbot, each with its API schema built once per class.

ChatInterface locks and unlocks the message box for every message by returning a new
``gr.MultimodalTextbox``, and a persona switch or a Chinese page sends the chatbot a new look;
Gradio builds the config of each new component, and that config holds the JSON schema of the
component's data model, which pydantic generated anew every time: 3 ms of CPU a message at 100
visitors (``benchmarks/profile.py``), for a schema that depends only on the class. These
subclasses compute it once. ``api_info`` is a method the custom-components guide ("The
Backend") has a component implement; ``is_template`` makes a subclass show as its parent, as
Gradio's own ``gr.LoginButton`` and ``gr.ClearButton`` do: the page sees Gradio's components,
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

SCHEMAS: dict[type, dict[str, Any]] = {}  # class -> its api_info, shared by every instance


def schema_once(cls: type, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``cls``'s API schema, computed by ``compute()`` the first time only."""
    if cls not in SCHEMAS:
        SCHEMAS[cls] = compute()
    return SCHEMAS[cls]


class MessageBox(gr.MultimodalTextbox):
    """``gr.MultimodalTextbox``, its API schema built once."""

    is_template = True

    def api_info(self) -> dict[str, Any]:
        return schema_once(MessageBox, super().api_info)


class ChatView(gr.Chatbot):
    """``gr.Chatbot``, its API schema built once."""

    is_template = True

    def api_info(self) -> dict[str, Any]:
        return schema_once(ChatView, super().api_info)
