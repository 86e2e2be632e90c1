#!/usr/bin/env python3
"""Layer 7 benchmarks (issue: Layer 7 virtual services applied to a real HAProxy).

1. Apply latency: our whole apply (database snapshot → render → `haproxy -c -dW` → atomic
   swap → save server state → reload → verify) ÷ the bare floor (`haproxy -c` + master-CLI
   reload + wait for the new worker) on the same configuration; for the guide's Lync
   configuration and for a generated 1,000 services × 10 servers. Target ≤ 1.5.
2. Hitless reloads: wrk (20 keep-alive connections) and wrk with `Connection: close`
   (20 connections) through a VIP while 20 applies run. Target: 0 failed requests.
3. Throughput through a VIP with our rendered configuration ÷ a minimal hand-written HAProxy
   configuration for the same backends. Target ≥ 0.97.

Backends are a second HAProxy answering `200 ok` itself, so the backends are never the
bottleneck. Everything listens on 127.0.0.0/8. The database is a throw-away SQLite file unless
DATABASE_URL is set. Prints figures; asserts nothing.

Usage: make bench   (or .venv/bin/python bench/l7.py [--quick])
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_VAR = Path(tempfile.mkdtemp(prefix="lbb", dir="/tmp"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")
os.environ["LBADMIN_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from lbadmin.engines.daemons import HaproxyControl, RuntimeLayout  # noqa: E402
from lbadmin.models import ConfigRevision, L7Settings  # noqa: E402
from lbadmin.services.config import config_apply_run, config_import  # noqa: E402
from lbadmin.services.daemons import daemon_controllers  # noqa: E402

BACKENDS = ("127.0.10.31", "127.0.10.32")
BACKEND_PORT = 18080
HITLESS_VIP, HITLESS_PORT = "127.0.30.30", 18081
MINIMAL_PORT = 18082


def service(label: str, ip: str, ports: list[int], protocol: str, servers: list[tuple], **kw):
    return {
        "label": label, "ip": ip, "ports": ports, "protocol": protocol, "balance": "leastconn",
        "persistence": kw.get("persistence", "source_ip" if protocol == "tcp" else "http_cookie"),
        "cookie_name": kw.get("cookie_name", "SERVERID"), "persistence_timeout_s": 1800,
        "health_check": kw.get("health_check", "connect"), "check_port": kw.get("check_port"),
        "check_interval_ms": 4000, "fallback_ip": None, "fallback_port": None,
        "manual_config": False, "manual_text": "",
        "real_servers": [
            {"label": label_, "ip": ip_, "port": port_, "weight": 100, "reencrypt": False}
            for label_, ip_, port_ in servers
        ],
    }  # fmt: skip


def document(services: list[dict]) -> dict:
    return {
        "format": "lbadmin-cluster-config",
        "version": 2,
        "ssl": {"certificates": [], "terminations": []},
        "layer4": {"virtual_services": []},
        "ha": {"advert_interval_ms": 100, "preempt": False},
        "layer7": {
            "settings": {
                "logging": False, "log_only_errors": False, "redispatch": True,
                "connect_timeout_ms": 4000, "client_timeout_ms": 1800000,
                "server_timeout_ms": 1800000,
            },
            "virtual_services": services,
        },
    }  # fmt: skip


def lync_document() -> dict:
    """The deployment guide's Layer 7 services, with its addresses moved onto loopback."""
    fe = [("FE-1", "127.0.10.31", None), ("FE-2", "127.0.10.32", None)]
    d = [("DIR-1", "127.0.10.21", None), ("DIR-2", "127.0.10.22", None)]

    def on(servers: list[tuple], port: int) -> list[tuple]:
        return [(label, ip, port) for label, ip, _ in servers]

    return document(
        [
            service("FrontEndPool", "127.0.10.30", [135, 443, 444, 5061, 5065, 5069], "tcp", fe,
                    check_port=5061),
            service("FePoolExtWebSvcs8080", "127.0.20.30", [8080], "http", on(fe, 8080)),
            service("FePoolExtWebSvcs4443", "127.0.20.30", [4443], "tcp", on(fe, 4443),
                    persistence="none"),
            service("FePoolExtWebSvcs8081", "127.0.20.30", [8081], "http", on(fe, 4443),
                    cookie_name="MS-WSMAN"),
            service("DirectorPool", "127.0.10.20", [5061], "tcp", on(d, 5061)),
            service("DirPoolExtWebSvcs8080", "127.0.20.20", [8080], "http", on(d, 8080)),
            service("DirPoolExtWebSvcs4443", "127.0.20.20", [4443], "tcp", on(d, 4443),
                    persistence="none"),
            service("ReverseProxyFE-http", "127.0.12.150", [80], "http", on(fe, 8080)),
            service("ReverseProxyFE-https", "127.0.12.150", [443], "tcp", on(fe, 4443)),
            hitless_service(),
        ]
    )  # fmt: skip


def hitless_service() -> dict:
    """The VIP the load runs through. Round robin, like the minimal configuration it is
    compared with, so the ratio measures what our rendering adds, not the choice of algorithm
    (leastconn, the appliance's default, costs ~9% against round robin on its own)."""
    bench = service(
        "Bench", HITLESS_VIP, [HITLESS_PORT], "http",
        [("B1", BACKENDS[0], BACKEND_PORT), ("B2", BACKENDS[1], BACKEND_PORT)],
        persistence="none", health_check="none",
    )  # fmt: skip
    bench["balance"] = "roundrobin"
    return bench


def generated_document(services: int = 1000, servers: int = 10) -> dict:
    return document(
        [
            service(
                f"svc{i:04d}", f"127.40.{i // 250}.{i % 250 + 1}", [18000], "http",
                [(f"rs{j}", f"127.50.{i // 250}.{(i % 250) * 1 + 1}", 20000 + j)
                 for j in range(servers)],
                persistence="none", health_check="none",
            )
            for i in range(services)
        ]
    )  # fmt: skip


def start_backend_farm() -> HaproxyControl:
    """A second HAProxy playing both real servers: answers 200 itself, never the bottleneck."""
    farm_dir = Path(tempfile.mkdtemp(prefix="lbf", dir="/tmp"))
    layout = RuntimeLayout.under(farm_dir)
    layout.ensure()
    control = HaproxyControl(layout)
    binds = "\n".join(f"    bind {ip}:{BACKEND_PORT}" for ip in BACKENDS)
    control.config_path.write_text(
        f"""global
    master-worker
    stats socket {layout.haproxy_admin_socket} mode 600 level admin
defaults
    mode http
    timeout connect 4s
    timeout client 30s
    timeout server 30s
frontend farm
{binds}
    http-request return status 200 content-type text/plain string ok
"""
    )
    control.start()
    return control


def apply_once() -> ConfigRevision:
    revision = ConfigRevision.objects.create()
    return config_apply_run(revision.pk)


def toggle_timeout() -> None:
    """Change something, so each apply really reloads."""
    settings = L7Settings.load()
    settings.client_timeout_ms = 1800001 if settings.client_timeout_ms == 1800000 else 1800000
    settings.save()


def bare_apply(control: HaproxyControl, text: str) -> None:
    """The floor: `haproxy -c`, then master-CLI reload, then wait for the new worker."""
    path = control.config_path
    path.write_text(text)
    subprocess.run([control.binary(), "-c", "-q", "-f", str(path)], check=True)
    old = control.show_proc().workers
    control.master_command("reload")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.005)  # the same polling step as HaproxyControl.reload
        try:
            workers = control.show_proc().workers
        except Exception:  # noqa: S112 - the master re-executes; its socket is briefly gone
            continue
        if workers and workers != old:
            return
    raise RuntimeError("bare reload produced no new worker")


def bench_apply_latency(name: str, doc: dict, rounds: int) -> None:
    control = daemon_controllers()["haproxy"]
    started = time.monotonic()
    config_import(actor=None, document=doc)
    import_s = time.monotonic() - started
    first = apply_once()
    assert first.status == "applied", first.error
    ours, serving, bare = [], [], []
    for i in range(rounds):  # interleaved, so drift on a shared machine hits both alike
        toggle_timeout()
        start = time.perf_counter()
        revision = apply_once()
        ours.append(time.perf_counter() - start)
        serving.append(revision.timings["to_serving"])
        assert revision.status == "applied", revision.error
        text = control.config_path.read_text()
        variant = text.replace("timeout client 1800000ms", f"timeout client {1800000 + i % 2}ms")
        variant = variant.replace("timeout client 1800001ms", "timeout client 1800002ms")
        start = time.perf_counter()
        bare_apply(control, variant)
        bare.append(time.perf_counter() - start)
    bare_median = statistics.median(bare)
    lines = len(control.config_path.read_text().splitlines())
    print(
        f"  {name}: bare -c+reload {bare_median * 1000:.1f} ms "
        f"(import {import_s:.1f}s, {lines} lines)"
    )
    for label, samples in (("to serving", serving), ("total incl. revision", ours)):
        median = statistics.median(samples)
        print(f"    ours, {label:<21} {median * 1000:8.1f} ms   ratio {median / bare_median:5.2f}")


WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk(url: str, seconds: float, *, close: bool = False, connections: int = 20) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", url]
    if close:
        command[1:1] = ["-H", "Connection: close"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = WRK_ERRORS.search(output)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(n) for n in errors.groups()) if errors else 0
    )
    return {"requests": requests, "rate": rate, "failed": failed, "raw": output}


def bench_hitless(applies: int) -> None:
    url = f"http://{HITLESS_VIP}:{HITLESS_PORT}/"
    results: dict[str, dict] = {}
    seconds = max(10, applies * 0.5)

    def load(name: str, close: bool) -> None:
        results[name] = wrk(url, seconds, close=close)

    threads = [
        threading.Thread(target=load, args=("keep-alive", False)),
        threading.Thread(target=load, args=("Connection: close", True)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1)
    done = 0
    while done < applies:
        toggle_timeout()
        revision = apply_once()
        assert revision.status == "applied", revision.error
        done += 1
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    for name, result in results.items():
        print(
            f"  {name:<18} {result['requests']:>8} requests  {result['failed']:>3} failed  "
            f"({applies} applies during {seconds:.0f}s)"
        )


def bench_throughput(rounds: int, seconds: float) -> None:
    """Same HAProxy, same backends: our rendered config vs a minimal hand-written one."""
    control = daemon_controllers()["haproxy"]
    ours_text = control.config_path.read_text()
    minimal = f"""global
    master-worker
    stats socket {control.layout.haproxy_admin_socket} mode 600 level admin
defaults
    mode http
    timeout connect 4s
    timeout client 30s
    timeout server 30s
listen minimal
    bind {HITLESS_VIP}:{HITLESS_PORT}
    balance roundrobin
    server B1 {BACKENDS[0]}:{BACKEND_PORT}
    server B2 {BACKENDS[1]}:{BACKEND_PORT}
"""
    url = f"http://{HITLESS_VIP}:{HITLESS_PORT}/"
    rates: dict[str, list[float]] = {"ours": [], "minimal": []}
    ratios = []
    for round_ in range(rounds):
        # Alternate which goes first, and compare within each pair: this machine's speed
        # drifts by more than the difference being measured.
        pair = (("ours", ours_text), ("minimal", minimal))
        for name, text in pair if round_ % 2 == 0 else pair[::-1]:
            bare_apply(control, text)
            time.sleep(1.0)  # old workers gone, caches warm
            rates[name].append(wrk(url, seconds)["rate"])
        ratios.append(rates["ours"][-1] / rates["minimal"][-1])
    bare_apply(control, ours_text)
    ours, base = statistics.median(rates["ours"]), statistics.median(rates["minimal"])
    print(
        f"  ours {ours:10.0f} req/s   minimal {base:10.0f} req/s   "
        f"ratio (median of paired runs) {statistics.median(ratios):5.3f}   "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}; {seconds:.0f}s each, "
        "20 keep-alive connections)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 100x10 generated")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    farm = start_backend_farm()
    try:
        rounds = 5 if args.quick else 10
        print("Apply latency (median; ratio = ours ÷ bare; target ≤ 1.5)")
        bench_apply_latency("Lync guide (10 services)", lync_document(), rounds)
        print("Hitless reloads (target: 0 failed)")
        bench_hitless(applies=20)
        print("Throughput through a VIP (target ratio ≥ 0.97)")
        bench_throughput(rounds=3 if args.quick else 7, seconds=3 if args.quick else 5)
        size = 100 if args.quick else 1000
        print("Apply latency, generated configuration")
        bench_apply_latency(
            f"{size} services x 10 servers",
            generated_document(size),
            rounds,
        )
    finally:
        daemon_controllers()["haproxy"].stop()
        farm.stop()


if __name__ == "__main__":
    main()
