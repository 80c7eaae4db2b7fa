"""The app's own ASGI middleware, passed to Gradio's FastAPI app through ``launch(app_kwargs=...)``.

Pure ASGI: it looks at each request's path once and then steps aside, so streamed replies
pay nothing per update. It answers the routes this app does not serve, which Gradio has no
setting to turn off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

# Gradio's deep links hand a session's component values (a visitor's own key among them) to
# anyone who names its session hash; the chat has no use for them.
CLOSED = ("/gradio_api/deep_link",)


class ClosedRoutes:
    """404 for ``CLOSED`` paths (under any root path), everything else passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(CLOSED):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        await self.app(scope, receive, send)
