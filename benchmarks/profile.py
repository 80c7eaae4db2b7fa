"""Where the app's CPU goes under load: py-spy samples the app while benchmarks/load.py drives it.

    .venv/bin/pip install py-spy
    .venv/bin/python benchmarks/profile.py --users 100 --cold     # messages only
    .venv/bin/python benchmarks/profile.py --users 100            # page loads and messages

It starts the Kimi stand-in (core 1) and the app (core 0, every limit far above the run), records
py-spy in non-blocking mode (blocking mode stops the app at each sample and changes what it
measures), runs load.py against the app, and prints the samples' own time by package (the
innermost frame of a package or of the app), then the Gradio functions that take the most.
Not a test: it prints figures for the README's "Where the CPU goes".
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psutil
from load import free_port, load, load_arguments, shape, start_app, start_upstream

IDLE = ("Condition.wait", "Queue.get", "select", "wait (threading", "poll")  # a thread with nothing to do
PACKAGE = re.compile(r"\(([A-Za-z_0-9]+)/")
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))  # the venv's, if not on PATH


def own_time(raw: Path) -> tuple[int, Counter, Counter]:
    """Busy samples, their owner package (innermost frame outside the standard library) and, for
    Gradio's, the innermost Gradio function."""
    busy, owners, gradio = 0, Counter(), Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        if any(word in frames[-1] for word in IDLE):
            continue
        busy += n
        owner = next((m[1] for f in reversed(frames) if (m := PACKAGE.search(f))), "stdlib")
        owners[owner] += n
        if owner == "gradio":
            frame = next(f for f in reversed(frames) if "(gradio/" in f)
            gradio[frame.split(" (")[0]] += n
    return busy, owners, gradio


async def profiled(args: argparse.Namespace, raw: Path) -> None:
    upstream_port, port = free_port(), free_port()
    upstream = start_upstream(upstream_port, args)
    app = start_app(port, upstream_port, args, {}, core=0)
    spy = subprocess.Popen(
        [PY_SPY, "record", "-p", str(app.pid), "-o", str(raw), "-f", "raw", "-r", "100", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await load(args, f"http://127.0.0.1:{port}/", psutil.Process(app.pid), "app")
    finally:
        spy.send_signal(2)  # py-spy writes its file on SIGINT
        spy.wait(30)
        for proc in (app, upstream):
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = load_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument("--cold", action="store_true", help="messages only: no page loads first")
    parser.add_argument("--top", type=int, default=15, help="how many Gradio functions to list")
    args = parser.parse_args()
    args.pin, args.path, args.addresses, args.env = True, "browser", 1, []
    if not Path(PY_SPY).exists():
        sys.exit("needs py-spy: .venv/bin/pip install py-spy (and run as root, or with ptrace allowed)")
    print(f"upstream shape: {' '.join(shape(args))}")
    raw = Path(tempfile.mkdtemp(prefix="kimichat-profile-")) / "samples.txt"
    asyncio.run(profiled(args, raw))
    busy, owners, gradio = own_time(raw)
    print(f"\n{busy} busy samples; own time by package:")
    for owner, n in owners.most_common(12):
        print(f"  {100 * n / busy:5.1f}%  {owner}")
    print("innermost Gradio functions:")
    for name, n in gradio.most_common(args.top):
        print(f"  {100 * n / busy:5.1f}%  {name}")


if __name__ == "__main__":
    main()
