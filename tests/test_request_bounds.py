"""Request bodies are bounded before anything reads them (security review, findings 3 and 4).

An anonymous 200 MB upload used to be written to /tmp before CSRF refused it, and the pairing
endpoint parsed 16 MB of JSON before it checked the password. Each route now has a bound on its
body by who is asking (lbadmin.middleware.RequestBodyLimit), checked against Content-Length:
these tests hand Django a body that counts what is read of it.
"""

import io
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test.client import ClientHandler

from lbadmin.middleware import ANONYMOUS_BODY_BYTES, PEER_BODY_BYTES, SIGNED_IN_BODY_BYTES
from tests.support import ha_node_paired

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


class CountingBody(io.RawIOBase):
    """A request body of ``size`` bytes that remembers how much of it was read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = min(len(buffer), self.size - self.consumed)
        buffer[:count] = b"x" * count
        self.consumed += count
        return count


def send(
    path: str, size: int, *, content_type: str, cookie: str = "", length: str = ""
) -> tuple[int, bytes, CountingBody]:
    """POST a body of ``size`` bytes (Content-Length ``length``, by default the size)."""
    body = CountingBody(size)
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "443", "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "https", "wsgi.input": body, "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": length or str(size), "CONTENT_TYPE": content_type,
        "REMOTE_ADDR": "127.0.0.9", "HTTP_COOKIE": cookie,
    }  # fmt: skip
    # The test client's handler: Django's own would close the test's database connection.
    response = ClientHandler(enforce_csrf_checks=True)(environ)
    return response.status_code, response.content, body


def temp_files() -> set[str]:
    directory = settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()
    return set(os.listdir(directory))


MULTIPART = "multipart/form-data; boundary=lbadmin"


def test_a_50_mb_anonymous_upload_is_refused_unread() -> None:
    before = temp_files()
    for path in ("/lbadmin/login/", "/lbadmin/cluster/certificates/add/", "/lbadmin/"):
        status, answer, body = send(path, 50 * MB, content_type=MULTIPART)
        assert status == 413, (path, answer)
        assert body.consumed == 0, f"{path}: {body.consumed} bytes were read"
    assert temp_files() == before


def test_the_pairing_request_is_bounded_before_the_password_is_checked() -> None:
    status, answer, body = send(
        "/lbadmin/api/ha/pair/", ANONYMOUS_BODY_BYTES + 1, content_type="application/json"
    )
    assert status == 413 and b'"error"' in answer and body.consumed == 0
    # Within the bound it is read and answered as usual (malformed: not JSON).
    status, answer, body = send("/lbadmin/api/ha/pair/", 100, content_type="application/json")
    assert status == 400 and body.consumed == 100


def test_signed_peer_calls_have_the_push_bound() -> None:
    status, _, body = send(
        "/lbadmin/api/ha/sync/", PEER_BODY_BYTES + 1, content_type="application/json"
    )
    assert status == 413 and body.consumed == 0


def test_a_signed_in_admin_may_upload_up_to_the_bound(admin) -> None:
    cookie = f"{settings.SESSION_COOKIE_NAME}={admin.cookies[settings.SESSION_COOKIE_NAME].value}"
    path = "/lbadmin/cluster/certificates/add/"
    status, _, body = send(path, SIGNED_IN_BODY_BYTES + 1, content_type=MULTIPART, cookie=cookie)
    assert status == 413 and body.consumed == 0
    # Within the bound the request goes on to CSRF (which refuses it: no token).
    status, answer, body = send(path, 64 * 1024, content_type=MULTIPART, cookie=cookie)
    assert status == 403 and b"CSRF" in answer


@pytest.mark.parametrize("length", ["abc", "-1", "1e9", "١٢"])
def test_a_content_length_that_is_not_a_number_is_refused(length: str) -> None:
    status, _, body = send(
        "/lbadmin/login/", 10, content_type="application/x-www-form-urlencoded", length=length
    )
    assert status == 400 and body.consumed == 0


# --- The real WebUI: gunicorn's worker keeps its memory ----------------------------------------


def gunicorn_pids(port: int) -> list[int]:
    """The gunicorn processes serving ``port`` (their environment names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gunicorn" in cmdline and f"LBADMIN_HTTPS_PORT={port}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def oversized_pairing(host: str, port: int, claimed: int, sent: int) -> int:
    """POST to the pairing endpoint claiming ``claimed`` bytes, send ``sent``, read the status."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(
            f"POST /lbadmin/api/ha/pair/ HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {claimed}\r\n\r\n".encode()
        )
        deadline = time.monotonic() + 10
        while sent > 0 and time.monotonic() < deadline:
            chunk = b"[" * min(sent, 65536)
            try:
                tls.sendall(chunk)
            except OSError:
                break  # the server answered and closed: fine
            sent -= len(chunk)
        answer = tls.recv(4096).decode(errors="replace")
    return int(answer.split()[1])


@pytest.fixture
def webui(appliance_server: str) -> Iterator[tuple[str, int]]:
    parts = urlsplit(appliance_server)
    yield parts.hostname or "", parts.port or 0


@pytest.mark.django_db(transaction=True)
def test_oversized_pairing_requests_leave_the_worker_memory_as_it_was(webui) -> None:
    host, port = webui
    assert oversized_pairing(host, port, 2, 2) == 400  # warm up: the first request loads views
    pids = gunicorn_pids(port)
    assert pids, "no gunicorn process found for the test WebUI"
    before = sum(rss_kb(pid) for pid in pids)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(oversized_pairing(host, port, 16 * MB, 2 * MB))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    after = sum(rss_kb(pid) for pid in pids)
    assert statuses == [413] * 4
    # Four bodies of 16 MB parsed would add hundreds of MB; unread, the workers barely move.
    assert after - before < 20 * 1024, f"RSS grew by {after - before} KB"


def test_an_unsigned_peer_call_is_refused_before_its_body_is_read() -> None:
    status, answer, body = send("/lbadmin/api/ha/sync/", MB, content_type="application/json")
    assert status == 403 and b"not in a pair" in answer and body.consumed == 0
    ha_node_paired("slave")
    status, answer, body = send("/lbadmin/api/ha/sync/", MB, content_type="application/json")
    assert status == 403 and b"peer" in answer and body.consumed == 0
