"""Local Configuration in the browser: add an address and the guide's static route on Routing,
and see them in the live tables. The WebUI manages a network namespace this module makes."""

import subprocess
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from lbadmin.models import User
from lbadmin.services.auth import default_user_ensure
from tests.conftest import celery_worker, gunicorn_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
NETNS = "lbnet-browser"
PASSWORD = "Local-Config-2013"
QUEUE = "lbadmin-network-browser-test"


@pytest.fixture(scope="module")
def network_server(server_env, tmp_path_factory) -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        for argv in (
            ["link", "add", "eth1", "type", "veth", "peer", "name", "eth2"],
            ["link", "set", "eth1", "up"],
            ["link", "set", "eth2", "up"],
        ):
            subprocess.run(["ip", "-n", NETNS, *argv], check=True)
        # This WebUI and its own worker (the node's worker applies network changes) manage
        # the namespace, on a queue of their own.
        network_env = {
            "LBADMIN_MANAGE_NETWORK": "1",
            "LBADMIN_NETWORK_NETNS": NETNS,
            "LBADMIN_ETC_DIR": str(tmp_path_factory.mktemp("etc")),
            "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        }
        with (
            celery_worker(server_env, tmp_path_factory, QUEUE, **network_env),
            gunicorn_server(server_env, tmp_path_factory, **network_env) as base_url,
        ):
            yield base_url
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


def test_add_the_guides_static_route_and_see_it_live(browser, network_server) -> None:
    default_user_ensure()
    user = User.objects.get(username="loadbalancer")
    user.set_password(PASSWORD)
    user.must_change_password = False
    user.save()
    context = browser.new_context(base_url=network_server, ignore_https_errors=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/lbadmin/login/")
        page.fill("#id_username", "loadbalancer")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")

        page.click("nav >> text=Network Interface Configuration")
        expect(page.locator("#interface-eth1")).to_be_visible()
        page.select_option("#address-form select[name=interface]", "eth1")
        page.fill("#address-form input[name=address]", "192.168.20.1/24")
        page.click("#add-address")
        expect(page.locator("#interface-eth1")).to_contain_text("192.168.20.1/24")

        page.click("nav >> text=Routing")
        page.fill("#id_destination", "192.168.100.0/24")
        page.fill("#id_gateway", "192.168.20.2")
        page.click("#add-route")
        expect(page.locator("#live-routes")).to_contain_text("192.168.100.0/24")
        expect(page.locator("#live-routes")).to_contain_text("192.168.20.2")
        # A route may cut the administrator off: it waits for confirmation.
        page.click("#network-keep")
        expect(page.locator("#network-confirm")).to_have_count(0)
        shown = subprocess.run(
            ["ip", "-n", NETNS, "route", "show", "192.168.100.0/24"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "via 192.168.20.2 dev eth1" in shown
    finally:
        context.close()
