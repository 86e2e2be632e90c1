"""Local Configuration through its pages, applied by the appliance to a network namespace this
test makes (never the machine's own network): addresses, MTU, default gateway and the guide's
static route, hostile values, the confirmation timer, re-applying after a restart, hostname
and DNS written under a directory of the test's, and the read-only mode."""

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from appliance.celery import app
from lbadmin.models import HostSettings, NetworkAddress, StaticRoute
from lbadmin.services import network, network_revert

pytestmark = pytest.mark.django_db
NETNS = "lbnet-test"
NIC, PEER = "lbt0", "lbt1"  # a veth pair, both ends inside the namespace


def ip_json(*args: str) -> list[dict]:
    out = subprocess.run(
        ["ip", "-n", NETNS, "-j", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    return json.loads(out or "[]")


def addresses(nic: str = NIC) -> set[str]:
    return {
        f"{a['local']}/{a['prefixlen']}"
        for link in ip_json("addr", "show", "dev", nic)
        for a in link["addr_info"]
        if a.get("scope") == "global"
    }


def routes() -> set[tuple[str, str]]:
    return {(r["dst"], r.get("gateway", "")) for r in ip_json("route", "show") if "gateway" in r}


@pytest.fixture
def netns(settings, tmp_path: Path):
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "add", NIC, "type", "veth", "peer", "name", PEER],
            ["link", "set", NIC, "up"],
            ["link", "set", PEER, "up"],
        ):
            subprocess.run(["ip", "-n", NETNS, *argv], check=True)
        # The node's worker applies network changes: here in this process (eager), so it
        # sees this test's settings and database.
        app.conf.task_always_eager = True
        app.conf.task_eager_propagates = True
        settings.LBADMIN_MANAGE_NETWORK = True
        settings.LBADMIN_NETWORK_NETNS = NETNS
        settings.LBADMIN_ETC_DIR = tmp_path / "etc"
        yield
    finally:
        app.conf.task_always_eager = False
        app.conf.task_eager_propagates = False
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


def add_address(client, address: str, nic: str = NIC):
    return client.post(
        "/lbadmin/local/network/", {"form": "address", "interface": nic, "address": address}
    )


def add_route(client, destination: str, gateway: str, interface: str = ""):
    return client.post(
        "/lbadmin/local/routing/",
        {"destination": destination, "gateway": gateway, "interface": interface},
        follow=True,
    )


def test_the_guides_network_is_applied_and_removed(netns, admin) -> None:
    page = admin.get("/lbadmin/local/network/").content.decode()
    assert f'id="interface-{NIC}"' in page and "Read-only" not in page

    assert add_address(admin, "192.168.20.1/24").status_code == 302
    assert add_address(admin, "2001:db8:20::1/64").status_code == 302
    admin.post(
        "/lbadmin/local/network/",
        {"form": "interface", "interface": NIC, "mtu": "1400", "up": "on"},
    )
    add_route(admin, "default", "192.168.20.254")
    add_route(admin, "192.168.100.0/24", "192.168.20.2")  # the guide's Edge route
    assert addresses() == {"192.168.20.1/24", "2001:db8:20::1/64"}
    assert ip_json("link", "show", NIC)[0]["mtu"] == 1400
    assert routes() == {("default", "192.168.20.254"), ("192.168.100.0/24", "192.168.20.2")}
    live = admin.get("/lbadmin/local/routing/").content.decode()
    assert "192.168.100.0/24" in live.split('id="live-routes"')[1].split("</table>")[0]
    network.network_confirm(actor=None, source_ip=None)  # routes wait for confirmation

    for route in StaticRoute.objects.all():
        admin.post(f"/lbadmin/local/routing/{route.pk}/delete/")
    for address in NetworkAddress.objects.all():
        admin.post(f"/lbadmin/local/network/addresses/{address.pk}/delete/")
    assert addresses() == set() and routes() == set()


def test_a_restart_gets_the_configuration_back(netns, admin) -> None:
    add_address(admin, "198.51.100.1/24")
    add_route(admin, "203.0.113.0/24", "198.51.100.2")
    network.network_confirm(actor=None, source_ip=None)
    # A reboot: the kernel forgets everything the appliance set.
    subprocess.run(["ip", "-n", NETNS, "addr", "flush", "dev", NIC], check=True)
    assert addresses() == set() and routes() == set()
    assert network_revert.network_reapply() == ""
    assert addresses() == {"198.51.100.1/24"}
    assert routes() == {("203.0.113.0/24", "198.51.100.2")}


@pytest.mark.parametrize(
    ("post", "field", "message"),
    [
        (
            {"form": "address", "interface": "lbt0; reboot", "address": "192.0.2.1/24"},
            "interface",
            "Select a valid choice. lbt0; reboot is not one of the available choices.",
        ),
        (
            {"form": "address", "interface": "eth9", "address": "192.0.2.1/24"},
            "interface",
            "Select a valid choice. eth9 is not one of the available choices.",
        ),
        (
            {"form": "address", "interface": NIC, "address": "192.0.2.1/24\nreboot"},
            "address",
            "Enter an address with its prefix length",
        ),
        (
            {"form": "address", "interface": NIC, "address": "192.0.2.1"},
            "address",
            "Write it as 192.0.2.1/32 (address/prefix, nothing else).",
        ),
        (
            {"form": "address", "interface": NIC, "address": "$(reboot)/24"},
            "address",
            "Enter an address with its prefix length",
        ),
        (
            {"form": "interface", "interface": NIC, "mtu": "9999999", "up": "on"},
            "mtu",
            "MTU must be a whole number from 68 to 65535.",
        ),
    ],
)
def test_hostile_interface_values_are_refused(netns, admin, post, field, message) -> None:
    response = admin.post("/lbadmin/local/network/", post)
    assert response.status_code == 200
    form = response.context[f"{post['form']}_form"]
    assert message in " ".join(form.errors[field]), dict(form.errors)
    assert f'id="errors-{field}"' in response.content.decode()
    assert addresses() == set() and not NetworkAddress.objects.exists()


def test_invalid_networks_are_refused_and_nothing_is_applied(netns, admin) -> None:
    add_address(admin, "192.0.2.1/24")
    # Overlapping another interface's subnet (the peer end of the veth).
    page = admin.post(
        "/lbadmin/local/network/",
        {"form": "address", "interface": PEER, "address": "192.0.2.9/25"},
        follow=True,
    ).content.decode()
    assert "Nothing was changed" in page
    assert addresses(PEER) == set()
    # A gateway outside every configured subnet; host bits in a destination.
    page = add_route(admin, "default", "203.0.113.1").content.decode()
    assert "Nothing was changed" in page
    page = add_route(admin, "192.168.100.1/24", "192.0.2.2").content.decode()
    assert "no host bits" in page
    assert routes() == set() and not StaticRoute.objects.exists()


def test_the_confirmation_timer_runs_out(netns, admin, settings) -> None:
    settings.LBADMIN_NETWORK_CONFIRM_SECONDS = 1  # a short timer
    add_address(admin, "192.0.2.1/24")
    add_route(admin, "default", "192.0.2.254")
    assert routes() == {("default", "192.0.2.254")}
    assert network_revert.network_watch() == ""  # not yet
    time.sleep(1.2)
    # What the supervisor (serve) runs every half second.
    assert "undone" in network_revert.network_watch()
    assert routes() == set() and not StaticRoute.objects.exists()


def test_an_interface_can_be_brought_down_and_up(netns, admin) -> None:
    def flags() -> list[str]:
        return ip_json("link", "show", NIC)[0]["flags"]

    admin.post("/lbadmin/local/network/", {"form": "interface", "interface": NIC, "mtu": ""})
    assert "UP" not in flags()
    admin.post("/lbadmin/local/network/", {"form": "interface", "interface": NIC, "up": "on"})
    assert "UP" in flags()


def test_an_unconfirmed_change_is_reverted(netns, admin) -> None:
    add_address(admin, "192.0.2.1/24")
    add_route(admin, "default", "192.0.2.254")
    state = HostSettings.load()
    assert state.confirm_until is not None  # a route: it may cut the administrator off
    page = admin.get("/lbadmin/local/routing/").content.decode()
    assert 'id="network-keep"' in page
    assert network_revert.network_revert_if_unconfirmed() is False  # not yet
    HostSettings.objects.update(confirm_until=timezone.now() - timedelta(seconds=1))
    assert network_revert.network_revert_if_unconfirmed() is True
    assert routes() == set() and not StaticRoute.objects.exists()
    assert addresses() == {"192.0.2.1/24"}  # what was confirmed before stays

    add_route(admin, "default", "192.0.2.254")
    assert network.network_confirm(actor=None, source_ip=None)
    assert HostSettings.load().confirm_until is None
    assert network_revert.network_revert_if_unconfirmed() is False  # confirmed: kept
    assert routes() == {("default", "192.0.2.254")}


def test_hostname_and_dns_are_written_under_the_given_directory(netns, admin, settings) -> None:
    response = admin.post(
        "/lbadmin/local/hostname/",
        {
            "hostname": "lbmaster",
            "dns_servers": "192.0.2.53, 2001:db8::53",
            "search": "example.com",
        },
    )
    assert response.status_code == 302
    etc = Path(settings.LBADMIN_ETC_DIR)
    assert (etc / "hostname").read_text() == "lbmaster\n"
    resolv = (etc / "resolv.conf").read_text()
    assert "nameserver 192.0.2.53\nnameserver 2001:db8::53\n" in resolv
    assert "search example.com" in resolv
    for hostname in ("lb;reboot", "-lb", "a" * 64, "lb\nmaster"):
        response = admin.post("/lbadmin/local/hostname/", {"hostname": hostname})
        assert response.status_code == 200, hostname
        assert response.context["form"].errors["hostname"] == [
            f"{hostname!r}: each label must be 1 to 63 letters, digits or hyphens, not starting "
            "or ending with a hyphen"
        ]
        assert 'id="errors-hostname"' in response.content.decode()
    response = admin.post(
        "/lbadmin/local/hostname/", {"hostname": "lb", "dns_servers": "8.8.8.8;x"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["dns_servers"] == [
        "“8.8.8.8;x” is not an IPv4 or IPv6 address."
    ]
    assert 'id="errors-dns_servers"' in response.content.decode()
    assert (etc / "hostname").read_text() == "lbmaster\n"


def test_read_only_where_the_host_is_not_ours(admin, settings) -> None:
    settings.LBADMIN_MANAGE_NETWORK = False
    settings.LBADMIN_NETWORK_NETNS = ""
    for url in ("/lbadmin/local/network/", "/lbadmin/local/routing/", "/lbadmin/local/hostname/"):
        page = admin.get(url).content.decode()
        assert 'id="network-read-only"' in page and "LBADMIN_MANAGE_NETWORK" in page
    page = add_route(admin, "default", "192.0.2.254").content.decode()
    assert "Nothing was changed" in page
    assert not StaticRoute.objects.exists()
