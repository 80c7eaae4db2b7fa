"""Personas the way Kimi plays them: role-play prefill (Partial Mode), Continue after the length
limit, and prompt caching, through ChatService against the local Kimi server."""

from __future__ import annotations

import pytest
from conftest import PERSONAS, answer_of, make_service, notes_of, run
from kimi_server import reply_tokens

from kimichat.conversation import turns
from kimichat.guard import Visitor, visitor_ids
from kimichat.personas import PersonaFile
from kimichat.tags import was_cut

CONTINUE = "⏩ Continue"


def last_message(upstream) -> dict:
    return upstream.calls[-1].body["messages"][-1]


def options_of(messages: list[dict]) -> list[dict]:
    return messages[-1].get("options") or []


def with_question(question: str, messages: list[dict]) -> list[dict]:
    """The history after one exchange: the question, then the reply's messages as the chat shows them."""
    return [{"role": "user", "content": question}, *messages]


def in_character(**changes) -> PersonaFile:
    """The shipped personas, with the assistant playing in character (and the changes given)."""
    personas = [
        p.model_copy(update={"in_character": True, **changes}) if p.id == "assistant" else p for p in PERSONAS.personas
    ]
    return PersonaFile(default=PERSONAS.default, personas=personas)


# -- role-play prefill ---------------------------------------------------------------------------


async def test_an_in_character_persona_answers_from_its_named_partial_turn(service, upstream):
    researcher = PERSONAS.by_id["researcher"]
    assert researcher.in_character  # Lab Cat plays a character; the assistant-like personas do not
    updates = await run(service, "hello", persona="researcher")
    assert last_message(upstream) == {
        "role": "assistant",
        "name": researcher.name.get("en"),
        "content": "",
        "partial": True,
    }
    assert answer_of(updates[-1].messages) == "".join(reply_tokens("hello", upstream.tokens))  # nothing twice
    await run(service, "你好", persona="researcher", lang="zh")
    assert last_message(upstream)["name"] == researcher.name.get("zh")  # in the reply's language
    await run(service, "hello", persona="translator")
    assert last_message(upstream) == {"role": "user", "content": "hello"}


async def test_no_partial_turn_where_moonshot_does_not_document_it(upstream):
    service = make_service(upstream.base_url, personas=in_character())
    await run(service, "hello", persona="assistant", model="kimi-k2-thinking")  # a request that thinks
    assert last_message(upstream)["role"] == "user"
    await run(service, "hello", persona="assistant", model="kimi-k2.6")  # K2.6 thinks unless told not to
    assert last_message(upstream)["role"] == "user"
    await run(service, "hello", persona="assistant", model="kimi-k2-turbo-preview")
    assert last_message(upstream)["partial"] is True
    searching = make_service(upstream.base_url, personas=in_character(web_search=True, thinking="off"))
    upstream.calls.clear()
    updates = await run(searching, "news?", persona="assistant", model="kimi-k2.6")
    assert len(upstream.calls) == 2 and all(not m.get("partial") for c in upstream.calls for m in c.body["messages"])
    assert "Found" in answer_of(updates[-1].messages)


# -- Continue after the length limit -------------------------------------------------------------


async def test_a_cut_reply_continues_word_for_word_until_it_is_whole(service, upstream):
    question = "tell me everything [[cut:4]]"
    whole = "".join(reply_tokens(question, upstream.tokens))
    history, shown = [], []
    message = question
    for _ in range(10):
        updates = await run(service, message, history, persona="assistant")
        reply = updates[-1].messages
        shown.append(answer_of(reply))
        if message == CONTINUE:  # Kimi got the cut text so far as its partial turn, and only that
            assert last_message(upstream) == {"role": "assistant", "content": "".join(shown[:-1]), "partial": True}
        history = [*history, {"role": "user", "content": message}, *reply]
        if not options_of(reply):
            break
        assert options_of(reply) == [{"label": CONTINUE, "value": CONTINUE}]
        assert "Continue picks it up" in notes_of(reply)
        message = CONTINUE
    assert len(shown) > 3 and "".join(shown) == whole
    assert [t.text for t in turns(history)] == [question, whole]  # Kimi sees one question, one answer
    await run(service, "thanks", history, persona="assistant")
    assert [m["role"] for m in upstream.calls[-1].body["messages"]] == ["system", "user", "assistant", "user"]


async def test_a_continuation_counts_against_the_limits(upstream):
    service = make_service(upstream.base_url, rate_limit_per_minute=2)
    visitor = Visitor(visitor_ids("10.0.0.1", "s1"))
    first = await run(service, "long [[cut:3]]", visitor=visitor)
    history = with_question("long [[cut:3]]", first[-1].messages)
    await run(service, CONTINUE, history, visitor=visitor)
    assert len(upstream.calls) == 2
    third = await run(service, CONTINUE, history, visitor=visitor)
    assert len(upstream.calls) == 2 and "messages" in notes_of(third[-1].messages).lower()


async def test_a_continue_with_nothing_to_continue_is_refused_in_a_sentence(service, upstream):
    whole = await run(service, "short answer", persona="assistant")
    assert not options_of(whole[-1].messages) and not was_cut(whole[-1].messages[-1])
    stale = await run(service, CONTINUE, with_question("short answer", whole[-1].messages))
    cut = await run(service, "long [[cut:3]]", persona="assistant")
    switched = await run(service, "⏩ 继续", with_question("long [[cut:3]]", cut[-1].messages), persona="translator")
    assert len(upstream.calls) == 2  # neither went upstream
    for refused in (stale, switched):
        assert "nothing to continue" in notes_of(refused[-1].messages)
        assert not answer_of(refused[-1].messages)
    typed = await run(service, "continue", with_question("short answer", whole[-1].messages))
    assert last_message(upstream) == {"role": "user", "content": "continue"}  # a typed word is a question
    assert answer_of(typed[-1].messages)


async def test_a_model_that_always_thinks_offers_no_continue(service, upstream):
    cut = await run(service, "long [[cut:3]]", persona="assistant", model="kimi-k2-thinking")
    assert not options_of(cut[-1].messages) and "stops here" in notes_of(cut[-1].messages)
    history = with_question("long [[cut:3]]", cut[-1].messages)
    history[1]["metadata"]["log"] += " cut"  # a page that says otherwise
    refused = await run(service, CONTINUE, history, persona="assistant", model="kimi-k2-thinking")
    assert "always thinks" in notes_of(refused[-1].messages) and len(upstream.calls) == 1


async def test_a_thinking_persona_continues_with_thinking_off(service, upstream):
    cut = await run(service, "prove it [[cut:3]]", persona="math-tutor")  # thinking: on, kimi-k2.6
    assert upstream.calls[-1].body["thinking"] == {"type": "enabled"} and options_of(cut[-1].messages)
    await run(service, CONTINUE, with_question("prove it [[cut:3]]", cut[-1].messages), persona="math-tutor")
    request = upstream.calls[-1].body
    assert request["thinking"] == {"type": "disabled"} and request["messages"][-1]["partial"] is True
    assert request["max_tokens"] == 8192  # the budget of a reply that does not think


async def test_a_model_that_reasons_without_a_switch_continues_from_the_cut_text(service, upstream):
    reasoner = {"id": "kimi-reasoner", "context_length": 131072, "supports_reasoning": True}
    upstream.models.append({**reasoner, "supports_image_in": False, "supports_video_in": False})
    cut = await run(service, "prove it [[cut:3]]", persona="math-tutor", model="kimi-reasoner")  # thinking: on
    assert options_of(cut[-1].messages)
    history = with_question("prove it [[cut:3]]", cut[-1].messages)
    await run(service, CONTINUE, history, persona="math-tutor", model="kimi-reasoner")
    request = upstream.calls[-1].body
    assert request["messages"][-1] == {"role": "assistant", "content": answer_of(cut[-1].messages), "partial": True}
    assert request["max_tokens"] == 8192  # the budget of a reply that does not think


# -- prompt caching ------------------------------------------------------------------------------


async def test_a_conversation_keeps_one_cache_key_and_its_usage_shows_the_hits(service, upstream):
    visitor = Visitor(visitor_ids("203.0.113.9", "session-abc"))
    first = await run(service, "hello", persona="assistant", visitor=visitor)
    history = with_question("hello", first[-1].messages)
    second = await run(service, "and then?", history, persona="assistant", visitor=visitor)
    keys = [c.body.get("prompt_cache_key") for c in upstream.calls]
    assert keys[0] and keys[0] == keys[1]
    assert not any(part in keys[0] for part in ("203.0.113.9", "session-abc", "hello"))
    assert first[-1].usage.cached_tokens == 0
    assert 0 < second[-1].usage.cached_tokens < second[-1].usage.prompt_tokens
    await run(service, "hello", persona="translator")  # another persona: another key
    await run(service, "something else", persona="assistant")  # another conversation: another key
    assert len({c.body["prompt_cache_key"] for c in upstream.calls}) == 3


@pytest.mark.parametrize("lang, words", [("en", "of them cached"), ("zh", "其中缓存命中")])
async def test_the_usage_line_shows_the_cached_share(service, upstream, lang, words):
    from kimichat.ui import usage_line

    first = await run(service, "hello", persona="assistant", lang=lang)
    second = await run(service, "more", with_question("hello", first[-1].messages), persona="assistant", lang=lang)
    assert words not in usage_line(first[-1], lang)
    line = usage_line(second[-1], lang)
    assert words in line and f"{second[-1].usage.cached_tokens:,}" in line
