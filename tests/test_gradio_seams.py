"""Where the app tunes Gradio past its public API: these fail loudly if an upgrade moves the seam."""

from __future__ import annotations

import inspect

import httpx
from gradio.queueing import Queue
from kimi_server import free_port

from kimichat.personas import load_personas
from kimichat.settings import Settings
from kimichat.ui import QUEUE_POLL_SECONDS, build, launch_options, login_checks


def test_the_queue_polls_at_the_apps_pace():
    settings = Settings(api_key="")
    demo = build(settings, load_personas(settings.personas_path))
    assert demo._queue.sleep_when_free == QUEUE_POLL_SECONDS
    # the attributes are still the ones Gradio's loops read
    assert "self.sleep_when_free" in inspect.getsource(Queue.start_processing)
    assert "self.progress_update_sleep_when_free" in inspect.getsource(Queue.start_progress_updates)


def test_queue_requests_skip_gradios_threaded_login_check_only_without_a_login():
    settings = Settings(api_key="")
    personas = load_personas(settings.personas_path)
    options = {**launch_options(settings), "prevent_thread_lock": True, "server_name": "127.0.0.1"}
    open_app = build(settings, personas)
    open_app.launch(server_port=free_port(), **options)
    try:
        checks = login_checks(open_app.app)
        assert checks and all(open_app.app.dependency_overrides.get(c) is not None for c in checks)
        join = httpx.post(open_app.local_url + "gradio_api/queue/join", json={"data": [], "fn_index": 0})
        assert join.status_code != 401
    finally:
        open_app.close()
    locked = build(settings, personas)
    locked.launch(server_port=free_port(), auth=("owner", "secret-pass"), **options)
    try:
        assert login_checks(locked.app) and not locked.app.dependency_overrides
        join = httpx.post(locked.local_url + "gradio_api/queue/join", json={"data": [], "fn_index": 0})
        assert join.status_code == 401  # Gradio's own check still guards a Space with a login
    finally:
        locked.close()
