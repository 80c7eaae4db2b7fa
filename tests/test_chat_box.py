"""The chat box's own message handling, against Gradio's where it stands in for it."""

from __future__ import annotations

import gradio as gr

from kimichat.chat_box import Stops, for_page, pop_last_turn, user_messages


def test_for_page_is_what_chatbot_postprocess_gives(tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("x")
    messages = [
        {"role": "assistant", "content": "hi", "metadata": {"id": "persona:a"}, "options": [{"value": "v"}]},
        *user_messages({"text": "  indented\n  text", "files": [str(doc)]}),
        {"role": "assistant", "content": "", "metadata": {"title": "Reading", "status": "pending"}},
        {"role": "assistant", "content": "think", "metadata": {"title": "💭", "status": "done", "duration": 1.5}},
        {"role": "user", "content": [{"type": "text", "text": "from the page"}]},
        {
            "role": "user",
            "content": [{"type": "file", "file": {"path": str(doc), "meta": {"_type": "gradio.FileData"}}}],
        },
        {"role": "assistant", "content": "| a | b |\n|---|---|\n\n```py\n    x = 1\n```", "metadata": None},
    ]
    assert for_page(messages) == gr.Chatbot().postprocess(messages).model_dump()


def test_retry_takes_back_the_last_turn_with_its_files():
    history = [
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        {"role": "user", "content": [{"type": "text", "text": "first"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
        {
            "role": "user",
            "content": [{"type": "file", "file": {"path": "/tmp/a.png"}}, {"type": "text", "text": "again"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "partial"}]},
    ]
    rest, message = pop_last_turn(history)
    assert rest == history[:3]
    assert message == {"text": "again", "files": [{"path": "/tmp/a.png"}]}


def test_an_empty_message_is_no_message():
    assert user_messages({"text": "", "files": []}) == []
    assert user_messages("") == []


def test_a_stop_is_for_its_own_turn_only():
    stops = Stops()
    stopped = stops.watch("s", 1.0)
    stops.ask("s", 1.0)
    assert stopped() and not stops.watch("other", 1.0)()
    stops.forget("s", 1.0)
    stops.ask("s", 1.0)  # came after turn 1 had ended: the next turn is not stopped by it
    assert not stops.watch("s", 2.0)()
    stops.ask("s", 3.0)  # asked while turn 3 still waited in the queue
    assert stops.watch("s", 3.0)()
