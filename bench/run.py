#!/usr/bin/env python3
"""Benchmarks of the foundation. Prints figures; asserts nothing about speed.

1. The WebUI over real HTTPS (gunicorn, TLS, one keep-alive connection): a Django page and the
   health endpoint, as ratios of serving a static file from the same server (the floor).
2. Daemon control: HaproxyControl.status() (called by every health/status page) and
   HaproxyControl.reload(), the latter as a ratio of a bare master-CLI `reload` with the same
   HAProxy waiting for the new worker the same way (the floor for any reload).

Usage: make bench   (or .venv/bin/python bench/run.py [--requests N])
"""

import argparse
import http.client
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lbadmin.engines.daemons import (  # noqa: E402
    DaemonError,
    HaproxyControl,
    RuntimeLayout,
    parse_show_proc,
)
from lbadmin.render.bootstrap import render_haproxy_bootstrap  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(action: Callable[[], object], count: int) -> list[float]:
    """Seconds per call, after two warm-up calls."""
    for _ in range(2):
        action()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def bench_webui(requests: int, var: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LBADMIN_", "DJANGO_"))}
    env.update(
        LBADMIN_VAR_DIR=str(var),
        LBADMIN_HTTPS_BIND="127.0.0.1",
        LBADMIN_HTTPS_PORT=str(port),
        LBADMIN_WEB_WORKERS="1",
    )
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--verbosity", "0"], ["lbadmin_setup"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, capture_output=True)
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "appliance/gunicorn.conf.py"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", port, context=context, timeout=5
                )
                connection.request("GET", "/lbadmin/health/")
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def get(path: str) -> Callable[[], None]:
            def call() -> None:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                assert response.status == 200, (path, response.status)

            return call

        paths = {
            "static CSS (floor)": "/lbadmin/static/lbadmin/css/lbadmin.css",
            "login page": "/lbadmin/login/",
            "health endpoint": "/lbadmin/health/",
        }
        results = {name: summary(timed(get(path), requests)) for name, path in paths.items()}
        floor = results["static CSS (floor)"][0]
        print(f"WebUI over HTTPS, {requests} requests each on one keep-alive connection")
        for name, (median, p95) in results.items():
            print(
                f"  {name:<20} median {median * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"
                f"  ratio to floor {median / floor:5.2f}"
            )
    finally:
        web.terminate()
        web.wait(timeout=15)


def bench_daemon_control(reloads: int, status_calls: int) -> None:
    run = Path(tempfile.mkdtemp(prefix="lbbench", dir="/tmp"))
    layout = RuntimeLayout(conf_dir=run / "etc", run_dir=run / "run", log_dir=run / "log")
    layout.ensure()
    haproxy = HaproxyControl(layout)
    haproxy.config_path.write_text(render_haproxy_bootstrap(layout))
    haproxy.start()
    try:
        status = summary(timed(haproxy.status, status_calls))

        def bare_reload() -> None:
            """The floor: ask the master to reload, poll `show proc` until a new worker."""
            old = parse_show_proc(haproxy.master_command("show proc")).workers
            haproxy.master_command("reload")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.005)
                try:
                    workers = parse_show_proc(haproxy.master_command("show proc")).workers
                except DaemonError:  # the master re-executes itself: socket briefly closed
                    continue
                if workers and workers != old:
                    return
            raise RuntimeError("bare reload did not produce a new worker")

        bare = summary(timed(bare_reload, reloads))
        ours = summary(timed(haproxy.reload, reloads))
        print(f"Daemon control ({haproxy.status().detail.split(',')[0]})")
        print(
            f"  status() x{status_calls:<5}        median {status[0] * 1e6:7.0f} us"
            f"  p95 {status[1] * 1e6:7.0f} us"
        )
        for name, (median, p95) in (
            ("bare master-CLI reload", bare),
            ("HaproxyControl.reload()", ours),
        ):
            print(f"  {name:<24} median {median * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms", end="")
            print(f"  ratio to bare {median / bare[0]:5.2f}")
    finally:
        haproxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--reloads", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbadmin-bench-") as var:
        bench_webui(args.requests, Path(var))
    bench_daemon_control(args.reloads, status_calls=args.requests)


if __name__ == "__main__":
    main()
