"""The Kimi stream reader against the local server's real SSE, faults included."""

from __future__ import annotations

import pytest
from conftest import KEY
from kimi_server import K3
from openai import AuthenticationError, BadRequestError, RateLimitError

from kimichat.kimi import (
    ChatRequest,
    ConnectionLost,
    Finish,
    StreamBroken,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    Usage,
    make_client,
    stream_reply,
)
from kimichat.models import FALLBACK_MODELS, ModelCatalog, ModelInfo
from kimichat.settings import Settings


@pytest.fixture
def settings(upstream):
    return Settings(api_key=KEY, base_url=upstream.base_url, max_retries=0)


async def collect(settings, text, model="kimi-k2.6", **kwargs):
    client = make_client(settings, kwargs.pop("api_key", None))
    request = ChatRequest(ModelInfo(model), [{"role": "user", "content": text}], max_tokens=100, **kwargs)
    return [event async for event in stream_reply(client, request)]


async def test_text_usage_and_finish(settings, upstream):
    events = await collect(settings, "hi")
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Echo: hi |" + "".join(f" t{i}" for i in range(upstream.tokens))
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.completion_tokens == 4 + upstream.tokens and usage.total_tokens > usage.completion_tokens
    assert events[-1] == Finish("stop")


async def test_thinking_comes_apart_and_first(settings):
    events = await collect(settings, "x [[think]]")
    kinds = [type(e) for e in events]
    assert kinds.index(ThinkingDelta) < kinds.index(TextDelta)
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "Let me think about this."


async def test_length_finish_is_reported(settings):
    assert (await collect(settings, "x [[length]]"))[-1] == Finish("length")


async def test_empty_choices_are_skipped(settings):
    events = await collect(settings, "x [[empty]]")
    assert events[-1] == Finish("stop")


@pytest.mark.parametrize("fault", ["[[drop:3]]", "[[malformed]]"])
async def test_broken_stream_raises_after_what_arrived(settings, fault):
    client = make_client(settings)
    request = ChatRequest(ModelInfo("kimi-k2.6"), [{"role": "user", "content": f"x {fault}"}], max_tokens=10)
    got = []
    with pytest.raises(StreamBroken):
        async for event in stream_reply(client, request):
            got.append(event)
    assert any(isinstance(e, TextDelta) for e in got)


async def test_http_errors_are_the_sdks_typed_errors(settings):
    with pytest.raises(RateLimitError):
        await collect(settings, "x [[status:429]]")
    with pytest.raises(AuthenticationError):
        await collect(settings, "x", api_key="sk-test-nope")


async def test_the_request_carries_only_what_the_model_accepts(settings, upstream):
    await collect(settings, "x", temperature=0.3, top_p=0.5, thinking="off")
    fixed = upstream.calls[-1].body
    assert "temperature" not in fixed and "top_p" not in fixed
    assert fixed["thinking"] == {"type": "disabled"} and fixed["stream"] is True
    await collect(settings, "x", model="kimi-k2-turbo-preview", temperature=0.3, thinking="on")
    free = upstream.calls[-1].body
    assert free["temperature"] == 0.3 and "thinking" not in free
    await collect(settings, "x", model="kimi-k2-thinking")
    assert "thinking" not in upstream.calls[-1].body


@pytest.mark.parametrize(("thinking", "effort"), [("on", "high"), ("off", "low"), ("auto", None)])
async def test_k3_takes_reasoning_effort_not_the_thinking_switch(settings, upstream, thinking, effort):
    upstream.models.append(K3)
    events = await collect(settings, "x", model="kimi-k3", thinking=thinking)
    assert events[-1] == Finish("stop")  # the local server refuses `thinking` and unknown efforts on K3
    body = upstream.calls[-1].body
    assert body.get("reasoning_effort") == effort and "thinking" not in body


async def test_a_tool_call_keeps_moonshots_own_type(settings, upstream):
    events = await collect(settings, "search this", web_search=True)
    assert upstream.calls[-1].body["tools"] == [{"type": "builtin_function", "function": {"name": "$web_search"}}]
    first = next(e for e in events if isinstance(e, ToolCallDelta))
    assert (first.id, first.type, first.name) == ("call-1", "builtin_function", "$web_search")
    arguments = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    assert '"search_id": "s-1"' in arguments
    assert events[-1] == Finish("tool_calls")


async def test_an_unreachable_kimi_is_a_lost_connection(settings):
    from kimi_server import free_port

    dead = Settings(api_key=KEY, base_url=f"http://127.0.0.1:{free_port()}/v1", connect_timeout=2)
    with pytest.raises(ConnectionLost):
        await collect(dead, "x")


async def test_catalog_reads_models_and_falls_back(settings, upstream):
    catalog = ModelCatalog(make_client(settings), "kimi-k2.6", ttl=600, timeout=5)
    ids = [m.id for m in await catalog.models()]
    assert ids == sorted(m["id"] for m in upstream.models)
    assert catalog.pick("moonshot-v1-8k").context_length == 8192
    assert not catalog.pick("kimi-k2-thinking").vision
    assert (await catalog.resolve("kimi-k2-thinking")).id == "kimi-k2-thinking"
    assert (await catalog.resolve("kimi-k9-gone")).id == "kimi-k2.6"
    upstream.models_status = 500
    broken = ModelCatalog(make_client(settings), "kimi-k2.6", ttl=600, timeout=5)
    assert "kimi-k2.6" in [m.id for m in await broken.models()]  # the built-in table


@pytest.mark.parametrize("body", ["<html><body>502 Bad Gateway</body></html>", '{"object": "list"}'])
async def test_an_unreadable_model_list_falls_back_to_the_built_in_table(settings, upstream, body):
    upstream.models_body = body
    catalog = ModelCatalog(make_client(settings), "kimi-k2.6", ttl=600, timeout=5)
    assert [m.id for m in await catalog.models()] == [m.id for m in FALLBACK_MODELS]  # the built-in table
    assert (await catalog.resolve("kimi-k3")).id == "kimi-k3"
    upstream.models_body = None
    assert upstream.models_calls == 1  # and it is asked again later, not at once


async def test_the_model_list_is_fetched_once_and_reused(settings, upstream):
    catalog = ModelCatalog(make_client(settings), "kimi-k2.6", ttl=600, timeout=5)
    for _ in range(3):
        await catalog.models()
    assert upstream.models_calls == 1
    expired = ModelCatalog(make_client(settings), "kimi-k2.6", ttl=0, timeout=5)
    await expired.models()
    await expired.models()
    assert upstream.models_calls == 3  # a ttl of 0 fetches every time: the count above is the cache's doing


async def test_a_retired_default_gives_way_to_the_best_listed_model_of_its_kind(settings, upstream, caplog):
    upstream.models = [*upstream.models, K3, {**K3, "id": "kimi-k2.7-code", "context_length": 262144}]
    catalog = ModelCatalog(make_client(settings), "kimi-k2.5", ttl=600, timeout=5)  # retired: not listed
    assert (await catalog.resolve(None)).id == "kimi-k3"  # reasons and sees, like K2.5; the newest such
    assert "default model kimi-k2.5 is not offered; using kimi-k3" in caplog.text
    assert (await catalog.resolve("kimi-k2-thinking")).id == "kimi-k2-thinking"  # a listed choice stands
    plain = ModelCatalog(make_client(settings), "moonshot-v1-32k", ttl=600, timeout=5)
    assert (await plain.resolve(None)).id == "kimi-k2-turbo-preview"  # the newest that neither reasons nor sees


def test_the_default_model_is_in_the_built_in_table():
    """With no model list (no key, Kimi unreachable) the default model must still be offered as itself."""
    assert Settings().default_model in {m.id for m in FALLBACK_MODELS}


def test_model_capabilities_from_ids():
    assert ModelInfo("kimi-k2.6").fixed_sampling and ModelInfo("kimi-k2.6").thinking_switch
    assert ModelInfo("kimi-k3").fixed_sampling and not ModelInfo("kimi-k3").thinking_switch
    assert not ModelInfo("kimi-k2-turbo-preview").fixed_sampling
    assert ModelInfo("moonshot-v1-8k").default_temperature == 0.3
    assert ModelInfo("kimi-k2-thinking").default_temperature == 1.0


async def test_a_connection_broken_mid_body_is_a_lost_connection(settings):
    got = []
    with pytest.raises(ConnectionLost):
        async for event in stream_reply(
            make_client(settings),
            ChatRequest(ModelInfo("kimi-k2.6"), [{"role": "user", "content": "x [[reset:3]]"}], max_tokens=10),
        ):
            got.append(event)
    assert any(isinstance(e, TextDelta) for e in got)


async def test_partial_mode_as_moonshot_documents_it(settings):
    """The local server continues a partial assistant turn without repeating it, and refuses
    ``partial`` where Moonshot does (and where it is undocumented: thinking, tools)."""
    client = make_client(settings)
    question = {"role": "user", "content": "go"}

    async def answer(messages, model="kimi-k2-turbo-preview", **options):
        request = ChatRequest(ModelInfo(model), messages, max_tokens=100, **options)
        return "".join(e.text for e in [e async for e in stream_reply(client, request)] if isinstance(e, TextDelta))

    whole = await answer([question])
    rest = await answer([question, {"role": "assistant", "content": whole[:9], "partial": True}])
    assert whole[:9] + rest == whole
    partial = {"role": "assistant", "content": "Echo", "partial": True}
    for refused in (
        answer([partial, question]),  # not the last message
        answer([question, partial], model="kimi-k2-thinking"),  # a request that thinks
        answer([question, partial], web_search=True),  # offers a tool
    ):
        with pytest.raises(BadRequestError):
            await refused
    with pytest.raises(BadRequestError):
        await client.chat.completions.create(
            model="kimi-k2-turbo-preview",
            messages=[question, partial],
            stream=True,
            response_format={"type": "json_object"},
        )
