"""The app's own ASGI middleware, passed to Gradio's FastAPI app through ``launch(app_kwargs=...)``.

Pure ASGI: it looks at each request's path and headers once and then steps aside, so streamed
replies pay nothing per update. It answers what Gradio has no setting for: routes this app does
not serve, request bodies too large to be a chat's, and uploads past a visitor's upload limits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .guard import UploadGate

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

# Gradio's deep links hand a session's component values (a visitor's own key among them) to
# anyone who names its session hash; the chat has no use for them.
CLOSED = ("/gradio_api/deep_link",)


async def _answer(send: Callable, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


class BodyLimit:
    """413 before reading a body over ``limit`` bytes, 411 for a body of unsaid length; uploads
    pass (Gradio bounds them with ``max_file_size``). A refused message then costs the server
    nothing of its size (six refused 20 MiB messages had raised the app's memory by 160 MB)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        with_body = scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH")
        if with_body and not scope["path"].rstrip("/").endswith("/upload"):
            length = dict(scope["headers"]).get(b"content-length", b"")
            if not length.isdigit():
                await _answer(send, 411, b"Length Required")
                return
            if int(length) > self.limit:
                await _answer(send, 413, b"Request Entity Too Large")
                return
        await self.app(scope, receive, send)


# Replies are Markdown written by Kimi, which a prompt injection can steer: an image or a form
# naming another host would leak the conversation from the visitor's browser without a click.
# Only images and form targets are held to this app (and data/blob images); Gradio's page needs
# its inline scripts and styles, so nothing else is restricted.
PAGE_POLICY = b"img-src 'self' data: blob:; form-action 'self'"


class PagePolicy:
    """Adds ``PAGE_POLICY`` as the Content-Security-Policy of HTML responses (the page itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or "/gradio_api/" in scope["path"]:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    message = {**message, "headers": [*headers, (b"content-security-policy", PAGE_POLICY)]}
            await send(message)

        await self.app(scope, receive, send_with_policy)


class ClosedRoutes:
    """404 for ``CLOSED`` paths (under any root path), everything else passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(CLOSED):
            await _answer(send, 404, b"Not Found")
            return
        await self.app(scope, receive, send)


class UploadLimit:
    """429 for an upload past the address's upload limits (``UploadGate``), before it is read."""

    def __init__(self, app: ASGIApp, gate: UploadGate) -> None:
        self.app, self.gate = app, gate

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            client = scope.get("client")
            if not await self.gate.allows(headers, client[0] if client else None):
                await _answer(send, 429, b"Too Many Requests")
                return
        await self.app(scope, receive, send)
