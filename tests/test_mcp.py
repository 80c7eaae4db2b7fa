"""The Space as an MCP server: agents list the personas and ask them, under the page's limits.

Driven with the ``mcp`` package's own client over streamable HTTP, against the real app and the
local Kimi server. Every caller here writes its own X-Forwarded-For (the app trusts it, as it trusts
the Spaces proxy), so each test is a caller of its own."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from conftest import KEY, NO_RATE_LIMITS, PERSONAS, serving
from kimi_server import reply_tokens
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.types import CallToolResult

RATE = 3  # messages per caller per minute in this module's app
CALLS = 3  # MCP_CALLS: ask_persona calls at once, from all agents


@pytest.fixture(scope="module")
def mcp_app(kimi, tmp_path_factory):
    env = {
        **NO_RATE_LIMITS,
        "RATE_LIMIT_PER_MINUTE": str(RATE),
        "MCP_CALLS": str(CALLS),
        "TRUST_FORWARDED_FOR": "true",
        "ALLOWED_MODELS": "kimi-k2.6,kimi-k2-turbo-preview,kimi-k2-thinking",
    }
    with serving(kimi, tmp_path_factory.mktemp("mcp"), **env) as running:
        yield running


def new_address() -> str:
    n = uuid.uuid4().int
    return f"198.51.{n % 250}.{n // 250 % 250}"


@asynccontextmanager
async def agent(app, address: str | None = None) -> AsyncIterator[ClientSession]:
    """An MCP client session as a client app opens one, from ``address`` (a new one if not given)."""
    headers = {"X-Forwarded-For": address or new_address()}
    url = app.url + "gradio_api/mcp/"
    async with streamablehttp_client(url, headers=headers) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def session_call(app, tool: str, arguments: dict, address: str | None = None) -> CallToolResult:
    """One MCP session that calls ``tool``."""
    async with agent(app, address) as session:
        return await session.call_tool(tool, arguments)


def text_of(result: CallToolResult) -> str:
    return "".join(part.text for part in result.content)


async def test_the_tools_are_the_two_designed_ones(mcp_app):
    async with agent(mcp_app) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"ask_persona", "list_personas"}  # not /chat, not the page's steps
    ask = tools["ask_persona"]
    assert ask.inputSchema["properties"].keys() == {"persona", "message", "model"}  # no key, no history
    assert {"persona", "message"} <= set(ask.inputSchema.get("required", [])) and "model" not in ask.inputSchema.get(
        "required", []
    )
    assert "list_personas" in ask.inputSchema["properties"]["persona"]["description"]
    assert "persona" in ask.description and "Kimi" in ask.description
    assert tools["list_personas"].inputSchema["properties"] == {}
    listed = json.loads(text_of(await session_call(mcp_app, "list_personas", {})))
    assert [p["id"] for p in listed] == [p.id for p in PERSONAS.visible]
    scout = next(p for p in listed if p["id"] == "web-scout")
    assert scout["abilities"] == ["web_search"] and scout["name"] == PERSONAS.by_id["web-scout"].name.get("en")


async def test_ask_persona_answers_in_full_with_the_personas_prompt(mcp_app, upstream):
    upstream.token_delay = 0.01
    result = await session_call(mcp_app, "ask_persona", {"persona": "translator", "message": "hello <b>there</b>"})
    assert not result.isError
    assert text_of(result) == "".join(reply_tokens("hello <b>there</b>", upstream.tokens))
    assert upstream.calls[-1].system == PERSONAS.by_id["translator"].prompt("en")
    thought = await session_call(mcp_app, "ask_persona", {"persona": "math-tutor", "message": "why [[think]]"})
    assert text_of(thought).startswith("Echo: why") and "think about" not in text_of(thought)  # no reasoning
    searched = await session_call(mcp_app, "ask_persona", {"persona": "web-scout", "message": "news"})
    assert text_of(searched).splitlines()[0] == "🔎 Searched the web (1×)" and "Found: news" in text_of(searched)


async def test_an_unknown_persona_or_model_is_a_clear_error_that_costs_nothing(mcp_app, upstream):
    unknown = await session_call(mcp_app, "ask_persona", {"persona": "pirate", "message": "ahoy"})
    assert unknown.isError and "no persona 'pirate'" in text_of(unknown)
    assert all(p.id in text_of(unknown) for p in PERSONAS.visible)
    outside = await session_call(
        mcp_app, "ask_persona", {"persona": "assistant", "message": "hi", "model": "moonshot-v1-8k"}
    )
    assert outside.isError and "not offered" in text_of(outside) and "kimi-k2.6" in text_of(outside)
    assert upstream.calls == []  # neither reached Kimi


async def test_callers_from_three_addresses_are_answered_at_once_and_each_one_at_a_time(mcp_app, upstream):
    upstream.token_delay = 0.15
    asks = [{"persona": "assistant", "message": f"caller {n}"} for n in range(3)]
    results = await asyncio.gather(*(session_call(mcp_app, "ask_persona", a) for a in asks))
    assert [text_of(r).startswith(f"Echo: caller {n}") for n, r in enumerate(results)] == [True] * 3
    assert upstream.max_open_streams == 3  # nothing serialized across callers
    one = new_address()
    twice = await asyncio.gather(
        *(
            session_call(mcp_app, "ask_persona", {"persona": "assistant", "message": f"again {n}"}, one)
            for n in range(2)
        )
    )
    refused = [r for r in twice if r.isError]
    assert len(refused) == 1 and "still being written" in text_of(refused[0])


async def test_calls_past_mcp_calls_are_refused_while_the_others_are_answered(mcp_app, upstream):
    upstream.token_delay = 0.15
    asks = [{"persona": "assistant", "message": f"crowd {n}"} for n in range(CALLS + 1)]
    results = await asyncio.gather(*(session_call(mcp_app, "ask_persona", a) for a in asks))
    refused = [text_of(r) for r in results if r.isError]
    assert refused == ["This Space is answering as many agents as it can right now. Please try again in a minute."]
    assert sum(c.last_user.startswith("crowd ") for c in upstream.calls) == CALLS


async def test_a_caller_over_the_message_rate_gets_the_limit_sentence(mcp_app, upstream):
    caller = new_address()
    results = [
        await session_call(mcp_app, "ask_persona", {"persona": "assistant", "message": f"rate {n}"}, caller)
        for n in range(RATE + 2)
    ]
    assert [r.isError for r in results] == [False] * RATE + [True] * 2
    assert "sending messages faster than this Space allows" in text_of(results[-1])
    assert sum(c.last_user.startswith("rate ") for c in upstream.calls) == RATE
    other = await session_call(mcp_app, "ask_persona", {"persona": "assistant", "message": "another caller"})
    assert not other.isError  # the limit is the caller's, not every agent's


async def test_an_upstream_error_that_echoes_the_key_never_reaches_the_caller_or_the_log(mcp_app, upstream):
    result = await session_call(mcp_app, "ask_persona", {"persona": "assistant", "message": "[[status:400:echo_auth]]"})
    assert result.isError and "Kimi" in text_of(result)
    assert KEY not in text_of(result) and "bad_key" not in text_of(result)
    assert KEY not in mcp_app.log()


def test_mcp_server_false_serves_no_mcp_route(kimi, tmp_path):
    with serving(kimi, tmp_path, MCP_SERVER="false", **NO_RATE_LIMITS) as app:
        for path in ("gradio_api/mcp/", "gradio_api/mcp/schema", "gradio_api/mcp/sse"):
            assert httpx.get(app.url + path, headers={"Accept": "text/event-stream"}).status_code == 404, path
        assert httpx.post(app.url + "gradio_api/mcp/", json={}).status_code == 404
