"""History normalising: Gradio 6 blocks in, plain Kimi turns out."""

from __future__ import annotations

from conftest import PERSONAS

from kimichat.conversation import (
    Attachment,
    Turn,
    build_messages,
    conversation_tokens,
    current_segment,
    fit_to_context,
    text_of,
    turns,
)
from kimichat.tags import reply_tags


def user(text):
    return {"role": "user", "content": [{"type": "text", "text": text}], "metadata": None, "options": None}


def bot(text, persona="assistant", **metadata):
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "metadata": metadata or reply_tags(persona),
        "options": None,
    }


def test_content_blocks_become_plain_text():
    assert (
        text_of([{"type": "text", "text": "a"}, {"type": "file", "file": {"path": "x"}}, {"type": "text", "text": "b"}])
        == "ab"
    )
    assert text_of("plain") == "plain"
    assert text_of(None) == ""


def test_thinking_and_notes_never_reach_kimi():
    history = [user("q"), bot("pondering", title="💭 Thinking"), bot("answer"), bot("cut", title="⚠️ Note")]
    assert turns(history) == [Turn("user", "q"), Turn("assistant", "answer")]


def test_empty_replies_are_dropped_and_unanswered_questions_replaced():
    history = [user("lost question"), bot("   "), user("asked again"), bot("ok")]
    assert turns(history) == [Turn("user", "asked again"), Turn("assistant", "ok")]
    failed = [user("first try"), bot("busy", title="⚠️ Note"), user("second try")]
    assert turns(failed) == [Turn("user", "second try")]


def test_files_and_their_text_are_one_turn():
    ui = [{"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/a.pdf"}}]}, user("summarise")]
    api = [{"role": "user", "content": [{"path": "/tmp/a.pdf"}, "summarise"]}]
    for history in (ui, api):
        assert turns(history) == [Turn("user", "summarise", ["/tmp/a.pdf"])]


def test_documents_and_images_are_placed_as_moonshot_documents():
    persona = PERSONAS.by_id["assistant"]
    history = [{"role": "user", "content": [{"path": "/d.pdf"}, {"path": "/i.png"}, "what is this"]}]
    ready = {
        "/d.pdf": Attachment("document", "d.pdf", '{"content": "paper"}'),
        "/i.png": Attachment("image", "i.png", "data:image/png;base64,AAAA"),
    }
    messages = build_messages(persona, turns(history), "en", ready)
    assert messages[1] == {"role": "system", "content": '{"content": "paper"}'}
    assert messages[2] == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "what is this"},
        ],
    }


def test_conversation_tokens_add_up_from_replies():
    history = [bot("a", log="tokens=120"), user("q"), bot("b", log="tokens=30"), bot("c", title="x")]
    assert conversation_tokens(history) == 150


def test_history_is_cut_where_another_persona_spoke():
    history = [bot("hi", "researcher"), user("a"), bot("b", "researcher"), user("c"), bot("d", "translator")]
    assert current_segment(history, "translator") == history[3:]
    assert current_segment(history, "researcher") == []
    assert current_segment([user("x")], "any") == [user("x")]


def test_messages_are_system_then_shots_then_turns_then_message():
    tutor = PERSONAS.by_id["writing-tutor"]
    messages = build_messages(
        tutor, turns([bot("hello", "writing-tutor"), user("q1"), bot("a1", "writing-tutor"), user("q2")]), "zh"
    )
    assert messages[0] == {"role": "system", "content": tutor.prompt("zh")}
    assert messages[1]["content"] == tutor.few_shot[0].user
    assert [m["role"] for m in messages[3:]] == ["assistant", "user", "assistant", "user"]
    assert messages[-1] == {"role": "user", "content": "q2"}


def test_localized_prompt_follows_the_visitor():
    researcher = PERSONAS.by_id["researcher"]
    assert "实验室老猫" in build_messages(researcher, turns([user("你好")]), "zh")[0]["content"]
    assert "Lab Cat" in build_messages(researcher, turns([user("hi")]), "en")[0]["content"]


def test_trimming_keeps_the_question_its_search_rounds_answer():
    """In a search round the last message is a tool answer: the question before it and its rounds
    are the new turn; only older turns go (a request is never sent without its question)."""
    call = {"id": "c1", "type": "builtin_function", "function": {"name": "$web_search", "arguments": "{}"}}
    messages = [
        {"role": "system", "content": "prompt"},
        {"role": "user", "content": "old " * 300},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "the new question"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "name": "$web_search", "content": "{}"},
    ]
    fitted = fit_to_context(messages, 1, 20)  # too small even for the new turn: the caller will refuse it
    assert [m["content"] for m in fitted] == ["prompt", "the new question", "", "{}"]
