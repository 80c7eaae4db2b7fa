"""Start the real app as a process and wait until it serves: used by the tests and by
tests/space_mode.py, which runs in a bare Space venv (so no pytest here)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from gradio_client import Client
from kimi_server import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-local-MARKER-7f3a9c"  # unique, so a leak anywhere is found by search


@dataclass
class RunningApp:
    """A real app process; ``log()`` is everything it printed so far."""

    url: str
    proc: subprocess.Popen
    log_path: Path
    upload_dir: Path  # the app's own GRADIO_TEMP_DIR: where its uploads are stored

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **headers: str) -> Client:
        return Client(self.url, verbose=False, headers=headers or None, analytics_enabled=False)

    def stop(self) -> None:
        """End the app and whatever it started (`gradio app.py` runs the app in a child process)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
                return
            except subprocess.TimeoutExpired:
                continue


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
            "GRADIO_TEMP_DIR": str(log_dir / f"gradio-{port}"),
            **env,
        }
    )
    log_path = log_dir / f"app-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [python, *(args or ["app.py"])],
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )
    app = RunningApp(f"http://127.0.0.1:{port}/", proc, log_path, Path(full_env["GRADIO_TEMP_DIR"]))
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
