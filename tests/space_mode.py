"""The app started exactly as a ZeroGPU Space starts it, in a network namespace with only loopback.

    unshare -n -- sh -c 'ip link set lo up && exec PYTHON tests/space_mode.py [--app-dir DIR]'

With ``SYSTEM=spaces`` and `spaces` installed, Gradio opens a reload server on 0.0.0.0:7887,
so this runs only inside a namespace of its own (``space_namespace`` below refuses otherwise):
there 0.0.0.0 reaches nothing but that namespace's loopback. It starts the local Kimi server and
the ZeroGPU device-API stand-in, then the app with ZeroGPU's variables, once with a key and once
without, and prints one JSON report on its last line. PYTHON may be a bare Space venv
(gradio[oauth], spaces, requirements.txt): everything used here comes with Gradio. Exits 1 and
names each problem when the app would not survive on ZeroGPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
from kimi_server import KimiServer
from rig import KEY, ROOT, RunningApp, launch_app
from zerogpu_server import ZeroGpuServer

REPORT = "SPACE-MODE-REPORT "


def in_own_namespace() -> bool:
    """Only loopback in this network namespace: no interface but ``lo``."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def space_env(zerogpu: ZeroGpuServer, **secrets: str) -> dict[str, str]:
    """What a ZeroGPU Space sets for its app (secrets arrive as variables too)."""
    return {
        "SYSTEM": "spaces",
        "SPACE_ID": "tester/kimi-chat",
        "SPACE_AUTHOR_NAME": "tester",
        "SPACE_REPO_NAME": "kimi-chat",
        "SPACE_HOST": "tester-kimi-chat.hf.space",
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": zerogpu.url,
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "7860",
        **secrets,
    }


def call_every_function(app: RunningApp) -> int:
    """Call each function in /config, directly and through the queue, as anyone on the web could."""
    dependencies = httpx.get(app.url + "config", timeout=10).json()["dependencies"]
    session = uuid.uuid4().hex[:10]
    with httpx.Client(base_url=app.url + "gradio_api/", timeout=10) as http:
        for index, dependency in enumerate([*dependencies, {"inputs": []}]):  # and one index past the end
            body = {"data": [None] * len(dependency["inputs"]), "fn_index": index, "session_hash": session}
            for path, extra in (("run/predict", {}), ("queue/join", {"event_data": None, "trigger_id": None})):
                with contextlib.suppress(httpx.HTTPError):  # an error, or a reset for a bogus index
                    http.post(path, json={**body, **extra})
        try:  # let the queued calls run (each ends quickly: bad input or done)
            with http.stream("GET", "queue/data", params={"session_hash": session}, timeout=10) as events:
                for _ in events.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
    return len(dependencies)


def setup_panel(app: RunningApp) -> dict:
    components = httpx.get(app.url + "config", timeout=10).json()["components"]
    return next(c["props"] for c in components if c["props"].get("elem_id") == "setup-panel")


def run(app_dir: Path, python: str) -> dict:
    kimi, zerogpu = KimiServer(api_key=KEY).start(), ZeroGpuServer().start()
    logs = Path(tempfile.mkdtemp(prefix="space-mode-"))
    report: dict = {"python": sys.version.split()[0]}
    try:
        env = space_env(zerogpu, MOONSHOT_API_KEY=KEY, MOONSHOT_BASE_URL=kimi.base_url)
        app = launch_app(logs, env, python=python, cwd=app_dir)
        try:
            report["startup_reports"] = zerogpu.startup_reports
            messages, usage = app.client().predict(
                {"text": "hello space", "files": []}, "assistant", "", 0.6, "", api_name="/chat"
            )
            report["answer"] = "".join(m["content"] for m in messages if not (m.get("metadata") or {}).get("title"))
            report["usage"] = usage
            report["functions_called"] = call_every_function(app)
            report["gpu_asks"] = zerogpu.gpu_asks
            ids = {c["props"].get("elem_id") for c in httpx.get(app.url + "config", timeout=10).json()["components"]}
            report["duplicate_button"] = "duplicate" in ids  # shown on a Space only
        finally:
            app.stop()
        keyless = launch_app(logs, space_env(zerogpu, MOONSHOT_BASE_URL=kimi.base_url), python=python, cwd=app_dir)
        try:
            report["keyless_panel"] = setup_panel(keyless)
        finally:
            keyless.stop()
    finally:
        kimi.stop()
        zerogpu.stop()
    return report


def problems(report: dict) -> list[str]:
    """What would make this app die or misbehave on ZeroGPU, one line each."""
    found = []
    if report.get("startup_reports", 0) < 1:
        found.append("ZeroGPU got no startup report: the platform would stop the Space")
    if not str(report.get("answer", "")).startswith("Echo: hello space"):
        found.append(f"the chat did not answer: {report.get('answer')!r}")
    if report.get("gpu_asks"):
        found.append(f"a visitor's call asked ZeroGPU for a GPU: {report['gpu_asks']}")
    if not report.get("duplicate_button"):
        found.append("the Duplicate button does not show on the Space")
    panel = report.get("keyless_panel", {})
    if not panel.get("visible") or "huggingface.co/spaces/tester/kimi-chat/settings" not in panel.get("value", ""):
        found.append("without a key the setup panel with the settings link does not show")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the Space's files (default: this checkout)")
    args = parser.parse_args()
    if not in_own_namespace():
        sys.exit("space_mode.py binds 0.0.0.0: run it under `unshare -n` (see the module docstring)")
    report = run(args.app_dir.resolve(), sys.executable)
    found = problems(report)
    for line in found:
        print("PROBLEM:", line)
    print(REPORT + json.dumps({**report, "problems": found}, ensure_ascii=False))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
