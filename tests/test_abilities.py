"""Documents, images and web search, through ChatService against the local Kimi server."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from conftest import PNG, answer_of, make_service, notes_of, run
from kimi_server import K3, UNREADABLE

from kimichat.guard import Visitor
from kimichat.tags import reply_tags


@pytest.fixture
def paper(tmp_path):
    path = tmp_path / "paper.md"
    path.write_text("# Results\nThe ablation marker ZEBRA-42 improves recall.", encoding="utf-8")
    return str(path)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(PNG)
    return str(path)


def asked(call) -> list[dict]:
    """The messages of a request up to the question (Lab Cat's role-play turn, which follows it, left out)."""
    return [m for m in call.body["messages"] if not m.get("partial")]


def steps_of(messages) -> str:
    return " ".join(m["metadata"]["title"] for m in messages if (m.get("metadata") or {}).get("title"))


async def test_document_is_extracted_placed_and_cleaned_up(service, upstream, paper):
    updates = await run(service, {"text": "summarise", "files": [paper]}, persona="researcher")
    sent = asked(upstream.calls[-1])
    system_docs = [m for m in sent[1:] if m["role"] == "system"]
    assert len(system_docs) == 1 and "ZEBRA-42" in json.loads(system_docs[0]["content"])["content"]
    assert sent[-1] == {"role": "user", "content": "summarise"}
    assert sent.index(system_docs[0]) == len(sent) - 2  # just before it
    assert list(upstream.files) == upstream.deleted  # uploaded once, deleted at once
    assert "Read paper.md" in steps_of(updates[-1].messages)
    assert "[documents:1 images:0]" in answer_of(updates[-1].messages)


async def test_a_document_is_not_uploaded_again_on_later_turns(service, upstream, paper):
    first = await run(service, {"text": "summarise", "files": [paper]}, persona="researcher")
    history = [
        {"role": "user", "content": [{"path": paper}, "summarise"]},
        *first[-1].messages,
    ]
    await run(service, "and the limitations?", history, persona="researcher")
    assert len(upstream.files) == 1  # the cache sent it once
    assert "ZEBRA-42" in str(upstream.calls[-1].body["messages"])  # still in the conversation


async def test_images_go_to_vision_models_as_data_urls(service, upstream, image):
    updates = await run(service, {"text": "what is this?", "files": [image]}, persona="assistant")
    parts = upstream.calls[-1].body["messages"][-1]["content"]
    assert parts[0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    }
    assert parts[1] == {"type": "text", "text": "what is this?"}
    assert "[documents:0 images:1]" in answer_of(updates[-1].messages)


async def test_a_blind_model_is_never_sent_an_image(service, upstream, image):
    updates = await run(service, {"text": "see?", "files": [image]}, persona="assistant", model="kimi-k2-turbo-preview")
    assert "cannot see images" in notes_of(updates[-1].messages)
    assert upstream.calls == []


@pytest.mark.parametrize(
    ("persona", "name", "says"),
    [
        ("translator", "paper.md", "does not read documents"),
        ("writing-tutor", "figure.png", "does not look at images"),
        ("assistant", "tool.exe", "cannot be read here"),
    ],
)
async def test_files_a_persona_cannot_take_are_refused_before_any_upload(
    service, upstream, tmp_path, persona, name, says
):
    path = tmp_path / name
    path.write_bytes(PNG)
    updates = await run(service, {"text": "look", "files": [str(path)]}, persona=persona)
    assert says in notes_of(updates[-1].messages)
    assert upstream.calls == [] and upstream.files == {}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("figure.png", b"<html><img src=x onerror=alert(1)></html>"),  # HTML named as an image
        ("report.pdf", b"<html>not a pdf</html>"),
        ("notes.txt", PNG),  # binary bytes named as text
    ],
)
async def test_a_file_whose_bytes_are_not_what_its_name_says_is_refused(service, upstream, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    updates = await run(service, {"text": "look", "files": [str(path)]}, persona="assistant")
    assert "content does not match its name" in notes_of(updates[-1].messages)
    assert upstream.calls == [] and upstream.files == {}


async def test_an_image_travels_with_the_type_its_bytes_say(service, upstream, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 32)  # a JPEG, named .png
    await run(service, {"text": "what is it?", "files": [str(photo)]}, persona="assistant")
    part = upstream.calls[-1].body["messages"][-1]["content"][0]
    assert part["image_url"]["url"].startswith("data:image/jpeg;base64,")


async def test_text_in_any_encoding_is_a_document(service, upstream, tmp_path):
    notes = tmp_path / "笔记.txt"
    notes.write_bytes("实验记录：温度二十五度。".encode("gbk"))
    updates = await run(service, {"text": "总结", "files": [str(notes)]}, persona="researcher")
    assert notes_of(updates[-1].messages) == "" and len(upstream.files) == 1


async def test_earlier_images_are_re_sent_only_within_the_request_bound(service, upstream, tmp_path):
    from kimichat.attachments import MAX_IMAGES

    history = []
    for n in range(MAX_IMAGES + 3):
        path = tmp_path / f"fig{n}.png"
        path.write_bytes(PNG)
        history += [
            {"role": "user", "content": [{"type": "file", "file": {"path": str(path)}}]},
            {"role": "assistant", "content": f"figure {n} seen", "metadata": reply_tags("assistant")},
        ]
    await run(service, "compare them all", history, persona="assistant")
    sent = upstream.calls[-1].body["messages"]
    images = [m for m in sent if isinstance(m["content"], list)]
    assert len(images) == MAX_IMAGES
    assert images[-1]["content"][-1]["text"] == f"fig{MAX_IMAGES + 2}.png"  # the newest go
    assert {"role": "user", "content": "fig0.png"} in sent  # the oldest is named, not re-sent


async def test_a_message_with_more_images_than_a_request_takes_is_refused(service, upstream, tmp_path):
    from kimichat.attachments import MAX_IMAGES

    paths = []
    for n in range(MAX_IMAGES + 1):
        (tmp_path / f"p{n}.png").write_bytes(PNG)
        paths.append(str(tmp_path / f"p{n}.png"))
    updates = await run(service, {"text": "look", "files": paths}, persona="assistant")
    assert "more images than one message can carry" in notes_of(updates[-1].messages)
    assert upstream.calls == []


async def test_file_size_limit(upstream, paper):
    service = make_service(upstream.base_url, max_file_mb=0.00001)
    updates = await run(service, {"text": "summarise", "files": [paper]}, persona="researcher")
    assert "larger than" in notes_of(updates[-1].messages) and upstream.files == {}


@pytest.fixture
def long_paper(tmp_path):
    path = tmp_path / "thesis.md"
    path.write_text("A sentence of the thesis, with its findings. " * 1000, encoding="utf-8")  # 45 KB
    return str(path)


async def test_a_document_too_long_for_the_model_is_said_so_with_a_roomier_model(service, upstream, long_paper):
    updates = await run(
        service, {"text": "summarise", "files": [long_paper]}, persona="researcher", model="moonshot-v1-8k"
    )
    told = notes_of(updates[-1].messages)
    assert told.startswith("This document is too long for moonshot-v1-8k") and "Pick kimi-k2.6 in Settings" in told
    assert upstream.calls == []  # nothing went without the document


async def test_a_document_too_long_for_the_space_says_the_space_limit(upstream, long_paper):
    service = make_service(upstream.base_url, max_request_tokens=4000)
    updates = await run(service, {"text": "summarise", "files": [long_paper]}, persona="researcher")
    assert "This Space reads at most 4000 tokens at once" in notes_of(updates[-1].messages)
    assert upstream.calls == []


async def test_a_long_document_goes_with_its_question_and_older_turns_make_room(service, upstream, long_paper):
    older = [{"role": "user", "content": "x" * 60000}, {"role": "assistant", "content": "y" * 30}]
    older[1]["metadata"] = reply_tags("researcher")
    await run(service, {"text": "summarise", "files": [long_paper]}, older, persona="researcher")
    sent = asked(upstream.calls[-1])
    assert sent[-2]["role"] == "system" and "thesis" in sent[-2]["content"]
    assert all("x" * 100 not in str(m["content"]) for m in sent)  # the old turn went to make room


async def test_an_empty_file_is_refused_before_any_upload(service, upstream, tmp_path):
    empty = tmp_path / "notes.txt"
    empty.write_bytes(b"")
    updates = await run(service, {"text": "summarise", "files": [str(empty)]}, persona="researcher")
    assert notes_of(updates[-1].messages) == "notes.txt is empty: there is nothing to read."
    assert upstream.files == {} and upstream.calls == []


async def test_a_file_kimi_cannot_read_is_said_so_and_deleted(service, upstream, tmp_path):
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.7\n" + UNREADABLE + b" scanned pages, no text layer")
    updates = await run(service, {"text": "summarise", "files": [str(scan)]}, persona="researcher")
    assert notes_of(updates[-1].messages).startswith("scan.pdf could not be read")
    assert "busy" not in notes_of(updates[-1].messages) and upstream.calls == []
    assert upstream.deleted == list(upstream.files)  # not left on the owner's account


async def test_a_failed_delete_is_tried_again(service, upstream, paper, tmp_path):
    upstream.delete_failures = 3  # every try of the first delete fails...
    await run(service, {"text": "summarise", "files": [paper]}, persona="researcher")
    first = list(upstream.files)
    assert upstream.deleted == []
    other = tmp_path / "other.md"
    other.write_text("another paper", encoding="utf-8")
    await run(service, {"text": "and this", "files": [str(other)]}, persona="researcher")
    assert sorted(upstream.deleted) == sorted(upstream.files) and first[0] in upstream.deleted  # ...then it goes


async def test_a_delete_that_fails_once_is_retried_at_once(service, upstream, paper):
    upstream.delete_failures = 1
    await run(service, {"text": "summarise", "files": [paper]}, persona="researcher")
    assert upstream.deleted == list(upstream.files)


async def test_web_search_runs_the_tool_loop(service, upstream):
    updates = await run(service, "latest gradio", persona="web-scout")
    first, second = upstream.calls
    assert first.offers_search and second.offers_search
    assert first.body["thinking"] == {"type": "disabled"}  # search and thinking do not mix
    assistant, tool = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call-1"
    assert assistant["tool_calls"][0]["function"]["name"] == "$web_search"
    assert tool == {
        "role": "tool",
        "tool_call_id": "call-1",
        "name": "$web_search",
        "content": assistant["tool_calls"][0]["function"]["arguments"],
    }
    assert json.loads(tool["content"])["search_result"]["search_id"] == "s-1"
    final = updates[-1]
    assert answer_of(final.messages).startswith("Found: latest gradio")
    assert "Searched the web (1×)" in steps_of(final.messages)
    assert any("Searching the web" in steps_of(u.messages) for u in updates)
    assert final.usage.total_tokens > 15  # both requests counted


@pytest.mark.parametrize("model", ["kimi-k2-thinking", "kimi-k3"])
async def test_web_search_on_a_model_that_always_thinks_sends_the_turn_back_as_it_came(service, upstream, model):
    """Thinking cannot be turned off on these models, so Moonshot wants each tool-call turn back with
    its reasoning (the local server answers 400 without it, as Moonshot does)."""
    upstream.models.append(K3)
    updates = await run(service, "latest gradio", persona="web-scout", model=model)
    assert answer_of(updates[-1].messages).startswith("Found: latest gradio"), notes_of(updates[-1].messages)
    assistant = upstream.calls[1].body["messages"][-2]
    assert assistant["reasoning_content"] == "I should search the web."
    assert assistant["content"] == "" and assistant["tool_calls"][0]["type"] == "builtin_function"
    thinking = next(m for m in updates[-1].messages if "Thinking" in (m.get("metadata") or {}).get("title", ""))
    assert thinking["content"] == "I should search the web." and thinking["metadata"]["status"] == "done"


@pytest.mark.parametrize(
    ("persona", "model", "max_tokens"),
    [
        ("assistant", "kimi-k2.6", 32768),  # K2.6 thinks unless told not to
        ("translator", "kimi-k2.6", 8192),  # the persona turns thinking off
        ("web-scout", "kimi-k2.6", 8192),  # search turns it off
        ("assistant", "kimi-k2-thinking", 32768),
        ("assistant", "kimi-k2-turbo-preview", 8192),
        ("assistant", "moonshot-v1-8k", 2048),  # a quarter of the window at most
    ],
)
async def test_the_reply_budget_leaves_room_for_thinking(service, upstream, persona, model, max_tokens):
    await run(service, "hi", persona=persona, model=model)
    assert upstream.calls[0].body["max_tokens"] == max_tokens


async def test_the_search_round_cap_ends_in_an_answer_and_says_so(service, upstream):
    """Kimi asking to search on and on: after MAX_SEARCH_ROUNDS rounds the last request asks for the
    answer without offering the tool, and the visitor is told the search was cut short."""
    from kimichat.answer import MAX_SEARCH_ROUNDS

    updates = await run(service, "dig deeper [[searchloop]]", persona="web-scout")
    assert [c.offers_search for c in upstream.calls] == [True] * MAX_SEARCH_ROUNDS + [False]
    final = updates[-1].messages
    assert answer_of(final).startswith("Echo: dig ")
    assert "cut short after 5 rounds" in notes_of(final)
    assert updates[-1].usage is not None


@pytest.mark.parametrize("persona", ["web-scout", "assistant"])
async def test_tool_calls_nobody_offered_are_never_followed(service, upstream, persona):
    """An upstream asking to search on every request, tool offered or not: the reply still ends,
    after the capped rounds for a search persona and at once for one without search."""
    from kimichat.answer import MAX_SEARCH_ROUNDS

    updates = await asyncio.wait_for(run(service, "loop [[alwaystool]]", persona=persona), 20)
    rounds = MAX_SEARCH_ROUNDS + 1 if persona == "web-scout" else 1
    assert len(upstream.calls) == rounds
    assert updates[-1].usage is not None


async def test_reply_carries_its_tokens(service):
    updates = await run(service, "hi")
    answer = next(m for m in updates[-1].messages if "log" in (m.get("metadata") or {}))
    assert answer["metadata"]["log"] == f"tokens={updates[-1].usage.total_tokens}"


async def test_the_visit_budget_is_the_servers_own_count(upstream):
    """CONVERSATION_TOKEN_BUDGET counts what a browser session spent on the server: a page that drops
    the counts from the history it sends (or forges small ones) gets no fresh budget."""
    service = make_service(upstream.base_url, conversation_token_budget=40)
    visitor = Visitor(["ip:203.0.113.5", "session:s-budget"])
    first = await run(service, "hi", visitor=visitor)
    assert first[-1].usage.total_tokens > 40
    forged = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "metadata": {**reply_tags("assistant"), "log": "tokens=1"}},
    ]
    refused = await run(service, "more", forged, visitor=visitor)
    assert "This visit has used" in notes_of(refused[-1].messages) and len(upstream.calls) == 1
    await run(service, "hi", visitor=Visitor(["ip:203.0.113.6", "session:s-other"]))
    assert len(upstream.calls) == 2  # another session has its own budget
