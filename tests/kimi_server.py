"""A local Kimi-compatible server: Moonshot's wire format, recorded requests, fault modes.

It speaks the SSE stream exactly as ../shared/kimi-api.md describes it (role in the
first chunk only, usage inside ``choices[0]`` of the last chunk, ``data: [DONE]``) and
Moonshot's error bodies. Faults are chosen per request by directives in the last user
message, so concurrent tests do not step on each other:

    [[status:429]] [[status:429:rate_limit_reached_error]]   fail with that status/type
    [[status:400:echo_auth]]   fail with an error type that echoes the Authorization header
    [[think]]            stream reasoning_content before the answer
    [[tokens:N]]         answer with N filler tokens after the echo
    [[delay:S]]          S seconds between tokens; [[first:S]] before the first one
    [[drop:N]]           end the stream after N content tokens, without [DONE]
    [[reset:N]]          break the connection after N content tokens, mid-body
    [[length]]           finish with finish_reason "length"
    [[cut:N]]            stop after N content tokens with finish_reason "length" (a continuation is cut too)
    [[filter]]           finish with finish_reason "content_filter" after a few tokens
    [[malformed]]        send a data line that is not JSON after a few tokens
    [[midstream:TYPE]]   after a few tokens, send an error event of that Moonshot type and end
    [[empty]]            send chunks with an empty choices list along the way
    [[hang]]             send headers, then nothing
    [[searchloop]]       ask to search again on every request that offers $web_search
    [[alwaystool]]       ask to search on every request, offered the tool or not (a misbehaving upstream)

Models of fixed sampling (K2.5 and later, the thinking models) refuse any temperature or top_p
with 400, as Moonshot does; K3 takes ``reasoning_effort`` (low/high/max) and refuses ``thinking``;
a request that thinks refuses an assistant tool-call turn sent back without its
``reasoning_content``, and a tool-call round of such a request streams reasoning first. It
also serves Moonshot's files API (upload, extracted content, delete), refuses images for
models that cannot see (400), and answers a request that offers ``$web_search`` with
a streamed tool call first, then, once the tool message comes back, with the answer.

Partial Mode as Moonshot documents it: a last assistant message with ``partial: true`` is continued
without repeating it (the answer's tokens after the prefix, when the prefix is the start of the answer
this question gets); ``partial`` on another message, or with ``response_format: json_object``, is a
400. Stricter than Moonshot, to hold the app to what is documented: ``partial`` with thinking or with
``$web_search`` offered is a 400 too. Prompt caching: a request with a ``prompt_cache_key`` reports,
as ``cached_tokens`` (and, for K2.6, ``prompt_tokens_details.cached_tokens``), the prompt tokens of
the messages it shares from the start with the last request under that key.

``fail_next`` queues faults for the next requests whatever they say (for retries).
Run alone: ``python tests/kimi_server.py --port 8765 --tokens 60 --rate 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("invalid_authentication_error", "Invalid Authentication"),
    403: ("permission_denied_error", "Your account balance is insufficient"),
    404: ("resource_not_found_error", "Not found the model or Permission denied"),
    429: ("engine_overloaded_error", "The engine is currently overloaded, please try again later"),
    500: ("server_error", "Internal server error"),
}
MODELS = [
    {
        "id": "kimi-k2.6",
        "context_length": 262144,
        "supports_reasoning": True,
        "supports_image_in": True,
        "supports_video_in": True,
        "display_name": "Kimi K2.6",
    },
    {
        "id": "kimi-k2-turbo-preview",
        "context_length": 262144,
        "supports_reasoning": False,
        "supports_image_in": False,
        "supports_video_in": False,
        "display_name": "Kimi K2 Turbo",
    },
    {
        "id": "kimi-k2-thinking",
        "context_length": 262144,
        "supports_reasoning": True,
        "supports_image_in": False,
        "supports_video_in": False,
        "display_name": "Kimi K2 Thinking",
    },
    {
        "id": "moonshot-v1-8k",
        "context_length": 8192,
        "supports_reasoning": False,
        "supports_image_in": False,
        "supports_video_in": False,
        "display_name": "Moonshot v1 8k",
    },
]


UNREADABLE = b"%UNREADABLE"  # a file holding this cannot be extracted (its content request fails)
K3 = {  # not listed by default: a test that needs it adds it to ``KimiServer.models``
    "id": "kimi-k3",
    "context_length": 1048576,
    "supports_reasoning": True,
    "supports_image_in": True,
    "supports_video_in": True,
    "display_name": "Kimi K3",
}


@dataclass
class Call:
    """One chat request as the server saw it."""

    body: dict[str, Any]
    authorization: str
    completed: bool = False
    disconnected: bool = False
    url: str = ""
    at: float = field(default_factory=time.time)  # when it arrived
    total_tokens: int = 0  # the usage its stream reported, once it did

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.body.get("messages", []) if m["role"] == "system"), "")

    @property
    def last_user(self) -> str:
        users = [m for m in self.body.get("messages", []) if m["role"] == "user"]
        content = users[-1]["content"] if users else ""
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
        return content

    @property
    def attachments(self) -> tuple[int, int]:
        """(documents, images) in the request: system messages after the first, image parts."""
        messages = self.body.get("messages", [])
        documents = sum(m["role"] == "system" for m in messages[1:])
        images = sum(
            p.get("type") == "image_url" for m in messages if isinstance(m.get("content"), list) for p in m["content"]
        )
        return documents, images

    @property
    def offers_search(self) -> bool:
        tools = self.body.get("tools") or []
        return any(t.get("function", {}).get("name") == "$web_search" for t in tools)


@dataclass
class KimiServer:
    """The server's state; tests read ``calls`` and set the knobs."""

    api_key: str = "sk-test-local"
    extra_keys: set[str] = field(default_factory=set)  # visitors' own keys the server accepts
    tokens: int = 8
    token_delay: float = 0.0
    first_delay: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=lambda: list(MODELS))
    models_status: int = 200
    models_calls: int = 0  # GET /v1/models requests seen (the app caches the list)
    models_body: str | None = None  # a raw body for /v1/models, status 200 (a broken gateway's page, say)
    extract_delay: float = 0.0  # seconds before a document's extracted text comes back
    delete_failures: int = 0  # the next N file deletes fail with 500
    upload_delay: float = 0.0  # seconds between storing an upload and answering with its id
    reply_prefix: str = ""  # text every reply starts with (what a steered Kimi might write)
    calls: list[Call] = field(default_factory=list)
    fail_next: list[str] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    cached: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # prompt_cache_key -> last messages
    deleted: list[str] = field(default_factory=list)
    open_streams: int = 0
    max_open_streams: int = 0
    port: int = 0
    _server: uvicorn.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.calls.clear()
        self.fail_next.clear()
        self.models = list(MODELS)
        self.tokens, self.token_delay, self.first_delay, self.models_status = 8, 0.0, 0.0, 200
        self.max_open_streams, self.models_calls, self.extract_delay, self.models_body = 0, 0, 0.0, None
        self.delete_failures, self.upload_delay, self.reply_prefix = 0, 0.0, ""
        self.extra_keys.clear()
        self.files.clear()
        self.cached.clear()
        self.deleted.clear()

    # -- HTTP -------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/files", self._upload, methods=["POST"]),
                Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
                Route("/v1/files/{file_id}", self._delete_file, methods=["DELETE"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return given in {f"Bearer {key}" for key in {self.api_key, *self.extra_keys}}

    async def _models(self, request: Request) -> JSONResponse:
        self.models_calls += 1
        if not self._authorized(request):
            return error(401)
        if self.models_status != 200:
            return error(self.models_status)
        if self.models_body is not None:
            kind = "application/json" if self.models_body.startswith("{") else "text/html"
            return Response(self.models_body, media_type=kind)
        return JSONResponse(
            {"object": "list", "data": [{"object": "model", "owned_by": "moonshot", **m} for m in self.models]}
        )

    async def _upload(self, request: Request) -> JSONResponse:
        if not self._authorized(request):
            return error(401)
        form = await request.form()
        upload = form["file"]
        data = await upload.read()
        file_id = f"file-{uuid.uuid4().hex[:20]}"
        self.files[file_id] = {"filename": upload.filename, "bytes": data, "purpose": form.get("purpose")}
        await asyncio.sleep(self.upload_delay)
        return JSONResponse(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": upload.filename,
                "purpose": form.get("purpose"),
                "status": "ok",
                "status_details": "",
            }
        )

    async def _file_content(self, request: Request) -> JSONResponse:
        file = self.files.get(request.path_params["file_id"])
        if not self._authorized(request) or file is None:
            return error(404 if file is None else 401)
        await asyncio.sleep(self.extract_delay)
        if UNREADABLE in file["bytes"]:
            return error(500, message="failed to extract text from the file")
        text = file["bytes"].decode("utf-8", errors="replace")
        return JSONResponse(
            {"content": text, "file_type": "text/plain", "filename": file["filename"], "title": "", "type": "file"}
        )

    async def _delete_file(self, request: Request) -> JSONResponse:
        file_id = request.path_params["file_id"]
        if not self._authorized(request) or file_id not in self.files:
            return error(404)
        if self.delete_failures > 0:
            self.delete_failures -= 1
            return error(500)
        self.deleted.append(file_id)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def _chat(self, request: Request):
        body = await request.json()
        call = Call(body=body, authorization=request.headers.get("authorization", ""), url=str(request.url))
        self.calls.append(call)
        if not self._authorized(request):
            return error(401, "invalid_authentication_error")
        directives = dict(parse_directives(call.last_user))
        if self.fail_next:
            directives.update(parse_directives(self.fail_next.pop(0)))
        if "status" in directives:
            status, _, kind = directives["status"].partition(":")
            if kind == "echo_auth":  # an upstream (or a proxy before it) that echoes the caller's header
                kind = f"bad_key {call.authorization}"
            return error(int(status), kind or None)
        if body.get("model") not in {m["id"] for m in self.models}:
            return error(404)
        if not body.get("stream"):
            return error(400, message="this test server only streams")
        model_info = next(m for m in self.models if m["id"] == body["model"])
        refused = refuse_parameters(body)
        if refused:
            return error(400, message=refused)
        context = model_info["context_length"]
        if not model_info["supports_image_in"] and any(
            isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
            for m in body["messages"]
        ):
            return error(400, message=f"Invalid request: model {body['model']} does not support image input")
        requested = count_tokens(body["messages"]) + int(body.get("max_tokens") or 0)
        if requested > context:
            return error(
                400,
                message=f"Invalid request: Your request exceeded model token limit: {context} (requested: {requested})",
            )
        return StreamingResponse(self._stream(call, directives), media_type="text/event-stream")

    async def _stream(self, call: Call, d: dict[str, str]):
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), call.body["model"]

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
            payload = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

        delay = float(d.get("delay", self.token_delay))
        answer = reply_tokens(call.last_user, int(d.get("tokens", self.tokens)), *call.attachments)
        answer = [*(self.reply_prefix[i : i + 8] for i in range(0, len(self.reply_prefix), 8)), *answer]
        answer = after_prefix(answer, call.body["messages"])
        cut = min(int(d.get("cut", len(answer))), int(call.body.get("max_tokens") or len(answer)))
        if len(answer) > cut:  # cut at max_tokens, as Kimi does
            answer, d = answer[:cut], {**d, "length": ""}
        searching = "alwaystool" in d or (
            call.offers_search and ("searchloop" in d or call.body["messages"][-1]["role"] != "tool")
        )
        if call.offers_search and not searching:
            answer = ["Found", *answer[1:]]
        self.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)
        try:
            if "hang" in d:
                await asyncio.sleep(3600)
            await asyncio.sleep(float(d.get("first", self.first_delay)))
            yield chunk({"role": "assistant", "content": ""})
            if searching:  # ask the client to run $web_search, as Kimi does, in fragments
                if thinks(call.body):  # a thinking model reasons before it calls the tool
                    yield chunk({"reasoning_content": "I should search the web."})
                arguments = json.dumps({"search_result": {"search_id": "s-1"}, "usage": {"total_tokens": 21}})
                first = {
                    "index": 0,
                    "id": "call-1",
                    "type": "builtin_function",
                    "function": {"name": "$web_search", "arguments": ""},
                }
                yield chunk({"tool_calls": [first]})
                for part in (arguments[:20], arguments[20:]):
                    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
                prompt = prompt_tokens(call.body["messages"])
                usage = {"prompt_tokens": prompt, "completion_tokens": 5, "total_tokens": prompt + 5}
                call.total_tokens = usage["total_tokens"]
                yield chunk({}, "tool_calls", usage=usage)
                call.completed = True  # before the last yield: the client may hang up as soon as it reads it
                yield b"data: [DONE]\n\n"
                return
            if "think" in d:
                for piece in ["Let me ", "think ", "about ", "this."]:
                    yield chunk({"reasoning_content": piece})
                    await asyncio.sleep(delay)
            for n, token in enumerate(answer):
                if "drop" in d and n == int(d["drop"]):
                    return
                if "reset" in d and n == int(d["reset"]):
                    raise ConnectionAbortedError("[[reset]]: the server breaks the connection mid-body")
                if "filter" in d and n == 3:
                    break
                if "midstream" in d and n == 3:  # Moonshot reports a failure after the headers as an event
                    yield f"data: {json.dumps(error_body(d['midstream']))}\n\n".encode()
                    call.completed = True
                    return
                if "malformed" in d and n == 3:
                    yield b"data: {not json\n\n"
                if "empty" in d and n % 2:
                    yield f'data: {{"id":"{cid}","object":"chat.completion.chunk","choices":[]}}\n\n'.encode()
                yield chunk({"content": token})
                await asyncio.sleep(delay)
            prompt = prompt_tokens(call.body["messages"])
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": len(answer),
                "total_tokens": prompt + len(answer),
                **self._cache_hits(call.body),
            }
            finish = "length" if "length" in d else "content_filter" if "filter" in d else "stop"
            call.total_tokens = usage["total_tokens"]
            yield chunk({}, finish, usage=usage)
            call.completed = True  # before the last yield: the client may hang up as soon as it reads it
            yield b"data: [DONE]\n\n"
        finally:
            self.open_streams -= 1
            call.disconnected = not call.completed and "drop" not in d and "reset" not in d

    def _cache_hits(self, body: dict[str, Any]) -> dict[str, Any]:
        """Usage's cached tokens: the messages this request shares from the start with the last one
        under its ``prompt_cache_key`` (none without a key)."""
        key, messages = body.get("prompt_cache_key"), body["messages"]
        before = self.cached.get(key, []) if key else []
        shared = 0
        while shared < min(len(before), len(messages)) and before[shared] == messages[shared]:
            shared += 1
        if key:
            self.cached[key] = messages
        cached = prompt_tokens(messages[:shared]) if shared else 0
        if body["model"] == "kimi-k2.6":
            return {"cached_tokens": cached, "prompt_tokens_details": {"cached_tokens": cached}}
        return {"cached_tokens": cached}

    # -- lifecycle --------------------------------------------------------------------

    def start(self, port: int = 0) -> KimiServer:
        """Serve in a background thread on 127.0.0.1 and return once it answers."""
        self._server, self.port = serve_in_thread(self.app(), port)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True


def serve_in_thread(app: Starlette, port: int = 0) -> tuple[uvicorn.Server, int]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a daemon thread; returns once it is up."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("a local test server did not start")
        time.sleep(0.02)
    return server, port


def error(status: int, kind: str | None = None, message: str | None = None) -> JSONResponse:
    default_kind, default_message = ERROR_TYPES.get(status, ("server_error", "error"))
    if kind == "rate_limit_reached_error":
        default_message = "Your account reached organization max concurrency: 3, please try again after 1 seconds"
    if kind == "exceeded_current_quota_error":
        default_message = "You exceeded your current token quota, please check your account balance"
    return JSONResponse(error_body(kind or default_kind, message or default_message), status_code=status)


def error_body(kind: str, message: str | None = None) -> dict[str, Any]:
    """Moonshot's error body (also what a stream sends when it fails after its headers)."""
    return {"error": {"type": kind, "message": message or f"upstream says {kind}: SECRET-UPSTREAM-TEXT"}}


def thinks(body: dict[str, Any]) -> bool:
    """Whether this request makes the model think: K3 and the thinking models always do; K2.5-K2.9
    unless the request turns thinking off."""
    model = body["model"]
    if "thinking" in model or re.match(r"kimi-k[3-9]", model):
        return True
    switch = re.match(r"kimi-k2\.[5-9]", model)
    return bool(switch) and (body.get("thinking") or {}).get("type") != "disabled"


def refuse_parameters(body: dict[str, Any]) -> str:
    """Moonshot's 400 message for a parameter this model does not take, or "" if all are fine."""
    model = body["model"]
    fixed = "thinking" in model or re.match(r"kimi-k(2\.[5-9]|[3-9])", model)
    if fixed and ("temperature" in body or "top_p" in body):  # Moonshot's fixed-sampling families
        return "invalid temperature: only 1 is allowed for this model"
    effort = re.match(r"kimi-k[3-9]", model)
    if effort and "thinking" in body:
        return "thinking is not supported for this model, use reasoning_effort"
    if "reasoning_effort" in body and (not effort or body["reasoning_effort"] not in ("low", "high", "max")):
        return f"invalid reasoning_effort for model {model}"
    partial = [i for i, m in enumerate(body["messages"]) if m.get("partial")]
    if partial and (partial != [len(body["messages"]) - 1] or body["messages"][-1]["role"] != "assistant"):
        return "partial is only allowed on the last message, an assistant message"
    if partial and (body.get("response_format") or {}).get("type") == "json_object":
        return "partial mode is not supported with response_format json_object"
    if partial and (thinks(body) or body.get("tools")):  # undocumented combinations: refused here
        return "partial mode with thinking or tools is not documented (tests/kimi_server.py refuses it)"
    if thinks(body):
        for index, message in enumerate(body["messages"]):
            if message.get("tool_calls") and not message.get("reasoning_content"):
                return f"thinking is enabled but reasoning_content is missing in assistant tool call message {index}"
    for message in body["messages"]:
        for call in message.get("tool_calls") or ():
            if call.get("type") != "builtin_function":
                return f"invalid tool call type {call.get('type')!r}: $web_search is a builtin_function"
    return ""


def after_prefix(answer: list[str], messages: list[dict[str, Any]]) -> list[str]:
    """What is left to say after a Partial Mode prefix (a last assistant message marked ``partial``):
    the answer's tokens after it, when the answer starts with it; else a continuation of its own."""
    last = messages[-1] if messages else {}
    prefix = last.get("content") if last.get("partial") else ""
    if not isinstance(prefix, str) or not prefix:
        return answer
    if not "".join(answer).startswith(prefix):
        return [" (continued)", " t0"]
    said = ""
    for index, token in enumerate(answer):
        said += token
        if len(said) > len(prefix):  # the prefix may end inside a token: its rest comes first
            return [said[len(prefix) :], *answer[index + 1 :]]
    return []


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The prompt_tokens a reply reports: about one per four characters sent."""
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """The server's token count: stricter than the app's local estimate, like the real one can be."""
    return sum(len(str(m.get("content", ""))) // 2 + 8 for m in messages)


def parse_directives(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2] or "") for m in re.finditer(r"\[\[(\w+)(?::([^\]]+))?\]\]", text)]


def reply_tokens(user_text: str, filler: int, documents: int = 0, images: int = 0) -> list[str]:
    """An echo of the message in small pieces, what came with it, then numbered filler tokens."""
    clean = re.sub(r"\[\[[^\]]*\]\]", "", user_text).strip()
    echo = [clean[i : i + 4] for i in range(0, len(clean), 4)]
    seen = [f" [documents:{documents} images:{images}]"] if documents or images else []
    return ["Echo", ": ", *echo, " |", *seen, *[f" t{i}" for i in range(filler)]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default="sk-test-local")
    parser.add_argument("--tokens", type=int, default=60, help="filler tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--first", type=float, default=0.2, help="seconds to the first token")
    args = parser.parse_args()
    server = KimiServer(api_key=args.key, tokens=args.tokens, token_delay=1 / args.rate, first_delay=args.first)
    uvicorn.run(server.app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
