"""Shared rig: a local Kimi-compatible server and the real app run as `python app.py`."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).parent))
from kimi_server import KimiServer
from rig import KEY, ROOT, RunningApp, launch_app

from kimichat.chat import ChatService, Update
from kimichat.personas import load_personas
from kimichat.settings import Settings

__all__ = ["KEY", "ROOT", "RunningApp", "launch_app"]

PERSONAS = load_personas(ROOT / "personas.yaml")  # the shipped persona file, read once
PNG = base64.b64decode(  # a 1x1 transparent PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
NO_RATE_LIMITS = {"RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_PER_HOUR": "0"}  # every test client is 127.0.0.1


@pytest.fixture(scope="session")
def kimi() -> Iterator[KimiServer]:
    server = KimiServer(api_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def upstream(kimi: KimiServer) -> KimiServer:
    """The local Kimi server, cleared for this test."""
    kimi.reset()
    return kimi


def make_service(base_url: str, **overrides) -> ChatService:
    """The chat service as the app builds it, against ``base_url``, without rate limits unless asked."""
    values = {"api_key": KEY, "base_url": base_url, "rate_limit_per_minute": 0, "rate_limit_per_hour": 0}
    return ChatService.from_settings(Settings(**{**values, **overrides}), PERSONAS)


@pytest.fixture
def service(upstream: KimiServer) -> ChatService:
    return make_service(upstream.base_url)


async def run(
    service: ChatService, message, history=(), persona="assistant", model=None, lang="en", visitor=None
) -> list[Update]:
    """Every update of one reply, straight from the service."""
    return [u async for u in service.reply(message, list(history), persona, model, None, lang, visitor)]


@pytest.fixture(scope="session")
def app(kimi: KimiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    env = {"MOONSHOT_API_KEY": KEY, "MOONSHOT_BASE_URL": kimi.base_url, **NO_RATE_LIMITS}
    running = launch_app(tmp_path_factory.mktemp("app"), env)
    yield running
    running.stop()


@pytest.fixture
def client(app: RunningApp) -> Client:
    """A fresh visitor: its own Gradio session, so its own history."""
    return app.client()


def chat_args(
    text: str,
    persona: str = "assistant",
    model: str = "",
    temperature: float = 0.6,
    own_key: str = "",
    files: tuple = (),
) -> tuple:
    """The /chat endpoint's inputs: the multimodal message, persona, model, temperature, own key."""
    return {"text": text, "files": [handle_file(str(f)) for f in files]}, persona, model, temperature, own_key


def ask(client: Client, *args, **kwargs):
    """One message through /chat; returns (messages, usage line)."""
    return client.predict(*chat_args(*args, **kwargs), api_name="/chat")


def ask_async(client: Client, *args, **kwargs):
    """Like ``ask`` but returns the job, to read its streamed updates or cancel it."""
    return client.submit(*chat_args(*args, **kwargs), api_name="/chat")


def answer_of(messages: list[dict]) -> str:
    """The answer text among the messages of one reply (not thinking, not notes)."""
    return "".join(m["content"] for m in messages if not (m.get("metadata") or {}).get("title"))


def notes_of(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages if (m.get("metadata") or {}).get("title", "").startswith("⚠️"))


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
