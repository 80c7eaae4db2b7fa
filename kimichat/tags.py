"""What a reply carries for the server: the persona that wrote it and the tokens it cost.

They ride in the reply's Gradio message ``metadata``, under ``id`` and ``log``, so they come back
with the history the page sends (a persona switch or a reopened saved chat knows whose turns they
are, and the usage line its running total) without any state on the server.

The Gradio fact this relies on (Chatbot, Gradio 6.31): a message's metadata is drawn only for a
message with a ``title`` (a thought bubble, showing its title, log and duration); a reply has no
title, so its ``id`` and ``log`` are never shown. A browser test fails if Gradio starts drawing them
(``tests/test_browser.py``: the page never shows ``persona:`` or ``tokens=``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PERSONA = "persona:"  # metadata.id
TOKENS = "tokens="  # metadata.log


def reply_tags(persona_id: str, tokens: int = 0) -> dict[str, str]:
    """The metadata of a reply written by ``persona_id`` that cost ``tokens`` (0: not known yet)."""
    tags = {"id": PERSONA + persona_id}
    if tokens:
        tags["log"] = f"{TOKENS}{tokens}"
    return tags


def persona_of(message: Mapping[str, Any]) -> str | None:
    """The persona a history message was tagged with, if any."""
    tag = (message.get("metadata") or {}).get("id")
    return tag[len(PERSONA) :] if isinstance(tag, str) and tag.startswith(PERSONA) else None


def tokens_of(message: Mapping[str, Any]) -> int:
    """The tokens a history message was tagged with (0 if none, or not a count)."""
    log = (message.get("metadata") or {}).get("log")
    count = log[len(TOKENS) :] if isinstance(log, str) and log.startswith(TOKENS) else ""
    return int(count) if count.isdigit() else 0
