"""The app's own ASGI middleware, passed to Gradio's FastAPI app through ``launch(app_kwargs=...)``.

Pure ASGI: it looks at each request's path and headers once and then steps aside, so streamed
replies pay nothing per update. It answers what Gradio has no setting for, before Gradio reads
a body: routes this app does not serve, bodies too large to be a chat's, the page's direct calls
and uploads past a visitor's limits, files named by URL, and the page's content security policy.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.formparsers import MultiPartException
from starlette.requests import Request

from .address import AddressReader
from .guard import EdgeGate
from .i18n import Refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

# Routes the chat never uses. Deep links hand a session's values (a visitor's own key among them) to
# anyone who names its session; process_recording and component_server store what is posted; the
# streaming-input, vibe and run-history routes serve features the app has none of; file=<URL> and
# proxy= make the server fetch from another host for the caller.
CLOSED = re.compile(
    r"/gradio_api/(?:deep_link|process_recording|component_server|stream/|vibe-|undo-vibe|run-history"
    r"|proxy=|file=[A-Za-z][A-Za-z0-9+.-]*:)"
)
UPLOAD = re.compile(r"/gradio_api/upload/?$")
DIRECT = re.compile(r"/gradio_api/(?:run/|api/|mcp(?:/|$))")  # calls past the queue (queue=False), MCP's too
WITH_DATA = re.compile(r"/gradio_api/(?:queue/join|run/|api/|call/)")  # bodies whose data Gradio preprocesses


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), "")


async def _answer(send: Callable, status: int, text: str) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain; charset=utf-8")]}
    )
    await send({"type": "http.response.body", "body": text.encode()})


def _refused(refusal: Refusal) -> tuple[int, str]:
    """A refusal as an HTTP answer: 503 while the limits store is away, 413 for too many files, else 429."""
    return {"limits_down": 503, "too_many_files": 413}.get(refusal.key, 429), refusal.words("en")


def _posting(scope: Scope, route: re.Pattern[str]) -> bool:
    """Whether this is an HTTP POST to ``route``."""
    return scope["type"] == "http" and scope["method"] == "POST" and route.search(scope["path"]) is not None


class ClosedRoutes:
    """404 for ``CLOSED`` paths (under any root path); everything else passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and CLOSED.search(scope["path"]):
            await _answer(send, 404, "Not Found")
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 before reading a body over ``limit`` bytes (``direct_limit`` for the page's direct calls,
    measured against what a page sends: README), 411 for a body of unsaid length; uploads have
    their own checks (``UploadLimit`` and Gradio's ``max_file_size``). A refused body costs the
    server nothing of its size (six refused 20 MiB messages had raised the app's memory by 160 MB)."""

    def __init__(self, app: ASGIApp, limit: int, direct_limit: int) -> None:
        self.app, self.limit, self.direct_limit = app, limit, direct_limit

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH") and not UPLOAD.search(path):
            length = _header(scope, b"content-length")
            if not length.isdigit():
                await _answer(send, 411, "Length Required")
                return
            if int(length) > (self.direct_limit if DIRECT.search(path) else self.limit):
                await _answer(send, 413, "Request Entity Too Large")
                return
        await self.app(scope, receive, send)


class DirectCallLimit:
    """429 for a direct call past the address's rate. Each can make Gradio keep a session's state
    (a made-up session name makes a new one), so their number is what bounds that memory."""

    def __init__(self, app: ASGIApp, gate: EdgeGate, reader: AddressReader) -> None:
        self.app, self.gate, self.reader = app, gate, reader

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if _posting(scope, DIRECT):
            refusal = await self.gate.direct_call(self.reader.of(Request(scope)))
            if refusal:
                await _answer(send, *_refused(refusal))
                return
        await self.app(scope, receive, send)


class UploadLimit:
    """Uploads per address, counted before their bytes are read: the request's size (Content-Length)
    against the hourly bytes, then each file as its part begins against the upload rate; a request
    with more files than a message may carry stops at the first part too many. Gradio stores each
    file as it streams in, so a file is counted before it is passed on. A stop is Starlette's
    ``MultiPartException``, on which Gradio deletes what it had stored of the request and answers
    with our sentence; only the status is ours to set."""

    def __init__(self, app: ASGIApp, gate: EdgeGate, reader: AddressReader, max_files: int) -> None:
        self.app, self.gate, self.reader, self.max_files = app, gate, reader, max_files

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if not _posting(scope, UPLOAD):
            await self.app(scope, receive, send)
            return
        address = self.reader.of(Request(scope))
        boundary = re.search(r"boundary=\"?([^\";]+)", _header(scope, b"content-type"))
        length = _header(scope, b"content-length")
        if not boundary or not length.isdigit():
            await _answer(send, 411 if boundary else 400, "An upload is a multipart form of known length.")
            return
        refusal = await self.gate.upload_bytes(address, int(length))
        if refusal:
            await _answer(send, *_refused(refusal))
            return
        counter, stopped = PartCounter(boundary[1].encode("latin-1")), []
        too_many = Refusal("too_many_files", {"limit": self.max_files})

        async def counted() -> Message:
            message = await receive()
            for _ in range(counter.feed(message.get("body", b""))):
                # a part past what a message carries is refused before it counts against the address
                refusal = too_many if counter.parts > self.max_files else await self.gate.upload_file(address)
                if refusal:
                    stopped.append(_refused(refusal))
                    raise MultiPartException(stopped[0][1])
            return message

        async def with_status(message: Message) -> None:
            if stopped and message["type"] == "http.response.start":
                message = {**message, "status": stopped[0][0]}
            await send(message)

        await self.app(scope, counted, with_status)


class PartCounter:
    """Counts the parts of a multipart body as its chunks arrive (a delimiter may straddle two)."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"--" + boundary + b"\r\n"
        self.tail, self.parts = b"\r\n", 0  # the body's first delimiter has no line break before it

    def feed(self, chunk: bytes) -> int:
        """How many new parts begin in ``chunk``."""
        data = self.tail + chunk
        found = data.count(b"\r\n" + self.delimiter)
        self.tail = data[-(len(self.delimiter) + 1) :]
        self.parts += found
        return found


def _names_a_url(value: Any) -> bool:
    """Whether a file object anywhere in ``value`` names its file by URL (Gradio would download it)."""
    if isinstance(value, dict):
        path = value.get("path")
        if isinstance(path, str) and re.match(r"\s*[A-Za-z][A-Za-z0-9+.-]+:", path):
            return True
        return any(_names_a_url(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_a_url(v) for v in value)
    return False


class NoFileUrls:
    """400 for a call whose data names a file by URL: Gradio's preprocessing would download it into
    its cache before any gate (past the file size, the upload limits and the message rate). The
    page only ever sends files it uploaded. The body (already bounded by ``BodyLimit``) is read
    here once and handed on as it came."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if not _posting(scope, WITH_DATA):
            await self.app(scope, receive, send)
            return
        chunks, message = [], {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] != "http.request":
                return  # the caller went away
            chunks.append(message.get("body", b""))
        body = b"".join(chunks)
        if b"path" in body or b"\\u" in body:  # a file object has a "path"; skip the parse otherwise
            try:
                by_url = _names_a_url(json.loads(body))
            except ValueError:
                by_url = False  # not JSON: Gradio answers it
            except RecursionError:  # nested past any page's data: not read further
                await _answer(send, 400, "Bad Request")
                return
            if by_url:
                await _answer(send, 400, Refusal("file_by_url").words("en"))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# Replies are Markdown written by Kimi, which a prompt injection can steer: anything that fetches
# by itself (an image, audio or video, an object, a frame) or a form naming another host would
# leak the conversation from the visitor's browser. They are held to this app (and data/blob
# sources); Gradio's page needs its inline scripts and styles, so those are not restricted
# (markup.py keeps a reply's tags from acting instead).
PAGE_POLICY = (
    b"img-src 'self' data: blob:; media-src 'self' data: blob:; object-src 'none'; frame-src 'none'; "
    b"form-action 'self'; base-uri 'self'"
)


class PagePolicy:
    """Adds ``PAGE_POLICY`` as the Content-Security-Policy of HTML responses (the page itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or "/gradio_api/" in scope["path"]:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    message = {**message, "headers": [*headers, (b"content-security-policy", PAGE_POLICY)]}
            await send(message)

        await self.app(scope, receive, send_with_policy)


def megabytes(mb: float) -> int:
    return math.ceil(mb * 2**20)
