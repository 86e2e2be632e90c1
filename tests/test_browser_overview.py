"""System Overview in the browser: Drain, Halt and Online change the colours live."""

import pytest
from playwright.sync_api import Page, expect

from lbadmin.models import User
from lbadmin.services import l7
from lbadmin.services.config import config_apply_request, config_apply_run
from lbadmin.services.daemons import daemon_controllers
from tests.conftest import free_port
from tests.support import http_backend

pytestmark = [pytest.mark.browser, pytest.mark.daemons, pytest.mark.django_db(transaction=True)]

PASSWORD = "Overview-Drain-2013"
VIP, RIPS = "127.0.13.30", {"FE-1": "127.0.13.31", "FE-2": "127.0.13.32"}


def test_drain_halt_online_from_system_overview(page: Page) -> None:
    user = User.objects.get(username="loadbalancer")
    user.set_password(PASSWORD)
    user.must_change_password = False
    user.save()
    backend_port = free_port(RIPS["FE-1"])
    with (
        http_backend(RIPS["FE-1"], backend_port, "FE-1"),
        http_backend(RIPS["FE-2"], backend_port, "FE-2"),
    ):
        service = l7.virtualservice_create(
            actor=None,
            values={"label": "FrontEndPool", "ip": VIP, "ports": str(free_port(VIP)),
                    "protocol": "tcp", "check_interval_ms": 200},
        )  # fmt: skip
        for label, ip in RIPS.items():
            l7.realserver_create(
                actor=None, service=service, values={"label": label, "ip": ip, "port": backend_port}
            )
        try:
            assert config_apply_run(config_apply_request(actor=None).pk).status == "applied"
            fe1 = service.real_servers.get(label="FE-1")

            page.goto("/lbadmin/login/")
            page.fill("#id_username", "loadbalancer")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("System Overview")

            row = page.locator(f"#rs-{fe1.pk}")
            page.locator(f"#vs-{service.pk} button.toggle").click()
            expect(row).to_be_visible()
            expect(row).to_have_attribute("data-status", "up", timeout=5000)
            expect(page.locator(f"#vs-{service.pk}")).to_have_class("service st-up")

            row.get_by_role("button", name="Drain", exact=True).click()
            expect(row).to_have_attribute("data-status", "draining")
            expect(row.locator(".status-cell")).to_have_css("background-color", "rgb(244, 194, 13)")
            expect(page.locator(f"#vs-{service.pk}")).to_have_class("service st-draining")

            row.get_by_role("button", name="Halt", exact=True).click()
            expect(row).to_have_attribute("data-status", "halted")
            expect(row.locator(".status-cell")).to_have_css("background-color", "rgb(59, 125, 196)")

            row.get_by_role("button", name="Online", exact=True).click()
            expect(row).to_have_attribute("data-status", "up", timeout=5000)
            expect(row.locator(".status-cell")).to_have_css("background-color", "rgb(76, 175, 80)")
            # The table refreshes itself and keeps the service expanded.
            page.wait_for_timeout(3500)
            expect(row).to_be_visible()
        finally:
            daemon_controllers()["haproxy"].stop()
