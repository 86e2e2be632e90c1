"""Plumbing for tests that run real daemons (HAProxy, stunnel, keepalived) on loopback.

- Addresses: everything binds a random 127.x.y.z address (127.0.0.0/8 is all on lo), so no
  client socket on 127.0.0.1 can already hold the port and tests running at the same time
  do not clash.
- Layout: configs and logs under the test's tmp_path, sockets in a short /tmp/lb* directory
  (sun_path is limited to 108 bytes). Leaving the layout SIGKILLs anything still running that
  mentions its directories, and fails if there was any.
- Backends: Python servers in threads that answer with their own name.
- Clients: HTTP(S) GETs and the certificate a TLS server presents.

The pytest fixtures built on these live in tests/engines/conftest.py.
"""

import contextlib
import http.client
import os
import random
import shutil
import signal
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

from lbadmin.engines.daemons import (
    HaproxyControl,
    KeepalivedControl,
    RuntimeLayout,
    StunnelControl,
)

# ---------------------------------------------------------------------------------------------
# Waiting


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.01
) -> float:
    """Poll until ``predicate()`` is true; returns the seconds it took.

    The predicate is always asked once more after the last sleep, so a slow poll never turns
    into a false timeout.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start >= timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Addresses


def random_block() -> str:
    """'127.a.b.' for a random /24 of loopback (127.0.0.0/8 is all local on Linux)."""
    return f"127.{random.randint(64, 127)}.{random.randint(0, 255)}."


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` (IPv4 or IPv6) right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_listen_address() -> tuple[str, int]:
    """A random loopback address and a port free on it."""
    host = f"{random_block()}{random.randint(1, 254)}"
    return host, free_port(host)


def free_port_range(count: int) -> tuple[str, int]:
    """A random loopback address and ``count`` consecutive ports free on it."""
    for _ in range(20):
        host, _port = free_listen_address()
        base = random.randint(20000, 60000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return host, base
    raise RuntimeError("no free port range found")


# ---------------------------------------------------------------------------------------------
# Clients


def http_request(
    host: str,
    port: int,
    *,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 3.0,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One GET / on a new connection (HTTPS if ``context`` is given, from ``source`` if given):
    the response (already read) and its body."""
    source_address = (source, 0) if source else None
    if context is None:
        conn = http.client.HTTPConnection(
            host, port, timeout=timeout, source_address=source_address
        )
    else:
        conn = http.client.HTTPSConnection(
            host, port, timeout=timeout, source_address=source_address, context=context
        )
    try:
        conn.request("GET", "/", headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def http_get(
    host: str,
    port: int,
    *,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    context: ssl.SSLContext | None = None,
) -> bytes:
    """The body of a GET / on a new connection, which must answer 200."""
    response, body = http_request(host, port, headers=headers, source=source, context=context)
    assert response.status == 200, body
    return body


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def https_get(host: str, port: int) -> bytes:
    """http_get over TLS, without verifying the (throw-away, self-signed) certificate."""
    return http_get(host, port, context=_unverified_context())


def served_certificate(host: str, port: int, timeout: float = 3.0) -> bytes:
    """DER of the certificate a TLS server presents (unverified handshake, then close)."""
    context = _unverified_context()
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


# ---------------------------------------------------------------------------------------------
# Backends


ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)


class NamedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every response waits ~40 ms for a delayed ACK
    server: "NamedHTTPServer"

    def do_GET(self) -> None:
        self.server.seen_xff.append(self.headers.get("X-Forwarded-For"))
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


class NamedHTTPServer(ThreadingHTTPServer):
    """Answers every GET with its name; records each request's X-Forwarded-For."""

    daemon_threads = True
    block_on_close = False  # stopping never waits for connections HAProxy keeps open

    def __init__(self, name: str, address: tuple[str, int]) -> None:
        self.name = name
        self.seen_xff: list[str | None] = []
        super().__init__(address, NamedHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy's checks and reloads close connections with a reset: not news


class NamePortHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        port = self.server.server_address[1]
        name = self.server.name  # type: ignore[attr-defined]  # NamedTCPServer
        self.request.sendall(f"{name}:{port}".encode())


class NamedTCPServer(socketserver.ThreadingTCPServer):
    """Answers "<name>:<port>" and closes: shows which server and port a connection reached."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, name: str, address: tuple[str, int]) -> None:
        self.name = name
        super().__init__(address, NamePortHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy's connect checks close with a reset; not worth a traceback


class Backends:
    """Servers running in threads; ``stop_all`` (the fixture) shuts down every one left."""

    def __init__(self) -> None:
        self.running: dict[int, tuple[socketserver.BaseServer, threading.Thread]] = {}

    def start(self, server: ServerT) -> ServerT:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        self.running[id(server)] = (server, thread)
        return server

    def http(self, name: str, host: str, port: int = 0) -> NamedHTTPServer:
        return self.start(NamedHTTPServer(name, (host, port)))

    def tcp(self, name: str, host: str, port: int) -> NamedTCPServer:
        return self.start(NamedTCPServer(name, (host, port)))

    def stop(self, server: socketserver.BaseServer) -> None:
        server, thread = self.running.pop(id(server))
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    def stop_all(self) -> None:
        for server, _ in list(self.running.values()):
            self.stop(server)


@contextlib.contextmanager
def running_backends() -> Iterator[Backends]:
    backends = Backends()
    try:
        yield backends
    finally:
        backends.stop_all()


# ---------------------------------------------------------------------------------------------
# Daemons


def processes_mentioning(needles: list[str]) -> list[int]:
    """Live (not zombie) pids whose command line mentions one of ``needles``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(needle in cmdline for needle in needles):
            found.append(int(entry))
    return found


@contextlib.contextmanager
def short_layout(tmp_path: Path) -> Iterator[RuntimeLayout]:
    """A RuntimeLayout: configs and logs under ``tmp_path``, sockets in a short /tmp/lb* dir.

    On leaving, after the daemons' own stop(): anything still running that mentions the run
    or config directory (daemons, orphaned `haproxy -c` of killed appliers) is SIGKILLed, the
    run directory removed, and the test fails if there was anything to kill.
    """
    # One prefix for every layout: all run dirs are the same length, so none can be a
    # leading substring of another test's.
    run_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="lb"))
    layout = RuntimeLayout(conf_dir=tmp_path / "etc", run_dir=run_dir, log_dir=tmp_path / "log")
    try:
        layout.ensure()
        yield layout
    finally:
        leftovers = processes_mentioning([str(run_dir), str(layout.conf_dir)])
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert not leftovers, f"processes left running: {leftovers}"


@contextlib.contextmanager
def haproxy_control(layout: RuntimeLayout) -> Iterator[HaproxyControl]:
    """A HaproxyControl on ``layout``, stopped on leaving, pass or fail."""
    control = HaproxyControl(layout)
    try:
        yield control
    finally:
        control.stop(timeout=2.0)


@contextlib.contextmanager
def stunnel_control(layout: RuntimeLayout) -> Iterator[StunnelControl]:
    """A StunnelControl on ``layout``; every instance is stopped on leaving, pass or fail."""
    control = StunnelControl(layout)
    try:
        yield control
    finally:
        control.stop(timeout=2.0)


@contextlib.contextmanager
def keepalived_control(
    layout: RuntimeLayout, *, vrrp_only: bool = True
) -> Iterator[KeepalivedControl]:
    """A KeepalivedControl on ``layout`` (``--vrrp`` by default: these kernels have no IPVS),
    stopped on leaving, pass or fail."""
    control = KeepalivedControl(layout, vrrp_only=vrrp_only)
    try:
        yield control
    finally:
        control.stop(timeout=2.0)
