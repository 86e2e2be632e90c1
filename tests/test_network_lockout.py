"""Local Configuration never locks the administrator out (issue 18): each way a real appliance
could be made unreachable, played through the pages against network namespaces this module
makes. The node's namespace starts as an installer leaves it: an address, an IPv6 address and
a default route (protocol boot) on the management interface, none of them in the database.
The administrator's browser sits in a namespace of its own at 192.0.2.50, behind that
interface. The node's worker runs in this process (eager) except where the item is about
the worker; never the machine's own network."""

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from appliance.celery import app
from lbadmin.models import HostSettings, NetworkAddress, NetworkInterface, StaticRoute
from lbadmin.services import network, network_revert
from lbadmin.services.network_edit import NetworkEdit
from lbadmin.services.network_state import NetworkRefused

pytestmark = pytest.mark.django_db
NODE, CLIENT = "lblo-node", "lblo-client"
MGMT, SECOND = "lbm0", "lbs0"  # the management interface; a second one (veth to lbs1)
CLIENT_IP = "192.0.2.50"
BROWSER = {"REMOTE_ADDR": CLIENT_IP, "HTTP_HOST": "lb.example.com:9443"}


def ip(*args: str, ns: str = NODE) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def ip_json(*args: str) -> list[dict]:
    return json.loads(ip("-j", *args) or "[]")


def addresses(nic: str) -> list[str]:
    """Global addresses of ``nic`` in ip's order (IPv4 primary first)."""
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in ip_json("addr", "show", "dev", nic)
        for a in link["addr_info"]
        if a.get("scope") == "global"
    ]


def link(nic: str) -> tuple[bool, int]:
    entry = ip_json("link", "show", "dev", nic)[0]
    return "UP" in entry["flags"], entry["mtu"]


def routes() -> set[tuple[str, str, str, int]]:
    """(destination, gateway, protocol, metric) of every route with a gateway."""
    return {
        (r["dst"], r["gateway"], r.get("protocol", "boot"), r.get("metric", 0))
        for r in ip_json("route", "show")
        if "gateway" in r
    }


INSTALLER_ROUTE = ("default", "192.0.2.1", "boot", 0)


@pytest.fixture
def node(settings, tmp_path) -> Iterator[None]:
    for ns in (NODE, CLIENT):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "add", MGMT, "type", "veth", "peer", "name", "lbc0", "netns", CLIENT],
            ["link", "add", SECOND, "type", "veth", "peer", "name", "lbs1"],
            ["link", "set", MGMT, "up"],
            ["link", "set", SECOND, "up"],
            ["link", "set", "lbs1", "up"],
            # What the installer (the console wizard) left: not the appliance's record.
            ["addr", "add", "192.0.2.10/24", "dev", MGMT],
            ["addr", "add", "2001:db8:5::10/64", "dev", MGMT, "nodad"],
            ["route", "add", "default", "via", "192.0.2.1"],
        ):
            ip(*argv)
        for argv in (
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{CLIENT_IP}/24", "dev", "lbc0"],
            ["link", "set", "lbc0", "up"],
        ):
            ip(*argv, ns=CLIENT)
        app.conf.task_always_eager = True
        app.conf.task_eager_propagates = True
        settings.LBADMIN_MANAGE_NETWORK = True
        settings.LBADMIN_NETWORK_NETNS = NODE
        settings.LBADMIN_ETC_DIR = tmp_path / "etc"
        yield
    finally:
        app.conf.task_always_eager = False
        app.conf.task_eager_propagates = False
        for ns in (NODE, CLIENT):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def set_interface(client, nic: str, *, up: bool = True, mtu: str = "", **extra: str):
    data = {"form": "interface", "interface": nic, "mtu": mtu, **({"up": "on"} if up else {})}
    return client.post("/lbadmin/local/network/", data, **{**BROWSER, **extra})


def add_address(client, address: str, nic: str = SECOND, **extra: str):
    data = {"form": "address", "interface": nic, "address": address}
    return client.post("/lbadmin/local/network/", data, **{**BROWSER, **extra})


def add_route(client, destination: str, gateway: str, metric: str = ""):
    data = {"destination": destination, "gateway": gateway, "interface": "", "metric": metric}
    return client.post("/lbadmin/local/routing/", data, **BROWSER)


def time_is_up() -> str:
    """The deadline passes; the supervisor's timer runs (what serve does every half second)."""
    pending = HostSettings.objects.filter(confirm_until__isnull=False)
    assert pending.update(confirm_until=timezone.now() - timedelta(seconds=1)) == 1
    return network_revert.network_watch()


def confirm() -> None:
    assert network.network_confirm(actor=None, source_ip=None)


# --- Lock-outs ----------------------------------------------------------------------------------


def test_the_management_interface_before_it_is_configured(node, admin) -> None:
    """Item 1 and 2: bringing down the interface the browser uses, reached by host name and
    not yet in the database, asks for confirmation; the revert brings back its link, MTU, the
    installer's IPv6 address and default route, which the kernel flushed."""
    response = set_interface(admin, MGMT, up=False, mtu="1400")
    assert response.status_code == 302
    assert HostSettings.load().confirm_until is not None
    assert link(MGMT) == (False, 1400)
    assert INSTALLER_ROUTE not in routes()  # the kernel took it with the link
    page = admin.get("/lbadmin/local/network/").content.decode()
    assert 'id="network-keep"' in page

    assert "undone" in time_is_up()
    assert link(MGMT) == (True, 1500)
    assert addresses(MGMT) == ["192.0.2.10/24", "2001:db8:5::10/64"]
    assert INSTALLER_ROUTE in routes()
    assert not NetworkInterface.objects.exists()  # the confirmed configuration: nothing
    assert HostSettings.load().network_problem == ""


def test_an_mtu_change_alone_is_reverted(node, admin) -> None:
    """Item 1: "no MTU" in the stored configuration used to mean "leave alone" on revert."""
    set_interface(admin, MGMT, mtu="1400")
    assert link(MGMT) == (True, 1400) and HostSettings.load().confirm_until is not None
    time_is_up()
    assert link(MGMT) == (True, 1500)


def test_behind_nat_the_reply_route_decides(node, admin) -> None:
    """Item 2: the Host is an address that is not the node's (a NAT in front): the interface
    the reply to the client leaves by still asks for confirmation; another one does not."""
    set_interface(admin, MGMT, mtu="1450", HTTP_HOST="203.0.113.7")
    assert HostSettings.load().confirm_until is not None
    confirm()
    set_interface(admin, SECOND, mtu="1450", HTTP_HOST="203.0.113.7")
    assert HostSettings.load().confirm_until is None  # not the browser's path: applied at once
    assert link(SECOND) == (True, 1450)


def test_the_node_start_restores_the_confirmed_configuration(node, admin) -> None:
    """Item 3: a restart inside the window undoes the unconfirmed change instead of applying
    it again."""
    add_address(admin, "203.0.113.1/24")
    add_route(admin, "198.51.100.0/24", "203.0.113.254")
    assert ("198.51.100.0/24", "203.0.113.254", "static", 0) in routes()
    assert network_revert.network_reapply() == ""
    assert ("198.51.100.0/24", "203.0.113.254", "static", 0) not in routes()
    assert not StaticRoute.objects.exists()
    assert addresses(SECOND) == ["203.0.113.1/24"]  # confirmed (applied at once) before
    assert HostSettings.load().confirm_until is None


def test_a_missing_interface_at_boot_leaves_the_others_configured(node, admin) -> None:
    """Item 4: the missing one is reported (Local Configuration, System Overview, health); the
    others are configured."""
    set_interface(admin, MGMT, mtu="1400")
    confirm()
    add_address(admin, "203.0.113.1/24")
    ip("link", "del", SECOND)  # gone at the next boot
    ip("link", "set", MGMT, "mtu", "1500")  # what a reboot forgets
    assert "lbs0 is missing" in network_revert.network_reapply()
    assert link(MGMT) == (True, 1400)
    for url in ("/lbadmin/", "/lbadmin/local/network/"):
        page = admin.get(url, follow=True).content.decode()
        assert 'id="network-problem"' in page and "lbs0 is missing" in page
    health = admin.get("/lbadmin/health/").json()
    assert health["status"] == "degraded" and "lbs0" in health["network"]["problem"]
    # The administrator can still change what is there.
    assert add_address(admin, "192.0.2.11/24", nic=MGMT).status_code == 302


def test_a_route_over_a_subnet_the_appliance_does_not_own_is_refused(node, admin) -> None:
    """Item 5: the connected subnet of the installer's address, and the installer's default
    route at the same metric, are refused at the field; another metric sits beside it."""
    page = add_route(admin, "192.0.2.0/24", "192.0.2.1").content.decode()
    assert "connected subnet" in page and 'id="errors-destination"' in page
    assert any(r["dst"] == "192.0.2.0/24" and r["protocol"] == "kernel" for r in ip_json("route"))
    page = add_route(admin, "default", "192.0.2.254").content.decode()
    assert "another metric" in page and not StaticRoute.objects.exists()
    assert routes() == {INSTALLER_ROUTE}
    assert add_route(admin, "default", "192.0.2.254", metric="100").status_code == 302
    assert routes() == {INSTALLER_ROUTE, ("default", "192.0.2.254", "static", 100)}
    time_is_up()  # reverted: the installer's route is untouched
    assert routes() == {INSTALLER_ROUTE}


def test_an_address_live_elsewhere_is_refused(node, admin) -> None:
    """Item 6: a VIP keepalived holds and the administrator's own address are not moved; a
    virtual service's address is refused even where it is not held; an overlap on the same
    interface is refused too."""
    from lbadmin.models import VirtualService

    ip("addr", "add", "203.0.113.99/32", "dev", MGMT)  # a floating address held here
    for address, words in (
        ("203.0.113.99/24", "already live on lbm0"),
        ("192.0.2.10/24", "already live on lbm0"),
    ):
        page = add_address(admin, address).content.decode()
        assert words in page and 'id="errors-address"' in page, address
    page = add_address(admin, "192.0.2.20/25", nic=MGMT).content.decode()
    assert "overlaps 192.0.2.10/24" in page
    VirtualService.objects.create(label="FrontEndPool", ip="198.51.100.30", ports="443")
    page = add_address(admin, "198.51.100.30/24").content.decode()
    assert "floating address" in page
    assert addresses(MGMT) == ["192.0.2.10/24", "203.0.113.99/32", "2001:db8:5::10/64"]
    assert addresses(SECOND) == [] and not NetworkAddress.objects.exists()


def test_foreign_ipv6_addresses_block_a_small_mtu(node, admin) -> None:
    """Below 1280 the kernel strips every IPv6 address: refused while one is not ours."""
    page = set_interface(admin, MGMT, mtu="1200").content.decode()
    assert "2001:db8:5::10/64" in page and 'id="errors-mtu"' in page
    assert link(MGMT) == (True, 1500) and addresses(MGMT)[-1] == "2001:db8:5::10/64"


def test_a_revert_with_an_interface_gone_restores_the_rest_and_says_so(node, admin) -> None:
    """Item 7: the interface vanished inside the window; the route is restored and the
    missing interface reported in red, not claimed done."""
    add_address(admin, "203.0.113.1/24")
    add_route(admin, "198.51.100.0/24", "192.0.2.1")
    confirm()
    admin.post(f"/lbadmin/local/routing/{StaticRoute.objects.get().pk}/delete/", **BROWSER)
    assert HostSettings.load().confirm_until is not None
    ip("link", "del", SECOND)
    time_is_up()
    assert ("198.51.100.0/24", "192.0.2.1", "static", 0) in routes()
    state = HostSettings.load()
    assert "not all of it" in state.network_problem and "lbs0 is missing" in state.network_problem
    assert StaticRoute.objects.filter(destination="198.51.100.0/24").exists()
    page = admin.get("/lbadmin/local/routing/").content.decode()
    assert 'id="network-problem"' in page


def test_a_revert_that_fails_is_reported_as_failed(node, admin) -> None:
    """Item 7: a macvlan cannot be given back an MTU above its parent's: the revert fails for
    real, is reported with what is still different, and the stored configuration stays what
    is live."""
    ip("link", "add", "lbv0", "link", "lbs1", "type", "macvlan")
    add_route(admin, "198.51.100.0/24", "192.0.2.1")  # opens the window
    set_interface(admin, "lbv0", mtu="1400")  # joins it
    ip("link", "set", "lbs1", "mtu", "1400")  # the parent shrinks inside the window
    time_is_up()
    state = HostSettings.load()
    assert "could not be undone" in state.network_problem
    assert "set lbv0 MTU 1500" in state.network_problem
    assert state.confirm_until is None
    assert ("198.51.100.0/24", "192.0.2.1", "static", 0) in routes()  # still live …
    assert StaticRoute.objects.filter(destination="198.51.100.0/24").exists()  # … and stored
    page = admin.get("/lbadmin/local/network/").content.decode()
    assert 'id="network-problem"' in page and "could not be undone" in page


def test_a_second_change_keeps_the_first_revert_point(node, admin) -> None:
    """A second change inside the window does not move the point to go back to."""
    add_route(admin, "198.51.100.0/24", "192.0.2.1")
    add_route(admin, "203.0.113.0/24", "192.0.2.1")
    time_is_up()
    assert routes() == {INSTALLER_ROUTE} and not StaticRoute.objects.exists()


def test_the_primary_address_survives_a_reboot(node, admin) -> None:
    """Addresses come back in the order added, not as strings ("…10" sorts before "…9")."""
    add_address(admin, "203.0.113.9/24")
    add_address(admin, "203.0.113.10/24")
    ip("addr", "flush", "dev", SECOND)
    network_revert.network_reapply()
    assert addresses(SECOND) == ["203.0.113.9/24", "203.0.113.10/24"]


# --- Lost updates -------------------------------------------------------------------------------


class _Routed:
    """network_apply_task sent to this module's worker queue (the routing alone)."""

    def __init__(self, task, queue: str) -> None:
        self.task, self.queue = task, queue

    def apply_async(self, **options):
        return self.task.apply_async(queue=self.queue, **options)


@pytest.fixture
def worker(node, server_env, tmp_path_factory, monkeypatch) -> Iterator[subprocess.Popen]:
    """A real Celery worker making this module's network changes, on a queue of its own."""
    from lbadmin import tasks
    from tests.conftest import celery_worker

    queue = "lbadmin-network-lockout"
    app.conf.task_always_eager = False
    monkeypatch.setattr(tasks, "network_apply_task", _Routed(tasks.network_apply_task, queue))
    env = {"LBADMIN_MANAGE_NETWORK": "1", "LBADMIN_NETWORK_NETNS": NODE}
    with celery_worker(server_env, tmp_path_factory, queue, **env) as process:
        yield process


def _in_thread(function, results: list, index: int) -> None:
    try:
        results[index] = function()
    except NetworkRefused as refused:
        results[index] = refused
    finally:
        connection.close()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_two_sessions_never_both_told_applied(worker, admin_user) -> None:
    """Item 8: two changes valid alone but overlapping together, submitted at once: one is
    applied and stored, the other refused at its field; what is stored is what is live."""
    edits = [
        NetworkEdit("address-add", interface=SECOND, address="203.0.113.1/24"),
        NetworkEdit("address-add", interface=MGMT, address="203.0.113.2/25"),
    ]
    results: list[object] = [None, None]
    threads = [
        threading.Thread(
            target=_in_thread,
            args=(
                lambda edit=edit: network.network_change(
                    actor=None,
                    edit=edit,
                    client_address=None,
                    host_address=None,
                    source_ip=None,
                ),
                results,
                index,
            ),
        )
        for index, edit in enumerate(edits)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    refused = [r for r in results if isinstance(r, NetworkRefused)]
    applied = [r for r in results if isinstance(r, bool)]
    assert len(refused) == 1 and len(applied) == 1, results
    assert refused[0].fields == ["address"] and "overlaps" in refused[0].problems[0]
    stored = sorted(NetworkAddress.objects.values_list("address", flat=True))
    live = sorted(a for nic in (MGMT, SECOND) for a in addresses(nic) if "203.0.113" in a)
    assert stored == live and len(stored) == 1


@contextmanager
def _records_held() -> Iterator[None]:
    """Writes to the stored addresses wait (a table lock in another session) until the end of
    the block: the worker has applied the change and waits to record it."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE lbadmin_networkaddress IN SHARE MODE")
                held.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        thread.join(30)


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["before it starts", "after it applied"])
def test_a_worker_too_slow_leaves_stored_and_live_the_same(
    worker, admin_user, monkeypatch, where: str
) -> None:
    """Item 8: the page gives up while the worker is still at it — waiting for the network
    lock this test holds, or waiting to record a change it has applied. Whatever the worker
    then does, what is stored is what is live (the database used to go back while the new
    settings went live)."""
    from lbadmin.services.locks import node_lock

    monkeypatch.setattr(network, "APPLY_WAIT_S", 2)
    edit = NetworkEdit("address-add", interface=SECOND, address="203.0.113.1/24")
    blocker = node_lock("network", timeout=5) if where == "before it starts" else _records_held()
    with blocker, pytest.raises(NetworkRefused, match="did not answer"):
        network.network_change(
            actor=None, edit=edit, client_address=None, host_address=None, source_ip=None
        )

    def stored() -> list[str]:
        return list(NetworkAddress.objects.values_list("address", flat=True))

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (addresses(SECOND) and stored()):
        time.sleep(0.2)  # the worker went on
    assert stored() == addresses(SECOND) == ["203.0.113.1/24"]
