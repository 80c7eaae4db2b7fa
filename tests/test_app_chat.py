"""The real app, driven through gradio_client, against the local Kimi server."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import pytest
from conftest import KEY, PERSONAS, answer_of, ask, ask_async, launch_app, make_service, notes_of, serving, wait_for


def test_reply_streams_in_several_updates(client, upstream):
    upstream.token_delay = 0.08
    job = ask_async(client, "hello there", "assistant", "", 0.6)
    answers = [answer_of(update[0]) for update in job]
    distinct = [a for i, a in enumerate(answers) if a and a != answers[i - 1]]
    assert len(distinct) >= 3, answers
    assert answers[-1].startswith("Echo: hello there |")
    assert upstream.calls[-1].completed


@pytest.mark.parametrize("persona", PERSONAS.personas, ids=lambda p: p.id)
def test_each_persona_prompt_reaches_upstream(client, upstream, persona):
    ask(client, "hi", persona.id, "", 0.6)
    call = upstream.calls[-1]
    assert call.system == persona.prompt("en", date.today())
    assert "{{date}}" not in call.system
    for shot in persona.few_shot:
        assert {"role": "user", "content": shot.user} in call.body["messages"]


def test_second_turn_carries_the_first_as_real_messages(client, upstream):
    ask(client, "first question", "translator", "", 0.6)
    ask(client, "second question", "translator", "", 0.6)
    messages = upstream.calls[-1].body["messages"]
    # (the opening greeting belongs to the default persona, so it is not carried over)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "first question"
    assert messages[2]["content"].startswith("Echo: firs")
    assert messages[3]["content"] == "second question"
    assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages)


def test_switching_persona_never_sends_old_turns(client, upstream):
    ask(client, "secret plan for the lab", "researcher", "", 0.6)
    ask(client, "translate this", "translator", "", 0.6)
    messages = upstream.calls[-1].body["messages"]
    assert messages[0]["content"] == PERSONAS.by_id["translator"].prompt("en")
    assert "secret plan" not in str(messages)
    assert [m["role"] for m in messages] == ["system", "user"]


def test_stop_closes_the_upstream_stream(client, upstream):
    job = ask_async(client, "long one [[tokens:200]] [[delay:0.1]]", "assistant", "", 0.6)
    assert wait_for(lambda: len(job.outputs()) >= 3, 20)
    job.cancel()
    assert wait_for(lambda: upstream.calls[-1].disconnected, 15), "upstream never saw the disconnect"
    assert not upstream.calls[-1].completed


def test_thinking_is_shown_apart_from_the_answer(client, upstream):
    messages, _ = ask(client, "why [[think]]", "math-tutor", "", 0.6)
    thinking = [m for m in messages if "Thinking" in (m.get("metadata") or {}).get("title", "")]
    assert len(thinking) == 1 and thinking[0]["content"] == "Let me think about this."
    assert thinking[0]["metadata"]["status"] == "done"
    assert "think about" not in answer_of(messages)
    # thinking is never sent back to Kimi on the next turn
    ask(client, "next", "math-tutor", "", 0.6)
    assert "think about" not in str(upstream.calls[-1].body["messages"])


def test_usage_is_captured_and_shown(client, upstream):
    _, usage = ask(client, "count me", "assistant", "", 0.6)
    match = re.search(r"(\d+) tokens \((\d+) in, (\d+) out\)", usage)
    assert match, usage
    shown, prompt, completion = (int(n) for n in match.groups())
    assert shown == upstream.calls[-1].total_tokens == prompt + completion  # as Kimi reported it
    assert "kimi-k2.6" in usage


def test_the_conversation_total_adds_up_its_replies(client, upstream):
    totals = []
    for text in ("first turn", "second turn"):  # one client: one session, one conversation
        _, usage = ask(client, text)
        reply, total = re.search(r"Last reply: (\d+) tokens.*this conversation: (\d+)", usage).groups()
        totals.append((int(reply), int(total)))
    (first_reply, first_total), (second_reply, second_total) = totals
    assert first_total == first_reply and second_total == first_reply + second_reply


def test_a_thinking_model_gets_no_temperature_and_shows_no_slider(client, upstream):
    from kimichat.ui import Page

    messages, _ = ask(client, "think it over", "writing-tutor", "kimi-k2-thinking", 0.7)
    assert answer_of(messages).startswith("Echo: thin")
    assert "temperature" not in upstream.calls[-1].body
    service = make_service(upstream.base_url)
    asyncio.run(service.catalog.models())  # the key's list, as the page's load event fetches it
    page = Page(service)
    assert page.temperature(PERSONAS.by_id["writing-tutor"], "kimi-k2-thinking")["visible"] is False
    assert page.temperature(PERSONAS.by_id["writing-tutor"], "kimi-k2-turbo-preview")["visible"] is True


def test_sampling_parameters_only_for_models_that_accept_them(client, upstream):
    ask(client, "hi", "writing-tutor", "kimi-k2-turbo-preview", 0.35)
    assert upstream.calls[-1].body["temperature"] == 0.35
    assert upstream.calls[-1].body["model"] == "kimi-k2-turbo-preview"
    ask(client, "hi", "writing-tutor", "", 0.35)
    assert upstream.calls[-1].body["model"] == "kimi-k2.6"
    assert "temperature" not in upstream.calls[-1].body and "top_p" not in upstream.calls[-1].body


def test_thinking_switch_is_sent_to_models_that_toggle_it(client, upstream):
    ask(client, "hi", "translator", "", 0.6)
    assert upstream.calls[-1].body["thinking"] == {"type": "disabled"}
    ask(client, "hi", "math-tutor", "", 0.6)
    assert upstream.calls[-1].body["thinking"] == {"type": "enabled"}


def test_unknown_model_falls_back_to_default(client, upstream):
    ask(client, "hi", "assistant", "kimi-retired-2024", 0.6)
    assert upstream.calls[-1].body["model"] == "kimi-k2.6"


def test_chinese_visitor_gets_chinese_notes(app, upstream):
    zh = app.client(**{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    messages, _ = ask(zh, "cut [[length]]", "assistant", "", 0.6)
    assert "长度上限" in notes_of(messages)


def test_more_chats_than_gradios_default_40_stream_at_once(app, upstream):
    """Gradio runs at most ``max_threads`` (default 40) queued events at once, whatever the
    concurrency limits say; the app raises it so CHAT_CONCURRENCY (100 here) is what holds."""
    upstream.token_delay = 0.1
    upstream.tokens = 30
    clients = [app.client() for _ in range(48)]
    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(lambda c: ask(c, "hi", "assistant", "", 0.6), clients))
    assert all(answer_of(messages).endswith(" t29") for messages, _ in results)
    assert upstream.max_open_streams > 40, upstream.max_open_streams


def test_key_is_nowhere_a_visitor_can_see(app, client, upstream):
    ask(client, "hi [[status:500]]", "assistant", "", 0.6)
    for path in ["", "config", "gradio_api/info"]:
        assert KEY not in httpx.get(app.url + path).text
    assert KEY not in app.log()


@pytest.fixture(scope="module")
def keyless_app(kimi, tmp_path_factory):
    with serving(kimi, tmp_path_factory.mktemp("nokey"), key=None, SPACE_ID="someone/kimi-chat") as running:
        yield running


def test_no_key_explains_how_to_add_one(keyless_app, upstream):
    messages, _ = ask(keyless_app.client(), "hello", "assistant", "", 0.6)
    text = notes_of(messages)
    assert "MOONSHOT_API_KEY" in text
    assert "https://huggingface.co/spaces/someone/kimi-chat/settings" in text
    assert upstream.calls == []
    zh = keyless_app.client(**{"Accept-Language": "zh-CN"})
    assert "密钥" in notes_of(ask(zh, "你好", "assistant", "", 0.6)[0])


def test_rejected_key_says_so_without_a_traceback(kimi, upstream, tmp_path):
    wrong = launch_app(tmp_path, {"MOONSHOT_API_KEY": "sk-test-wrong-key", "MOONSHOT_BASE_URL": kimi.base_url})
    try:
        messages, _ = ask(wrong.client(), "hello", "assistant", "", 0.6)
        text = notes_of(messages)
        assert "rejected" in text
        assert "Traceback" not in text and "sk-test-wrong-key" not in text
        assert "Traceback" not in wrong.log() and "sk-test-wrong-key" not in wrong.log()
    finally:
        wrong.stop()


def test_bad_persona_file_stops_startup_with_file_line_and_field(tmp_path):
    bad = tmp_path / "personas.yaml"
    bad.write_text("personas:\n  - id: x\n    name: X\n    description: d\n    system_prompt: p\n    temperature: 7\n")
    with pytest.raises(RuntimeError) as info:
        launch_app(tmp_path, {"PERSONAS_PATH": str(bad)})
    assert f"{bad}:6: personas[0].temperature" in str(info.value)
    assert "Traceback" not in str(info.value)


def test_a_file_travels_through_the_api(client, upstream, tmp_path):
    doc = tmp_path / "abstract.md"
    doc.write_text("We measure PANGOLIN-3 throughput.", encoding="utf-8")
    messages, usage = ask(client, "summarise", "researcher", files=[doc])
    assert "[documents:1 images:0]" in answer_of(messages)
    assert "PANGOLIN-3" in str(upstream.calls[-1].body["messages"])
    assert "this conversation:" in usage
