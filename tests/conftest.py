"""Shared rig: a local Kimi-compatible server and the real app run as `python app.py`; the marks
that say what a test needs beyond Python (a test whose part is missing skips, naming it)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).parent))
from kimi_server import KimiServer, free_port
from rig import KEY, ROOT, RunningApp, launch_app

from kimichat.answer import Events
from kimichat.chat import ChatService
from kimichat.kimi import stream_reply
from kimichat.personas import PersonaFile, load_personas
from kimichat.reply import Update
from kimichat.settings import Settings, limit_settings

__all__ = ["KEY", "ROOT", "RunningApp", "launch_app"]

PERSONAS = load_personas(ROOT / "personas.yaml")  # the shipped persona file, read once
PNG = base64.b64decode(  # a 1x1 transparent PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
# Every test client is 127.0.0.1, and one app serves a whole module: limits are off unless a test
# sets them. Every setting that limits per minute, hour or day, or per address, is one of them.
NO_LIMITS = {f.name: 0 for f in limit_settings()}
NO_RATE_LIMITS = {name.upper(): str(value) for name, value in NO_LIMITS.items()}  # the same, as the app's env


def _can_unshare() -> bool:
    """A network namespace of our own: root, util-linux's unshare and iproute2's ip."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


# mark: (what it means, whether this machine has it, what to install when not)
NEEDS = {
    "browser": ("drives Debian's chromium", lambda: Path("/usr/bin/chromium").exists(), "apt-get install -y chromium"),
    "redis": ("runs redis-server", lambda: bool(shutil.which("redis-server")), "apt-get install -y redis-server"),
    "netns": (
        "runs the app in a network namespace",
        _can_unshare,
        "run as root with apt-get install -y util-linux iproute2",
    ),
    "soak": ("a long run under load (select with -m soak, leave out with -m 'not soak')", lambda: True, ""),
}


def pytest_configure(config: pytest.Config) -> None:
    for mark, (meaning, _, _) in NEEDS.items():
        config.addinivalue_line("markers", f"{mark}: {meaning}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test whose system part is missing skips with one line naming what to install (.ci/run
    installs everything and fails on any skip)."""
    present = {mark: has() for mark, (_, has, _) in NEEDS.items()}
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)
        for mark, (meaning, _, install) in NEEDS.items():
            if item.get_closest_marker(mark) and not present[mark]:
                item.add_marker(pytest.mark.skip(reason=f"{mark}: {meaning}; needs {install}"))


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


def make_service(
    base_url: str, events: Events = stream_reply, personas: PersonaFile = PERSONAS, **overrides
) -> ChatService:
    """The chat service as the app builds it, against ``base_url`` (or fed ``events`` instead of
    Kimi's stream), with the shipped personas unless given others, without rate limits unless asked."""
    values = {"api_key": KEY, "base_url": base_url, **NO_LIMITS}
    return ChatService.from_settings(Settings(**{**values, **overrides}), personas, events)


@pytest.fixture
def service(upstream: KimiServer) -> ChatService:
    return make_service(upstream.base_url)


async def run(
    service: ChatService, message, history=(), persona="assistant", model=None, lang="en", visitor=None
) -> list[Update]:
    """Every update of one reply, straight from the service."""
    return [u async for u in service.reply(message, list(history), persona, model, None, lang, visitor)]


@contextmanager
def serving(kimi: KimiServer, folder: Path, key: str | None = KEY, **env: str) -> Iterator[RunningApp]:
    """The real app against the local Kimi server, with ``env`` as its settings (the Space's key
    unless ``key`` is None), for as long as the block lasts."""
    running = launch_app(
        folder, {"MOONSHOT_BASE_URL": kimi.base_url, **({"MOONSHOT_API_KEY": key} if key else {}), **env}
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def app(kimi: KimiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with serving(kimi, tmp_path_factory.mktemp("app"), **NO_RATE_LIMITS) as running:
        yield running
        (ROOT / "test-output").mkdir(exist_ok=True)
        (ROOT / "test-output" / "session-app.log").write_text(running.log())  # to read after a failure


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
    """Whether ``predicate`` holds within ``timeout`` seconds (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


async def eventually(predicate, timeout: float = 10.0) -> bool:
    """``wait_for`` inside the event loop, so the service under test runs while it waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


class RedisServer:
    """A Redis server on loopback (Debian's redis-server) that a test can stop and start again on
    the same port, as replicas would share it."""

    def __init__(self) -> None:
        self.port, self.proc = free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return ping.stdout.strip() == "PONG"

    def start(self) -> RedisServer:
        server = shutil.which("redis-server")
        if server is None:
            pytest.skip("redis: runs redis-server; needs apt-get install -y redis-server")
        command = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        assert wait_for(self._ping, 10)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server for this run, shared by the tests that need one."""
    server = RedisServer().start()
    yield server.url
    server.stop()
