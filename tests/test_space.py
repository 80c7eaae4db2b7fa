"""The Space as Hugging Face runs it: README front matter, and a fresh venv from requirements.txt alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import KEY, ROOT, answer_of, ask, launch_app
from space_mode import REPORT

COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must open with the Space's YAML front matter"
    return yaml.safe_load(text.split("---", 2)[1])


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pairs = (line.split(";")[0].strip().split("==") for line in lines if line and not line.startswith("#"))
    return {name.split("[")[0]: version for name, version in pairs}  # gradio[oauth] is gradio


def test_readme_front_matter_is_a_valid_space_config():
    meta = front_matter()
    for key in (
        "title",
        "emoji",
        "colorFrom",
        "colorTo",
        "sdk",
        "sdk_version",
        "python_version",
        "app_file",
        "license",
        "short_description",
    ):
        assert meta.get(key), f"front matter lacks {key}"
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == pins()["gradio"]
    assert (ROOT / meta["app_file"]).is_file()
    assert len(meta["short_description"]) <= 60
    assert {meta["colorFrom"], meta["colorTo"]} <= COLORS
    assert str(meta["python_version"]) in {"3.10", "3.11", "3.12"}
    dumped = yaml.safe_dump(meta)
    assert not re.search(r"sk-[A-Za-z0-9]|hf_[A-Za-z0-9]{10}|MOONSHOT_API_KEY\s*[:=]", dumped)


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            # an exact pin, with an environment marker at most (uvloop has no Windows build)
            assert re.fullmatch(r"[A-Za-z0-9_.,\-\[\]]+==[0-9][\w.]*(; [^;]+)?", line.strip()), line


@pytest.fixture
def space_copy(tmp_path) -> Path:
    """The files a deploy uploads, alone in a folder (no tests, no venv)."""
    from kimichat.deploy import space_files

    for name in space_files():
        target = tmp_path / "space" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    return tmp_path / "space"


@pytest.mark.netns
def test_a_zerogpu_space_starts_chats_and_never_asks_for_a_gpu(space_copy):
    """The Space's files started as ZeroGPU starts them (tests/space_mode.py), in a network
    namespace with only loopback: Gradio binds 0.0.0.0 there, and nothing beyond it is reached."""
    command = f'ip link set lo up && exec "{sys.executable}" tests/space_mode.py --app-dir "{space_copy}"'
    done = subprocess.run(
        ["unshare", "-n", "--", "sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert REPORT in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.rsplit(REPORT, 1)[1])
    assert report["problems"] == [] and done.returncode == 0
    assert report["startup_reports"] == 1  # without it the platform stops the Space
    assert report["answer"].startswith("Echo: hello space") and "tokens" in report["usage"]
    assert report["mcp"]["tools"] == ["kimi_chat_ask_persona", "kimi_chat_list_personas"]  # named after the Space
    assert report["mcp"]["answer"].startswith("Echo: hello agent")
    assert report["functions_called"] > 10 and report["gpu_asks"] == []
    assert "MOONSHOT_API_KEY" in report["keyless_panel"]["value"]
    # Sign-in both ways: no button without hf_oauth's variables; with them, a visitor who signs in
    # is their account, with SIGNED_IN_FACTOR (3) times the one message a minute an address gets.
    assert report["sign_in_without_oauth"] is False
    assert report["oauth"] == {"sign_in_button": True, "account_answered": 3, "anonymous_answered": 1}


def test_gradio_hot_reload_serves_and_chats(kimi, upstream, tmp_path):
    """`gradio app.py`, as the README suggests for working on the app."""
    gradio_cli = str(Path(sys.executable).with_name("gradio"))
    env = {"MOONSHOT_API_KEY": KEY, "MOONSHOT_BASE_URL": kimi.base_url}
    app = launch_app(tmp_path, env, python=gradio_cli, args=["app.py"])
    try:
        messages, _ = ask(app.client(), "hot reload")
        assert answer_of(messages).startswith("Echo: hot reload")
        assert "Watching" in app.log()
    finally:
        app.stop()


def test_every_setting_is_in_the_readme_table():
    from dataclasses import fields

    from kimichat.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [f.metadata["env"] for f in fields(Settings) if f"| `{f.metadata['env']}` |" not in readme]
    assert missing == []
