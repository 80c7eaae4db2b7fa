"""Load benchmark: N simultaneous chats through Gradio's queue protocol, as the browser sends them.

    .venv/bin/python benchmarks/load.py --users 100            # one app on one core
    .venv/bin/python benchmarks/load.py --users 100 --compare-stock --runs 3   # side by side with stock
    .venv/bin/python benchmarks/load.py --users 500 --no-floor
    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8080/ --upstream-port 8765   # an app you run

It starts the local Kimi-compatible server (tests/kimi_server.py; first-token delay,
token count and rate configurable) and the real app (`python app.py`, pinned to core 0
with taskset), then opens N sessions that each join the queue and read its event
stream. It reports TTFT and full-reply p50/p99, errors, UI updates per second per
stream, the app's CPU time per reply and its peak RSS; then it sends the same load
straight through the openai SDK (the floor) and prints the ratio. Not a test: nothing
here asserts; it prints figures for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
from kimi_server import free_port  # noqa: E402

from kimichat.settings import limit_settings  # noqa: E402

KEY = "sk-test-bench"
REPLY_START = "Echo"  # tests/kimi_server.py's first token
STOCK = "benchmarks/stock_chatinterface.py"  # the reference: a tutorial's ChatInterface


@dataclass
class Result:
    ttft: float | None = None  # message sent -> first streamed update
    total: float | None = None  # message sent -> reply complete
    ready: float | None = None  # message sent -> every step of the message done (the textbox is back)
    updates: int = 0
    stream_seconds: float = 0.0
    waited: bool = False  # the reply's job started more than a second after its queue join
    told_position: bool = False  # and a queue position arrived before it started
    error: str = ""


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    wall: float = 0.0


# Every simulated visitor comes from 127.0.0.1: every per-address, per-visitor and Space-wide limit
# is set far above the run (not switched off: the gates are part of what a message costs).
UNLIMITED = {f.metadata["env"]: "1000000000" for f in limit_settings()}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Plan:
    """What a browser sends, read from the app's config: the page-load events, and the events
    one message sets off (the textbox's submit, then every ``.then``/``.success`` of each step
    as it ends, plus the change events of browser-side values they update): the followers of
    a step go at once, as the page sends them. ``--path api`` sends /chat instead."""

    values: dict[int, Any]  # each component's value as the page starts
    states: set[int]  # server-side State: the browser sends null for these
    deps: dict[int, dict[str, Any]]
    load: list[int]
    root: int  # the message's first step
    followers: dict[int, list[int]]  # step -> the steps that start when it ends
    changes: dict[int, list[int]]  # component -> events its change sets off (browser-side values only)
    text_only: bool  # the message box is a plain Textbox (a string), not a MultimodalTextbox

    @classmethod
    def read(cls, base: str, path: str) -> Plan:
        config = httpx.get(base + "config", timeout=10).json()
        deps = {d["id"]: d for d in config["dependencies"]}
        values, states = {}, set()
        for c in config["components"]:
            props = c.get("props", {})
            values[c["id"]] = props.get("default_value") if c["type"] == "browserstate" else props.get("value")
            if c["type"] == "state":
                states.add(c["id"])
        load = [d["id"] for d in deps.values() if any(t[1] == "load" for t in d["targets"])]
        followers: dict[int, list[int]] = {}
        for d in deps.values():
            if d.get("trigger_after") is not None:
                followers.setdefault(d["trigger_after"], []).append(d["id"])
        changes: dict[int, list[int]] = {}
        for d in deps.values():
            for target, event in d["targets"]:
                if event == "change" and target is not None and target not in states:
                    changes.setdefault(target, []).append(d["id"])
        if path == "api":
            root = next(d["id"] for d in deps.values() if d.get("api_name") == "chat")
            followers = {}
        else:
            root = next(d["id"] for d in deps.values() if any(t[1] == "submit" for t in d["targets"]))
        types = {c["id"]: c["type"] for c in config["components"]}
        text_only = types[deps[root]["inputs"][0]] == "textbox"
        return cls(values, states, deps, load, root, followers, changes, text_only)


class Visitor:
    """One browser tab: its session, the values its page holds, and the steps it sends."""

    def __init__(self, client: httpx.AsyncClient, base: str, plan: Plan):
        self.client, self.base, self.plan = client, base, plan
        self.session = uuid.uuid4().hex[:11]
        self.values = dict(plan.values)
        self.heartbeat: asyncio.Task | None = None
        self.at_first_token: Any = None  # called when a reply's first token arrives (--first-token-cpu)

    async def open_page(self) -> Result:
        """GET the page, hold the heartbeat stream open, run the load events, as the browser does."""
        result = Result()
        start = time.perf_counter()
        try:
            (await self.client.get(self.base)).raise_for_status()
            self.heartbeat = asyncio.create_task(self._heartbeat())
            for fn in self.plan.load:
                await self._step(fn, result, start)
            result.total = result.ready = time.perf_counter() - start
        except (httpx.HTTPError, ValueError, RuntimeError) as exc:
            result.error = f"{type(exc).__name__} while loading the page: {exc}"[:160]
        return result

    async def send(self, text: str) -> Result:
        """Type ``text`` and press Enter: every step of the message, timed from the first."""
        result = Result()
        textbox = self.plan.deps[self.plan.root]["inputs"][0]
        self.values[textbox] = text if self.plan.text_only else {"text": text, "files": []}
        start = time.perf_counter()
        try:
            await self._step(self.plan.root, result, start)
            result.ready = time.perf_counter() - start
        except (httpx.HTTPError, ValueError, RuntimeError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:160]
        if result.total is None and not result.error:
            result.error = "no reply"
        return result

    def close(self) -> None:
        if self.heartbeat:
            self.heartbeat.cancel()

    async def _heartbeat(self) -> None:
        async with self.client.stream("GET", f"{self.base}gradio_api/heartbeat/{self.session}") as r:
            async for _ in r.aiter_lines():
                pass

    async def _step(self, fn: int, result: Result, start: float) -> None:
        try:
            await self._run_step(fn, result, start)
        except httpx.HTTPError as exc:  # name the step: "ReadError" alone says nothing
            name = self.plan.deps[fn].get("api_name") or fn
            raise RuntimeError(f"{type(exc).__name__} in step {name}") from exc

    async def _run_step(self, fn: int, result: Result, start: float) -> None:
        dep = self.plan.deps[fn]
        body = {
            "data": [None if i in self.plan.states else self.values.get(i) for i in dep["inputs"]],
            "event_data": None,
            "fn_index": fn,
            "trigger_id": None,
            "session_hash": self.session,
        }
        if not dep.get("backend_fn", True):  # runs in the browser and costs the server nothing
            outputs = [self.values.get(i) for i in dep["outputs"]]
        elif dep.get("queue", True) is False:
            response = await self.client.post(self.base + "gradio_api/run/predict", json=body)
            response.raise_for_status()
            outputs = response.json()["data"]
        else:
            outputs = await self._queued(body, result, start)
        changed = []
        for component, value in zip(dep["outputs"], outputs or [], strict=False):
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" not in value:
                    continue
                value = value["value"]
            if self.values.get(component) != value:
                changed.append(component)
            self.values[component] = value
        after = [*self.plan.followers.get(fn, []), *(f for c in changed for f in self.plan.changes.get(c, []))]
        await asyncio.gather(*(self._step(follower, result, start) for follower in after))

    async def _queued(self, body: dict[str, Any], result: Result, start: float) -> list[Any]:
        join = await self.client.post(self.base + "gradio_api/queue/join", json=body)
        join.raise_for_status()
        event_id, joined = join.json()["event_id"], time.perf_counter()
        first = last = 0.0
        streamed = False
        params = {"session_hash": self.session}
        async with self.client.stream("GET", self.base + "gradio_api/queue/data", params=params) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                if '"process_generating"' in line:  # most lines: no need to parse them (the client must keep up)
                    msg, kind = {}, "process_generating"
                else:
                    msg = json.loads(line[5:])
                    kind = msg.get("msg")
                if event_id not in line:
                    continue
                if kind == "estimation" and msg.get("rank") is not None:
                    result.told_position = True
                elif kind == "process_starts" and time.perf_counter() - joined > 1.0:
                    result.waited = True
                if kind == "process_generating":
                    now = time.perf_counter()
                    streamed = True
                    # the first token, not an earlier update (the page shows the visitor's own message
                    # first): the stand-in's replies start with "Echo"
                    if result.ttft is None and REPLY_START in line:
                        result.ttft, first = now - start, now
                        if self.at_first_token:
                            self.at_first_token()
                    if result.ttft is not None:
                        result.updates += 1
                        last = now
                elif kind == "process_completed":
                    if not msg.get("success", True):
                        raise RuntimeError("failed: " + str(msg.get("output", ""))[:80])
                    if streamed:
                        result.total = time.perf_counter() - start
                        result.stream_seconds = last - first
                    return (msg.get("output") or {}).get("data") or []
                elif kind == "queue_full":
                    raise RuntimeError("queue full")
        raise RuntimeError("stream ended early")


async def sdk_chat(client, text: str) -> Result:
    """The floor: the same request straight through the openai SDK, no app in between."""
    result = Result()
    start = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model="kimi-k2.6", stream=True, messages=[{"role": "user", "content": text}]
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and result.ttft is None:
                result.ttft = time.perf_counter() - start
        result.total = time.perf_counter() - start
    except Exception as exc:  # a benchmark reports errors, it does not stop on them
        result.error = type(exc).__name__
    return result


async def drive(users: int, make_one, proc: psutil.Process | None) -> Run:
    run = Run()
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set() and proc is not None:
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    cpu0 = sum(proc.cpu_times()[:2]) if proc else 0.0
    start = time.perf_counter()
    run.results = await asyncio.gather(*(make_one(i) for i in range(users)))
    run.wall = time.perf_counter() - start
    run.cpu_seconds = (sum(proc.cpu_times()[:2]) - cpu0) if proc else 0.0
    stop.set()
    await sampler
    run.peak_rss = peak
    return run


def report(label: str, run: Run, per: str = "reply") -> dict:
    ok = [r for r in run.results if not r.error]
    ttft = [r.ttft for r in ok if r.ttft is not None]
    total = [r.total for r in ok if r.total is not None]
    rates = [r.updates / r.stream_seconds for r in ok if r.stream_seconds > 0]
    figures = {
        "ttft_p50": pct(ttft, 0.5),
        "ttft_p99": pct(ttft, 0.99),
        "total_p50": pct(total, 0.5),
        "total_p99": pct(total, 0.99),
        "ready_p99": pct([r.ready for r in ok if r.ready is not None], 0.99),
        "errors": len(run.results) - len(ok),
        "waited": sum(r.waited for r in run.results),
        "waited_untold": sum(r.waited and not r.told_position for r in run.results),
        "updates_per_s": statistics.median(rates) if rates else float("nan"),
        "updates_per_s_p1": pct(rates, 0.01),
        "cpu_ms_per_reply": 1000 * run.cpu_seconds / max(1, len(ok)),
        "peak_rss_mb": run.peak_rss / 2**20,
    }
    timing = (
        f"TTFT p50 {figures['ttft_p50']:.2f} s, p99 {figures['ttft_p99']:.2f} s | reply p50 "
        f"{figures['total_p50']:.2f} s, p99 {figures['total_p99']:.2f} s"
        if ttft
        else f"done p50 {figures['total_p50']:.2f} s, p99 {figures['total_p99']:.2f} s"
    )
    if ttft and figures["ready_p99"] > figures["total_p99"]:
        timing += f" | ready to type again p99 {figures['ready_p99']:.2f} s"
    server = (
        f" | server CPU {figures['cpu_ms_per_reply']:.1f} ms/{per} | peak RSS {figures['peak_rss_mb']:.0f} MB"
        if run.peak_rss
        else ""
    )
    rate = (
        f" | UI updates/s per stream {figures['updates_per_s']:.1f} (slowest 1%: {figures['updates_per_s_p1']:.1f})"
        if rates
        else ""
    )
    queue = (
        f" | waited {figures['waited']}, without a queue position {figures['waited_untold']}"
        if figures["waited"]
        else ""
    )
    print(f"{label}: {timing} | errors {figures['errors']}{queue}{rate}{server}")
    errors = sorted({r.error for r in run.results if r.error})
    if errors:
        print("  errors:", errors[:5])
    return figures


def start_upstream(port: int, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "tests" / "kimi_server.py"), "--port", str(port), "--key", KEY, *shape(args)]
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd] if args.pin else cmd)
    wait_http(f"http://127.0.0.1:{port}/v1/models")
    return proc


def shape(args: argparse.Namespace) -> list[str]:
    """The upstream's shape as command-line options (for the stand-in, or for this script)."""
    return ["--tokens", str(args.tokens), "--rate", str(args.rate), "--first", str(args.first)]


def start_app(
    port: int,
    upstream: int,
    args: argparse.Namespace,
    extra_env: dict[str, str],
    core: int | None = 0,
    log: Any = subprocess.DEVNULL,
    app: str = "app.py",
) -> subprocess.Popen:
    """``python app.py`` (or another ``app`` file) against the stand-in, pinned to ``core`` (None: not pinned)."""
    env = {
        **os.environ,
        "MOONSHOT_API_KEY": KEY,
        "MOONSHOT_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **UNLIMITED,
        "UPSTREAM_CONCURRENCY": str(args.users + 10),
        "CHAT_CONCURRENCY": str(args.users + 10),
        "QUEUE_MAX_SIZE": str(args.users * 2 + 10),
        **extra_env,
    }
    cmd = [sys.executable, str(ROOT / app)]
    proc = subprocess.Popen(
        cmd if core is None else ["taskset", "-c", str(core), *cmd],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/")
    return proc


def http_clients(args: argparse.Namespace) -> list[httpx.AsyncClient]:
    """One client per user (and one to warm up), as each visitor has a browser of their own: httpcore
    scans its whole pool on every request, so a pool shared by 20 users (heartbeat streams and all)
    made the script, not the app, the bottleneck of a burst of messages. Idle connections are dropped
    before uvicorn's 5 s keep-alive timeout closes them (reusing one the server is closing fails with
    a ReadError: browsers retry those, httpx does not). Source addresses 127.0.0.1, 127.0.1.1, ...
    look like visitors from different networks to nginx's ip_hash (first three octets)."""
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20, keepalive_expiry=2.0)
    return [
        httpx.AsyncClient(
            timeout=httpx.Timeout(300, connect=60),
            transport=httpx.AsyncHTTPTransport(local_address=f"127.0.{k % args.addresses}.1", limits=limits),
        )
        for k in range(args.users + 1)
    ]


async def load(args: argparse.Namespace, base: str, app_proc: psutil.Process | None, label: str) -> dict[str, dict]:
    """Every visitor opens the page, then all send a message at once; the figures of both."""
    plan = Plan.read(base, args.path)
    clients = http_clients(args)
    visitors = [Visitor(clients[i], base, plan) for i in range(args.users)]
    try:
        warm = Visitor(clients[-1], base, plan)  # imports, the first model list
        await warm.open_page()
        await warm.send("warm up")
        warm.close()
        # every tab is open first, as when people type into a page they have loaded (--cold: the
        # message's first request creates the session)
        page = None if args.cold else await drive(args.users, lambda i: visitors[i].open_page(), app_proc)
        message = await drive(args.users, lambda i: visitors[i].send(f"user {i} hello"), app_proc)
    finally:
        for visitor in visitors:
            visitor.close()
        for client in clients:
            await client.aclose()
    figures = {"message": report(f"{label}: messages", message)}
    if page:
        figures["page"] = report(f"{label}: page loads", page, per="page")
    return figures


async def load_started(args: argparse.Namespace, upstream_port: int, app: str, label: str) -> dict[str, dict]:
    """``app`` started fresh (pinned to core 0 unless --no-pin), loaded, stopped. While it runs, this
    script keeps to core 1 with the stand-in, so its 100 visitors never take the app's core (the
    SDK floor runs unpinned, as before)."""
    extra = dict(item.split("=", 1) for item in args.env)
    port = free_port()
    proc = start_app(port, upstream_port, args, extra, core=0 if args.pin else None, app=app)
    cores = os.sched_getaffinity(0)
    try:
        if args.pin:
            os.sched_setaffinity(0, {1})
        return await load(args, f"http://127.0.0.1:{port}/", psutil.Process(proc.pid), label)
    finally:
        os.sched_setaffinity(0, cores)
        proc.terminate()
        proc.wait(10)


async def floor(args: argparse.Namespace, upstream_port: int) -> dict:
    """The same messages straight through the openai SDK, a client per user as on the app's path."""
    from openai import AsyncOpenAI

    sdks = [
        AsyncOpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{upstream_port}/v1", max_retries=0)
        for _ in range(args.users)
    ]
    run = await drive(args.users, lambda i: sdk_chat(sdks[i], f"user {i} hello"), None)
    return report("openai SDK alone (floor)", run)


# (label, figure, which run, format): the side-by-side table's rows
ROWS = (
    ("server CPU per message (ms)", "cpu_ms_per_reply", "message", "{:.0f}"),
    ("server CPU per page load (ms)", "cpu_ms_per_reply", "page", "{:.1f}"),
    ("redraws per second per stream", "updates_per_s", "message", "{:.1f}"),
    ("TTFT p50 (s)", "ttft_p50", "message", "{:.2f}"),
    ("TTFT p99 (s)", "ttft_p99", "message", "{:.2f}"),
    ("TTFT p99 / SDK floor", "floor_ratio", "message", "{:.1f}x"),
    ("ready to type again p99 (s)", "ready_p99", "message", "{:.2f}"),
    ("errors", "errors", "message", "{:.0f}"),
)


def spread(values: list[float], fmt: str) -> str:
    """min / median / max of several runs (one value: itself)."""
    if len(values) == 1:
        return fmt.format(values[0])
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def compare_table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The app and the stock ChatInterface side by side, each figure's ratio to stock per run."""
    for run in runs:
        for side in ("app", "stock"):
            run[side]["message"]["floor_ratio"] = run[side]["message"]["ttft_p99"] / run["floor"]["ttft_p99"]
    head = "min / median / max" if len(runs) > 1 else "one run"
    lines = [
        f"{args.users} visitors, {len(runs)} interleaved run(s), {head}",
        "",
        "| figure | this app | stock ChatInterface | app / stock |",
        "|---|---|---|---|",
    ]
    for label, key, part, fmt in ROWS:
        app = [r["app"][part][key] for r in runs if part in r["app"]]
        stock = [r["stock"][part][key] for r in runs if part in r["stock"]]
        if not app or not stock:
            continue
        ratios = [a / s for a, s in zip(app, stock, strict=True) if s]
        ratio = spread(ratios, "{:.2f}x") if ratios and key != "errors" else ""
        lines.append(f"| {label} | {spread(app, fmt)} | {spread(stock, fmt)} | {ratio} |")
    floors = [r["floor"]["ttft_p99"] for r in runs]
    lines.append(f"| SDK floor TTFT p99 (s) | {spread(floors, '{:.2f}')} | | |")
    return "\n".join(lines)


async def first_token_cpu(args: argparse.Namespace, upstream_port: int, app: str) -> float:
    """The app's CPU from a message's first request to its first token, one message at a time on a
    quiet app (mean ms: the process's CPU clock ticks every 10 ms, so one message alone cannot be
    read): times 100 it is how soon the last of 100 simultaneous first tokens can come."""
    port = free_port()
    proc = start_app(port, upstream_port, args, {}, core=0 if args.pin else None, app=app)
    process, base = psutil.Process(proc.pid), f"http://127.0.0.1:{port}/"
    plan = Plan.read(base, args.path)
    spent: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            for n in range(args.first_token_cpu + 1):
                visitor = Visitor(client, base, plan)
                await visitor.open_page()
                before, at_first = sum(process.cpu_times()[:2]), []
                visitor.at_first_token = lambda seen=at_first: seen.append(sum(process.cpu_times()[:2]))
                await visitor.send(f"message {n}")
                visitor.close()
                if n and at_first:  # the first one warms up
                    spent.append(1000 * (at_first[0] - before))
    finally:
        proc.terminate()
        proc.wait(10)
    return statistics.mean(spent)


async def main_async(args: argparse.Namespace) -> None:
    upstream_port = args.upstream_port or free_port()
    upstream = None if args.upstream_port else start_upstream(upstream_port, args)
    try:
        print(
            f"{args.users} users at once ({args.path} path); upstream {args.first:.1f} s to the first token, "
            f"then {args.tokens} tokens at {args.rate:.0f} tok/s; app {'pinned to one core' if args.pin else ''}"
        )
        if args.first_token_cpu:
            for label, app in (("app", args.app), ("stock ChatInterface", STOCK)):
                ms = await first_token_cpu(args, upstream_port, app)
                last = ms * args.users / 1000
                print(f"{label}: {ms:.1f} ms of CPU before the first token (x {args.users} users = {last:.2f} s)")
            return
        if args.compare_stock:
            runs = []
            for k in range(args.runs):  # interleaved: a machine's slow minute falls on both
                print(f"-- run {k + 1} of {args.runs}")
                app = await load_started(args, upstream_port, args.app, "app")
                stock = await load_started(args, upstream_port, STOCK, "stock ChatInterface")
                runs.append({"app": app, "stock": stock, "floor": await floor(args, upstream_port)})
            print()
            print(compare_table(runs, args))
            return
        if args.url:
            figures = await load(args, args.url, psutil.Process(args.pid) if args.pid else None, "app")
        else:
            figures = await load_started(args, upstream_port, args.app, "app")
        if args.floor:
            sdk = await floor(args, upstream_port)
            print(f"TTFT p99 ratio app/floor: {figures['message']['ttft_p99'] / sdk['ttft_p99']:.2f}x")
    finally:
        if upstream is not None:
            upstream.terminate()
            upstream.wait(10)


def load_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The load's shape, the same for every benchmark script: visitors, and the upstream's replies."""
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=60, help="filler tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="upstream tokens per second")
    parser.add_argument("--first", type=float, default=0.2, help="upstream seconds to the first token")
    return parser


def main() -> None:
    parser = load_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the openai SDK floor run")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the app to one core")
    parser.add_argument(
        "--path",
        choices=["browser", "api"],
        default="browser",
        help="browser: every request the page sends for a message (default); api: one call to /chat",
    )
    parser.add_argument("--cold", action="store_true", help="no page load first: the message creates the session")
    parser.add_argument("--url", help="load an app that is already running (with its own upstream)")
    parser.add_argument("--upstream-port", type=int, help="use a Kimi stand-in already on this port")
    parser.add_argument("--pid", type=int, help="with --url: the app's process, for its CPU time and memory")
    parser.add_argument(
        "--app", default="app.py", help="the app file to start (benchmarks/stock_chatinterface.py: the reference)"
    )
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra app setting")
    parser.add_argument(
        "--addresses", type=int, default=1, help="spread users over N source addresses 127.0.K.1 (for ip_hash)"
    )
    parser.add_argument(
        "--compare-stock",
        action="store_true",
        help=f"the app, then the stock ChatInterface ({STOCK}), then the SDK floor, in one table with ratios",
    )
    parser.add_argument("--runs", type=int, default=1, help="with --compare-stock: repeat the three, interleaved")
    parser.add_argument(
        "--first-token-cpu",
        type=int,
        default=0,
        metavar="N",
        help="N messages one at a time: the app's and stock's CPU before the first token (mean)",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
