"""The Space as Hugging Face runs it: README front matter, and a fresh venv from requirements.txt alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import KEY, ROOT, answer_of, ask, launch_app
from kimi_server import free_port

COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must open with the Space's YAML front matter"
    return yaml.safe_load(text.split("---", 2)[1])


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


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
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*(; [^;]+)?", line.strip()), line


@pytest.fixture(scope="module")
def space_python(tmp_path_factory) -> str:
    """A fresh venv with requirements.txt and nothing else, as the Space build makes."""
    venv = tmp_path_factory.mktemp("space-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True, timeout=900
    )
    return python


def space_env(**secrets: str) -> dict[str, str]:
    port = 7860
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
        port = free_port()  # something already listens on 7860 here
    except httpx.HTTPError:
        pass
    return {
        "SPACE_ID": "tester/kimi-chat",
        "SPACE_AUTHOR_NAME": "tester",
        "SPACE_REPO_NAME": "kimi-chat",
        "SYSTEM": "spaces",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": str(port),
        **secrets,
    }


@pytest.fixture
def space_copy(tmp_path) -> Path:
    """The files a deploy uploads, alone in a folder (no tests, no venv)."""
    from kimichat.deploy import space_files

    for name in space_files():
        target = tmp_path / "space" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    return tmp_path / "space"


def test_space_serves_and_chats(space_python, space_copy, kimi, upstream, tmp_path):
    app = launch_app(
        tmp_path, space_env(MOONSHOT_API_KEY=KEY, MOONSHOT_BASE_URL=kimi.base_url), python=space_python, cwd=space_copy
    )
    try:
        messages, usage = ask(app.client(), "hello space", "assistant", "", 0.6, "")
        assert answer_of(messages).startswith("Echo: hello space") and "tokens" in usage
        components = httpx.get(app.url + "config").json()["components"]
        by_id = {c["props"].get("elem_id"): c for c in components}
        assert "duplicate" in by_id  # the Duplicate button shows on a Space
        assert by_id["setup-panel"]["props"]["visible"] is False
    finally:
        app.stop()


def test_space_without_secret_shows_the_setup_panel(space_python, space_copy, kimi, tmp_path):
    app = launch_app(tmp_path, space_env(MOONSHOT_BASE_URL=kimi.base_url), python=space_python, cwd=space_copy)
    try:
        config = httpx.get(app.url + "config").json()
        panel = next(c for c in config["components"] if c["props"].get("elem_id") == "setup-panel")
        assert panel["props"]["visible"] is True
        text = panel["props"]["value"]
        assert "MOONSHOT_API_KEY" in text
        assert "https://huggingface.co/spaces/tester/kimi-chat/settings" in text
        assert "https://api.moonshot.ai/v1" in text and "https://api.moonshot.cn/v1" in text
        assert "spending limit" in text
        messages, _ = ask(app.client(), "hi", "assistant", "", 0.6, "")
        assert "MOONSHOT_API_KEY" in str(messages)
    finally:
        app.stop()


def test_every_setting_is_in_the_readme_table():
    from dataclasses import fields

    from kimichat.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [f.metadata["env"] for f in fields(Settings) if f"| `{f.metadata['env']}` |" not in readme]
    assert missing == []
