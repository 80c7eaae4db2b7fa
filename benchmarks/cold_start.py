"""Cold start: seconds from `python app.py` until it serves its page, and its idle RSS.

    .venv/bin/python benchmarks/cold_start.py --runs 3

No key and no network are needed: the app must start without either. Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from kimi_server import free_port  # noqa: E402


def one_start() -> tuple[float, float]:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "MOONSHOT_API_KEY": ""}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
            if proc.poll() is not None:
                raise RuntimeError("the app exited during start-up")
        seconds = time.perf_counter() - start
        time.sleep(1.0)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        return seconds, rss
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    runs = [one_start() for _ in range(parser.parse_args().runs)]
    times = [t for t, _ in runs]
    print(
        f"cold start: median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}); "
        f"idle RSS {statistics.median(r for _, r in runs):.0f} MB"
    )


if __name__ == "__main__":
    main()
