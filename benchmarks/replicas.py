"""Two app replicas behind nginx (ip_hash), sharing rate limits through Redis.

    .venv/bin/python benchmarks/replicas.py --users 100

Needs Debian's nginx and redis-server (apt-get install -y nginx redis-server). It starts
the Kimi stand-in, Redis, two `python app.py` processes (one per core) and nginx on
loopback, then runs benchmarks/load.py through the proxy with users spread over 16
source addresses (ip_hash keys on the address; Gradio's queue needs every request of a
session to reach the same replica): first with one replica behind nginx, then with both,
so the ratio comes from one run. Not a test: it prints figures for the README.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from load import UNLIMITED, free_port, load_arguments, shape, start_app, start_upstream, wait_http

NGINX = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream kimichat {{ ip_hash; {servers} }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://kimichat;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;          # Gradio streams server-sent events
      proxy_read_timeout 3600s;
    }}
  }}
}}
"""


def main() -> None:
    parser = load_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    args = parser.parse_args()
    for tool in ("nginx", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y nginx redis-server")
    work = Path(tempfile.mkdtemp(prefix="kimichat-replicas-"))
    procs: list[subprocess.Popen] = []
    try:
        redis_port = free_port()
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )
        upstream = free_port()
        args.pin = False
        procs.append(start_upstream(upstream, args))
        ports = [free_port(), free_port()]
        shared = {
            "RATE_LIMIT_STORAGE_URL": f"redis://127.0.0.1:{redis_port}/0",
            "TRUST_FORWARDED_FOR": "true",
            **UNLIMITED,
            "RATE_LIMIT_PER_MINUTE": "1000",
            "RATE_LIMIT_PER_HOUR": "100000",
        }
        for core, port in enumerate(ports):
            log = (work / f"replica-{core}.log").open("w")
            procs.append(start_app(port, upstream, args, shared, core=core, log=log))
        for replicas in (ports[:1], ports):
            print(f"-- {len(replicas)} replica(s) behind nginx")
            through_nginx(work, replicas, upstream, args)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(10)
        print(f"replica logs and nginx config: {work}")


def through_nginx(work: Path, replicas: list[int], upstream: int, args: argparse.Namespace) -> None:
    """benchmarks/load.py through nginx in front of ``replicas`` (their ports)."""
    proxy = free_port()
    servers = " ".join(f"server 127.0.0.1:{port};" for port in replicas)
    (work / "nginx.conf").write_text(NGINX.format(dir=work, servers=servers, port=proxy))
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work), "-g", "daemon off;"])
    try:
        wait_http(f"http://127.0.0.1:{proxy}/")
        time.sleep(0.5)
        load = [sys.executable, str(Path(__file__).with_name("load.py")), "--url", f"http://127.0.0.1:{proxy}/"]
        load += ["--upstream-port", str(upstream), "--users", str(args.users), "--addresses", "16", *shape(args)]
        subprocess.run(load, check=False)
    finally:
        nginx.terminate()
        nginx.wait(10)


if __name__ == "__main__":
    main()
