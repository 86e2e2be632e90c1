"""Test backends: real HTTP servers on loopback addresses that answer with their own name."""

import http.client
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _NamedHandler(http.server.BaseHTTPRequestHandler):
    # Without this every response waits ~40 ms for Nagle (DESIGN.md).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        # What the load balancer told the server about the client (option forwardfor).
        self.send_header("X-Seen-Forwarded-For", self.headers.get("X-Forwarded-For", ""))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _TlsServer(http.server.ThreadingHTTPServer):
    """HTTPS only: each accepted connection is wrapped (handshake in the handler's thread)."""

    tls: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        # The handshake happens on the handler thread's first read, not in the accept loop.
        wrapped = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy's health checks connect, shake hands and close: not worth a traceback.
        pass


@contextmanager
def http_backend(
    ip: str, port: int, name: str, *, tls_cert: str | None = None
) -> Iterator[http.server.ThreadingHTTPServer]:
    """An HTTP backend; with ``tls_cert`` (a PEM file holding key and certificate) it speaks
    HTTPS only, as a Re-Encrypt to Backend real server does."""
    if tls_cert is None:
        server = http.server.ThreadingHTTPServer((ip, port), _NamedHandler)
    else:
        server = _TlsServer((ip, port), _NamedHandler)
        server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.tls.load_cert_chain(tls_cert)
    server.daemon_threads = True
    server.name = name  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fetch(
    ip: str, port: int, path: str = "/", headers: dict | None = None, source: str | None = None
) -> tuple[str, http.client.HTTPMessage]:
    """One request on a new connection (from a chosen loopback address if `source` is given);
    returns the body and the response headers (case-insensitive)."""
    connection = http.client.HTTPConnection(
        ip, port, timeout=5, source_address=(source, 0) if source else None
    )
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.read().decode(), response.headers
    finally:
        connection.close()


def request_on(sock: socket.socket) -> str:
    """One HTTP/1.1 request on an open (kept-alive) connection; returns the response body."""
    sock.sendall(b"GET / HTTP/1.1\r\nHost: lbadmin\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the response")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        body += chunk
    return body.decode()


def ha_node_paired(role: str = "slave", **fields: object) -> None:
    """This node's HaNode row as one half of a pair (pair key b"p" * 32), without pairing."""
    import uuid

    from lbadmin.models import HaNode
    from lbadmin.services.secrets import secret_encrypt

    defaults = {
        "role": role, "peer_ip": "192.0.2.1", "peer_node_id": uuid.uuid4(),
        "pair_key_encrypted": secret_encrypt(b"p" * 32), **fields,
    }  # fmt: skip
    HaNode.objects.update_or_create(pk=1, defaults=defaults)
