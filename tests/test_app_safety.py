"""The running app under abuse: rate limits (memory and Redis), visitor keys, isolation, leaks."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import KEY, answer_of, ask, launch_app, notes_of, serving, wait_for

VISITOR_KEY = "sk-test-visitor-MARKER-91c2"


def chat(client, text: str, own_key: str = "", persona: str = "assistant"):
    return ask(client, text, persona, own_key=own_key)


@pytest.fixture(scope="module")
def limited_app(kimi, tmp_path_factory):
    limits = {"RATE_LIMIT_PER_MINUTE": "3", "TRUST_FORWARDED_FOR": "true", "UPLOADS_PER_MINUTE": "2"}
    with serving(kimi, tmp_path_factory.mktemp("limited"), **limits, FILES_KEPT_SECONDS="3") as running:
        yield running


def test_per_visitor_rate_limit_by_forwarded_address(limited_app, upstream):
    """Behind one trusted proxy, which appends the address it saw to X-Forwarded-For."""
    alice = [limited_app.client(**{"X-Forwarded-For": "203.0.113.7"}) for _ in range(2)]
    for i in range(3):
        assert answer_of(chat(alice[i % 2], f"alice {i}")[0]).startswith("Echo")
    refused = chat(alice[1], "alice 3")[0]  # a new session does not reset the address's count
    assert "faster than this Space allows" in notes_of(refused)
    assert [c.last_user for c in upstream.calls] == ["alice 0", "alice 1", "alice 2"]
    bob = limited_app.client(**{"X-Forwarded-For": "198.51.100.4"})
    assert answer_of(chat(bob, "bob 0")[0]).startswith("Echo")


def test_a_made_up_forwarded_for_entry_does_not_make_a_new_visitor(limited_app, upstream):
    """One real address rotating the entry it writes itself (the proxy appends the real one after it),
    a new session each time: the limit of 3 a minute holds."""
    answered = 0
    for i in range(8):
        spoofer = limited_app.client(**{"X-Forwarded-For": f"10.9.{i}.1, 192.0.2.55"})
        answered += answer_of(chat(spoofer, f"spoof {i}")[0]).startswith("Echo")
    assert answered == 3
    assert len([c for c in upstream.calls if c.last_user.startswith("spoof")]) == 3


def test_replicas_share_rate_limits_through_redis(kimi, upstream, redis_url, tmp_path):
    env = {
        "MOONSHOT_API_KEY": KEY,
        "MOONSHOT_BASE_URL": kimi.base_url,
        "RATE_LIMIT_PER_MINUTE": "3",
        "TRUST_FORWARDED_FOR": "true",
        "RATE_LIMIT_STORAGE_URL": redis_url,
    }
    replicas = [launch_app(tmp_path, env), launch_app(tmp_path, env)]
    try:
        visitor = {"X-Forwarded-For": "192.0.2.99"}
        first, second = (r.client(**visitor) for r in replicas)
        for i, client in enumerate([first, second, first]):
            assert answer_of(chat(client, f"hop {i}")[0]).startswith("Echo")
        assert "faster than this Space allows" in notes_of(chat(second, "hop 3")[0])
        assert len(upstream.calls) == 3
    finally:
        for replica in replicas:
            replica.stop()


def test_visitor_key_lives_for_one_request(app, upstream):
    upstream.extra_keys.add(VISITOR_KEY)
    visitor = app.client()
    messages, usage = chat(visitor, "with my key", own_key=VISITOR_KEY)
    assert answer_of(messages).startswith("Echo")
    assert upstream.calls[-1].authorization == f"Bearer {VISITOR_KEY}"
    # the next message without the key, even in the same session, uses the Space's key again
    chat(visitor, "without it")
    assert upstream.calls[-1].authorization == f"Bearer {KEY}"
    # and another visitor never gets it
    chat(app.client(), "someone else")
    assert upstream.calls[-1].authorization == f"Bearer {KEY}"
    assert VISITOR_KEY not in str(messages) + usage
    for path in ["", "config", "gradio_api/info"]:
        assert VISITOR_KEY not in httpx.get(app.url + path).text
    assert VISITOR_KEY not in app.log()


def test_a_rejected_visitor_key_is_not_echoed(app, upstream):
    messages, _ = chat(app.client(), "bad key", own_key="sk-test-not-accepted-123")
    assert "rejected" in notes_of(messages) and "sk-test-not-accepted-123" not in str(messages)
    assert "sk-test-not-accepted-123" not in app.log()


def test_concurrent_visitors_never_see_each_other(app, upstream):
    upstream.token_delay = 0.02
    clients = [app.client() for _ in range(12)]

    def converse(index: int) -> list:
        chat(clients[index], f"marker-{index}-first")
        return chat(clients[index], f"marker-{index}-second")[0]

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(converse, range(12)))
    for index, messages in enumerate(results):
        seen = str(messages)
        assert f"marker-{index}-second" in seen
        assert all(f"marker-{other}-" not in seen for other in range(12) if other != index)
    for call in upstream.calls:
        owners = {i for i in range(12) if f"marker-{i}-" in str(call.body["messages"])}
        assert len(owners) == 1


def test_no_key_anywhere_after_faults(app, upstream):
    for fault in ["[[status:401]]", "[[status:500]]", "[[drop:2]]", "[[malformed]]"]:
        chat(app.client(), f"fault {fault}")
    assert KEY not in app.log() and "Traceback" not in app.log()
    for path in ["", "config", "gradio_api/info", "gradio_api/openapi.json"]:
        response = httpx.get(app.url + path)
        assert KEY not in response.text


def test_upstream_error_text_is_never_shown_or_logged(app, upstream):
    """An upstream 400 whose error type echoes the Authorization header, for the owner's key and a
    visitor's own; and a visitor-written model id shaped like a key, which the app logs."""
    upstream.extra_keys.add(VISITOR_KEY)
    for own in ("", VISITOR_KEY):
        messages, _ = chat(app.client(), "fail [[status:400:echo_auth]]", own_key=own)
        assert "Kimi could not answer" in notes_of(messages)
        assert "Bearer" not in str(messages) and "bad_key" not in str(messages)
    ask(app.client(), "which model?", "assistant", "sk-test-model-shaped-SECRET-0042")
    assert wait_for(lambda: "which model?" in [c.last_user for c in upstream.calls])
    log = app.log()
    assert KEY not in log and VISITOR_KEY not in log and "SECRET-0042" not in log
    assert "kind=bad_request" in log and "status=400" in log  # the failure is still logged, by kind and status


def test_an_upload_over_max_file_mb_is_refused_before_it_is_stored(app, tmp_path):
    """MAX_FILE_MB (20 by default) bounds /gradio_api/upload itself, not only what reaches Kimi."""
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_bytes(b"x" * 1024)
    large.write_bytes(b"x" * (21 * 2**20))
    with httpx.Client(base_url=app.url, timeout=60) as http:
        for path, allowed in ((small, True), (large, False)):
            with path.open("rb") as f:
                response = http.post("gradio_api/upload", files={"files": (path.name, f, "text/plain")})
            assert (response.status_code == 200) is allowed, (path.name, response.status_code, response.text[:200])


def upload(http: httpx.Client, name: str, address: str) -> httpx.Response:
    return http.post(
        "gradio_api/upload", files={"files": (name, b"some notes", "text/plain")}, headers={"X-Forwarded-For": address}
    )


def test_uploads_count_against_the_address(limited_app):
    """UPLOADS_PER_MINUTE (2 here) per address: a file is stored before any message names it, so
    uploads are limited where they arrive; another address is not held back."""
    with httpx.Client(base_url=limited_app.url, timeout=30) as http:
        codes = [upload(http, f"n{i}.txt", "198.51.100.40").status_code for i in range(3)]
        assert codes == [200, 200, 429]
        assert upload(http, "other.txt", "198.51.100.41").status_code == 200


def test_uploads_are_deleted_after_files_kept_seconds(limited_app):
    """Blocks(delete_cache=...) from FILES_KEPT_SECONDS (3 here): a stored upload does not stay."""
    with httpx.Client(base_url=limited_app.url, timeout=30) as http:
        response = upload(http, "kept.txt", "198.51.100.42")
    stored = Path(response.json()[0])
    assert stored.exists()
    assert wait_for(lambda: not stored.exists(), 20)


def test_no_call_skips_the_queue(app):
    """api_open=False as on a Space: /chat is served through the queue only (and its limits)."""
    body = {"data": [{"text": "hi", "files": []}, [], "assistant", "", 0.5, ""]}
    response = httpx.post(app.url + "gradio_api/run/chat", json=body, timeout=30)
    assert response.status_code == 404 and "join the queue" in response.text


def test_an_oversized_request_body_is_refused_before_it_is_read(app):
    """MAX_BODY_MB (8 by default) bounds every request but uploads: a page's step or API call
    carrying a huge message or history gets 413 without the app reading it."""
    huge = {"data": [{"text": "x" * (9 * 2**20), "files": []}], "fn_index": 0, "session_hash": "s"}
    with httpx.Client(base_url=app.url, timeout=60) as http:
        for path in ("gradio_api/queue/join", "gradio_api/run/predict"):
            assert http.post(path, json=huge).status_code == 413
        assert http.get("config").status_code == 200


def test_deep_links_are_closed(app):
    """Gradio's deep links would hand a session's values (a visitor's own key among them) to anyone
    naming its session hash: the app's middleware answers that route with 404."""
    session = uuid.uuid4().hex[:11]
    for path in ("gradio_api/deep_link", "gradio_api/deep_link/"):
        assert httpx.get(app.url + path, params={"session_hash": session}).status_code == 404
    assert httpx.get(app.url + "config").status_code == 200  # the rest of the app is untouched


def test_no_request_can_name_the_upstream(app, upstream):
    """/chat takes the message and four choices, none of them a URL: the base URL is the owner's; so do
    the MCP tools. (/chat is undocumented, off the API page and the MCP tool list, but callable.)"""
    info = httpx.get(app.url + "gradio_api/info", params={"all_endpoints": "true"}).json()
    params = {p["parameter_name"] for p in info["named_endpoints"]["/chat"]["parameters"]}
    assert params == {"message", "persona_id", "model_id", "temperature", "own_key"}
    tools = httpx.get(app.url + "gradio_api/info").json()["named_endpoints"]
    assert {name: [p["parameter_name"] for p in e["parameters"]] for name, e in tools.items()} == {
        "/list_personas": [],
        "/ask_persona": ["persona", "message", "model"],
    }


def forged_call(app, trigger: str, data: list) -> list[dict]:
    """Fire the page's ``trigger`` event (e.g. ("message", "submit")) as a forged browser would,
    through the raw queue protocol, with ``data`` as its inputs. Returns the stream's messages."""
    config = httpx.get(app.url + "config").json()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    element, name = trigger
    dependency = next(
        i for i, d in enumerate(config["dependencies"]) if [ids[element], name] in [list(t) for t in d["targets"]]
    )
    session = uuid.uuid4().hex[:11]
    body = {"data": data, "fn_index": dependency, "session_hash": session, "event_data": None, "trigger_id": None}
    with httpx.Client(base_url=app.url, timeout=30) as http:
        http.post("gradio_api/queue/join", json=body).raise_for_status()
        messages = []
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    messages.append(json.loads(line[5:]))
                    if messages[-1].get("msg") == "process_completed":
                        break
    return messages


def test_queued_jobs_whose_stream_is_never_read_run_one_at_a_time(app, upstream):
    """A client joining the queue again and again in one session, never opening the stream that
    would show the replies: one reply runs at a time, the rest are refused before Kimi is asked."""
    upstream.tokens, upstream.token_delay = 100, 0.02  # two seconds a reply: the joins overlap it
    config = httpx.get(app.url + "config").json()
    chat = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "chat")
    session = uuid.uuid4().hex[:11]
    with httpx.Client(base_url=app.url, timeout=30) as http:
        for n in range(3):
            data = [{"text": f"unread {n}", "files": []}, [], "assistant", "", 0.6, ""]
            body = {"data": data, "fn_index": chat, "session_hash": session, "event_data": None, "trigger_id": None}
            http.post("gradio_api/queue/join", json=body).raise_for_status()
    assert wait_for(lambda: upstream.calls and upstream.calls[0].completed, 15)
    assert len(upstream.calls) == 1, [c.last_user for c in upstream.calls]


def test_the_page_cannot_send_files_from_outside_the_uploads(app, upstream, tmp_path):
    """A forged message or chat naming a server file is refused before anything reaches Kimi:
    the message enters through the box's submit, the chat through the chatbot's own events."""
    hello = {"text": "hello", "files": []}
    assert forged_call(app, ("message", "submit"), [hello])[-1]["success"]  # the forged calls themselves work
    hi = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]  # content as the page sends it
    assert forged_call(app, ("chatbot", "clear"), [hi])[-1]["success"]
    upstream.reset()
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER-5521")
    file = {"path": str(secret), "orig_name": "secret.txt", "meta": {"_type": "gradio.FileData"}}
    in_message = forged_call(app, ("message", "submit"), [{"text": "summarise this", "files": [file]}])
    in_chat = forged_call(app, ("chatbot", "clear"), [[{"role": "user", "content": [{"type": "file", "file": file}]}]])
    for messages in (in_message, in_chat):
        assert messages[-1]["msg"] == "process_completed" and not messages[-1]["success"]
    assert not upstream.calls and not upstream.files
    assert "SECRET-MARKER" not in app.log()
