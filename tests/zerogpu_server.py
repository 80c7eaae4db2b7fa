"""A stand-in for ZeroGPU's device API: it records every request and answers the startup report.

On a ZeroGPU Space, `spaces` POSTs ``/startup-report`` to ``SPACES_ZERO_DEVICE_API_URL`` at
launch (only if some function is decorated with ``@spaces.GPU``); without it the platform
stops the Space. A call to a decorated function asks the same API for a GPU (``/schedule``,
``/allow``, ``/release``): this stand-in refuses those with 503, so a test sees any such ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kimi_server import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GPU_PATHS = ("/schedule", "/allow", "/release")


@dataclass
class ZeroGpuServer:
    """The device API's state: ``requests`` holds (method, path) in arrival order."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def startup_reports(self) -> int:
        return self.requests.count(("POST", "/startup-report"))

    @property
    def gpu_asks(self) -> list[str]:
        return [path for _, path in self.requests if path.startswith(GPU_PATHS)]

    async def _any(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path))
        if request.url.path == "/startup-report":
            return Response(status_code=200)
        return JSONResponse({"error": "no GPU in this stand-in"}, status_code=503)

    def start(self) -> ZeroGpuServer:
        app = Starlette(routes=[Route("/{path:path}", self._any, methods=["GET", "POST", "DELETE", "PUT"])])
        self._server, self.port = serve_in_thread(app)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
