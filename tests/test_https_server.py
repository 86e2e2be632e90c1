"""The WebUI as served for real: gunicorn with TLS on its own port."""

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.conftest import https_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def test_login_page_is_served_over_https(appliance_server: str) -> None:
    response = https_get(f"{appliance_server}/lbadmin/")
    assert response.status == 302
    assert response.headers["Location"] == "/lbadmin/login/?next=/lbadmin/"
    response = https_get(f"{appliance_server}/lbadmin/login/")
    assert response.status == 200
    assert b"<h1>Login</h1>" in response.read()
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]


def test_plain_http_on_the_https_port_gets_no_page(appliance_server: str) -> None:
    host, port = urlsplit(appliance_server).hostname, urlsplit(appliance_server).port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /lbadmin/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        sock.settimeout(5)
        try:
            reply = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            reply = b""
    # The TLS server refuses the clear-text request: nothing served, no login page, no cookie.
    assert b"<html" not in reply.lower()
    assert b"Set-Cookie" not in reply


def test_health_endpoint(appliance_server: str) -> None:
    response = https_get(f"{appliance_server}/lbadmin/health/")
    body = json.loads(response.read())
    assert body["database"] is True
    assert set(body["daemons"]) == {"haproxy", "stunnel", "keepalived"}


def test_parallel_guesses_cannot_outrun_the_lockout(appliance_server: str, default_user) -> None:
    """Guesses sent at once on several connections are checked one at a time per account,
    so they cannot all pass the throttle before any failure is counted."""
    import re
    import threading
    import urllib.parse
    import urllib.request

    from lbadmin.models import AuditEntry
    from tests.conftest import NoRedirect, insecure_context

    def guess() -> None:
        jar = urllib.request.HTTPCookieProcessor()
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=insecure_context()), jar, NoRedirect()
        )
        page = opener.open(f"{appliance_server}/lbadmin/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode(
            {"username": "loadbalancer", "password": "wrong-guess", "csrfmiddlewaretoken": token}
        ).encode()
        request = urllib.request.Request(
            f"{appliance_server}/lbadmin/login/", data=form,
            headers={"Referer": f"{appliance_server}/lbadmin/login/"},
        )  # fmt: skip
        opener.open(request, timeout=30).read()

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failed = AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED).count()
    refused = AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_REFUSED).count()
    assert failed + refused == 8
    # After 3 failures each guess must wait 1 s, then 2 s…: most of the 8 are refused unchecked.
    assert failed <= 4, (failed, refused)
