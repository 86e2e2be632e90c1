#!/usr/bin/env python3
"""Setup Wizard for Lync post-apply checklist benchmark: a whole checklist against one probe
timeout.

The deployment is the guide's (docs/examples/lync-2013-guide.json: Front End and Director
pools, internal and external Edge, the reverse-proxy VIP) with every address moved to
127.0.0.0/8 (a.b.c.d → 127.b.c.d), and the Layer 4 VIPs probed as on an appliance with IPVS.
Three rounds each of:

1. everything answers: a TCP listener on every VIP and real-server port, a STUN responder on
   every UDP 3478 — the floor is the probes' own cost;
2. nothing answers: every TCP port is a listener whose accept queue is full (SYNs dropped, so
   the connect waits), every UDP port swallows datagrams — each probe waits the whole timeout.
   Target: wall time ÷ timeout ≈ 1 (the probes run together), against the sum a sequential
   checklist would take.

Needs root (the guide's ports 80, 135, 443 and 444) and no database (Lync 2013 without
cookie persistence has no certificate to look up). Prints figures; asserts nothing.

Usage: .venv/bin/python bench/lync_checks.py [--timeout S] [--rounds N]
"""

import argparse
import ipaddress
import json
import os
import selectors
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")
os.environ["LBADMIN_VAR_DIR"] = tempfile.mkdtemp(prefix="lbc", dir="/tmp")
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

from lbadmin.services import lync_checks  # noqa: E402
from lbadmin.wizard.answers import answers_from_document  # noqa: E402
from lbadmin.wizard.lync import LyncAnswers, plan  # noqa: E402

GUIDE = ROOT / "docs" / "examples" / "lync-2013-guide.json"
MAGIC_COOKIE = 0x2112A442


def to_loopback(value: Any) -> Any:
    """Every IPv4 address a.b.c.d in the document → 127.b.c.d (distinct for the guide's)."""
    if isinstance(value, dict):
        return {key: to_loopback(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_loopback(item) for item in value]
    if isinstance(value, str):
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            return value
        return "127." + ".".join(str(address).split(".")[1:])
    return value


def endpoints(answers: LyncAnswers) -> set[tuple[str, int, str]]:
    """Every (ip, port, protocol) the checklist probes: VIPs and real servers."""
    planned = plan(answers)
    found = {address for address, _ in planned.address_users()}
    for item in (*planned.layer7_services, *planned.layer4_services):
        protocols = ("tcp", "udp") if item["protocol"] == "tcp_udp" else (item["protocol"],)
        for server in item["real_servers"]:
            ports = [server["port"]] if server["port"] is not None else item["ports"]
            for port in ports:
                for protocol in protocols:
                    found.add((server["ip"], port, "udp" if protocol == "udp" else "tcp"))
    return found


class Stun(threading.Thread):
    """Answers Binding Requests on every given UDP socket (RFC 5389, XOR-MAPPED-ADDRESS)."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        super().__init__(daemon=True)
        self.selector = selectors.DefaultSelector()
        for sock in sockets:
            self.selector.register(sock, selectors.EVENT_READ)
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                data, (ip, port) = sock.recvfrom(2048)
                if len(data) < 20 or data[:2] != b"\x00\x01":
                    continue
                mask = struct.pack("!I", MAGIC_COOKIE)
                xored = bytes(a ^ b for a, b in zip(socket.inet_aton(ip), mask, strict=True))
                value = struct.pack("!BBH", 0, 1, port ^ (MAGIC_COOKIE >> 16)) + xored
                attribute = struct.pack("!HH", 0x0020, len(value)) + value
                header = struct.pack("!HHI", 0x0101, len(attribute), MAGIC_COOKIE)
                sock.sendto(header + data[8:20] + attribute, (ip, port))


def listen(stack: ExitStack, targets: set[tuple[str, int, str]], *, answering: bool) -> None:
    """Answering: plain listeners and a STUN responder. Not: full accept queues (one
    connection queued on a backlog of 0) and UDP sockets nobody reads."""
    udp = []
    for ip, port, protocol in sorted(targets):
        if protocol == "udp":
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((ip, port))
            udp.append(sock)
            continue
        server = stack.enter_context(socket.socket())
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((ip, port))
        server.listen(128 if answering else 0)
        if not answering:
            stack.enter_context(socket.create_connection((ip, port), timeout=1))
    if answering:
        responder = Stun(udp)
        responder.start()

        def stop() -> None:
            responder.stopping = True
            responder.join(2)

        stack.callback(stop)


def measure(answers: LyncAnswers, timeout_s: float, rounds: int) -> tuple[list[float], int]:
    walls, failed = [], 0
    for _ in range(rounds):
        started = time.monotonic()
        lines = lync_checks.lync_checklist(answers, timeout_s=timeout_s)
        walls.append(time.monotonic() - started)
        failed = sum(not line.ok for line in lines if line.group != lync_checks.GROUP_ROUTING)
    return walls, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=1.0, help="probe timeout (s)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/lync_checks.py: needs root (the guide's ports 80, 135, 443, 444); skipped.")
        return
    # As on an appliance with IPVS: the Layer 4 VIPs are probed too.
    lync_checks.layer4_unavailable_reason = lambda: ""  # type: ignore[assignment]
    answers = answers_from_document(to_loopback(json.loads(GUIDE.read_text())))
    targets = endpoints(answers)
    tcp = sum(protocol == "tcp" for _, _, protocol in targets)
    lines = lync_checks.lync_checklist(answers, timeout_s=0.05)
    print(
        f"Lync post-apply checklist, the guide's 2013 deployment on 127.0.0.0/8: {len(lines)} "
        f"lines, {len(targets)} distinct probes ({tcp} TCP, {len(targets) - tcp} STUN), "
        f"timeout {args.timeout:g} s"
    )
    for answering in (True, False):
        with ExitStack() as stack:
            listen(stack, targets, answering=answering)
            walls, failed = measure(answers, args.timeout, args.rounds)
        wall = statistics.median(walls)
        title = "everything answers" if answering else "nothing answers (every probe times out)"
        print(f"  {title}:")
        print(
            f"    checklist wall time        {wall * 1000:8.1f} ms  (median of {args.rounds}; "
            f"max {max(walls) * 1000:.1f}; {failed} red probe lines)"
        )
        print(f"    ratio wall / one timeout   {wall / args.timeout:8.2f}")
        if not answering:
            print(
                f"    a sequential checklist     {len(targets) * args.timeout:8.1f} s   "
                f"(ratio {len(targets):.0f})"
            )


if __name__ == "__main__":
    main()
