"""Where the app tunes Gradio past its public API: these fail loudly if an upgrade moves the seam."""

from __future__ import annotations

import inspect

from gradio.queueing import Queue

from kimichat.personas import load_personas
from kimichat.settings import Settings
from kimichat.ui import QUEUE_POLL_SECONDS, build


def test_the_queue_polls_at_the_apps_pace():
    settings = Settings(api_key="")
    demo = build(settings, load_personas(settings.personas_path))
    assert demo._queue.sleep_when_free == QUEUE_POLL_SECONDS
    # the attributes are still the ones Gradio's loops read
    assert "self.sleep_when_free" in inspect.getsource(Queue.start_processing)
    assert "self.progress_update_sleep_when_free" in inspect.getsource(Queue.start_progress_updates)
