"""The answer loop fed Kimi's events directly (ChatService.events), no HTTP in between: what the
reply shows, what is tried again, what a search round sends back. The app tests drive the same loop
through the local Kimi-compatible server."""

from __future__ import annotations

from conftest import answer_of, make_service, notes_of, run

from kimichat.kimi import ConnectionLost, Finish, TextDelta, ThinkingDelta, ToolCallDelta, Usage

UNUSED = "http://127.0.0.1:9/v1"  # nothing listens: every event comes from the test


def feeding(*scripts):
    """An events function that plays one script per request (the last one again if asked more), and
    the requests it was given."""
    requests = []

    async def events(client, request):
        requests.append(request)
        for event in scripts[min(len(requests), len(scripts)) - 1]:
            if isinstance(event, Exception):
                raise event
            yield event

    return events, requests


async def test_thinking_text_and_usage_become_the_reply():
    events, requests = feeding(
        [ThinkingDelta("weighing it"), TextDelta("Hello"), TextDelta(" there"), Usage(7, 3, 10), Finish("stop")]
    )
    service = make_service(UNUSED, events)
    updates = await run(service, "hi")
    last = updates[-1]
    assert answer_of(last.messages) == "Hello there" and last.usage.total_tokens == 10
    assert any("weighing it" in m["content"] for m in last.messages if m.get("metadata", {}).get("title"))
    assert len(requests) == 1 and requests[0].messages[-1]["content"] == "hi"


async def test_a_connection_lost_before_any_text_is_tried_again_and_after_it_is_kept():
    events, requests = feeding([ConnectionLost()], [TextDelta("second try"), Usage(1, 1, 2), Finish("stop")])
    service = make_service(UNUSED, events)
    assert answer_of((await run(service, "again"))[-1].messages) == "second try" and len(requests) == 2

    events, requests = feeding([TextDelta("half a rep"), ConnectionLost()])
    service = make_service(UNUSED, events)
    last = (await run(service, "cut"))[-1]
    assert answer_of(last.messages) == "half a rep" and "cut off" in notes_of(last.messages)
    assert len(requests) == 1  # never tried again once text was shown


async def test_a_search_round_sends_its_tool_turn_back_then_answers():
    call = ToolCallDelta(0, "call-1", "builtin_function", "$web_search", '{"query": "kimi"}')
    events, requests = feeding([call, Usage(5, 1, 6), Finish("tool_calls")], [TextDelta("found it"), Finish("stop")])
    service = make_service(UNUSED, events)
    last = (await run(service, "search please", persona="web-scout"))[-1]
    assert answer_of(last.messages) == "found it" and len(requests) == 2
    turn, answer = requests[1].messages[-2:]
    assert turn["role"] == "assistant" and turn["tool_calls"][0]["type"] == "builtin_function"
    assert answer == {"role": "tool", "tool_call_id": "call-1", "name": "$web_search", "content": '{"query": "kimi"}'}
