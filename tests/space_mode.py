"""The app started exactly as a ZeroGPU Space starts it, in a network namespace with only loopback.

    unshare -n -- sh -c 'ip link set lo up && exec PYTHON tests/space_mode.py [--app-dir DIR]'

With ``SYSTEM=spaces`` and `spaces` installed, Gradio opens a reload server on 0.0.0.0:7887,
so this runs only inside a namespace of its own (``space_namespace`` below refuses otherwise):
there 0.0.0.0 reaches nothing but that namespace's loopback. It starts the local Kimi server and
the ZeroGPU device-API stand-in and a Hugging Face sign-in stand-in, then the app with ZeroGPU's
variables: with a key, without one, and with ``hf_oauth``'s variables (a visitor signs in), and
prints one JSON report on its last line. PYTHON may be a bare Space venv
(gradio[oauth], spaces, requirements.txt): everything used here comes with Gradio. Exits 1 and
names each problem when the app would not survive on ZeroGPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
from gradio_client import Client
from kimi_server import KimiServer
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from oidc_server import OidcServer
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


def mcp_agent(app: RunningApp) -> dict:
    """The Space's MCP server as an agent sees it: the tools, and one persona's answer through them."""

    async def session() -> dict:
        url = app.url + "gradio_api/mcp/"
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as agent:
            await agent.initialize()
            names = sorted(tool.name for tool in (await agent.list_tools()).tools)
            ask = next((name for name in names if name.endswith("ask_persona")), "")
            result = await agent.call_tool(ask, {"persona": "assistant", "message": "hello agent"}) if ask else None
            return {"tools": names, "answer": "".join(p.text for p in result.content) if result else ""}

    return asyncio.run(session())


def setup_panel(app: RunningApp) -> dict:
    components = httpx.get(app.url + "config", timeout=10).json()["components"]
    return next(c["props"] for c in components if c["props"].get("elem_id") == "setup-panel")


def sign_in(app: RunningApp) -> str:
    """ "Sign in with Hugging Face" as a browser goes through it; returns the app's session cookie.
    The cookie is Secure (a Space is served over https), so it is carried by hand over loopback."""
    with httpx.Client(timeout=10) as http:
        start = http.get(app.url + "login/huggingface")  # to the provider, the login's state in the session
        back = http.get(start.headers["location"])  # the provider sends the visitor back with a code
        callback = back.headers["location"].replace("https://tester-kimi-chat.hf.space/", app.url)
        done = http.get(callback, headers={"cookie": f"session={start.cookies['session']}"})
        assert done.status_code in (302, 307), done.text[:300]
        return done.cookies["session"]


def signed_in_limits(app: RunningApp) -> dict:
    """With one message a minute per visitor and three times that for an account: how many of
    four messages a signed-in visitor gets answered, then an anonymous one from the same address."""

    def answered(client) -> bool:
        messages, _ = client.predict({"text": "hi", "files": []}, "assistant", "", 0.6, "", api_name="/chat")
        return any(str(m["content"]).startswith("Echo") for m in messages)

    account = Client(app.url, headers={"cookie": f"session={sign_in(app)}"}, verbose=False)
    anonymous = Client(app.url, verbose=False)
    ids = {c["props"].get("elem_id") for c in httpx.get(app.url + "config", timeout=10).json()["components"]}
    return {
        "sign_in_button": "sign-in" in ids,
        "account_answered": sum(answered(account) for _ in range(4)),
        "anonymous_answered": sum(answered(anonymous) for _ in range(2)),
    }


def run(app_dir: Path, python: str) -> dict:
    kimi, zerogpu, provider = KimiServer(api_key=KEY).start(), ZeroGpuServer().start(), OidcServer().start()
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
            report["mcp"] = mcp_agent(app)
            report["functions_called"] = call_every_function(app)
            report["gpu_asks"] = zerogpu.gpu_asks
            ids = {c["props"].get("elem_id") for c in httpx.get(app.url + "config", timeout=10).json()["components"]}
            report["duplicate_button"] = "duplicate" in ids  # shown on a Space only
            report["sign_in_without_oauth"] = "sign-in" in ids  # no hf_oauth variables: no button
        finally:
            app.stop()
        limits = {"RATE_LIMIT_PER_MINUTE": "1", "SIGNED_IN_FACTOR": "3", **provider.space_env()}
        env = space_env(zerogpu, MOONSHOT_API_KEY=KEY, MOONSHOT_BASE_URL=kimi.base_url, **limits)
        signed = launch_app(logs, env, python=python, cwd=app_dir)
        try:
            report["oauth"] = signed_in_limits(signed)
        finally:
            signed.stop()
        keyless = launch_app(logs, space_env(zerogpu, MOONSHOT_BASE_URL=kimi.base_url), python=python, cwd=app_dir)
        try:
            report["keyless_panel"] = setup_panel(keyless)
        finally:
            keyless.stop()
    finally:
        kimi.stop()
        zerogpu.stop()
        provider.stop()
    return report


def problems(report: dict) -> list[str]:
    """What would make this app die or misbehave on ZeroGPU, one line each."""
    found = []
    if report.get("startup_reports", 0) < 1:
        found.append("ZeroGPU got no startup report: the platform would stop the Space")
    if not str(report.get("answer", "")).startswith("Echo: hello space"):
        found.append(f"the chat did not answer: {report.get('answer')!r}")
    agent = report.get("mcp", {})
    if agent.get("tools") != ["kimi_chat_ask_persona", "kimi_chat_list_personas"]:
        found.append(f"the MCP server does not list the two tools: {agent.get('tools')}")
    if not str(agent.get("answer", "")).startswith("Echo: hello agent"):
        found.append(f"an agent's ask_persona got no answer: {agent.get('answer')!r}")
    if report.get("gpu_asks"):
        found.append(f"a visitor's call asked ZeroGPU for a GPU: {report['gpu_asks']}")
    if not report.get("duplicate_button"):
        found.append("the Duplicate button does not show on the Space")
    if report.get("sign_in_without_oauth"):
        found.append("a sign-in button shows without the Space's OAuth variables")
    oauth = report.get("oauth", {})
    if not oauth.get("sign_in_button"):
        found.append("with hf_oauth's variables no sign-in button shows")
    if (oauth.get("account_answered"), oauth.get("anonymous_answered")) != (3, 1):
        found.append(f"signed-in visitors are not limited on their account with higher limits: {oauth}")
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
