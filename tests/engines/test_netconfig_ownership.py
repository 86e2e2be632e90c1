"""lbadmin.engines.netconfig: ownership by record, and what the kernel takes on the way.

The appliance owns the (interface, IP) pairs and the static routes to destinations named in
``desired`` or ``previous``; what else is live (a hand-made route, a keepalived VIP, a
labelled secondary) is never taken, and is put back when the kernel removes it as a side
effect of a managed change. Everything runs in the network namespaces of
``tests/engines/test_netconfig.py``'s ``ns`` fixture (removed afterwards, pass or fail), with
documentation-range addresses only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable

import pytest

from lbadmin.engines import netinfo
from lbadmin.engines.netconfig import (
    InterfaceConfig,
    LiveSnapshot,
    NetworkConfig,
    RouteConfig,
    apply_network,
    snapshot_live,
    validate_against_live,
)
from tests.engines import test_netconfig
from tests.engines.test_netconfig import (
    ip,
    ip_json,
    live_addresses,
    live_links,
    needs_netns,
    ok,
    one_interface,
    snapshot,
)

# The fixture: namespaces NS (eth1, eth2) and NSP (their peers), removed afterwards pass or fail.
ns = test_netconfig.ns

PUT_BACK = "(the kernel removed it with a managed change)"

# eth1 192.0.2.1/24 and eth2 198.51.100.1/24, both up: what the appliance applied.
BASE = NetworkConfig(
    interfaces=(
        InterfaceConfig("eth1", addresses=("192.0.2.1/24",)),
        InterfaceConfig("eth2", addresses=("198.51.100.1/24",)),
    )
)


# ---------------------------------------------------------------------------------------------
# Helpers


def ipv4_labels(netns: str, dev: str) -> list[tuple[str, str | None, bool]]:
    """(address/prefix, label, secondary) of ``dev``'s IPv4 addresses, in ip's order."""
    return [
        (f"{a['local']}/{a['prefixlen']}", a.get("label"), a.get("secondary", False))
        for a in ip_json("-n", netns, "-4", "addr", "show", "dev", dev)[0]["addr_info"]
    ]


def route_details(netns: str) -> set[tuple[str, str | None, str | None, str, int]]:
    """(destination, gateway, device, protocol, metric) of every non-kernel main route."""
    return {
        (r["dst"], r.get("gateway"), r.get("dev"), r.get("protocol", "boot"), r.get("metric", 0))
        for family in ("-4", "-6")
        for r in ip_json("-n", netns, family, "route", "show", "table", "main")
        if r.get("protocol") != "kernel"
    }


def sources(netns: str) -> dict[str, str | None]:
    """The ``src`` of each non-kernel IPv4 main route, by destination."""
    return {
        r["dst"]: r.get("prefsrc")
        for r in ip_json("-n", netns, "-4", "route", "show", "table", "main")
        if r.get("protocol") != "kernel"
    }


def with_eth1(*addresses: str) -> NetworkConfig:
    """BASE with eth1's addresses replaced."""
    return NetworkConfig((InterfaceConfig("eth1", addresses=addresses), BASE.interfaces[1]))


def with_eth2_mtu(mtu: int) -> NetworkConfig:
    """BASE with eth2's MTU set."""
    eth2 = InterfaceConfig("eth2", mtu=mtu, addresses=BASE.interfaces[1].addresses)
    return NetworkConfig(interfaces=(BASE.interfaces[0], eth2))


def with_route(route: RouteConfig) -> NetworkConfig:
    """BASE with this one route."""
    return NetworkConfig(interfaces=BASE.interfaces, routes=(route,))


def stored(snap: LiveSnapshot) -> LiveSnapshot:
    """The snapshot as production keeps it: through JSON text and back."""
    return LiveSnapshot.from_json(json.loads(json.dumps(snap.to_json())))


# ---------------------------------------------------------------------------------------------
# Putting back what the kernel removed


@needs_netns
def test_a_labelled_secondary_comes_back_with_its_label(ns: str) -> None:
    """Replacing the owned primary deletes its secondaries: the foreign one comes back with its
    label eth1:vip (still a secondary); a dynamic (DHCP) one is its client's and is not."""
    first = one_interface("192.0.2.1/24")
    ok(apply_network(first, previous=None, netns=ns))
    ip("-n", ns, "addr", "add", "192.0.2.50/24", "label", "eth1:vip", "dev", "eth1")
    dhcp = ("192.0.2.60/24", "dev", "eth1", "valid_lft", "300", "preferred_lft", "300")
    ip("-n", ns, "addr", "add", *dhcp)
    second = one_interface("192.0.2.3/24")
    assert validate_against_live(second, previous=first, netns=ns) == []
    result = ok(apply_network(second, previous=first, netns=ns))
    assert result.changes == [
        "remove 192.0.2.1/24 from eth1",
        "add 192.0.2.3/24 to eth1",
        f"put back 192.0.2.50/24 on eth1 {PUT_BACK}",
    ]
    assert ipv4_labels(ns, "eth1") == [
        ("192.0.2.3/24", "eth1", False),
        ("192.0.2.50/24", "eth1:vip", True),
    ]
    eth1 = ip_json("-n", ns, "-4", "addr", "show", "dev", "eth1")[0]["addr_info"]
    assert [a.get("broadcast") for a in eth1] == ["192.0.2.255", "192.0.2.255"]
    assert ok(apply_network(second, previous=second, netns=ns)).changes == []


def foreign_ipv6_and_routes(netns: str) -> NetworkConfig:
    """eth1 up with the owned 192.0.2.1/24; by hand: 2001:db8:5::1/64 on eth1, and routes
    through eth1 (IPv4 metric 7 src 192.0.2.1, IPv6 metric 300; protocol boot). Returns the
    applied config."""
    config = one_interface("192.0.2.1/24")
    ok(apply_network(config, previous=None, netns=netns))
    ip("-n", netns, "addr", "add", "2001:db8:5::1/64", "dev", "eth1")
    ip("-n", netns, "route", "add", "198.51.100.0/24", "via", "192.0.2.254", "metric", "7",
       "src", "192.0.2.1")  # fmt: skip
    ip("-n", netns, "-6", "route", "add", "2001:db8:77::/48", "via", "2001:db8:5::fe",
       "metric", "300")  # fmt: skip
    return config


FOREIGN_ROUTES = {
    ("198.51.100.0/24", "192.0.2.254", "eth1", "boot", 7),
    ("2001:db8:77::/48", "2001:db8:5::fe", "eth1", "boot", 300),
}
FOREIGN_ROUTES_BACK = [
    f"put back route 198.51.100.0/24 via 192.0.2.254 dev eth1 metric 7 {PUT_BACK}",
    f"put back route 2001:db8:77::/48 via 2001:db8:5::fe dev eth1 metric 300 {PUT_BACK}",
]


@needs_netns
def test_link_down_keeps_foreign_ipv6_and_the_revert_brings_routes_back(ns: str) -> None:
    """Going down flushes eth1's IPv6 address and its routes: the foreign address is put back on
    the down link; the revert with the baseline taken before brings the link up and the
    hand-made routes back, with their protocol and metric."""
    config = foreign_ipv6_and_routes(ns)
    assert route_details(ns) == FOREIGN_ROUTES
    baseline = stored(snapshot_live(ns))
    down = one_interface("192.0.2.1/24", up=False)
    result = ok(apply_network(down, previous=config, netns=ns))
    assert result.changes == ["bring eth1 down", f"put back 2001:db8:5::1/64 on eth1 {PUT_BACK}"]
    assert live_links(ns)["eth1"] == (False, 1500)
    assert live_addresses(ns)["eth1"] == {"192.0.2.1/24", "2001:db8:5::1/64"}
    assert route_details(ns) == set()  # a down link carries no route

    revert = ok(apply_network(config, previous=down, netns=ns, baseline=baseline))
    assert revert.changes == ["bring eth1 up", *FOREIGN_ROUTES_BACK]
    assert live_links(ns)["eth1"] == (True, 1500)
    assert live_addresses(ns)["eth1"] == {"192.0.2.1/24", "2001:db8:5::1/64"}
    assert route_details(ns) == FOREIGN_ROUTES
    assert sources(ns) == {"198.51.100.0/24": "192.0.2.1"}
    assert ok(apply_network(config, previous=config, netns=ns, baseline=baseline)).changes == []


@needs_netns
def test_a_failure_after_link_down_rolls_back_link_address_and_routes(ns: str) -> None:
    """A late step fails after eth1 went down: the rollback brings eth1 up, undoes eth2, and the
    foreign IPv6 address and hand-made routes are all there again, as before."""
    config = foreign_ipv6_and_routes(ns)
    before = snapshot(ns)
    desired = NetworkConfig(
        interfaces=(
            InterfaceConfig("eth1", up=False, addresses=("192.0.2.1/24",)),
            InterfaceConfig("eth2", addresses=("203.0.113.1/24",)),
        ),
        routes=(RouteConfig("198.51.100.128/25", "203.0.113.254"),),
    )

    def boom(description: str) -> None:
        if description.startswith("set route 198.51.100.128/25"):
            raise netinfo.NetinfoError("the operator pulled the plug")

    result = apply_network(desired, previous=config, netns=ns, on_step=boom)
    assert not result.ok and result.rolled_back
    assert result.error == (
        "set route 198.51.100.128/25 via 203.0.113.254: the operator pulled the plug; rolled back"
    )
    assert result.changes == [
        "bring eth1 down",
        "bring eth2 up",
        "add 203.0.113.1/24 to eth2",
        f"put back 2001:db8:5::1/64 on eth1 {PUT_BACK}",
    ]
    assert result.rollback == [
        "bring eth1 up",
        "bring eth2 down",
        "remove 203.0.113.1/24 from eth2",
        *FOREIGN_ROUTES_BACK,
    ]
    assert snapshot(ns) == before
    assert route_details(ns) == FOREIGN_ROUTES
    assert sources(ns) == {"198.51.100.0/24": "192.0.2.1"}


@needs_netns
def test_the_rollback_puts_back_from_the_baseline(ns: str) -> None:
    """A change given a baseline fails: its rollback restores the owned primary and puts back
    the labelled secondary the baseline has (and the live state at the start had not)."""
    first = one_interface("192.0.2.1/24")
    ok(apply_network(first, previous=None, netns=ns))
    ip("-n", ns, "addr", "add", "192.0.2.50/24", "label", "eth1:vip", "dev", "eth1")
    baseline = stored(snapshot_live(ns))
    ip("-n", ns, "addr", "del", "192.0.2.50/24", "dev", "eth1")  # lost by an earlier change

    def boom(description: str) -> None:
        if description == "add 192.0.2.3/24 to eth1":
            raise netinfo.NetinfoError("the operator pulled the plug")

    second = one_interface("192.0.2.3/24")
    result = apply_network(second, previous=first, netns=ns, baseline=baseline, on_step=boom)
    assert not result.ok and result.rolled_back
    assert result.changes == ["remove 192.0.2.1/24 from eth1"]
    assert result.rollback == [
        "add 192.0.2.1/24 to eth1",
        f"put back 192.0.2.50/24 on eth1 {PUT_BACK}",
    ]
    assert ipv4_labels(ns, "eth1") == [
        ("192.0.2.1/24", "eth1", False),
        ("192.0.2.50/24", "eth1:vip", True),
    ]


@needs_netns
@pytest.mark.parametrize("floating", [False, True])
def test_keep_out_addresses_are_not_put_back(ns: str, floating: bool) -> None:
    """A VIP keepalived held in the baseline (a /32, released since) and a /24 VIP the kernel
    took with the replaced primary come back from the baseline, unless listed in keep_out."""
    first = one_interface("192.0.2.1/24")
    ok(apply_network(first, previous=None, netns=ns))
    ip("-n", ns, "addr", "add", "192.0.2.200/32", "dev", "eth1")
    ip("-n", ns, "addr", "add", "192.0.2.100/24", "dev", "eth1")
    baseline = snapshot_live(ns)
    ip("-n", ns, "addr", "del", "192.0.2.200/32", "dev", "eth1")  # keepalived left MASTER
    keep_out = ("192.0.2.100", "192.0.2.200") if floating else ()
    second = one_interface("192.0.2.3/24")
    result = ok(
        apply_network(second, previous=first, netns=ns, baseline=baseline, keep_out=keep_out)
    )
    replaced = ["remove 192.0.2.1/24 from eth1", "add 192.0.2.3/24 to eth1"]
    if floating:
        assert result.changes == replaced
        assert live_addresses(ns)["eth1"] == {"192.0.2.3/24"}
    else:
        assert result.changes == [
            *replaced,
            f"put back 192.0.2.200/32 on eth1 {PUT_BACK}",
            f"put back 192.0.2.100/24 on eth1 {PUT_BACK}",
        ]
        assert live_addresses(ns)["eth1"] == {"192.0.2.3/24", "192.0.2.100/24", "192.0.2.200/32"}


# ---------------------------------------------------------------------------------------------
# Refusing to take what the appliance did not make

CONFLICTS = [
    (  # an IP live on another interface
        ("addr", "add", "203.0.113.5/24", "dev", "eth2"),
        with_eth1("192.0.2.1/24", "203.0.113.5/24"),
        "interfaces[0].addresses[1]: 203.0.113.5 is already live on eth2 as 203.0.113.5/24",
    ),
    (  # a VIP (/32) live on another interface
        ("addr", "add", "192.0.2.100/32", "dev", "eth2"),
        with_eth1("192.0.2.1/24", "192.0.2.100/24"),
        "interfaces[0].addresses[1]: 192.0.2.100 is already live on eth2 as 192.0.2.100/32",
    ),
    (  # the same IP with another prefix on the same interface
        ("addr", "add", "203.0.113.9/25", "dev", "eth1"),
        with_eth1("192.0.2.1/24", "203.0.113.9/24"),
        "interfaces[0].addresses[1]: 203.0.113.9 is already live on eth1 as 203.0.113.9/25",
    ),
    (  # a subnet overlapping a foreign /24 on another interface
        ("addr", "add", "203.0.113.5/24", "dev", "eth2"),
        with_eth1("192.0.2.1/24", "203.0.113.6/24"),
        "interfaces[0].addresses[1]: 203.0.113.6/24 overlaps 203.0.113.5/24, live on eth2 and "
        "not configured here",
    ),
    (  # a subnet overlapping a foreign one of another prefix on the same interface
        ("addr", "add", "203.0.113.5/24", "dev", "eth1"),
        with_eth1("192.0.2.1/24", "203.0.113.129/25"),
        "interfaces[0].addresses[1]: 203.0.113.129/25 overlaps 203.0.113.5/24, live on eth1",
    ),
    (  # a route over a connected subnet
        ("addr", "add", "203.0.113.5/24", "dev", "eth2"),
        with_route(RouteConfig("203.0.113.0/24", "192.0.2.254")),
        "routes[0].destination: 203.0.113.0/24 is the connected subnet of eth2",
    ),
    (  # a route in place of a hand-made one (same destination and metric)
        ("route", "add", "203.0.113.128/25", "via", "192.0.2.254"),
        with_route(RouteConfig("203.0.113.128/25", "192.0.2.253")),
        "routes[0].destination: a route 203.0.113.128/25 via 192.0.2.254 dev eth1 (protocol boot) "
        "exists that was not configured here and would be replaced",
    ),
    (  # an MTU that would strip a foreign IPv6 address
        ("addr", "add", "2001:db8:9::1/64", "dev", "eth2"),
        with_eth2_mtu(1200),
        "interfaces[1].mtu: below 1280 the kernel removes every IPv6 address of eth2, and "
        "2001:db8:9::1/64 was not configured here",
    ),
]


@needs_netns
@pytest.mark.parametrize(
    ("foreign", "desired", "message"),
    CONFLICTS,
    ids=["ip-elsewhere", "vip-elsewhere", "ip-other-prefix", "overlap-elsewhere",
         "overlap-same-link", "connected-subnet", "hand-made-route", "mtu-strips-ipv6"],
)  # fmt: skip
def test_what_someone_else_made_is_refused_and_nothing_applied(
    ns: str, foreign: tuple[str, ...], desired: NetworkConfig, message: str
) -> None:
    """validate_against_live names the field and the foreign item; apply_network refuses with
    the same words and the live state is exactly as it was."""
    ok(apply_network(BASE, previous=None, netns=ns))
    ip("-n", ns, *foreign)
    before = snapshot(ns), route_details(ns)
    problems = validate_against_live(desired, previous=BASE, netns=ns)
    assert len(problems) == 1 and problems[0].startswith(message), problems
    result = apply_network(desired, previous=BASE, netns=ns)
    assert not result.ok and result.error == "refused, nothing applied: " + problems[0]
    assert result.changes == [] and result.rollback == []
    assert (snapshot(ns), route_details(ns)) == before


@needs_netns
def test_a_foreign_host_address_and_a_low_mtu_without_foreign_ipv6_are_accepted(ns: str) -> None:
    """A /32 (a VIP) is no subnet: a /24 holding it may go on another interface; MTU 1200 is
    refused only for someone else's IPv6 address (see CONFLICTS), and eth2 has none."""
    ok(apply_network(BASE, previous=None, netns=ns))
    ip("-n", ns, "addr", "add", "203.0.113.7/32", "dev", "eth2")
    eth1 = InterfaceConfig("eth1", addresses=("192.0.2.1/24", "203.0.113.8/24"))
    desired = NetworkConfig((eth1, with_eth2_mtu(1200).interfaces[1]))
    assert validate_against_live(desired, previous=BASE, netns=ns) == []
    assert ok(apply_network(desired, previous=BASE, netns=ns)).changes == [
        "set eth2 MTU 1200 (was 1500)",
        "add 203.0.113.8/24 to eth1",
    ]
    assert live_addresses(ns) == {
        "eth1": {"192.0.2.1/24", "203.0.113.8/24"},
        "eth2": {"198.51.100.1/24", "203.0.113.7/32"},
    }
    assert live_links(ns) == {"eth1": (True, 1500), "eth2": (True, 1200)}


@needs_netns
def test_a_route_beside_a_hand_made_one_and_adoption(ns: str) -> None:
    """Another metric than a hand-made route's is accepted and both routes live; the very same
    route (gateway and device) is adopted: set again as the appliance's own."""
    ok(apply_network(BASE, previous=None, netns=ns))
    ip("-n", ns, "route", "add", "203.0.113.128/25", "via", "192.0.2.254")
    beside = with_route(RouteConfig("203.0.113.128/25", "192.0.2.253", metric=5))
    assert validate_against_live(beside, previous=BASE, netns=ns) == []
    assert ok(apply_network(beside, previous=BASE, netns=ns)).changes == [
        "set route 203.0.113.128/25 via 192.0.2.253 metric 5"
    ]
    assert route_details(ns) == {
        ("203.0.113.128/25", "192.0.2.254", "eth1", "boot", 0),
        ("203.0.113.128/25", "192.0.2.253", "eth1", "static", 5),
    }
    ok(apply_network(BASE, previous=beside, netns=ns))  # ours goes, theirs stays
    assert route_details(ns) == {("203.0.113.128/25", "192.0.2.254", "eth1", "boot", 0)}

    same = with_route(RouteConfig("203.0.113.128/25", "192.0.2.254", "eth1"))
    assert validate_against_live(same, previous=BASE, netns=ns) == []
    assert ok(apply_network(same, previous=BASE, netns=ns)).changes == [
        "set route 203.0.113.128/25 via 192.0.2.254 dev eth1"
    ]
    assert route_details(ns) == {("203.0.113.128/25", "192.0.2.254", "eth1", "static", 0)}


# ---------------------------------------------------------------------------------------------
# Ownership by record


@needs_netns
def test_an_address_on_record_moves_between_interfaces(ns: str) -> None:
    """The same IP on another interface is no conflict when previous put it there: it moves."""
    previous = NetworkConfig(
        (BASE.interfaces[0], InterfaceConfig("eth2", addresses=("198.51.100.1/24",
                                                                "203.0.113.5/24")))
    )  # fmt: skip
    ok(apply_network(previous, previous=None, netns=ns))
    desired = with_eth1("192.0.2.1/24", "203.0.113.5/24")
    assert validate_against_live(desired, previous=previous, netns=ns) == []
    assert ok(apply_network(desired, previous=previous, netns=ns)).changes == [
        "remove 203.0.113.5/24 from eth2",
        "add 203.0.113.5/24 to eth1",
    ]
    assert live_addresses(ns) == {
        "eth1": {"192.0.2.1/24", "203.0.113.5/24"},
        "eth2": {"198.51.100.1/24"},
    }
    # On record it stays the appliance's: a foreign overlapping subnet added since is no reason
    # to refuse the same config again.
    ip("-n", ns, "addr", "add", "203.0.113.9/24", "dev", "eth2")
    assert validate_against_live(desired, previous=desired, netns=ns) == []
    assert ok(apply_network(desired, previous=desired, netns=ns)).changes == []


@needs_netns
def test_a_hand_made_route_to_an_owned_destination_survives(ns: str) -> None:
    """A route to the appliance's destination at another metric, made by hand, is kept when the
    appliance applies again and when it removes its own route there."""
    ours = with_route(RouteConfig("203.0.113.64/26", "192.0.2.254"))
    ok(apply_network(ours, previous=None, netns=ns))
    ip("-n", ns, "route", "add", "203.0.113.64/26", "via", "192.0.2.253", "metric", "9")
    assert ok(apply_network(ours, previous=ours, netns=ns)).changes == []
    theirs = ("203.0.113.64/26", "192.0.2.253", "eth1", "boot", 9)
    assert route_details(ns) == {theirs, ("203.0.113.64/26", "192.0.2.254", "eth1", "static", 0)}
    assert ok(apply_network(BASE, previous=ours, netns=ns)).changes == [
        "remove route 203.0.113.64/26 via 192.0.2.254 dev eth1"
    ]
    assert route_details(ns) == {theirs}


@needs_netns
def test_a_hand_made_route_at_the_new_metric_of_an_owned_destination_is_refused(
    ns: str,
) -> None:
    """Moving the appliance's route to the metric a hand-made route holds would replace that
    route (ip route replace): it must be refused like any other foreign route."""
    ours = with_route(RouteConfig("203.0.113.64/26", "192.0.2.254"))
    ok(apply_network(ours, previous=None, netns=ns))
    ip("-n", ns, "route", "add", "203.0.113.64/26", "via", "192.0.2.253", "metric", "9")
    moved = with_route(RouteConfig("203.0.113.64/26", "192.0.2.252", metric=9))
    result = apply_network(moved, previous=ours, netns=ns)
    assert ("203.0.113.64/26", "192.0.2.253", "eth1", "boot", 9) in route_details(ns)
    assert not result.ok and result.error is not None
    theirs = "a route 203.0.113.64/26 via 192.0.2.253 dev eth1 metric 9 (protocol boot)"
    assert theirs in result.error


# ---------------------------------------------------------------------------------------------
# Snapshots


@needs_netns
def test_a_snapshot_survives_json_and_reports_link_state(ns: str) -> None:
    """to_json → JSON text → from_json gives the same snapshot (labels, dynamic addresses,
    route protocol/metric/src included); link_state is (up, MTU), None for lo and absent."""
    ip("-n", ns, "link", "set", "eth1", "up")
    ip("-n", ns, "link", "set", "eth2", "mtu", "1400")
    ip("-n", ns, "addr", "add", "192.0.2.1/24", "dev", "eth1")
    ip("-n", ns, "addr", "add", "192.0.2.50/24", "label", "eth1:vip", "dev", "eth1")
    ip("-n", ns, "addr", "add", "192.0.2.60/24", "dev", "eth1", "valid_lft", "300",
       "preferred_lft", "300")  # fmt: skip
    ip("-n", ns, "addr", "add", "2001:db8:5::1/64", "dev", "eth1")
    ip("-n", ns, "route", "add", "203.0.113.64/26", "via", "192.0.2.254", "src", "192.0.2.50")
    ip("-n", ns, "-6", "route", "add", "2001:db8:77::/48", "via", "2001:db8:5::fe", "metric",
       "300", "proto", "static")  # fmt: skip
    snap = snapshot_live(ns)
    data = snap.to_json()
    assert stored(snap).to_json() == data
    eth1 = next(link for link in data["links"] if link["name"] == "eth1")
    assert eth1["labels"] == {"192.0.2.50/24": "eth1:vip"}
    assert eth1["dynamic"] == ["192.0.2.60/24"]
    assert set(eth1["addresses"]) == {
        "192.0.2.1/24", "192.0.2.50/24", "192.0.2.60/24", "2001:db8:5::1/64"
    }  # fmt: skip
    assert data["routes"] == [
        {"destination": "203.0.113.64/26", "gateway": "192.0.2.254", "interface": "eth1",
         "protocol": "boot", "metric": 0, "scope": "global", "source": "192.0.2.50"},
        {"destination": "2001:db8:77::/48", "gateway": "2001:db8:5::fe", "interface": "eth1",
         "protocol": "static", "metric": 300, "scope": "global", "source": None},
    ]  # fmt: skip
    assert snap.link_state("eth1") == (True, 1500)
    assert snap.link_state("eth2") == (False, 1400)
    assert snap.link_state("lo") is None
    assert snap.link_state("eth9") is None


def snapshot_doc() -> dict:
    """A small valid to_json output."""
    return {
        "links": [
            {"name": "eth1", "up": True, "mtu": 1500, "loopback": False,
             "addresses": ["192.0.2.1/24", "192.0.2.50/24"],
             "labels": {"192.0.2.50/24": "eth1:vip"}, "dynamic": []},
            {"name": "lo", "up": True, "mtu": 65536, "loopback": True, "addresses": [],
             "labels": {}, "dynamic": []},
        ],
        "routes": [
            {"destination": "203.0.113.64/26", "gateway": "192.0.2.254", "interface": "eth1",
             "protocol": "boot", "metric": 0, "scope": "global", "source": "192.0.2.1"},
        ],
    }  # fmt: skip


def changed(path: tuple[object, ...], value: object) -> Callable[[], object]:
    """A maker of snapshot_doc() with the field at ``path`` set (deleted for KeyError)."""

    def make() -> object:
        if not path:
            return value
        doc = snapshot_doc()
        node: object = doc
        for key in path[:-1]:
            node = node[key]  # type: ignore[index]
        if value is KeyError:
            del node[path[-1]]  # type: ignore[union-attr]
        else:
            node[path[-1]] = value  # type: ignore[index]
        return doc

    return make


HOSTILE_SNAPSHOTS = [
    (
        changed(("links", 0, "name"), "eth0; reboot"),
        "snapshot.links[0].name: 'eth0; reboot' is not a valid interface name",
    ),
    (
        changed(("links", 0, "labels"), {"192.0.2.50/24": "eth2:vip"}),
        "snapshot.links[0].labels: 'eth2:vip' is not a label of eth1",
    ),
    (
        changed(("links", 0, "labels"), {"192.0.2.50/24": "eth1:v;x"}),
        "snapshot.links[0].labels: 'eth1:v;x'",
    ),
    (changed(("routes", 0, "protocol"), "kernel"), "snapshot.routes[0].protocol: 'kernel'"),
    (
        changed(("links", 0, "addresses"), ["192.0.2.1/24 dev lo"]),
        "snapshot.links[0].addresses: '192.0.2.1/24 dev lo'",
    ),
    (changed(("links", 0, "mtu"), "1500"), "snapshot.links[0].mtu: '1500'"),
    (changed(("links", 0, "up"), "yes"), "snapshot.links[0]: up and loopback are true or false"),
    (
        changed(("routes", 0, "destination"), "203.0.113.64/26;x"),
        "snapshot.routes[0].destination: '203.0.113.64/26;x'",
    ),
    (changed(("routes", 0, "scope"), "universe"), "snapshot.routes[0].scope: 'universe'"),
    (
        changed(("routes", 0, "gateway"), "192.0.2.254 dev lo"),
        "snapshot.routes[0].gateway: '192.0.2.254 dev lo' is not an IP address",
    ),
    (changed(("routes", 0, "metric"), -1), "snapshot.routes[0].metric: -1 is not a metric"),
    (changed(("links",), KeyError), "snapshot: malformed (KeyError('links'))"),
    (changed((), ["not", "an", "object"]), "snapshot: an object"),
]
HOSTILE_IDS = [words for _, words in HOSTILE_SNAPSHOTS]


def test_a_valid_snapshot_document_is_read() -> None:
    """The hostile cases below differ from this document by one field only; link_state's MTU
    is None outside 68..65535 on a real link."""
    snap = LiveSnapshot.from_json(snapshot_doc())
    assert snap.to_json() == snapshot_doc()
    assert snap.link_state("eth1") == (True, 1500)
    assert snap.link_state("lo") is None
    huge = LiveSnapshot.from_json(changed(("links", 0, "mtu"), 65536)())
    assert huge.link_state("eth1") == (True, None)


@pytest.mark.parametrize(("make", "words"), HOSTILE_SNAPSHOTS, ids=HOSTILE_IDS)
def test_hostile_snapshots_raise_value_error(make: Callable[[], object], words: str) -> None:
    """A stored snapshot is read strictly: any hostile field is a ValueError, nothing else."""
    with pytest.raises(ValueError) as refused:
        LiveSnapshot.from_json(make())
    assert str(refused.value).startswith(words), str(refused.value)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (changed(("links", 0, "name"), "eth0; reboot"), "snapshot.links[0].name"),
        (changed(("routes", 0, "gateway"), "192.0.2.254 dev lo"), "snapshot.routes[0].gateway"),
    ],
)
def test_hostile_snapshot_errors_name_the_field(make: Callable[[], object], field: str) -> None:
    """Every from_json error starts with the path of the bad field, like the others do."""
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        LiveSnapshot.from_json(make())


# ---------------------------------------------------------------------------------------------
# netinfo.route_get


@needs_netns
def test_route_get_in_a_namespace(ns: str) -> None:
    """The kernel's choice for an address: behind a static route (IPv4, IPv4-mapped, IPv6),
    loopback for 127.0.0.1; ValueError for a non-address, NetinfoError for no route."""
    config = NetworkConfig(
        interfaces=(InterfaceConfig("eth1", addresses=("192.0.2.1/24", "2001:db8:5::1/64")),),
        routes=(
            RouteConfig("203.0.113.0/24", "192.0.2.254"),
            RouteConfig("2001:db8:77::/48", "2001:db8:5::fe"),
        ),
    )
    ok(apply_network(config, previous=None, netns=ns))
    v4 = netinfo.RouteChoice(
        "eth1", ipaddress.ip_address("192.0.2.254"), ipaddress.ip_address("192.0.2.1")
    )
    assert netinfo.route_get("203.0.113.9", ns) == v4
    assert netinfo.route_get("::ffff:203.0.113.9", ns) == v4
    v6 = netinfo.route_get("2001:db8:77::9", ns)
    assert (v6.interface, v6.gateway) == ("eth1", ipaddress.ip_address("2001:db8:5::fe"))
    local = netinfo.route_get("127.0.0.1", ns)
    assert local == netinfo.RouteChoice("lo", None, ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(
        ValueError, match=re.escape("'192.0.2.1; reboot' does not appear to be an IPv4")
    ):
        netinfo.route_get("192.0.2.1; reboot", ns)
    with pytest.raises(netinfo.NetinfoError, match="Network is unreachable"):
        netinfo.route_get("198.51.100.9", ns)


@needs_netns
def test_route_get_refuses_an_address_with_a_junk_scope(ns: str) -> None:
    """A scoped IPv6 text with junk after '%' is no address: ValueError before ip runs."""
    refusal = "not an IP address without a scope: '2001:db8::1%eth1; reboot'"
    with pytest.raises(ValueError, match=re.escape(refusal)):
        netinfo.route_get("2001:db8::1%eth1; reboot", ns)
