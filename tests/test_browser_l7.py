"""The guide's Front End services built in the browser, applied with the blue box, and serving
traffic: real Chromium, gunicorn, PostgreSQL, Celery worker, HAProxy and backends."""

import re
from collections import Counter

import pytest
from playwright.sync_api import Page, expect

from lbadmin.services.daemons import daemon_controllers
from tests.conftest import free_port, sign_in
from tests.support import fetch, http_backend

pytestmark = [pytest.mark.browser, pytest.mark.daemons, pytest.mark.django_db(transaction=True)]

PASSWORD = "Lync-Front-End-2013"
FE_VIP, WEB_VIP = "127.0.10.30", "127.0.20.30"
SERVERS = {"FE-1": "127.0.10.31", "FE-2": "127.0.10.32"}


@pytest.fixture
def signed_in(page: Page, celery_worker_process) -> Page:
    sign_in(page, PASSWORD)
    yield page
    daemon_controllers()["haproxy"].stop()


def add_service(page: Page, label: str, ip: str, ports: str, mode: str) -> None:
    page.click("nav >> text=Layer 7 – Virtual Services")
    page.click("#add-service")
    page.fill("#id_label", label)
    page.fill("#id_ip", ip)
    page.fill("#id_ports", ports)
    page.select_option("#id_protocol", label=mode)
    page.click("#update")
    expect(page.locator(f"#service-{label}")).to_be_visible()


def add_server(page: Page, service: str, label: str, ip: str, port: str) -> None:
    page.click("nav >> text=Layer 7 – Real Servers")
    page.locator(f"#servers-of-{service}").get_by_text("Add a new Real Server").click()
    page.fill("#id_label", label)
    page.fill("#id_ip", ip)
    page.fill("#id_port", port)
    expect(page.locator("#id_weight")).to_have_value("100")
    page.click("#update")
    expect(page.locator(f"#server-{service}-{label}")).to_be_visible()


def test_front_end_pool_and_web_services_from_the_browser(signed_in: Page) -> None:
    page = signed_in
    fe_ports = [free_port(FE_VIP) for _ in range(2)]
    web_port, backend_port = free_port(WEB_VIP), free_port(SERVERS["FE-1"])
    backends = [
        http_backend(ip, port, name)
        for name, ip in SERVERS.items()
        for port in [*fe_ports, backend_port]
    ]
    for backend in backends:
        backend.__enter__()
    try:
        # FrontEndPool: TCP mode on several ports, real servers with a blank port.
        add_service(page, "FrontEndPool", FE_VIP, ",".join(map(str, fe_ports)), "TCP Mode")
        for name, ip in SERVERS.items():
            add_server(page, "FrontEndPool", name, ip, "")
        # FePoolExtWebSvcs8080: HTTP mode (cookie persistence SERVERID by default).
        add_service(page, "FePoolExtWebSvcs8080", WEB_VIP, str(web_port), "HTTP Mode")
        for name, ip in SERVERS.items():
            add_server(page, "FePoolExtWebSvcs8080", name, ip, str(backend_port))

        # The blue box offers the reload; pressing it applies without a page load.
        page.click("#reload-haproxy")
        expect(page.locator("#apply-result")).to_contain_text(
            "The new configuration is running", timeout=30_000
        )
        expect(page.locator("#reload-haproxy")).to_have_count(0)

        # Traffic reaches both servers through each VIP, on every port. FrontEndPool keeps
        # each client on one server (source-IP persistence), so clients come from many addresses.
        clients = [f"127.0.0.{n}" for n in range(101, 121)]
        for port in fe_ports:
            seen = {client: fetch(FE_VIP, port, source=client)[0] for client in clients}
            assert set(seen.values()) == {"FE-1", "FE-2"}, seen
            assert all(fetch(FE_VIP, port, source=c)[0] == seen[c] for c in clients[:5])
        web = Counter(fetch(WEB_VIP, web_port)[0] for _ in range(30))
        assert set(web) == {"FE-1", "FE-2"}, web
        _, headers = fetch(WEB_VIP, web_port)
        assert re.match(r"SERVERID=FE-[12]", headers.get("Set-Cookie", "")), headers

        page.click("nav >> text=Layer 7 (haproxy.cfg)")
        expect(page.locator("#running-config")).to_contain_text("listen FePoolExtWebSvcs8080")
    finally:
        for backend in backends:
            backend.__exit__(None, None, None)
