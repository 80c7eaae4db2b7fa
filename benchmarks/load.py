"""Load benchmark: N simultaneous chats through Gradio's queue protocol, as the browser sends them.

    .venv/bin/python benchmarks/load.py --users 100            # one app on one core
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
sys.path.insert(0, str(ROOT / "tests"))
from kimi_server import free_port  # noqa: E402

KEY = "sk-test-bench"


@dataclass
class Result:
    ttft: float | None = None
    total: float | None = None
    updates: int = 0
    stream_seconds: float = 0.0
    error: str = ""


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    wall: float = 0.0


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


def chat_fn_index(base: str) -> int:
    config = httpx.get(base + "config", timeout=10).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")


async def one_chat(client: httpx.AsyncClient, base: str, fn_index: int, text: str) -> Result:
    """Join the queue as the browser does and read the session's event stream to the end."""
    result = Result()
    session = uuid.uuid4().hex[:11]
    start = time.perf_counter()
    first_update = last_update = 0.0
    stage = "joining the queue"
    try:
        join = await client.post(
            base + "gradio_api/queue/join",
            json={
                "data": [{"text": text, "files": []}, None, "assistant", "", 0.6, ""],
                "fn_index": fn_index,
                "session_hash": session,
                "event_data": None,
                "trigger_id": None,
            },
        )
        join.raise_for_status()
        stage = "waiting for the first token"
        async with client.stream("GET", base + "gradio_api/queue/data", params={"session_hash": session}) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                kind = msg.get("msg")
                if kind == "process_generating":
                    now = time.perf_counter()
                    if result.ttft is None:
                        result.ttft, first_update, stage = now - start, now, "reading the stream"
                    result.updates += 1
                    last_update = now
                elif kind == "process_completed":
                    result.total = time.perf_counter() - start
                    if not msg.get("success", True):
                        result.error = "failed: " + str(msg.get("output", ""))[:80]
                    break
                elif kind == "queue_full":
                    result.error = "queue full"
                    break
        result.stream_seconds = last_update - first_update
        if result.total is None and not result.error:
            result.error = "stream ended early"
    except (httpx.HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__} while {stage}"
    return result


async def sdk_chat(client, text: str) -> Result:
    """The floor: the same request straight through the openai SDK, no app in between."""
    result = Result()
    start = time.perf_counter()
    try:
        stream = await client.chat.completions.create(
            model="kimi-k2.5", stream=True, messages=[{"role": "user", "content": text}]
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


def report(label: str, run: Run) -> dict:
    ok = [r for r in run.results if not r.error]
    ttft = [r.ttft for r in ok if r.ttft is not None]
    total = [r.total for r in ok if r.total is not None]
    rates = [r.updates / r.stream_seconds for r in ok if r.stream_seconds > 0]
    figures = {
        "ttft_p50": pct(ttft, 0.5),
        "ttft_p99": pct(ttft, 0.99),
        "total_p50": pct(total, 0.5),
        "total_p99": pct(total, 0.99),
        "errors": len(run.results) - len(ok),
        "updates_per_s": statistics.median(rates) if rates else float("nan"),
        "cpu_ms_per_reply": 1000 * run.cpu_seconds / max(1, len(ok)),
        "peak_rss_mb": run.peak_rss / 2**20,
    }
    print(
        f"{label}: TTFT p50 {figures['ttft_p50']:.2f} s, p99 {figures['ttft_p99']:.2f} s | reply p50 "
        f"{figures['total_p50']:.2f} s, p99 {figures['total_p99']:.2f} s | errors {figures['errors']}"
        + (
            f" | {figures['updates_per_s']:.1f} UI updates/s per stream | server CPU "
            f"{figures['cpu_ms_per_reply']:.1f} ms/reply | peak RSS {figures['peak_rss_mb']:.0f} MB"
            if run.peak_rss
            else ""
        )
    )
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
) -> subprocess.Popen:
    """``python app.py`` against the stand-in, pinned to ``core`` (None: not pinned)."""
    env = {
        **os.environ,
        "MOONSHOT_API_KEY": KEY,
        "MOONSHOT_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "RATE_LIMIT_PER_MINUTE": "0",
        "RATE_LIMIT_PER_HOUR": "0",
        "UPSTREAM_CONCURRENCY": str(args.users + 10),
        "CHAT_CONCURRENCY": str(args.users + 10),
        "QUEUE_MAX_SIZE": str(args.users * 2 + 10),
        **extra_env,
    }
    cmd = [sys.executable, str(ROOT / "app.py")]
    proc = subprocess.Popen(
        cmd if core is None else ["taskset", "-c", str(core), *cmd],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/")
    return proc


async def main_async(args: argparse.Namespace) -> None:
    upstream_port = args.upstream_port or free_port()
    procs: list[subprocess.Popen] = []
    try:
        if not args.upstream_port:
            procs.append(start_upstream(upstream_port, args))
        base = args.url
        app_proc = None
        if not base:
            app_port = free_port()
            extra = dict(item.split("=", 1) for item in args.env)
            procs.append(start_app(app_port, upstream_port, args, extra, core=0 if args.pin else None))
            app_proc = psutil.Process(procs[-1].pid)
            base = f"http://127.0.0.1:{app_port}/"
        elif args.pid:
            app_proc = psutil.Process(args.pid)
        fn_index = chat_fn_index(base)
        limits = httpx.Limits(max_connections=args.users * 2 + 20, max_keepalive_connections=args.users * 2 + 20)
        # Source addresses 127.0.0.1, 127.0.1.1, ... look like visitors from different networks to
        # nginx's ip_hash, which keys on the first three octets of an address.
        clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(300, connect=60),
                transport=httpx.AsyncHTTPTransport(local_address=f"127.0.{k}.1", limits=limits),
            )
            for k in range(args.addresses)
        ]
        try:
            await one_chat(clients[0], base, fn_index, "warm up")  # imports, first model list
            print(
                f"{args.users} users at once; upstream {args.first:.1f} s to the first token, then "
                f"{args.tokens} tokens at {args.rate:.0f} tok/s; app {'pinned to one core' if args.pin else ''}"
            )
            app_run = await drive(
                args.users, lambda i: one_chat(clients[i % len(clients)], base, fn_index, f"user {i} hello"), app_proc
            )
        finally:
            for client in clients:
                await client.aclose()
        app = report("app (Gradio queue)", app_run)
        if args.floor:
            from openai import AsyncOpenAI

            sdk = AsyncOpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{upstream_port}/v1", max_retries=0)
            floor = report(
                "openai SDK alone (floor)", await drive(args.users, lambda i: sdk_chat(sdk, f"user {i} hello"), None)
            )
            print(f"TTFT p99 ratio app/floor: {app['ttft_p99'] / floor['ttft_p99']:.2f}x")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=60, help="filler tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="upstream tokens per second")
    parser.add_argument("--first", type=float, default=0.2, help="upstream seconds to the first token")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the openai SDK floor run")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the app to one core")
    parser.add_argument("--url", help="load an app that is already running (with its own upstream)")
    parser.add_argument("--upstream-port", type=int, help="use a Kimi stand-in already on this port")
    parser.add_argument("--pid", type=int, help="with --url: the app's process, for its CPU time and memory")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra app setting")
    parser.add_argument(
        "--addresses", type=int, default=1, help="spread users over N source addresses 127.0.K.1 (for ip_hash)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
