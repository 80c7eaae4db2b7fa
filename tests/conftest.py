"""Shared rig: a local Kimi-compatible server and the real app run as `python app.py`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).parent))
from kimi_server import KimiServer, free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-local-MARKER-7f3a9c"  # unique, so a leak anywhere is found by search
NO_RATE_LIMITS = {"RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_PER_HOUR": "0"}  # every test client is 127.0.0.1


@dataclass
class RunningApp:
    """A real app process; ``log()`` is everything it printed so far."""

    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **headers: str) -> Client:
        return Client(self.url, verbose=False, headers=headers or None, analytics_enabled=False)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def launch_app(
    log_dir: Path, env: dict[str, str], args: list[str] | None = None, python: str = sys.executable, cwd: Path = ROOT
) -> RunningApp:
    """Start ``python app.py`` (on a free port unless ``env`` names one) and wait until it serves."""
    port = int(env.get("GRADIO_SERVER_PORT") or free_port())
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MOONSHOT_", "GRADIO_", "SPACE_"))}
    full_env.update(
        {
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
    )
    log_path = log_dir / f"app-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [python, *(args or ["app.py"])], cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    app = RunningApp(f"http://127.0.0.1:{port}/", proc, log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{app.log()}")
        try:
            if httpx.get(app.url, timeout=2).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    app.stop()
    raise RuntimeError(f"the app did not serve in time:\n{app.log()}")


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
