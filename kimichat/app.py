"""Startup: settings and personas are read once, problems stop the app with one clear line."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
from typing import Any

import gradio as gr

from .chat import ChatService
from .kimi import make_client
from .personas import PersonaFileError, load_personas
from .settings import Settings, SettingsError
from .ui import build, launch_options

__all__ = ["RedactKeys", "create_app"]

KEY_SHAPED = re.compile(r"(sk-|Bearer\s+)[A-Za-z0-9._~+/=-]{4,}")


class RedactKeys(logging.Filter):
    """Masks anything shaped like a key before a line is written: no log line may carry one,
    whatever a visitor, Kimi or a library put in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if KEY_SHAPED.search(message):
            record.msg, record.args = KEY_SHAPED.sub(lambda m: m[1] + "***", message), ()
        return True


async def fetch_models(settings: Settings, service: ChatService) -> None:
    """The key's model list before the page is built (bounded by KIMI_MODELS_TIMEOUT; on failure the
    built-in table), through a client of its own: the app's client must be made in the server's loop."""
    client = make_client(settings)
    try:
        await service.catalog.fetch_with(client)
    finally:
        await client.close()


def create_app() -> tuple[gr.Blocks, dict[str, Any]]:
    """The app built from the environment, and its ``launch`` keywords; exit with a readable
    message if it cannot be built."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactKeys())
    for noisy in ("httpx", "httpx2", "mcp"):  # a line per HTTP request (Gradio's, the SDK's, MCP's) is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        personas = load_personas(settings.personas_path)
    except (SettingsError, PersonaFileError) as exc:
        sys.exit(f"kimichat cannot start:\n{exc}")
    if not settings.has_key:
        logging.getLogger("kimichat").warning(
            "MOONSHOT_API_KEY is not set: the app will explain how to add it instead of chatting"
        )
    service = ChatService.from_settings(settings, personas)
    if settings.has_key:
        asyncio.run(fetch_models(settings, service))
    demo = build(service)
    # What startup made (Gradio, pydantic schemas, the page config) lives as long as the app:
    # frozen, every later full collection skips it (one took 135 ms under load before, 13-42 ms after).
    gc.collect()
    gc.freeze()
    return demo, launch_options(service)
