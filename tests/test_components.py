"""The chat's message box and chatbot (kimichat/components.py) are Gradio's own to the page and to
API callers, with their API schema built once per class instead of once per update."""

from __future__ import annotations

import gradio as gr
import pytest

from kimichat.components import ChatView, MessageBox


@pytest.mark.parametrize(("ours", "gradios"), [(MessageBox, gr.MultimodalTextbox), (ChatView, gr.Chatbot)])
def test_each_is_gradios_component_with_its_schema_built_once(ours, gradios):
    first, second = ours(render=False), ours(render=False)
    assert first.get_block_name() == gradios(render=False).get_block_name()  # the page draws Gradio's own
    assert first.api_info() == gradios(render=False).api_info()
    assert first.api_info() is second.api_info()  # one schema for every instance, every update


def test_the_page_draws_gradios_chatbot_and_message_box(app):
    config = app.client().config
    types = {c["type"] for c in config["components"]}
    assert {"chatbot", "multimodaltextbox"} <= types
    assert not types & {"chatview", "messagebox"}
