#!/usr/bin/env python3
"""SSL termination benchmarks (issue: SSL certificates and SSL termination with stunnel).

1. Reload time: `apply_stunnel` of a certificate replacement (validate the new file with a
   throw-away stunnel + TLS handshake, write, SIGHUP, confirm from the log) ÷ the bare floor
   (`kill -HUP` + wait for "Configuration successful" in the log) on the same instance.
2. Failed requests during 10 certificate replacements under load: clients open a new TLS
   connection for every request (the path a reload can break), through the appliance's
   stunnel (listener handed over by socket activation) → HAProxy (`accept-proxy` on a unix
   socket, answering itself). Target: 0. For comparison, the same load against a stunnel
   that binds its own listener and is sent 10 plain SIGHUPs.

No Django and no database: the real renderer and engine, on 127.0.0.0/8 and a temp dir.
Prints figures; asserts nothing.

Usage: .venv/bin/python bench/stunnel.py [--replacements N]
"""

import argparse
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lbadmin.engines.certificates import make_self_signed, stunnel_pem  # noqa: E402
from lbadmin.engines.daemons import RuntimeLayout, StunnelControl, find_binary  # noqa: E402
from lbadmin.engines.stunnel_apply import StunnelInstance, apply_stunnel  # noqa: E402
from lbadmin.render.snapshot import SslTermination  # noqa: E402
from lbadmin.render.stunnel import render_termination, termination_instance  # noqa: E402

VIP = "127.0.40.30"
PORT, PLAIN_PORT = 18443, 18444
LABEL = "SSL-Bench"


def certificate_file(n: int) -> tuple[str, bytes]:
    bundle = stunnel_pem(make_self_signed(f"bench{n}.example.com"))
    return f"{n:032x}.pem", bundle


def instance(layout: RuntimeLayout, file_name: str) -> StunnelInstance:
    name = termination_instance(LABEL)
    termination = SslTermination(
        label=LABEL,
        instance=name,
        ip=VIP,
        port=PORT,
        target_socket=str(layout.termination_socket(name)),
        certificate_file=str(layout.stunnel_cert_dir / file_name),
    )
    return StunnelInstance(name, render_termination(termination, layout), VIP, PORT)


def start_haproxy(layout: RuntimeLayout, workdir: Path) -> subprocess.Popen:
    """The HTTP-mode service stunnel hands connections to; answers 200 itself."""
    socket_path = layout.termination_socket(termination_instance(LABEL))
    config = workdir / "haproxy.cfg"
    config.write_text(
        "global\n    maxconn 4096\n"
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n"
        "    timeout server 10s\n"
        f"frontend service\n    bind unix@{socket_path} mode 600 accept-proxy\n"
        "    http-request return status 200 content-type text/plain string ok\n"
    )
    proc = subprocess.Popen([find_binary("haproxy") or "haproxy", "-f", str(config)])
    deadline = time.monotonic() + 5
    while not socket_path.exists():
        if time.monotonic() > deadline:
            raise SystemExit("haproxy did not start")
        time.sleep(0.02)
    return proc


class Load:
    """Threads that each open a new TLS connection per request and count the outcomes."""

    def __init__(self, port: int, threads: int = 2) -> None:
        self.port = port
        self.outcomes: Counter = Counter()
        self.stop = threading.Event()
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with (
                    socket.create_connection((VIP, self.port), timeout=5) as raw,
                    self.context.wrap_socket(raw) as tls,
                ):
                    tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    reply = tls.recv(64)
                self.outcomes["ok" if reply.split(b" ", 2)[1:2] == [b"200"] else "bad reply"] += 1
            except OSError as error:
                self.outcomes[type(error).__name__] += 1

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)

    @property
    def failed(self) -> int:
        return sum(count for outcome, count in self.outcomes.items() if outcome != "ok")


def wait_logged(log: Path, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("Configuration successful") < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"stunnel did not confirm in {log}")
        time.sleep(0.002)


def bare_hup_seconds(control: StunnelControl, name: str) -> float:
    """kill -HUP and wait for stunnel's confirmation: the floor of any reload."""
    log = control.layout.stunnel_instance_log(name)
    before = log.read_text(errors="replace").count("Configuration successful")
    started = time.perf_counter()
    os.kill(control.instance_pid(name), signal.SIGHUP)
    wait_logged(log, before + 1)
    return time.perf_counter() - started


def plain_stunnel_failures(
    workdir: Path, layout: RuntimeLayout, bundle_path: Path, replacements: int
) -> Counter:
    """The same load against stunnel binding its own listener, sent plain SIGHUPs."""
    target = layout.termination_socket(termination_instance(LABEL))
    log = workdir / "plain.log"
    config = workdir / "plain.conf"
    config.write_text(
        f"pid = {workdir}/plain.pid\nforeground = no\noutput = {log}\nsyslog = no\n"
        f"[plain]\naccept = {VIP}:{PLAIN_PORT}\n"
        f"connect = {target}\n"
        f"protocol = proxy\ncert = {bundle_path}\n"
    )
    subprocess.run([find_binary("stunnel") or "stunnel", str(config)], check=True)
    wait_logged(log, 1)
    pid_file = workdir / "plain.pid"
    deadline = time.monotonic() + 5
    while not pid_file.exists() or not pid_file.read_text().strip():
        if time.monotonic() > deadline:
            raise SystemExit("the plain stunnel wrote no pid")
        time.sleep(0.01)
    pid = int(pid_file.read_text())
    try:
        with Load(PLAIN_PORT) as load:
            for n in range(replacements):
                os.kill(pid, signal.SIGHUP)
                wait_logged(log, n + 2)
                time.sleep(0.2)
        return load.outcomes
    finally:
        os.kill(pid, signal.SIGTERM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replacements", type=int, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lbs", dir="/tmp"))
    layout = RuntimeLayout.under(workdir / "var")
    layout.ensure()
    control = StunnelControl(layout)
    certificates = [certificate_file(n) for n in range(args.replacements + 1)]
    haproxy = start_haproxy(layout, workdir)
    try:
        first_name, first_bundle = certificates[0]
        result = apply_stunnel(control, [instance(layout, first_name)], {first_name: first_bundle})
        if not result.ok:
            raise SystemExit(result.error)
        name = termination_instance(LABEL)
        pid = control.instance_pid(name)

        applies: list[float] = []
        phases: dict[str, list[float]] = {}
        with Load(PORT) as load:
            for file_name, bundle in certificates[1:]:
                started = time.perf_counter()
                result = apply_stunnel(control, [instance(layout, file_name)], {file_name: bundle})
                applies.append(time.perf_counter() - started)
                if not result.ok:
                    raise SystemExit(result.error)
                for phase, seconds in result.timings.items():
                    phases.setdefault(phase, []).append(seconds)
                time.sleep(0.2)
        floors = [bare_hup_seconds(control, name) for _ in range(args.replacements)]
        assert control.instance_pid(name) == pid  # every replacement was a reload

        apply_ms = statistics.median(applies) * 1000
        floor_ms = statistics.median(floors) * 1000
        print("SSL termination (stunnel 5.68), certificate replacement:")
        print(f"  apply_stunnel median        {apply_ms:7.1f} ms  (max {max(applies) * 1000:.1f})")
        for phase in ("lock", "write_files", "validate", "bind", "swap"):
            if phase in phases:
                median_ms = statistics.median(phases[phase]) * 1000
                print(f"    {phase:<12} median       {median_ms:7.1f} ms")
        print(f"  bare kill -HUP + confirm    {floor_ms:7.1f} ms")
        print(f"  ratio apply / bare HUP      {apply_ms / floor_ms:7.1f}  (the rest is validation)")
        print(
            f"  under load, {args.replacements} replacements: {load.outcomes['ok']} requests ok, "
            f"{load.failed} failed (target 0) {dict(load.outcomes)}"
        )
        live_bundle = layout.stunnel_cert_dir / certificates[-1][0]  # earlier ones are pruned
        plain = plain_stunnel_failures(workdir, layout, live_bundle, args.replacements)
        failed = sum(count for outcome, count in plain.items() if outcome != "ok")
        print(
            f"  for comparison, stunnel binding its own listener, {args.replacements} SIGHUPs: "
            f"{plain['ok']} ok, {failed} failed {dict(plain)}"
        )
    finally:
        control.stop()
        haproxy.terminate()
        haproxy.wait(timeout=5)


if __name__ == "__main__":
    main()
