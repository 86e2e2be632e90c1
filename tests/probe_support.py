"""Real things on loopback for the checklist's probes to find: TCP listeners, a listener that
never completes a handshake, and a small RFC 5389 STUN responder written from the RFC (not
from the code under test). Only 127.0.0.0/8 is ever used.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Literal

import pytest

MAGIC_COOKIE = 0x2112A442

needs_netns = pytest.mark.skipif(
    shutil.which("ip") is None or os.geteuid() != 0,
    reason="network namespaces need root and iproute2 (apt-get install iproute2)",
)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the guide's ports 135, 443 and 444 need root to listen on"
)


def loopback_base() -> str:
    """'127.N.' with N in 200..250: away from the 127.64-127.x blocks other tests pick."""
    return f"127.{random.randint(200, 250)}."


def listen_tcp(ip: str, port: int, backlog: int = 128) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    sock.listen(backlog)
    return sock


@contextmanager
def stuck_listener(ip: str, port: int) -> Iterator[socket.socket]:
    """A listener whose accept queue is full: Linux drops further SYNs, so a connect waits
    (a "no answer" that never leaves the host)."""
    with ExitStack() as stack:
        server = stack.enter_context(listen_tcp(ip, port, backlog=0))
        for _ in range(8):
            client = stack.enter_context(socket.socket())
            client.settimeout(0.2)
            try:
                client.connect((ip, port))
            except TimeoutError:
                break
        else:
            raise RuntimeError("the accept queue never filled")
        yield server


StunMode = Literal["answer", "wrong_id", "error", "silent", "second"]


@dataclass
class StunResponder:
    """Answers RFC 5389 Binding Requests on ``ip:port`` (UDP) in a thread.

    ``answer``: a Binding Success Response with XOR-MAPPED-ADDRESS; ``wrong_id``: the same,
    for another transaction id; ``error``: a Binding Error Response 401 Unauthorized;
    ``silent``: nothing; ``second``: ignores the first request, answers the next ones.
    ``requests`` keeps (arrival monotonic time, datagram) of everything received."""

    ip: str
    port: int = 0
    mode: StunMode = "answer"
    requests: list[tuple[float, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((self.ip, self.port))
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> StunResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests.append((time.monotonic(), data))
            reply = self._reply(data, peer)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def _reply(self, data: bytes, peer: tuple[str, int]) -> bytes | None:
        if len(data) < 20:
            return None
        kind, length, cookie = struct.unpack("!HHI", data[:8])
        if kind != 0x0001 or cookie != MAGIC_COOKIE or length != len(data) - 20:
            return None
        transaction_id = data[8:20]
        if self.mode == "silent" or (self.mode == "second" and len(self.requests) == 1):
            return None
        if self.mode == "wrong_id":
            transaction_id = bytes(b ^ 0xFF for b in transaction_id)
        if self.mode == "error":
            reason = b"Unauthorized"
            value = struct.pack("!HBB", 0, 4, 1) + reason
            attribute = struct.pack("!HH", 0x0009, len(value)) + value + b"\0" * (-len(value) % 4)
            kind = 0x0111
        else:
            ip, port = peer
            xored = bytes(
                a ^ b
                for a, b in zip(socket.inet_aton(ip), struct.pack("!I", MAGIC_COOKIE), strict=True)
            )
            value = struct.pack("!BBH", 0, 1, port ^ (MAGIC_COOKIE >> 16)) + xored
            attribute = struct.pack("!HH", 0x0020, len(value)) + value
            kind = 0x0101
        header = struct.pack("!HHI", kind, len(attribute), MAGIC_COOKIE) + transaction_id
        return header + attribute


@contextmanager
def guide_namespace(name: str) -> Iterator[str]:
    """A network namespace routed like the guide's load balancer (routes only; nothing is
    sent): its internal arm 192.168.20.1/24 on d0 with the default gateway 192.168.20.254
    and the static route 192.168.100.0/24 via 192.168.20.2, an arm on the external Edge
    servers' subnet (10.20.0.1/16 on d1), and 203.0.113.0/24 unreachable. Removed afterwards,
    pass or fail."""

    def ip(*args: str) -> None:
        subprocess.run(["ip", "-n", name, *args], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        ip("link", "add", "d0", "type", "veth", "peer", "name", "p0")
        ip("link", "add", "d1", "type", "veth", "peer", "name", "p1")
        for link in ("lo", "d0", "p0", "d1", "p1"):
            ip("link", "set", link, "up")
        ip("addr", "add", "192.168.20.1/24", "dev", "d0")
        ip("addr", "add", "10.20.0.1/16", "dev", "d1")
        ip("route", "add", "default", "via", "192.168.20.254")
        ip("route", "add", "192.168.100.0/24", "via", "192.168.20.2")
        ip("route", "add", "unreachable", "203.0.113.0/24")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
