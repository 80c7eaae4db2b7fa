"""Saved chats survive restarts (ui.keep_saved_chats): a fixed secret and storage key on
ChatInterface's BrowserState, and a loud stop if a Gradio upgrade moves them. The browser test
(test_browser.py) restarts the app and reopens a saved chat."""

from __future__ import annotations

import gradio as gr
import pytest

from kimichat.settings import Settings
from kimichat.ui import SAVED_CHATS_KEY, keep_saved_chats


def chat_interface() -> gr.ChatInterface:
    with gr.Blocks():
        return gr.ChatInterface(lambda message, history: message, save_history=True)


def test_the_secret_and_key_are_fixed_in_the_page_config():
    chat = chat_interface()
    keep_saved_chats(chat, Settings(space_id="tester/kimi-chat"))
    props = chat.saved_conversations.get_config()
    assert props["storage_key"] == SAVED_CHATS_KEY
    again = chat_interface()
    keep_saved_chats(again, Settings(space_id="tester/kimi-chat"))
    assert again.saved_conversations.get_config()["secret"] == props["secret"]  # the same at every launch
    other = chat_interface()
    keep_saved_chats(other, Settings(space_id="tester/other", saved_chats_secret="set-by-the-owner"))
    assert other.saved_conversations.get_config()["secret"] == "set-by-the-owner"


def test_startup_stops_if_gradio_no_longer_keeps_saved_chats_there():
    class Upgraded:  # a ChatInterface whose saved chats moved elsewhere
        saved_conversations = None

    with pytest.raises(RuntimeError, match="saved chats would vanish at every restart"):
        keep_saved_chats(Upgraded(), Settings())  # type: ignore[arg-type]
