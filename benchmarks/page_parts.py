"""Where a page load's CPU goes: each request a page sends, repeated alone, against the app's CPU.

    .venv/bin/python benchmarks/page_parts.py              # this app
    .venv/bin/python benchmarks/page_parts.py --app benchmarks/stock_chatinterface.py

It starts the Kimi stand-in (core 1) and the app (core 0), then sends each part of a page load
``--times`` times, one at a time, from a new session each: the page itself (``GET /``, and the
same page rendered by Gradio, a query string passing the app's page cache), the heartbeat
stream, and each load event the page's config lists. Prints the app's CPU per request. Not a
test: it prints figures for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import httpx
import psutil
from load import Plan, Visitor, free_port, load_arguments, start_app, start_upstream


async def cpu_per(process: psutil.Process, times: int, one) -> float:
    """The app's mean CPU (ms) for one ``await one()``."""
    await one()  # warm
    before = sum(process.cpu_times()[:2])
    for _ in range(times):
        await one()
    return 1000 * (sum(process.cpu_times()[:2]) - before) / times


async def parts(base: str, process: psutil.Process, times: int) -> dict[str, float]:
    plan = Plan.read(base, "browser")
    async with httpx.AsyncClient(timeout=30) as client:

        async def get(path: str) -> None:
            (await client.get(base + path)).raise_for_status()

        async def heartbeat() -> None:
            url = f"{base}gradio_api/heartbeat/{uuid.uuid4().hex[:11]}"
            async with client.stream("GET", url) as response:
                async for _ in response.aiter_lines():
                    break  # the first beat: the stream is open

        figures = {
            "GET / (as served)": await cpu_per(process, times, lambda: get("")),
            "GET /?render (Gradio renders it)": await cpu_per(process, times, lambda: get("?render")),
            "heartbeat stream opened": await cpu_per(process, times, heartbeat),
        }
        for fn in plan.load:
            name = plan.deps[fn].get("api_name") or fn
            figures[f"load event {name}"] = await cpu_per(
                process, times, lambda fn=fn: Visitor(client, base, plan)._step(fn, None, 0.0)
            )
    return figures


async def main_async(args: argparse.Namespace) -> None:
    upstream_port, port = free_port(), free_port()
    args.pin = True
    upstream = start_upstream(upstream_port, args)
    app = start_app(port, upstream_port, args, {}, core=0, app=args.app)
    try:
        figures = await parts(f"http://127.0.0.1:{port}/", psutil.Process(app.pid), args.times)
    finally:
        for proc in (app, upstream):
            proc.terminate()
            proc.wait(10)
    print(f"{args.app}: the app's CPU per request, {args.times} of each, one at a time")
    for name, ms in figures.items():
        print(f"  {ms:6.2f} ms  {name}")


def main() -> None:
    parser = load_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument("--app", default="app.py", help="the app file to start")
    parser.add_argument("--times", type=int, default=300, help="requests of each part")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
