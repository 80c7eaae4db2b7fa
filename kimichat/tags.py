"""What a reply carries for the server: the persona that wrote it, the tokens it cost, and whether
the length limit cut it (so a Continue knows there is something to continue).

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
TOKENS = "tokens="  # in metadata.log
CUT = "cut"  # in metadata.log: the length limit cut the reply, and it can be continued


def reply_tags(persona_id: str, tokens: int = 0, cut: bool = False) -> dict[str, str]:
    """The metadata of a reply written by ``persona_id`` that cost ``tokens`` (0: not known yet)."""
    tags = {"id": PERSONA + persona_id}
    log = ([f"{TOKENS}{tokens}"] if tokens else []) + ([CUT] if cut else [])
    if log:
        tags["log"] = " ".join(log)
    return tags


def persona_of(message: Mapping[str, Any]) -> str | None:
    """The persona a history message was tagged with, if any."""
    tag = (message.get("metadata") or {}).get("id")
    return tag[len(PERSONA) :] if isinstance(tag, str) and tag.startswith(PERSONA) else None


def _log_of(message: Mapping[str, Any]) -> list[str]:
    log = (message.get("metadata") or {}).get("log")
    return log.split() if isinstance(log, str) else []


def tokens_of(message: Mapping[str, Any]) -> int:
    """The tokens a history message was tagged with (0 if none, or not a count)."""
    count = next((part[len(TOKENS) :] for part in _log_of(message) if part.startswith(TOKENS)), "")
    return int(count) if count.isdigit() else 0


def was_cut(message: Mapping[str, Any]) -> bool:
    """Whether a history message was tagged as a reply the length limit cut."""
    return CUT in _log_of(message)
