#!/usr/bin/env python3
"""System Overview benchmarks (issue: live status, and drain / halt / online without a reload).

1. Click → server state changed in HAProxy, end to end through the real web request
   (gunicorn over HTTPS, login session, CSRF, runtime API): p50 / p99. Target p99 ≤ 50 ms.
2. HAProxy reloads caused by those clicks (from the master's reload counter). Target 0.
3. Server-side render time of the live table with 500 services × 10 servers ÷ with
   5 services × 2 servers (database + one runtime-API round trip + template), and the query
   count of each. Target ratio ≤ 3, query counts identical.

Everything runs on 127.0.0.0/8 with a throw-away SQLite database. Prints figures only.
Usage: make bench   (or .venv/bin/python bench/overview.py [--clicks N])
"""

import argparse
import http.client
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")
os.environ["LBADMIN_VAR_DIR"] = tempfile.mkdtemp(prefix="lbo", dir="/tmp")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from lbadmin.models import ConfigRevision, RealServer, User, VirtualService  # noqa: E402
from lbadmin.services.config import config_apply_run  # noqa: E402
from lbadmin.services.daemons import daemon_controllers  # noqa: E402

PASSWORD = "Bench-Overview-2013"
PORT = 18443


def make_services(count: int, servers: int) -> None:
    RealServer.objects.all().delete()
    VirtualService.objects.all().delete()
    for i in range(count):
        service = VirtualService.objects.create(
            label=f"svc{i:03d}", ip=f"127.60.{i // 250}.{i % 250 + 1}", ports="18000",
            protocol="http", persistence="none", health_check="none",
        )  # fmt: skip
        RealServer.objects.bulk_create(
            RealServer(virtual_service=service, label=f"rs{j}", ip="127.61.0.1", port=20000 + j)
            for j in range(servers)
        )


def apply() -> None:
    revision = config_apply_run(ConfigRevision.objects.create().pk)
    assert revision.status in ("applied", "unchanged"), revision.error


def login(conn: http.client.HTTPSConnection) -> dict[str, str]:
    conn.request("GET", "/lbadmin/login/")
    response = conn.getresponse()
    body = response.read().decode()
    cookies = _cookies(response)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    form = urlencode({"username": "loadbalancer", "password": PASSWORD,
                      "csrfmiddlewaretoken": token})  # fmt: skip
    conn.request("POST", "/lbadmin/login/", form, headers=_headers(cookies, form=True))
    response = conn.getresponse()
    response.read()
    cookies.update(_cookies(response))
    assert response.status == 302, response.status
    conn.request("GET", "/lbadmin/", headers=_headers(cookies))
    response = conn.getresponse()
    body = response.read().decode()
    cookies.update(_cookies(response))
    cookies["token"] = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    return cookies


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, value = header.split(";", 1)[0].split("=", 1)
        found[name] = value
    return found


def _headers(cookies: dict[str, str], *, form: bool = False) -> dict[str, str]:
    jar = "; ".join(f"{k}={v}" for k, v in cookies.items() if k != "token")
    headers = {"Cookie": jar, "Referer": f"https://127.0.0.1:{PORT}/lbadmin/"}
    if form:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return headers


def bench_clicks(clicks: int) -> None:
    make_services(1, 2)
    apply()
    server = RealServer.objects.get(label="rs0")
    haproxy = daemon_controllers()["haproxy"]
    env = dict(os.environ, LBADMIN_HTTPS_BIND="127.0.0.1", LBADMIN_HTTPS_PORT=str(PORT),
               LBADMIN_WEB_WORKERS="1")  # fmt: skip
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "appliance/gunicorn.conf.py"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=context, timeout=5)
                cookies = login(conn)
                break
            except (OSError, AttributeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        reloads_before = haproxy.show_proc().reloads
        samples = []
        expected = {"drain": "8", "online": "0"}  # srv_admin_state: FDRAIN flag, or none
        for i in range(clicks):
            action = "drain" if i % 2 == 0 else "online"
            form = urlencode({"action": action, "csrfmiddlewaretoken": cookies["token"]})
            start = time.perf_counter()
            conn.request(
                "POST", f"/lbadmin/overview/servers/{server.pk}/state/", form,
                headers=_headers(cookies, form=True) | {"HX-Request": "true"},
            )  # fmt: skip
            response = conn.getresponse()
            response.read()
            samples.append(time.perf_counter() - start)
            assert response.status == 200, response.status
            dump = haproxy.runtime_command("show servers state svc000").splitlines()
            state = next(line.split() for line in dump if " rs0 " in line)
            assert state[6] == expected[action], (action, state)  # srv_admin_state column
        reloads = haproxy.show_proc().reloads - reloads_before
        ordered = sorted(samples)
        p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
        print(f"Click → state changed in HAProxy, {clicks} clicks through gunicorn over HTTPS")
        print(
            f"  p50 {statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms   "
            f"max {ordered[-1] * 1000:6.2f} ms   (target p99 ≤ 50 ms)"
        )
        print(f"  HAProxy reloads caused: {reloads}   (target 0)")
    finally:
        web.terminate()
        web.wait(timeout=15)


class HttpsClient(Client):
    def _base_environ(self, **request: object) -> dict:
        return super()._base_environ(**request) | {"wsgi.url_scheme": "https"}


def bench_render(rounds: int) -> None:
    client = HttpsClient()
    client.force_login(User.objects.get(username="loadbalancer"))

    def measure(services: int, servers: int) -> tuple[float, int, int]:
        make_services(services, servers)
        apply()
        # An administrator with two services expanded, as the page polls every 3 s.
        ids = ",".join(map(str, VirtualService.objects.values_list("pk", flat=True)[:2]))
        url = f"/lbadmin/overview/table/?expanded={ids}"
        client.get(url)  # warm
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - start)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, response.status_code
        return statistics.median(times), len(captured), len(response.content)

    small = measure(5, 2)
    large = measure(500, 10)
    print(f"Overview table render, server side (median of {rounds})")
    for name, (seconds, queries, size) in (("5 x 2", small), ("500 x 10", large)):
        print(f"  {name:<9} {seconds * 1000:8.1f} ms   {queries} queries   {size / 1024:7.0f} KiB")
    print(f"  ratio 500x10 ÷ 5x2: {large[0] / small[0]:.1f}   (target ≤ 3; queries identical: "
          f"{small[1] == large[1]})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    call_command("lbadmin_setup", verbosity=0)
    user = User.objects.get(username="loadbalancer")
    user.set_password(PASSWORD)
    user.must_change_password = False
    user.save()
    try:
        bench_clicks(args.clicks)
        bench_render(args.rounds)
    finally:
        daemon_controllers()["haproxy"].stop()


if __name__ == "__main__":
    main()
