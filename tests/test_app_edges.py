"""The running app's edges, where a hostile client reaches Gradio before any message: the page's
direct calls and the session state they leave, uploads, routes the chat does not use, and files
named by URL. Each limit is set low here so a test reaches it."""

from __future__ import annotations

import uuid

import httpx
import psutil
import pytest
from conftest import NO_RATE_LIMITS, RedisServer, answer_of, ask, notes_of, serving, wait_for
from kimi_server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATE_SESSIONS, DIRECT_MB = 40, 1


@pytest.fixture(scope="module")
def edge_app(kimi, tmp_path_factory):
    env = {
        **NO_RATE_LIMITS,
        "TRUST_FORWARDED_FOR": "true",
        "DIRECT_CALLS_PER_MINUTE": "30",
        "MAX_DIRECT_BODY_MB": str(DIRECT_MB),
        "STATE_SESSIONS": str(STATE_SESSIONS),
        "UPLOADS_PER_MINUTE": "3",
        "MAX_FILES_PER_MESSAGE": "4",
        "UPLOAD_MB_PER_HOUR": "1",
    }
    with serving(kimi, tmp_path_factory.mktemp("edges"), **env) as running:
        yield running


def address() -> dict[str, str]:
    """A new visitor address (TRUST_FORWARDED_FOR: the entry the proxy appended)."""
    n = uuid.uuid4().int
    return {"X-Forwarded-For": f"198.18.{n % 250}.{n // 250 % 250}"}


def history_copy_step(app) -> int:
    """ChatInterface's step that copies the chat into its server-side state, past the queue."""
    config = httpx.get(app.url + "config").json()
    chatbot = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "chatbot")
    return next(
        i
        for i, d in enumerate(config["dependencies"])
        if d["queue"] is False and d["inputs"] == [chatbot] and len(d["outputs"]) == 2
    )


def direct_call(http: httpx.Client, step: int, text: str, headers: dict[str, str], session: str = "") -> int:
    """The history-copy step with a chat of one message ``text``, under ``session`` (new if not given)."""
    history = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    body = {"data": [history], "fn_index": step, "session_hash": session or uuid.uuid4().hex[:11]}
    return http.post("gradio_api/run/predict", json=body, headers=headers).status_code


def test_direct_calls_are_limited_per_address(edge_app):
    step = history_copy_step(edge_app)
    me = address()
    with httpx.Client(base_url=edge_app.url, timeout=30) as http:
        codes = [direct_call(http, step, "hi", me) for _ in range(32)]
        assert codes.count(200) == 30 and codes[-2:] == [429, 429]
        assert direct_call(http, step, "hi", address()) == 200  # another address is not held back


def test_a_direct_call_larger_than_a_page_sends_is_refused_unread(edge_app):
    step = history_copy_step(edge_app)
    with httpx.Client(base_url=edge_app.url, timeout=30) as http:
        assert direct_call(http, step, "x" * (DIRECT_MB * 2**20), address()) == 413
        assert direct_call(http, step, "x" * (DIRECT_MB * 2**20 - 4096), address()) == 200


def test_made_up_sessions_leave_the_apps_memory_within_its_bound(edge_app):
    """Each made-up session name makes Gradio keep a session's state (here, about 1 MB of chat each)
    until the session has been gone an hour: 150 of them from 150 addresses. STATE_SESSIONS (40 here)
    of them at most stay; Gradio's default would have kept every one (about 180 MB more)."""
    step, app = history_copy_step(edge_app), psutil.Process(edge_app.proc.pid)
    chat = "y" * (DIRECT_MB * 2**20 - 4096)
    with httpx.Client(base_url=edge_app.url, timeout=30) as http:
        for _ in range(5):  # the first calls' one-off costs (buffers, caches) are not the sessions'
            assert direct_call(http, step, chat, address()) == 200
        before = app.memory_info().rss
        for _ in range(150):
            assert direct_call(http, step, chat, address()) == 200
    grown = (app.memory_info().rss - before) / 2**20
    bound = STATE_SESSIONS * DIRECT_MB * 2.5  # a session holds its chat about twice, plus the allocator's slack
    assert grown < bound, f"{grown:.0f} MB more for 150 sessions; the bound is {bound:.0f} MB"


def upload(http: httpx.Client, files: int, headers: dict[str, str], size: int = 10) -> httpx.Response:
    parts = [("files", (f"n{i}.txt", b"x" * size, "text/plain")) for i in range(files)]
    return http.post("gradio_api/upload", files=parts, headers=headers)


def stored_uploads(app) -> set[str]:
    """Every file the app's Gradio has stored (its temp dir is the app's own)."""
    return {str(p) for p in app.upload_dir.rglob("*") if p.is_file()}


def test_uploads_count_files_not_requests(edge_app):
    """UPLOADS_PER_MINUTE (3 here) counts each file: two files, then two more, of which only one fits."""
    me = address()
    with httpx.Client(base_url=edge_app.url, timeout=30) as http:
        assert upload(http, 2, me).status_code == 200
        before = stored_uploads(edge_app)
        refused = upload(http, 2, me)
        assert refused.status_code == 429 and "Too many requests from your address" in refused.text
        assert stored_uploads(edge_app) == before  # what it had stored of the refused request is gone


def test_a_request_with_more_files_than_a_message_carries_is_refused(edge_app):
    """MAX_FILES_PER_MESSAGE (4 here): one request cannot carry 100 files (Gradio takes 1,000)."""
    with httpx.Client(base_url=edge_app.url, timeout=30) as http:
        before = stored_uploads(edge_app)
        refused = upload(http, 100, address())
        assert refused.status_code == 413 and "at most 4" in refused.text
        assert stored_uploads(edge_app) == before


def test_upload_bytes_count_per_address_before_they_are_read(edge_app):
    """UPLOAD_MB_PER_HOUR (1 here), from the request's Content-Length."""
    me = address()
    with httpx.Client(base_url=edge_app.url, timeout=30) as http:
        assert upload(http, 1, me, size=600_000).status_code == 200
        assert upload(http, 1, me, size=600_000).status_code == 429


@pytest.mark.parametrize(
    "path",
    [
        "gradio_api/process_recording",
        "gradio_api/component_server",
        "gradio_api/component_server/",
        "gradio_api/stream/abc",
        "gradio_api/vibe-edit",
        "gradio_api/run-history/connect",
    ],
)
def test_routes_that_store_a_body_or_serve_nothing_of_the_chat_are_closed(edge_app, path):
    response = httpx.post(edge_app.url + path, files={"files": ("a.wav", b"RIFF" + b"\0" * 64, "audio/wav")})
    assert response.status_code == 404


def test_the_server_fetches_no_url_for_a_caller(edge_app):
    """Gradio's file= and proxy= routes would fetch a URL from another host and stream it back."""
    for path in (
        "gradio_api/file=http://198.51.100.9/x.png",
        "gradio_api/file=https://example.com/a",
        "gradio_api/proxy=http://198.51.100.9/",
    ):
        assert httpx.get(edge_app.url + path).status_code == 404
    assert httpx.get(edge_app.url + "config").status_code == 200


def test_a_file_named_by_url_is_refused_before_gradio_fetches_it(edge_app, upstream):
    """A message or a chat whose file names a URL: Gradio's preprocessing would download it into its
    cache before any gate. It is refused with a sentence; the host is never asked."""
    seen: list[str] = []

    async def record(request: Request) -> Response:
        seen.append(str(request.url))
        return Response("x" * 100)

    server, port = serve_in_thread(Starlette(routes=[Route("/{path:path}", record)]))
    try:
        remote = {
            "path": f"http://127.0.0.1:{port}/big.pdf",
            "orig_name": "big.pdf",
            "meta": {"_type": "gradio.FileData"},
        }
        config = httpx.get(edge_app.url + "config").json()
        chat = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "chat")
        step = history_copy_step(edge_app)
        in_message = [{"text": "read this", "files": [remote]}, [], "assistant", "", 0.6, ""]
        in_history = [[{"role": "user", "content": [{"type": "file", "file": remote}]}]]
        with httpx.Client(base_url=edge_app.url, timeout=30) as http:
            for path, fn, data in (
                ("gradio_api/queue/join", chat, in_message),
                ("gradio_api/run/predict", step, in_history),
            ):
                body = {"data": data, "fn_index": fn, "session_hash": uuid.uuid4().hex[:11]}
                response = http.post(path, json=body, headers=address())
                assert response.status_code == 400 and "must be uploaded" in response.text
        assert not wait_for(lambda: seen, 1) and not upstream.calls
        assert "ssrf" not in edge_app.log().lower()
    finally:
        server.should_exit = True


@pytest.mark.redis
def test_while_the_limits_store_is_away_the_chat_says_so_and_sends_nothing(kimi, upstream, tmp_path):
    """Replicas share their limits in Redis. With Redis stopped, a message is refused in a sentence
    (nothing goes upstream unchecked), an upload gets 503, the log has one line for the outage (no
    traceback per message), and the chat works again as soon as Redis is back."""
    redis = RedisServer().start()
    with serving(kimi, tmp_path, RATE_LIMIT_STORAGE_URL=redis.url) as app:
        client = app.client()
        assert answer_of(ask(client, "before")[0]).startswith("Echo")
        redis.stop()
        for n in range(3):
            assert "cannot check its usage limits right now" in notes_of(ask(client, f"while away {n}")[0])
        with httpx.Client(base_url=app.url, timeout=30) as http:
            assert upload(http, 1, {}).status_code == 503
        assert [c.last_user for c in upstream.calls] == ["before"]
        log = app.log()
        assert log.count("the limits store cannot be reached") == 1 and "Traceback" not in log
        redis.start()
        assert answer_of(ask(client, "after")[0]).startswith("Echo")
        assert "the limits store is back" in app.log()
    redis.stop()
