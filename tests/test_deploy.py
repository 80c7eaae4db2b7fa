"""The deploy command against a local stand-in for the Hub (HF_ENDPOINT), run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT
from hub_server import TOKEN, HubServer
from kimi_server import serve_in_thread

SECRET = "sk-test-deploy-MARKER-55aa"


@pytest.fixture
def hub():
    hub = HubServer()
    server, port = serve_in_thread(hub.app())
    hub.base_url = f"http://127.0.0.1:{port}"
    yield hub
    server.should_exit = True


def deploy(hub: HubServer, *args: str, token: str | None = TOKEN, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MOONSHOT_", "KIMI_", "HUGGING"))}
    clean.update(
        {
            "HF_ENDPOINT": hub.base_url,
            "HF_HOME": str(ROOT / ".pytest_cache" / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            **env,
        }
    )
    if token:
        clean["HF_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "kimichat.deploy", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_creates_uploads_and_sets_the_secret(hub):
    result = deploy(hub, "tester/kimi-chat", MOONSHOT_API_KEY=SECRET, MOONSHOT_BASE_URL="https://api.moonshot.ai/v1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("Done: https://huggingface.co/spaces/tester/kimi-chat")
    repo = hub.repos["tester/kimi-chat"]
    assert repo["payload"]["type"] == "space" and repo["payload"]["sdk"] == "gradio"
    assert repo["payload"].get("visibility", "public") == "public"
    files = set(repo["files"])
    assert {
        "app.py",
        "requirements.txt",
        "README.md",
        "personas.yaml",
        "kimichat/ui.py",
        "kimichat/static/app.css",
    } <= files
    assert not [f for f in files if f.startswith(("tests/", ".", "benchmarks/")) or "__pycache__" in f]
    assert "kimichat/deploy.py" not in files
    assert repo["files"]["personas.yaml"] == (ROOT / "personas.yaml").read_bytes()
    assert repo["secrets"] == {"MOONSHOT_API_KEY": SECRET}
    assert repo["variables"] == {"MOONSHOT_BASE_URL": "https://api.moonshot.ai/v1"}
    paths = [r.method + " " + r.path for r in hub.requests]
    assert "POST /api/repos/create" in paths and "POST /api/spaces/tester/kimi-chat/commit/main" in paths
    assert "POST /api/spaces/tester/kimi-chat/secrets" in paths
    for request in hub.requests:  # the key travels only in the secret's JSON body
        assert SECRET not in request.path + request.query + request.authorization
        if not request.path.endswith("/secrets"):
            assert SECRET not in str(request.body)
    assert SECRET not in result.stdout + result.stderr


def test_private_and_hardware_and_variables(hub):
    result = deploy(hub, "lab/kimi", "--private", "--hardware", "zero-a10g", "--var", "RATE_LIMIT_PER_MINUTE=5")
    assert result.returncode == 0, result.stderr
    repo = hub.repos["lab/kimi"]
    assert repo["payload"]["visibility"] == "private" and repo["payload"]["hardware"] == "zero-a10g"
    assert repo["variables"] == {"RATE_LIMIT_PER_MINUTE": "5"} and repo["secrets"] == {}
    assert "MOONSHOT_API_KEY is not set" in result.stdout


def test_dry_run_sends_nothing_and_needs_no_token(hub):
    result = deploy(hub, "tester/kimi-chat", "--dry-run", token=None, MOONSHOT_API_KEY=SECRET)
    assert result.returncode == 0, result.stderr
    assert "Secrets: MOONSHOT_API_KEY" in result.stdout and "personas.yaml" in result.stdout
    assert "tests/" not in result.stdout and SECRET not in result.stdout
    assert hub.requests == []


def test_clear_errors(hub):
    no_token = deploy(hub, "tester/a", token=None)
    assert no_token.returncode == 1 and "No Hugging Face token" in no_token.stderr
    bad_token = deploy(hub, "tester/a", token="hf_wrong")
    assert bad_token.returncode == 1 and "rejected your token" in bad_token.stderr
    no_rights = deploy(hub, "someone-else/a")
    assert no_rights.returncode == 1 and "may not create or change someone-else/a" in no_rights.stderr
    assert deploy(hub, "tester/taken").returncode == 0
    taken = deploy(hub, "tester/taken")
    assert taken.returncode == 1 and "already exists. Pass --update" in taken.stderr
    assert deploy(hub, "tester/taken", "--update").returncode == 0
    assert all("Traceback" not in r.stderr for r in (no_token, bad_token, no_rights, taken))
    assert deploy(hub, "not-a-space-name").returncode == 2


def test_duplicate_from_an_existing_space(hub):
    assert deploy(hub, "lab/original", "--var", "KIMI_DEFAULT_MODEL=kimi-k2.6").returncode == 0
    result = deploy(hub, "tester/my-copy", "--from", "lab/original", MOONSHOT_API_KEY=SECRET)
    assert result.returncode == 0, result.stderr
    copy = hub.repos["tester/my-copy"]
    duplicate = next(r for r in hub.requests if r.path == "/api/spaces/lab/original/duplicate")
    assert duplicate.body["repository"] == "tester/my-copy"
    assert copy["secrets"] == {"MOONSHOT_API_KEY": SECRET}
    assert copy["files"] == hub.repos["lab/original"]["files"]
    assert copy["variables"]["KIMI_DEFAULT_MODEL"] == "kimi-k2.6"  # variables travel with a duplicate
    assert SECRET not in result.stdout + result.stderr
    missing = deploy(hub, "tester/other", "--from", "lab/nope")
    assert missing.returncode == 1 and "lab/nope was not found" in missing.stderr


def test_nothing_private_becomes_a_public_variable(hub):
    """Space variables are public and copied to duplicates: a storage URL with a password, a local
    path, the Space's own variables and anything not made to be public stay out, each with a line
    saying why and how to set it as a secret; --dry-run shows exactly what becomes public."""
    local = {
        "RATE_LIMIT_STORAGE_URL": "redis://:hunter2-PASSWORD@10.0.0.7:6379/0",
        "PERSONAS_PATH": "/home/me/personas.yaml",
        "SAVED_CHATS_SECRET": "my-saved-chats-secret",
        "MOONSHOT_BASE_URL": "http://127.0.0.1:8000/v1",
        "RATE_LIMIT_PER_MINUTE": "7",
        "ALLOWED_MODELS": "kimi-k2.6",
    }
    dry = deploy(hub, "tester/kimi-chat", "--dry-run", token=None, **local)
    assert dry.returncode == 0, dry.stderr
    assert "Variables (public): ALLOWED_MODELS=kimi-k2.6, RATE_LIMIT_PER_MINUTE=7\n" in dry.stdout
    for name in ("RATE_LIMIT_STORAGE_URL", "PERSONAS_PATH", "SAVED_CHATS_SECRET"):
        assert f"Not published: {name}: not a setting made to be public; set it as a secret instead" in dry.stdout
    assert "Not published: MOONSHOT_BASE_URL: it points at this machine" in dry.stdout
    assert "hunter2" not in dry.stdout + dry.stderr and "my-saved-chats-secret" not in dry.stdout

    done = deploy(hub, "tester/kimi-chat", "--secret", "RATE_LIMIT_STORAGE_URL", **local)
    assert done.returncode == 0, done.stderr
    repo = hub.repos["tester/kimi-chat"]
    assert repo["variables"] == {"ALLOWED_MODELS": "kimi-k2.6", "RATE_LIMIT_PER_MINUTE": "7"}
    assert repo["secrets"] == {"RATE_LIMIT_STORAGE_URL": local["RATE_LIMIT_STORAGE_URL"]}
    for request in hub.requests:
        if not request.path.endswith("/secrets"):
            assert "hunter2" not in str(request.body) + request.path + request.query


def test_a_variable_asked_for_by_name_is_checked_too(hub):
    for var, why in (
        ("RATE_LIMIT_STORAGE_URL=redis://:pw@host:6379", "set it as a secret instead"),
        ("MOONSHOT_API_KEY=sk-x", "set it as a secret instead"),
        ("MOONSHOT_BASE_URL=https://user:pw@proxy.example/v1", "carries credentials"),
        ("NOT_OURS=1", "not a setting of this app"),
    ):
        refused = deploy(hub, "tester/x", "--dry-run", "--var", var, token=None)
        assert refused.returncode == 1 and why in refused.stderr, refused.stderr
        assert ":pw@" not in refused.stdout + refused.stderr
    assert hub.requests == []
