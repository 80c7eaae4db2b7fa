"""The page, rendered once and served many times (kimichat/pagecache.py): the same bytes Gradio
renders, for the host and visitor that asked, and Gradio reads nothing else of the request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.datastructures import MutableHeaders

from kimichat.pagecache import PageCache

# Headers a browser or Hugging Face's proxy sends that the cache does not key on: Gradio's page must
# not depend on them (a Gradio release that starts to read one fails here, not in production).
IGNORED = {
    "accept-language": "zh-CN,zh;q=0.9",
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) a-test-browser",
    "referer": "https://huggingface.co/spaces/someone/chat",
    "x-forwarded-for": "203.0.113.9",
    "x-real-ip": "203.0.113.9",
    "x-request-id": "Root=1-test",
    "x-ip-token": "a-zerogpu-token",
    "origin": "https://huggingface.co",
    "accept": "text/html",
    "sec-fetch-dest": "iframe",
}


def rendered(app, path: str = "/?render", **headers: str) -> httpx.Response:
    """The page as Gradio renders it: a query string always passes the cache."""
    return httpx.get(app.url.rstrip("/") + path, headers=headers, timeout=30)


def test_the_cached_page_is_the_page_gradio_renders(app):
    first, again, fresh = rendered(app, "/"), rendered(app, "/"), rendered(app)
    assert first.status_code == again.status_code == fresh.status_code == 200
    assert first.content == again.content == fresh.content
    assert "content-security-policy" in again.headers  # kept as PagePolicy sent it


@pytest.mark.parametrize("header", sorted(IGNORED))
def test_gradio_reads_nothing_of_a_page_request_that_the_cache_does_not_key_on(app, header):
    assert rendered(app, **{header: IGNORED[header]}).content == rendered(app).content


def test_each_host_gets_the_page_rendered_for_it(app):
    pages = {host: rendered(app, "/", **{"x-forwarded-host": host}).text for host in ("a.example", "b.example")}
    secure = rendered(app, "/", **{"x-forwarded-host": "a.example", "x-forwarded-proto": "https"}).text
    assert '"http://a.example"' in pages["a.example"] and "b.example" not in pages["a.example"]
    assert '"http://b.example"' in pages["b.example"] and "a.example" not in pages["b.example"]
    assert '"https://a.example"' in secure


# -- the middleware on its own, in front of a page that counts its renders ---------------------


class CountedPage:
    """An ASGI app that renders a page, counting renders; ``headers`` and ``status`` say how."""

    def __init__(self, status: int = 200, headers: list | None = None, parts: int = 1):
        self.status, self.parts, self.renders = status, parts, 0
        self.headers = headers if headers is not None else [(b"content-type", b"text/html; charset=utf-8")]

    async def __call__(self, scope, receive, send) -> None:
        self.renders += 1
        await asyncio.sleep(0.01)  # a render takes a while: visitors arriving meanwhile wait for it
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        for k in range(self.parts):
            await send({"type": "http.response.body", "body": b"<p>%d</p>" % k, "more_body": k < self.parts - 1})


def request(path: str = "/", method: str = "GET", query: bytes = b"", **headers: str) -> dict:
    encoded = [(k.encode(), v.encode()) for k, v in {"host": "space.example", **headers}.items()]
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": encoded}
    return {**scope, "scheme": "http", "server": ("127.0.0.1", 7860), "root_path": ""}


async def visit(cache: PageCache, scope: dict, on_send: Callable | None = None) -> tuple[int, bytes]:
    """One visitor's request through ``cache``: the status and body it received."""
    got: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if on_send:
            on_send(message)
        got.append(message)

    await cache(scope, receive, send)
    return got[0]["status"], b"".join(m.get("body", b"") for m in got[1:])


async def test_a_burst_of_visitors_waits_for_one_render():
    page = CountedPage(parts=3)
    cache = PageCache(page)
    answers = await asyncio.gather(*(visit(cache, request()) for _ in range(20)))
    assert page.renders == 1
    assert set(answers) == {(200, b"<p>0</p><p>1</p><p>2</p>")}
    await visit(cache, request())
    assert page.renders == 1


async def test_a_page_is_kept_only_for_its_seconds():
    page = CountedPage()
    cache = PageCache(page, seconds=0)
    for _ in range(3):
        await visit(cache, request())
    assert page.renders == 3


@pytest.mark.parametrize(
    "scope",
    [
        request(query=b"deep_link=abc"),
        request(query=b"__sign=a-hub-token"),
        request("/gradio_api/info"),
        request("/favicon.ico"),
        request(method="POST"),
    ],
    ids=["deep link", "query", "api route", "other path", "post"],
)
async def test_other_requests_are_left_to_gradio(scope):
    page = CountedPage()
    cache = PageCache(page)
    for _ in range(2):
        await visit(cache, scope)
    assert page.renders == 2


@pytest.mark.parametrize(
    "page",
    [
        CountedPage(status=500),
        CountedPage(headers=[(b"content-type", b"application/json")]),
        CountedPage(headers=[(b"content-type", b"text/html"), (b"set-cookie", b"access-token=x")]),
    ],
    ids=["an error", "not a page", "sets a cookie"],
)
async def test_what_is_not_a_plain_page_is_never_kept(page):
    cache = PageCache(page)
    for _ in range(2):
        await visit(cache, request())
    assert page.renders == 2


async def test_a_page_cut_short_by_its_visitor_is_not_kept():
    page = CountedPage(parts=3)
    cache = PageCache(page)

    def leave_midway(message: dict) -> None:
        if message.get("more_body") is False:
            raise OSError("the visitor went away")

    with pytest.raises(OSError):
        await visit(cache, request(), on_send=leave_midway)
    assert (await visit(cache, request()))[1] == b"<p>0</p><p>1</p><p>2</p>"
    assert page.renders == 2


async def test_each_host_and_signed_in_visitor_has_its_own_page_and_the_least_recent_go():
    page = CountedPage()
    cache = PageCache(page, entries=2)
    alice, bob = request(cookie="access-token-x=alice"), request(cookie="access-token-x=bob")
    for scope in (alice, bob, alice, request(**{"x-forwarded-host": "a.example"}), alice, bob):
        await visit(cache, scope)
    # alice, bob; alice again from the cache; another host pushes out bob; alice kept; bob anew
    assert page.renders == 4
    assert len(cache.pages) == 2


async def test_headers_added_outside_for_one_visitor_never_reach_the_next():
    """Gradio's CORS middleware, outside, adds a visitor's Access-Control-Allow-Origin to the
    response's own list of headers (Starlette's MutableHeaders)."""
    cache = PageCache(CountedPage())

    async def with_origin(scope, receive, send):
        async def add(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["access-control-allow-origin"] = "https://a.example"
            await send(message)

        await cache(scope, receive, add)

    seen: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def record(message: dict) -> None:
        seen.append(message)

    await with_origin(request(), receive, record)  # rendered
    await with_origin(request(), receive, record)  # from the cache
    await cache(request(), receive, record)  # from the cache, no origin
    starts = [dict(m["headers"]) for m in seen if m["type"] == "http.response.start"]
    assert [h.get(b"access-control-allow-origin") for h in starts] == [b"https://a.example"] * 2 + [None]
    assert len(starts[0]) == len(starts[1]) == len(starts[2]) + 1
