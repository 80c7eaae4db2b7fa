"""The page, rendered once and served many times: ASGI middleware in front of Gradio's page route.

Gradio renders ``GET /`` anew for every visitor: it deep-copies the page's config (87 kB, the
ChatInterface's 58 events and 40 components), rewrites its URLs for the request's host and
serializes it into the HTML, 6-7 ms of CPU a page on this project's machine, more than the rest
of a page load together (README, Benchmarks). The result is the same for every request that
agrees on what the route reads: the host it was asked for (``Host``, ``X-Forwarded-Host``,
``X-Forwarded-Proto``, ``X-Gradio-Server``, the scheme and root path) and who asks (Gradio's
login cookie, ``Authorization``). So a page is kept for ``PAGE_CACHE_SECONDS`` under those, and
a burst of visitors asking at once waits for one render. A query string (a deep link, a page of
a multipage app, Hugging Face's ``__sign``) is always rendered by Gradio.
``tests/test_page_cache.py`` fails if Gradio starts to read anything else of a page request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .middleware import ASGIApp, Message, Scope

PAGE_CACHE_SECONDS = 10.0  # a page changes only when the app restarts (or reloads, in development)
PAGE_CACHE_ENTRIES = 16  # hosts and signed-in visitors it keeps a page for, least recently used out

# What Gradio's page route reads of a request (route_utils.get_request_origin, routes.get_current_user)
READ = (b"host", b"x-forwarded-host", b"x-forwarded-proto", b"x-gradio-server", b"cookie", b"authorization")

Key = tuple


@dataclass(frozen=True)
class Page:
    """One rendered page: the response's start message and its body."""

    start: Message
    body: bytes
    until: float

    async def send(self, send: Callable) -> None:
        await send(fresh_start(self.start))  # middleware outside may add headers in place (CORS does)
        await send({"type": "http.response.body", "body": self.body})


class PageCache:
    """Keeps Gradio's rendered page (``GET /``, 200, HTML, no cookie set) and serves it again."""

    def __init__(self, app: ASGIApp, seconds: float = PAGE_CACHE_SECONDS, entries: int = PAGE_CACHE_ENTRIES):
        self.app, self.seconds, self.entries = app, seconds, entries
        self.pages: OrderedDict[Key, Page] = OrderedDict()
        self.rendering: dict[Key, asyncio.Future[Page | None]] = {}

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        key = page_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        page = self.fresh(key)
        if page is None and key in self.rendering:  # another visitor's render is under way
            page = await asyncio.shield(self.rendering[key])
        if page is not None:
            await page.send(send)
            return
        await self.render(key, scope, receive, send)

    def fresh(self, key: Key) -> Page | None:
        page = self.pages.get(key)
        if page is None or page.until < time.monotonic():
            return None
        self.pages.move_to_end(key)
        return page

    async def render(self, key: Key, scope: Scope, receive: Callable, send: Callable) -> None:
        """Gradio renders the page for this visitor; a page fit to keep is kept for the next."""
        rendered: asyncio.Future[Page | None] = asyncio.get_running_loop().create_future()
        self.rendering[key] = rendered
        start: Message = {}
        chunks: list[bytes] = []
        whole = []  # set once the last part of the body has gone to the visitor

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(fresh_start(message))  # as Gradio sent it, before this visitor's CORS headers
            await send(message)
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                whole.append(not message.get("more_body", False))

        try:
            await self.app(scope, receive, keep)
        finally:
            kept = keepable(start) and whole[-1:] == [True]
            page = Page(start, b"".join(chunks), time.monotonic() + self.seconds) if kept else None
            if page is not None:
                self.pages[key] = page
                self.pages.move_to_end(key)
                while len(self.pages) > self.entries:
                    self.pages.popitem(last=False)
            del self.rendering[key]
            rendered.set_result(page)


def page_key(scope: Scope) -> Key | None:
    """What the page route reads of this request, or None for a request this cache leaves alone."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/" or scope.get("query_string"):
        return None
    headers = tuple(sorted((k.lower(), v) for k, v in scope["headers"] if k.lower() in READ))
    return scope.get("scheme"), scope.get("server"), scope.get("root_path", ""), headers


def fresh_start(start: Message) -> Message:
    """A copy of a response's start with a list of headers of its own."""
    return {**start, "headers": list(start.get("headers", []))}


def keepable(start: Message) -> bool:
    """A complete 200 HTML page that sets no cookie."""
    if start.get("status") != 200:
        return False
    headers = [(k.lower(), v) for k, v in start.get("headers", [])]
    html = any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers)
    return html and not any(k == b"set-cookie" for k, _ in headers)
