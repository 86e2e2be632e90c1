"""lbadmin.engines.netconfig: the appliance's own interfaces, routes, hostname and DNS.

Validation, ordering and the identity files are tested without privileges (files under
tmp_path, never /etc). Applying is tested in two network namespaces this module makes and
removes, pass or fail: NS is the appliance (eth1, eth2), NSP holds the veth peers (p1, p2) as
its neighbours. The root namespace's addresses, routes and hostname are checked unchanged. The
kernel hostname is only ever set inside a UTS namespace (``unshare --uts``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines import netinfo
from lbadmin.engines.netconfig import (
    ApplyResult,
    HostIdentity,
    InterfaceConfig,
    NetconfigError,
    NetworkConfig,
    RouteConfig,
    apply_network,
    plan_network,
    read_identity,
    read_network,
    validate_against_live,
    validate_identity,
    validate_network,
    write_identity,
)
from lbadmin.engines.netconfig import apply as netapply
from lbadmin.engines.netconfig import live as netlive
from lbadmin.engines.netconfig import model as netmodel
from lbadmin.engines.netconfig import plan as netplan

NS = f"ncf{os.getpid()}"
NSP = f"ncf{os.getpid()}p"
ROOT = Path(__file__).resolve().parents[2]

needs_netns = pytest.mark.skipif(
    shutil.which("ip") is None or os.geteuid() != 0,
    reason="network namespaces need root and iproute2 (apt-get install iproute2)",
)

# The guide's internal arm (its static route needs 192.168.20.0/24 here: inside a private
# namespace it never leaves the machine) and a documentation-range external arm.
GUIDE = NetworkConfig(
    interfaces=(
        InterfaceConfig(
            "eth1", up=True, mtu=9000, addresses=("192.168.20.1/24", "2001:db8:20::1/64")
        ),
        InterfaceConfig("eth2", up=True, mtu=1400, addresses=("203.0.113.1/24",)),
    ),
    routes=(
        RouteConfig("192.168.100.0/24", gateway="192.168.20.2"),
        RouteConfig("default", gateway="203.0.113.254"),
        RouteConfig("default", gateway="2001:db8:20::fe"),
    ),
)
# What read_network says of GUIDE: the kernel resolved each route's device.
GUIDE_LIVE = NetworkConfig(
    interfaces=GUIDE.interfaces,
    routes=(
        RouteConfig("default", "203.0.113.254", "eth2"),
        RouteConfig("192.168.100.0/24", "192.168.20.2", "eth1"),
        RouteConfig("default", "2001:db8:20::fe", "eth1"),
    ),
)
GUIDE_ROUTES = {
    ("192.168.100.0/24", "192.168.20.2", "eth1", "static"),
    ("default", "203.0.113.254", "eth2", "static"),
    ("default", "2001:db8:20::fe", "eth1", "static"),
}
LIVE = ["lo", "eth1", "eth2"]
GUIDE_STEPS = [
    "set eth1 MTU 9000 (was 1500)",
    "bring eth1 up",
    "set eth2 MTU 1400 (was 1500)",
    "bring eth2 up",
    "add 192.168.20.1/24 to eth1",
    "add 2001:db8:20::1/64 to eth1",
    "add 203.0.113.1/24 to eth2",
    "set route 192.168.100.0/24 via 192.168.20.2",
    "set route default via 203.0.113.254",
    "set route default via 2001:db8:20::fe",
]


# ---------------------------------------------------------------------------------------------
# Helpers


def ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def ip_json(*args: str) -> list[dict]:
    text = ip("-j", *args)
    return json.loads(text) if text.strip() else []


def live_addresses(ns: str) -> dict[str, set[str]]:
    """Global addresses per interface (lo left out), from ip itself."""
    return {
        entry["ifname"]: {
            f"{info['local']}/{info['prefixlen']}"
            for info in entry.get("addr_info", [])
            if info.get("scope") == "global"
        }
        for entry in ip_json("-n", ns, "addr", "show")
        if entry["ifname"] != "lo"
    }


def live_links(ns: str) -> dict[str, tuple[bool, int]]:
    return {
        entry["ifname"]: ("UP" in entry["flags"], entry["mtu"])
        for entry in ip_json("-n", ns, "link", "show")
        if entry["ifname"] != "lo"
    }


def live_routes(ns: str) -> set[tuple[str, str | None, str | None, str]]:
    """Every route of the main table that the kernel did not add itself."""
    return {
        (r["dst"], r.get("gateway"), r.get("dev"), r.get("protocol", "boot"))
        for family in ("-4", "-6")
        for r in ip_json("-n", ns, family, "route", "show", "table", "main")
        if r.get("protocol") != "kernel"
    }


def snapshot(ns: str) -> tuple:
    return live_addresses(ns), live_links(ns), live_routes(ns)


def root_state() -> tuple:
    """The root namespace's addresses and routes on the interfaces it has now, and hostname."""
    names = {entry["ifname"] for entry in ip_json("link", "show")}
    addresses = {
        (entry["ifname"], info.get("local"), info.get("prefixlen"))
        for entry in ip_json("addr", "show")
        for info in entry.get("addr_info", [])
    }
    routes = {
        (family, r.get("dst"), r.get("gateway"), r.get("dev"), r.get("protocol"))
        for family in ("-4", "-6")
        for r in ip_json(family, "route", "show", "table", "main")
    }
    return names, addresses, routes, socket.gethostname()


def same_root(before: tuple, after: tuple) -> bool:
    """Equal on the interfaces that exist both times (other tests may come and go)."""
    names = before[0] & after[0]

    def on(state: tuple) -> tuple:
        return (
            {a for a in state[1] if a[0] in names},
            {r for r in state[2] if r[3] is None or r[3] in names},
            state[3],
        )

    return on(before) == on(after)


def remove_namespaces() -> None:
    for name in (NS, NSP):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


@pytest.fixture
def ns() -> Iterator[str]:
    """NS with eth1 and eth2 (down, no address; MTU 1500) whose veth peers p1 and p2 are up in
    NSP; lo up in both. Both namespaces are removed afterwards, pass or fail."""
    remove_namespaces()
    before = root_state()
    try:
        ip("netns", "add", NS)
        ip("netns", "add", NSP)
        ip("-n", NS, "link", "add", "eth1", "type", "veth", "peer", "name", "p1", "netns", NSP)
        ip("-n", NS, "link", "add", "eth2", "type", "veth", "peer", "name", "p2", "netns", NSP)
        ip("-n", NS, "link", "set", "lo", "up")
        for name in ("lo", "p1", "p2"):
            ip("-n", NSP, "link", "set", name, "up")
        yield NS
    finally:
        remove_namespaces()
        assert same_root(before, root_state()), "the root namespace's network changed"


def ok(result: ApplyResult) -> ApplyResult:
    assert result.ok, result.error
    assert result.error is None
    return result


# ---------------------------------------------------------------------------------------------
# Validation (no privileges)


def test_a_good_config_validates() -> None:
    assert validate_network(GUIDE, LIVE) == []
    assert validate_network(NetworkConfig(), LIVE) == []
    assert validate_network(GUIDE_LIVE, LIVE) == []
    # A link-local IPv6 gateway with its interface; a device route; a metric; a host route.
    config = NetworkConfig(
        interfaces=(InterfaceConfig("eth1", addresses=("192.0.2.1/24",)),),
        routes=(
            RouteConfig("default", "fe80::1", "eth1"),
            RouteConfig("198.51.100.0/24", None, "eth1"),
            RouteConfig("203.0.113.0/25", "192.0.2.254", metric=50),
            RouteConfig("203.0.113.200/32", "192.0.2.254"),
            RouteConfig("0.0.0.0/0", "192.0.2.254"),
        ),
    )
    assert validate_network(config, LIVE) == []
    # Point-to-point links: the other end of a /31 or /127 is the gateway.
    p2p = NetworkConfig(
        interfaces=(InterfaceConfig("eth1", addresses=("192.0.2.0/31", "2001:db8::/127")),),
        routes=(RouteConfig("default", "192.0.2.1"), RouteConfig("default", "2001:db8::1")),
    )
    assert validate_network(p2p, LIVE) == []
    # Interface objects from netinfo do as well as names.
    link = netinfo.Interface("eth1", "up", 1500, None, ())
    assert validate_network(NetworkConfig((InterfaceConfig("eth1"),)), [link]) == []


def one_interface(*addresses: str, name: str = "eth1", **kwargs: object) -> NetworkConfig:
    return NetworkConfig(interfaces=(InterfaceConfig(name, addresses=addresses, **kwargs),))


def with_routes(*routes: RouteConfig) -> NetworkConfig:
    return NetworkConfig(
        interfaces=(
            InterfaceConfig("eth1", addresses=("192.0.2.1/24", "2001:db8:1::1/64")),
            InterfaceConfig("eth2", up=False, addresses=("198.51.100.1/24",)),
        ),
        routes=routes,
    )


HOSTILE = [
    # Interface names.
    (one_interface(name="eth0; reboot"), "interfaces[0].name: 'eth0; reboot' is not a valid"),
    (one_interface(name="$(reboot)"), "interfaces[0].name: '$(reboot)' is not a valid"),
    (one_interface(name="-n"), "interfaces[0].name: '-n' is not a valid"),
    (one_interface(name="eth1\n"), "interfaces[0].name: 'eth1\\n' is not a valid"),
    (
        one_interface(name="a" * 16),
        "interfaces[0].name: 'aaaaaaaaaaaaaaaa' is not a valid interface name",
    ),
    (one_interface(name=".."), "interfaces[0].name: '..' is not a valid interface name"),
    (one_interface(name="eth9"), "interfaces[0].name: there is no interface eth9 on this node"),
    (one_interface(name="lo"), "interfaces[0].name: the loopback interface is not configurable"),
    (
        NetworkConfig((InterfaceConfig("eth1"), InterfaceConfig("eth1"))),
        "interfaces[1].name: eth1 is listed twice",
    ),
    # Addresses.
    (
        one_interface("192.0.2.5/24\n"),
        "interfaces[0].addresses[0]: '192.0.2.5/24\\n' is not an address with a prefix",
    ),
    (
        one_interface("192.0.2.5/24\nreboot"),
        "interfaces[0].addresses[0]: '192.0.2.5/24\\nreboot' is not an address with a prefix",
    ),
    (
        one_interface("192.0.2.5/24; reboot"),
        "interfaces[0].addresses[0]: '192.0.2.5/24; reboot' is not an address with a prefix length",
    ),
    (
        one_interface("192.0.2.5"),
        "interfaces[0].addresses[0]: '192.0.2.5' is not an address with a prefix length",
    ),
    (
        one_interface(" 192.0.2.5/24"),
        "interfaces[0].addresses[0]: ' 192.0.2.5/24' is not an address with a prefix length",
    ),
    (
        one_interface("192.0.2.5/33"),
        "interfaces[0].addresses[0]: '192.0.2.5/33' is not an address with a prefix length",
    ),
    (
        one_interface("192.0.2.5/+24"),
        "interfaces[0].addresses[0]: '192.0.2.5/+24' is not an address with a prefix length",
    ),
    (
        one_interface("192.0.2.256/24"),
        "interfaces[0].addresses[0]: '192.0.2.256/24' is not an address with a prefix length",
    ),
    (
        one_interface("eth1"),
        "interfaces[0].addresses[0]: 'eth1' is not an address with a prefix length",
    ),
    (
        one_interface("192.0.2.0/24"),
        "interfaces[0].addresses[0]: '192.0.2.0/24' is the network address of 192.0.2.0/24",
    ),
    (
        one_interface("192.0.2.255/24"),
        "interfaces[0].addresses[0]: '192.0.2.255/24' is the broadcast address of 192.0.2.0/24",
    ),
    (
        one_interface("2001:db8::/64"),
        "interfaces[0].addresses[0]: '2001:db8::/64' is the subnet-router anycast address",
    ),
    (
        one_interface("127.0.0.2/8"),
        "interfaces[0].addresses[0]: '127.0.0.2/8' cannot be an interface's address",
    ),
    (
        one_interface("224.0.0.5/24"),
        "interfaces[0].addresses[0]: '224.0.0.5/24' cannot be an interface's address",
    ),
    (one_interface("fe80::5/64"), "interfaces[0].addresses[0]: 'fe80::5/64' is link-local"),
    (one_interface("169.254.1.1/16"), "interfaces[0].addresses[0]: '169.254.1.1/16' is link-local"),
    (
        one_interface("192.0.2.5/0"),
        "interfaces[0].addresses[0]: '192.0.2.5/0': a /0 prefix covers every address",
    ),
    (
        one_interface("::ffff:192.0.2.5/120"),
        "interfaces[0].addresses[0]: '::ffff:192.0.2.5/120' is an IPv4-mapped",
    ),
    (
        one_interface("192.0.2.5/24", "192.0.2.5/25"),
        "interfaces[0].addresses[1]: 192.0.2.5 is already configured (interfaces[0].addresses[0]",
    ),
    (
        NetworkConfig(
            (
                InterfaceConfig("eth1", addresses=("192.0.2.5/24",)),
                InterfaceConfig("eth2", addresses=("192.0.2.5/24",)),
            )
        ),
        "interfaces[1].addresses[0]: 192.0.2.5 is already configured",
    ),
    (
        NetworkConfig(
            (
                InterfaceConfig("eth1", addresses=("192.0.2.5/24",)),
                InterfaceConfig("eth2", addresses=("192.0.2.200/25",)),
            )
        ),
        "interfaces[1].addresses[0]: 192.0.2.200/25 overlaps 192.0.2.5/24 on eth1",
    ),
    (
        NetworkConfig(
            (
                InterfaceConfig("eth1", addresses=("2001:db8::1/48",)),
                InterfaceConfig("eth2", addresses=("2001:db8:0:1::1/64",)),
            )
        ),
        "interfaces[1].addresses[0]: 2001:db8:0:1::1/64 overlaps 2001:db8::1/48 on eth1",
    ),
    # MTU.
    (one_interface(mtu=67), "interfaces[0].mtu: 67 is not between 68 and 65535"),
    (one_interface(mtu=65536), "interfaces[0].mtu: 65536 is not between 68 and 65535"),
    (one_interface(mtu="1500"), "interfaces[0].mtu: '1500' is not between"),
    (one_interface(mtu=True), "interfaces[0].mtu: True is not between"),
    (one_interface("2001:db8::5/64", mtu=1279), "interfaces[0].mtu: IPv6 needs an MTU of at least"),
    (one_interface(up="yes"), "interfaces[0].up: True or False"),
    # Routes.
    (
        with_routes(RouteConfig("192.168.100.1/24", "192.0.2.2")),
        "routes[0].destination: '192.168.100.1/24' has host bits set: the network",
    ),
    (
        with_routes(RouteConfig("192.168.100.0/24\n", "192.0.2.2")),
        "routes[0].destination: '192.168.100.0/24\\n' is not a network with a",
    ),
    (
        with_routes(RouteConfig("192.168.100.0", "192.0.2.2")),
        "routes[0].destination: '192.168.100.0' is not a network with a",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2;reboot")),
        "routes[0].gateway: '192.0.2.2;reboot' is not an IP address",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "gw.example.com")),
        "routes[0].gateway: 'gw.example.com' is not an IP address",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "203.0.113.1")),
        "routes[0].gateway: 203.0.113.1 is not in any configured subnet",
    ),
    (
        with_routes(RouteConfig("default", "203.0.113.1")),
        "routes[0].gateway: 203.0.113.1 is not in any configured subnet",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2", "eth2")),
        "routes[0].interface: eth2 is configured down",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "198.51.100.2")),
        "routes[0].gateway: 198.51.100.2 is only reachable through eth2, configured down",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.1")),
        "routes[0].gateway: 192.0.2.1 is this node's own address",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.255")),
        "routes[0].gateway: 192.0.2.255 is not in any configured subnet",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "2001:db8:1::fe")),
        "routes[0].gateway: 2001:db8:1::fe is IPv6 but 10.0.0.0/8 is IPv4",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "fe80::1")),
        "routes[0].gateway: fe80::1 is IPv6 but 10.0.0.0/8 is IPv4",
    ),
    (
        with_routes(RouteConfig("::/0", "fe80::1")),
        "routes[0].interface: a link-local gateway (fe80::1) needs an",
    ),
    (with_routes(RouteConfig("10.0.0.0/8")), "routes[0].gateway: a route needs a gateway"),
    (
        with_routes(RouteConfig("default", None, "eth1")),
        "routes[0].destination: a default route needs a gateway",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2", "eth3")),
        "routes[0].interface: eth3 is not among the configured interfaces (and there is no",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2", "eth1 ")),
        "routes[0].interface: 'eth1 ' is not a valid interface",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2", "lo")),
        "routes[0].interface: the loopback interface is not",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2"), RouteConfig("10.0.0.0/8", "192.0.2.3")),
        "routes[1].destination: a route to 10.0.0.0/8 is already configured (routes[0])",
    ),
    (
        with_routes(RouteConfig("default", "192.0.2.2"), RouteConfig("0.0.0.0/0", "192.0.2.3")),
        "routes[1].destination: a route to default is already configured",
    ),
    (
        with_routes(RouteConfig("192.0.2.0/24", "192.0.2.2")),
        "routes[0].destination: 192.0.2.0/24 is the subnet of eth1 itself",
    ),
    (
        with_routes(RouteConfig("127.0.0.0/8", "192.0.2.2")),
        "routes[0].destination: '127.0.0.0/8' cannot be routed",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2", metric=-1)),
        "routes[0].metric: -1 is not a metric",
    ),
    (
        with_routes(RouteConfig("10.0.0.0/8", "192.0.2.2", metric=2**32)),
        "routes[0].metric: 4294967296 is not a metric",
    ),
    # Not the dataclasses at all.
    ("eth1", "config: a NetworkConfig"),
    (NetworkConfig(interfaces=("eth1",)), "interfaces[0]: an InterfaceConfig, not str"),
    (NetworkConfig(routes=({"destination": "default"},)), "routes[0]: a RouteConfig, not dict"),
]


@pytest.mark.parametrize(("config", "message"), HOSTILE)
def test_invalid_configs_are_refused_with_a_message(config: object, message: str) -> None:
    problems = validate_network(config, LIVE)  # type: ignore[arg-type]
    assert any(message in problem for problem in problems), problems


def test_messages_name_each_problem() -> None:
    config = NetworkConfig(
        interfaces=(
            InterfaceConfig("eth1", mtu=20, addresses=("192.0.2.1/24", "x")),
            InterfaceConfig("eth0; reboot"),
        ),
        routes=(RouteConfig("10.0.0.1/8", "192.0.2.2"),),
    )
    assert validate_network(config, LIVE) == [
        "interfaces[0].mtu: 20 is not between 68 and 65535",
        "interfaces[0].addresses[1]: 'x' is not an address with a prefix length such as "
        "192.0.2.5/24 or 2001:db8::5/64",
        "interfaces[1].name: 'eth0; reboot' is not a valid interface name",
        "routes[0].destination: '10.0.0.1/8' has host bits set: the network is 10.0.0.0/8",
    ]


def test_the_phases_run_in_a_safe_order() -> None:
    """Routes out, links, addresses out, addresses in, routes in: on a modelled live state
    where eth1 moves from 192.0.2.0/24 to 198.51.100.0/24 and its route moves with it."""
    old = NetworkConfig(
        interfaces=(InterfaceConfig("eth1", mtu=1500, addresses=("192.0.2.1/24",)),),
        routes=(RouteConfig("10.0.0.0/8", "192.0.2.2"),),
    )
    new = NetworkConfig(
        interfaces=(InterfaceConfig("eth1", mtu=9000, addresses=("198.51.100.1/24",)),),
        routes=(RouteConfig("10.1.0.0/16", "198.51.100.2"),),
    )
    route = netinfo.Route(
        destination=ipaddress.ip_network("10.0.0.0/8"),
        gateway=ipaddress.ip_address("192.0.2.2"),
        interface="eth1",
        protocol="static",
        metric=0,
        type="unicast",
        scope="global",
        multipath=False,
    )
    vip = ipaddress.ip_interface("192.0.2.10/32")
    live = netlive._Live(
        links={
            "eth1": netlive._LiveLink(
                "eth1", False, 1500, False, [ipaddress.ip_interface("192.0.2.1/24"), vip]
            )
        },
        routes=[route],
    )
    old_net, new_net = netmodel._parse(old, []), netmodel._parse(new, [])
    steps = netplan._plan(new_net, netplan._owned(new_net, old_net), live)
    assert [step.description for step in steps] == [
        "remove route 10.0.0.0/8 via 192.0.2.2 dev eth1",
        "set eth1 MTU 9000 (was 1500)",
        "bring eth1 up",
        "remove 192.0.2.1/24 from eth1",  # not the VIP: the appliance does not own it
        "add 198.51.100.1/24 to eth1",
        "set route 10.1.0.0/16 via 198.51.100.2",
    ]
    assert [step.argv for step in steps] == [
        (
            "-4", "route", "del", "10.0.0.0/8", "via", "192.0.2.2", "dev", "eth1",
            "proto", "static", "metric", "0", "table", "main",
        ),
        ("link", "set", "dev", "eth1", "mtu", "9000"),
        ("link", "set", "dev", "eth1", "up"),
        ("-4", "addr", "del", "192.0.2.1/24", "dev", "eth1"),
        ("-4", "addr", "add", "198.51.100.1/24", "broadcast", "+", "dev", "eth1"),
        (
            "-4", "route", "replace", "10.1.0.0/16", "via", "198.51.100.2",
            "proto", "static", "metric", "0", "table", "main",
        ),
    ]  # fmt: skip
    # The modelled result needs nothing more; going down happens before addresses are added.
    down = NetworkConfig((InterfaceConfig("eth1", up=False, addresses=("2001:db8::1/64",)),))
    down_net = netmodel._parse(down, [])
    live.links["eth1"].admin_up = True
    owned = netplan._owned(down_net, old_net)
    kinds = [s.kind for s in netplan._plan(down_net, owned, live)]
    assert kinds == ["route-del", "link-down", "addr-del", "addr-add"]


def test_a_hostile_namespace_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "run", no_process)
    for netns in ("-n", "../x", "a b", "a\n", ""):
        refusal = re.escape(f"invalid network namespace name: {netns!r}")
        with pytest.raises(ValueError, match=refusal):
            apply_network(GUIDE, previous=None, netns=netns)
        with pytest.raises(ValueError, match=refusal):
            read_network(netns)


def test_ip_calls_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netinfo, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(netinfo, "_binary", lambda name: shutil.which("sleep"))
    with pytest.raises(NetconfigError, match=r"did not finish within 0\.2 s"):
        netapply._run_ip(None, ("5",))
    monkeypatch.setattr(netinfo, "_binary", lambda name: shutil.which("ls"))
    with pytest.raises(NetconfigError, match=r"exited 2: .*No such file"):
        netapply._run_ip(None, ("/nonexistent-netconfig",))


# Recorded from iproute2 6.1 in a namespace (trimmed).
RECORDED_ROUTES_4 = [
    {"type": "blackhole", "dst": "10.1.0.0/16", "flags": []},
    {
        "dst": "10.2.0.0/16",
        "flags": [],
        "nexthops": [
            {"gateway": "192.0.2.2", "dev": "eth1", "weight": 1, "flags": []},
            {"gateway": "198.51.100.2", "dev": "eth2", "weight": 1, "flags": []},
        ],
    },
    {"dst": "10.3.0.0/16", "dev": "eth2", "scope": "link", "flags": []},
    {"dst": "10.4.0.7", "gateway": "192.0.2.2", "dev": "eth1", "flags": []},
    {"dst": "default", "gateway": "192.0.2.254", "dev": "eth1", "protocol": "static", "flags": []},
    {
        "dst": "192.0.2.0/24",
        "dev": "eth1",
        "protocol": "kernel",
        "scope": "link",
        "prefsrc": "192.0.2.1",
        "flags": [],
    },
]
RECORDED_ROUTES_6 = [
    {"dst": "2001:db8:7::5", "gateway": "fe80::1", "dev": "eth1", "metric": 1024, "flags": []},
    {"type": "unreachable", "dst": "2001:db8:8::/48", "dev": "lo", "metric": 1024, "flags": []},
    {"dst": "fe80::/64", "dev": "eth1", "protocol": "kernel", "metric": 256, "flags": []},
    {"dst": "default", "gateway": "2001:db8::fe", "dev": "eth1", "metric": 5, "flags": []},
]
RECORDED_LINKS = [
    {
        "ifname": "lo",
        "flags": ["LOOPBACK", "UP", "LOWER_UP"],
        "mtu": 65536,
        "address": "00:00:00:00:00:00",
        "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}],
    },
    {
        "ifname": "eth1",
        "flags": ["BROADCAST", "MULTICAST", "UP"],  # no carrier: still administratively up
        "mtu": 9000,
        "address": "12:0e:9c:7e:34:1a",
        "addr_info": [
            {"family": "inet", "local": "192.0.2.1", "prefixlen": 24, "scope": "global"},
            {"family": "inet", "local": "192.0.2.10", "prefixlen": 32, "scope": "global"},
            {
                "family": "inet",
                "local": "192.0.2.77",
                "prefixlen": 24,
                "scope": "global",
                "dynamic": True,
            },
            {"family": "inet", "local": "169.254.3.3", "prefixlen": 16, "scope": "global"},
            {"family": "inet6", "local": "2001:db8::2", "prefixlen": 64, "scope": "global"},
            {
                "family": "inet6",
                "local": "2001:db8::1",
                "prefixlen": 64,
                "scope": "global",
                "tentative": True,
            },
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
        ],
    },
    {"ifname": "eth2", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500, "addr_info": []},
]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_ip(netns: str | None, *args: str) -> str:
        if args[:3] == ("-j", "addr", "show"):
            return json.dumps(RECORDED_LINKS)
        if args[:2] == ("-j", "-4"):
            return json.dumps(RECORDED_ROUTES_4)
        if args[:2] == ("-j", "-6"):
            return json.dumps(RECORDED_ROUTES_6)
        raise AssertionError(args)

    monkeypatch.setattr(netinfo, "run_ip", fake_ip)


def test_netinfo_routes_and_links_are_parsed(recorded) -> None:
    routes = netinfo.routes()
    assert [(str(r.destination), r.type, r.protocol, r.metric) for r in routes] == [
        ("10.1.0.0/16", "blackhole", "boot", 0),
        ("10.2.0.0/16", "unicast", "boot", 0),
        ("10.3.0.0/16", "unicast", "boot", 0),
        ("10.4.0.7/32", "unicast", "boot", 0),
        ("0.0.0.0/0", "unicast", "static", 0),
        ("192.0.2.0/24", "unicast", "kernel", 0),
        ("2001:db8:7::5/128", "unicast", "boot", 1024),
        ("2001:db8:8::/48", "unreachable", "boot", 1024),
        ("fe80::/64", "unicast", "kernel", 256),
        ("::/0", "unicast", "boot", 5),
    ]
    assert routes[1].multipath and routes[1].gateway is None and routes[1].interface is None
    assert routes[2].scope == "link" and routes[2].gateway is None
    assert routes[4].is_default and str(routes[4].gateway) == "192.0.2.254"
    links = netinfo.links()
    assert [(link.name, link.admin_up, link.lower_up, link.loopback) for link in links] == [
        ("lo", True, True, True),
        ("eth1", True, False, False),
        ("eth2", False, False, False),
    ]
    flags = {str(a.address): (a.scope, a.dynamic, a.tentative) for a in links[1].addresses}
    assert flags["192.0.2.77/24"] == ("global", True, False)
    assert flags["2001:db8::1/64"] == ("global", False, True)


def test_read_network_keeps_what_the_appliance_configures(recorded) -> None:
    assert read_network() == NetworkConfig(
        interfaces=(
            # No DHCP address, no link-local ones; IPv6 in the order added (ip: newest first).
            InterfaceConfig(
                "eth1",
                up=True,
                mtu=9000,
                addresses=("192.0.2.1/24", "192.0.2.10/32", "2001:db8::1/64", "2001:db8::2/64"),
            ),
            InterfaceConfig("eth2", up=False, mtu=1500, addresses=()),
        ),
        routes=(
            # No blackhole, multipath, unreachable or kernel route.
            RouteConfig("10.3.0.0/16", None, "eth2"),
            RouteConfig("10.4.0.7/32", "192.0.2.2", "eth1"),
            RouteConfig("default", "192.0.2.254", "eth1"),
            RouteConfig("2001:db8:7::5/128", "fe80::1", "eth1"),
            RouteConfig("default", "2001:db8::fe", "eth1", metric=5),
        ),
    )


@pytest.mark.parametrize(
    "routes",
    ['[{"dst": "nonsense"}]', '[{"gateway": "192.0.2.1"}]', '{"dst": "default"}', "not json"],
)
def test_unreadable_route_output_raises(routes: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netinfo, "run_ip", lambda netns, *args: routes)
    with pytest.raises(netinfo.NetinfoError, match=r"^cannot read the output of ip -j -4 route: "):
        netinfo.routes()


# ---------------------------------------------------------------------------------------------
# In network namespaces


@needs_netns
def test_apply_read_reapply_restart_and_restore(ns: str) -> None:
    original = read_network(ns)
    assert original == NetworkConfig(
        interfaces=(InterfaceConfig("eth1", False, 1500), InterfaceConfig("eth2", False, 1500))
    )
    assert plan_network(GUIDE, previous=None, netns=ns) == GUIDE_STEPS
    result = ok(apply_network(GUIDE, previous=None, netns=ns))
    assert result.changes == GUIDE_STEPS
    assert result.before == original

    # ip itself shows exactly the configured state.
    assert live_addresses(ns) == {
        "eth1": {"192.168.20.1/24", "2001:db8:20::1/64"},
        "eth2": {"203.0.113.1/24"},
    }
    assert live_links(ns) == {"eth1": (True, 9000), "eth2": (True, 1400)}
    assert live_routes(ns) == GUIDE_ROUTES
    brd = ip_json("-n", ns, "-4", "addr", "show", "dev", "eth2")[0]["addr_info"][0]
    assert brd["broadcast"] == "203.0.113.255"
    assert read_network(ns) == GUIDE_LIVE
    # The guide's route works: the kernel picks it, through eth1, for the internal clients.
    got = ip_json("-n", ns, "route", "get", "192.168.100.7")[0]
    assert (got["gateway"], got["dev"]) == ("192.168.20.2", "eth1")

    # The same again changes nothing; so does what read_network reports, as desired.
    assert ok(apply_network(GUIDE, previous=GUIDE, netns=ns)).changes == []
    assert ok(apply_network(GUIDE_LIVE, previous=GUIDE, netns=ns)).changes == []
    assert plan_network(GUIDE, previous=GUIDE, netns=ns) == []

    # A reboot: links down at MTU 1500, no address, no route. The stored state comes back.
    for name in ("eth1", "eth2"):
        ip("-n", ns, "link", "set", "dev", name, "down", "mtu", "1500")
        ip("-n", ns, "addr", "flush", "dev", name)
    assert live_routes(ns) == set()
    assert read_network(ns) == original
    ok(apply_network(GUIDE, previous=GUIDE, netns=ns))
    assert read_network(ns) == GUIDE_LIVE
    assert live_routes(ns) == GUIDE_ROUTES

    # Removing it all (a revert: the previous state, with the applied one as previous).
    result = ok(apply_network(original, previous=GUIDE, netns=ns))
    assert result.changes == [
        "remove route default via 203.0.113.254 dev eth2",
        "remove route 192.168.100.0/24 via 192.168.20.2 dev eth1",
        "remove route default via 2001:db8:20::fe dev eth1",
        "bring eth1 down",  # which flushes eth1's IPv6 address itself
        "set eth1 MTU 1500 (was 9000)",
        "bring eth2 down",
        "set eth2 MTU 1500 (was 1400)",
        "remove 192.168.20.1/24 from eth1",
        "remove 203.0.113.1/24 from eth2",
    ]
    assert read_network(ns) == original
    assert snapshot(ns) == ({"eth1": set(), "eth2": set()}, {
        "eth1": (False, 1500), "eth2": (False, 1500)
    }, set())  # fmt: skip


@needs_netns
def test_only_managed_items_change(ns: str) -> None:
    ok(apply_network(GUIDE, previous=None, netns=ns))
    # What the appliance does not own: a VIP keepalived added, a secondary address and routes
    # by hand, one of them through eth2 and one with a source address.
    ip("-n", ns, "addr", "add", "192.168.20.10/32", "dev", "eth1")
    ip("-n", ns, "addr", "add", "203.0.113.50/24", "dev", "eth2")
    ip("-n", ns, "route", "add", "10.9.0.0/16", "via", "192.168.20.3")
    ip("-n", ns, "route", "add", "10.8.0.0/16", "via", "203.0.113.9", "src", "203.0.113.50")
    ip("-n", ns, "route", "add", "blackhole", "10.66.0.0/16")
    # Drift on managed items: the guide's route gone, the IPv6 default changed by hand.
    ip("-n", ns, "route", "del", "192.168.100.0/24")
    ip("-n", ns, "-6", "route", "replace", "default", "via", "2001:db8:20::fd")
    assert plan_network(GUIDE, previous=GUIDE, netns=ns) == [
        "set route 192.168.100.0/24 via 192.168.20.2",
        "set route default via 2001:db8:20::fe",
    ]

    changed = NetworkConfig(
        interfaces=(
            GUIDE.interfaces[0],
            InterfaceConfig("eth2", up=True, mtu=1400, addresses=("203.0.113.2/24",)),
        ),
        routes=(
            RouteConfig("default", gateway="203.0.113.253"),
            RouteConfig("default", gateway="2001:db8:20::fe"),
            RouteConfig("198.51.100.0/24", gateway="192.168.20.2", interface="eth1", metric=20),
        ),
    )
    result = ok(apply_network(changed, previous=GUIDE, netns=ns))
    # Deleting the primary 203.0.113.1/24 took the secondary .50 with it (promote_secondaries
    # is 0 here), and with eth2's last IPv4 address every route through eth2: the engine puts
    # back what it does not own.
    assert result.changes == [
        "remove 203.0.113.1/24 from eth2",
        "add 203.0.113.2/24 to eth2",
        "put back 203.0.113.50/24 on eth2 (the kernel removed it with a managed change)",
        "put back route 10.8.0.0/16 via 203.0.113.9 dev eth2 (the kernel removed it with a "
        "managed change)",
        "set route default via 203.0.113.253",
        "set route default via 2001:db8:20::fe",
        "set route 198.51.100.0/24 via 192.168.20.2 dev eth1 metric 20",
    ]
    assert live_addresses(ns) == {
        "eth1": {"192.168.20.1/24", "192.168.20.10/32", "2001:db8:20::1/64"},
        "eth2": {"203.0.113.2/24", "203.0.113.50/24"},
    }
    assert live_routes(ns) == {
        ("default", "203.0.113.253", "eth2", "static"),
        ("default", "2001:db8:20::fe", "eth1", "static"),
        ("198.51.100.0/24", "192.168.20.2", "eth1", "static"),
        ("10.9.0.0/16", "192.168.20.3", "eth1", "boot"),
        ("10.8.0.0/16", "203.0.113.9", "eth2", "boot"),
        ("10.66.0.0/16", None, None, "boot"),
    }
    by_dst = {r["dst"]: r for r in ip_json("-n", ns, "route")}
    assert by_dst["198.51.100.0/24"]["metric"] == 20
    assert by_dst["10.8.0.0/16"]["prefsrc"] == "203.0.113.50"
    # Our address is eth2's primary now, the hand-made one a secondary.
    eth2 = ip_json("-n", ns, "-4", "addr", "show", "dev", "eth2")[0]["addr_info"]
    assert [(a["local"], a.get("secondary", False)) for a in eth2] == [
        ("203.0.113.2", False),
        ("203.0.113.50", True),
    ]
    assert ok(apply_network(changed, previous=changed, netns=ns)).changes == []

    # The revert (what the confirmation timer does): GUIDE again, the hand-made items kept.
    result = ok(apply_network(GUIDE, previous=changed, netns=ns))
    assert result.changes == [
        "remove route 198.51.100.0/24 via 192.168.20.2 dev eth1 metric 20",
        "remove 203.0.113.2/24 from eth2",
        "add 203.0.113.1/24 to eth2",
        "put back 203.0.113.50/24 on eth2 (the kernel removed it with a managed change)",
        "put back route 10.8.0.0/16 via 203.0.113.9 dev eth2 (the kernel removed it with a "
        "managed change)",
        "set route 192.168.100.0/24 via 192.168.20.2",
        "set route default via 203.0.113.254",
    ]
    assert live_addresses(ns) == {
        "eth1": {"192.168.20.1/24", "192.168.20.10/32", "2001:db8:20::1/64"},
        "eth2": {"203.0.113.1/24", "203.0.113.50/24"},
    }
    assert live_routes(ns) == GUIDE_ROUTES | {
        ("10.9.0.0/16", "192.168.20.3", "eth1", "boot"),
        ("10.8.0.0/16", "203.0.113.9", "eth2", "boot"),
        ("10.66.0.0/16", None, None, "boot"),
    }


@needs_netns
def test_the_guide_route_drifted_back_is_corrected(ns: str) -> None:
    """Ownership goes by record: a previous-only address re-added by hand is removed again,
    and the appliance's route replaced by hand is set back; but a route to a managed
    destination that someone else made (another metric, protocol boot) is theirs and kept."""
    ok(apply_network(GUIDE, previous=None, netns=ns))
    ip("-n", ns, "route", "add", "192.168.100.0/24", "via", "192.168.20.9", "metric", "7")
    ip("-n", ns, "route", "replace", "192.168.100.0/24", "via", "192.168.20.8")
    ip("-n", ns, "addr", "add", "192.168.20.99/24", "dev", "eth1")
    first = GUIDE.interfaces[0]
    previous = NetworkConfig(
        interfaces=(
            InterfaceConfig("eth1", first.up, first.mtu, (*first.addresses, "192.168.20.99/24")),
            *GUIDE.interfaces[1:],
        ),
        routes=GUIDE.routes,
    )
    result = ok(apply_network(GUIDE, previous=previous, netns=ns))
    assert result.changes == [
        "remove 192.168.20.99/24 from eth1",
        "set route 192.168.100.0/24 via 192.168.20.2",
    ]
    assert live_routes(ns) == GUIDE_ROUTES | {("192.168.100.0/24", "192.168.20.9", "eth1", "boot")}
    assert "192.168.20.99/24" not in live_addresses(ns)["eth1"]


@needs_netns
def test_replacing_the_primary_address_keeps_the_secondary(ns: str) -> None:
    """Deleting a primary IPv4 address takes the secondaries of its subnet with it
    (promote_secondaries is 0): the address phase adds them back from a fresh read."""
    first = one_interface("192.0.2.1/24", "192.0.2.2/24")
    ok(apply_network(first, previous=None, netns=ns))
    second = one_interface("192.0.2.3/24", "192.0.2.2/24")
    result = ok(apply_network(second, previous=first, netns=ns))
    assert result.changes == [
        "remove 192.0.2.1/24 from eth1",
        "add 192.0.2.3/24 to eth1",
        "add 192.0.2.2/24 to eth1",
    ]
    assert live_addresses(ns)["eth1"] == {"192.0.2.3/24", "192.0.2.2/24"}
    assert ok(apply_network(second, previous=second, netns=ns)).changes == []


@needs_netns
def test_a_down_interface_keeps_its_addresses(ns: str) -> None:
    config = NetworkConfig(
        (
            InterfaceConfig("eth1", addresses=("192.0.2.1/24",)),
            InterfaceConfig("eth2", up=False, addresses=("198.51.100.1/24", "2001:db8:2::1/64")),
        )
    )
    ok(apply_network(config, previous=None, netns=ns))
    ip("-n", ns, "link", "set", "eth2", "up")  # drift
    result = ok(apply_network(config, previous=config, netns=ns))
    # Going down flushed eth2's IPv6 address; it was put back, on the down link.
    assert result.changes == ["bring eth2 down", "add 2001:db8:2::1/64 to eth2"]
    assert live_addresses(ns)["eth2"] == {"198.51.100.1/24", "2001:db8:2::1/64"}
    assert ok(apply_network(config, previous=config, netns=ns)).changes == []


HOSTILE_IN_NS = [
    (
        one_interface(name="eth0; reboot"),
        "interfaces[0].name: 'eth0; reboot' is not a valid interface name",
    ),
    (
        one_interface("192.0.2.5/24\n"),
        "interfaces[0].addresses[0]: '192.0.2.5/24\\n' is not an address with a prefix length",
    ),
    (
        NetworkConfig(
            (
                InterfaceConfig("eth1", addresses=("192.0.2.1/24",)),
                InterfaceConfig("eth2", addresses=("192.0.2.129/25",)),
            )
        ),
        "interfaces[1].addresses[0]: 192.0.2.129/25 overlaps 192.0.2.1/24 on eth1",
    ),
    (
        NetworkConfig(GUIDE.interfaces, (RouteConfig("192.168.100.0/24", "198.51.100.1"),)),
        "routes[0].gateway: 198.51.100.1 is not in any configured subnet",
    ),
    (one_interface(name="eth9"), "interfaces[0].name: there is no interface eth9"),
    (
        NetworkConfig(GUIDE.interfaces, (RouteConfig("192.168.100.1/24", "192.168.20.2"),)),
        "routes[0].destination: '192.168.100.1/24' has host bits set",
    ),
    (
        one_interface("192.0.2.5/24", "192.0.2.5/24"),
        "interfaces[0].addresses[1]: 192.0.2.5 is already configured",
    ),
    (
        one_interface("192.0.2.5/24", mtu=65536),
        "interfaces[0].mtu: 65536 is not between 68 and 65535",
    ),
]


@needs_netns
@pytest.mark.parametrize(("config", "message"), HOSTILE_IN_NS)
def test_invalid_configs_apply_nothing(ns: str, config: NetworkConfig, message: str) -> None:
    ok(apply_network(GUIDE, previous=None, netns=ns))
    before = snapshot(ns)
    live = [i.name for i in netinfo.interfaces(ns)]
    assert any(message in problem for problem in validate_network(config, live))
    result = apply_network(config, previous=GUIDE, netns=ns)
    assert not result.ok and result.error is not None
    assert result.error.startswith("refused, nothing applied: ") and message in result.error
    assert result.changes == [] and result.rollback == []
    assert snapshot(ns) == before
    with pytest.raises(ValueError) as refused:
        plan_network(config, previous=GUIDE, netns=ns)
    assert message in str(refused.value)


@needs_netns
def test_a_failing_step_is_rolled_back(ns: str) -> None:
    """The address under the new route's gateway vanishes just before the route is set: ip
    refuses the route, and everything done so far is undone."""
    ok(apply_network(GUIDE, previous=None, netns=ns))
    applied = snapshot(ns)
    bigger = NetworkConfig(
        interfaces=(
            InterfaceConfig("eth1", mtu=1500, addresses=("192.168.20.1/24", "198.51.100.1/24")),
            InterfaceConfig("eth2", mtu=1500, addresses=("203.0.113.1/24",)),
        ),
        routes=(GUIDE.routes[1], RouteConfig("10.20.0.0/16", "198.51.100.2")),
    )
    seen: list[str] = []

    def pull_the_rug(description: str) -> None:
        seen.append(description)
        if description == "set route 10.20.0.0/16 via 198.51.100.2":
            ip("-n", ns, "addr", "del", "198.51.100.1/24", "dev", "eth1")

    result = apply_network(bigger, previous=GUIDE, netns=ns, on_step=pull_the_rug)
    assert not result.ok
    assert result.error == (
        "set route 10.20.0.0/16 via 198.51.100.2: ip -4 route replace 10.20.0.0/16 via "
        "198.51.100.2 proto static metric 0 table main exited 2: Error: Nexthop has invalid "
        "gateway.; rolled back"
    )
    assert (
        result.changes
        == seen[:-1]
        == [
            "remove route 192.168.100.0/24 via 192.168.20.2 dev eth1",
            "remove route default via 2001:db8:20::fe dev eth1",
            "set eth1 MTU 1500 (was 9000)",
            "set eth2 MTU 1500 (was 1400)",
            "remove 2001:db8:20::1/64 from eth1",
            "add 198.51.100.1/24 to eth1",
        ]
    )
    assert result.rolled_back
    assert result.rollback == [
        "set eth1 MTU 9000 (was 1500)",
        "set eth2 MTU 1400 (was 1500)",
        "add 2001:db8:20::1/64 to eth1",
        "set route 192.168.100.0/24 via 192.168.20.2 dev eth1",
        "set route default via 2001:db8:20::fe dev eth1",
    ]
    assert snapshot(ns) == applied
    assert read_network(ns) == GUIDE_LIVE


@needs_netns
def test_an_interface_that_disappears_mid_apply_is_rolled_back(ns: str) -> None:
    original = snapshot(ns)

    def unplug(description: str) -> None:
        if description == "add 203.0.113.1/24 to eth2":
            ip("-n", ns, "link", "del", "eth2")

    result = apply_network(GUIDE, previous=None, netns=ns, on_step=unplug)
    assert not result.ok and result.rolled_back
    assert result.error == (
        "add 203.0.113.1/24 to eth2: ip -4 addr add 203.0.113.1/24 broadcast + dev eth2 exited "
        '1: Cannot find device "eth2"; rolled back (no longer here: eth2)'
    )
    assert result.rollback == [
        "bring eth1 down",
        "set eth1 MTU 1500 (was 9000)",
        "remove 192.168.20.1/24 from eth1",
    ]
    addresses, links, routes = original
    assert snapshot(ns) == ({"eth1": addresses["eth1"]}, {"eth1": links["eth1"]}, routes)


@needs_netns
def test_a_hook_that_raises_counts_as_a_failed_step(ns: str) -> None:
    def boom(description: str) -> None:
        if description.startswith("add "):
            raise netinfo.NetinfoError("the operator pulled the plug")

    result = apply_network(GUIDE, previous=None, netns=ns, on_step=boom)
    assert not result.ok and result.rolled_back
    assert result.error == "add 192.168.20.1/24 to eth1: the operator pulled the plug; rolled back"
    assert read_network(ns) == result.before


@needs_netns
def test_read_network_in_a_namespace_skips_what_it_does_not_manage(ns: str) -> None:
    ip("-n", ns, "link", "set", "eth1", "up")
    ip("-n", ns, "addr", "add", "192.0.2.1/24", "dev", "eth1")
    dhcp = ["192.0.2.7/24", "dev", "eth1", "valid_lft", "300", "preferred_lft", "300"]
    ip("-n", ns, "addr", "add", *dhcp)
    ip("-n", ns, "route", "add", "blackhole", "10.1.0.0/16")
    multipath = ["nexthop", "via", "192.0.2.2", "nexthop", "via", "192.0.2.3"]
    ip("-n", ns, "route", "add", "10.2.0.0/16", *multipath)
    ip("-n", ns, "route", "add", "10.4.0.7", "via", "192.0.2.2")
    config = read_network(ns)
    assert config.interfaces[0] == InterfaceConfig("eth1", True, 1500, ("192.0.2.1/24",))
    assert config.routes == (RouteConfig("10.4.0.7/32", "192.0.2.2", "eth1"),)
    flags = {str(a.address): a.dynamic for link in netinfo.links(ns) for a in link.addresses}
    assert flags["192.0.2.7/24"] is True and flags["192.0.2.1/24"] is False
    types = {str(r.destination): (r.type, r.multipath) for r in netinfo.routes(ns)}
    assert types["10.1.0.0/16"] == ("blackhole", False)
    assert types["10.2.0.0/16"] == ("unicast", True)
    # Taking over: the live state as desired is a valid config; the route made by hand
    # becomes the appliance's (set again, as its own protocol), and then it is a no-op.
    assert validate_network(config, [i.name for i in netinfo.interfaces(ns)]) == []
    assert validate_against_live(config, previous=None, netns=ns) == []
    taken = ok(apply_network(config, previous=None, netns=ns)).changes
    assert taken == ["set route 10.4.0.7/32 via 192.0.2.2 dev eth1"]
    assert ok(apply_network(config, previous=config, netns=ns)).changes == []


@needs_netns
def test_an_unknown_namespace_is_an_error_not_an_exception() -> None:
    result = apply_network(GUIDE, previous=None, netns=f"{NS}-missing")
    assert not result.ok and result.error is not None
    assert result.error.startswith("cannot read the live state: ")
    assert "Cannot open network namespace" in result.error


# ---------------------------------------------------------------------------------------------
# Hostname and DNS (files under tmp_path)

IDENTITY = HostIdentity(
    hostname="lbmaster.example.com",
    dns_servers=("192.0.2.53", "2001:db8::53"),
    search=("example.com", "corp.example.com"),
)


def files(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_write_identity_writes_exact_files(tmp_path: Path) -> None:
    write_identity(IDENTITY, etc_dir=tmp_path)
    assert files(tmp_path) == {
        "hostname": "lbmaster.example.com\n",
        "hosts": "127.0.0.1\tlocalhost\n"
        "127.0.1.1\tlbmaster.example.com lbmaster\n"
        "\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n",
        "resolv.conf": "# Written by lbadmin (Local Configuration > Hostname & DNS); changes "
        "here are overwritten.\n"
        "search example.com corp.example.com\n"
        "nameserver 192.0.2.53\n"
        "nameserver 2001:db8::53\n",
    }
    assert all((tmp_path / name).stat().st_mode & 0o777 == 0o644 for name in files(tmp_path))
    assert read_identity(etc_dir=tmp_path) == IDENTITY

    # Again, with a short name, no search domain and one server: the other hosts lines stay.
    (tmp_path / "hosts").write_text(
        "127.0.0.1 localhost\n# a comment\n127.0.1.1 old-name old\n192.0.2.80 intranet"
    )
    write_identity(HostIdentity("lb2", ("2001:DB8:0::53",)), etc_dir=tmp_path)
    assert files(tmp_path) == {
        "hostname": "lb2\n",
        "hosts": "127.0.0.1 localhost\n127.0.1.1\tlb2\n# a comment\n192.0.2.80 intranet\n",
        "resolv.conf": "# Written by lbadmin (Local Configuration > Hostname & DNS); changes "
        "here are overwritten.\n"
        "nameserver 2001:db8::53\n",
    }
    write_identity(HostIdentity("lb3"), etc_dir=tmp_path, update_hosts=False)
    assert "lb2" in (tmp_path / "hosts").read_text()
    assert (tmp_path / "hostname").read_text() == "lb3\n"


def test_a_resolv_conf_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "stub-resolv.conf"
    target.write_text("nameserver 127.0.0.53\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").symlink_to(target)
    write_identity(IDENTITY, etc_dir=etc)
    assert not (etc / "resolv.conf").is_symlink()
    assert "nameserver 192.0.2.53" in (etc / "resolv.conf").read_text()
    assert target.read_text() == "nameserver 127.0.0.53\n"


def test_boundaries_of_a_hostname(tmp_path: Path) -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters
    assert len(longest) == 253
    for name in ("a", "a" * 63, "lb-1", "1lb", "LB1.Example.COM", longest):
        assert validate_identity(HostIdentity(name)) == [], name
    write_identity(HostIdentity(longest), etc_dir=tmp_path)
    assert (tmp_path / "hostname").read_text() == longest + "\n"


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (HostIdentity("a;b"), "hostname: 'a;b': each label must be"),
        (HostIdentity("-a"), "hostname: '-a': each label"),
        (HostIdentity("a-"), "hostname: 'a-': each label"),
        (HostIdentity("a" * 64), f"hostname: {'a' * 64!r}: each label must be 1 to 63"),
        (HostIdentity("lb\n"), "hostname: 'lb\\n': each label"),
        (HostIdentity("lb\nnameserver 6.6.6.6"), "hostname: 'lb\\nnameserver 6.6.6.6': each label"),
        (HostIdentity("a b"), "hostname: 'a b': each label"),
        (HostIdentity("a..b"), "hostname: 'a..b': each label"),
        (HostIdentity("lb."), "hostname: 'lb.': each label"),
        (HostIdentity("lb_1"), "hostname: 'lb_1': each label"),
        (HostIdentity("lbé"), "hostname: 'lbé': each label"),
        (HostIdentity(""), "hostname: '' is not a host name"),
        (HostIdentity(None), "hostname: None is not a host name"),  # type: ignore[arg-type]
        (HostIdentity(".".join(["a" * 63] * 4)), "hostname: longer than 253 characters"),
        (HostIdentity("192.0.2.1"), "hostname: '192.0.2.1' is an IP address, not a host name"),
        (
            HostIdentity("lb", ("192.0.2.53; reboot",)),
            "dns_servers[0]: '192.0.2.53; reboot' is not an IP address",
        ),
        (HostIdentity("lb", ("192.0.2.53\n",)), "dns_servers[0]: '192.0.2.53\\n' is not an IP"),
        (
            HostIdentity("lb", ("192.0.2.53 192.0.2.54",)),
            "dns_servers[0]: '192.0.2.53 192.0.2.54' is not an IP address",
        ),
        (
            HostIdentity("lb", ("dns.example.com",)),
            "dns_servers[0]: 'dns.example.com' is not an IP address",
        ),
        (
            HostIdentity("lb", ("192.0.2.0/24",)),
            "dns_servers[0]: '192.0.2.0/24' is not an IP address",
        ),
        (HostIdentity("lb", ("0.0.0.0",)), "dns_servers[0]: 0.0.0.0 cannot be a DNS server"),
        (HostIdentity("lb", ("ff02::1",)), "dns_servers[0]: ff02::1 cannot be a DNS server"),
        (HostIdentity("lb", ("fe80::1",)), "dns_servers[0]: a link-local address needs a zone"),
        (
            HostIdentity("lb", ("fe80::1%eth0",)),
            "dns_servers[0]: 'fe80::1%eth0' is not an IP address",
        ),
        (HostIdentity("lb", ("192.0.2.1", "192.0.2.1")), "dns_servers[1]: 192.0.2.1 is listed"),
        (
            HostIdentity("lb", ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")),
            "dns_servers: at most 3",
        ),
        (HostIdentity("lb", (), ("-bad.example",)), "search[0]: '-bad.example': each label"),
        (HostIdentity("lb", (), ("a;b",)), "search[0]: 'a;b': each label"),
        (
            HostIdentity("lb", (), ("example.com\nnameserver 6.6.6.6",)),
            "search[0]: 'example.com\\nnameserver 6.6.6.6': each label",
        ),
        (
            HostIdentity("lb", (), tuple(f"d{i}.example" for i in range(7))),
            "search: at most 6 domains",
        ),
        (HostIdentity("lb", (), ("a.example", "a.example")), "search[1]: a.example is listed"),
        (HostIdentity("lb", "192.0.2.1"), "dns_servers: a tuple"),  # type: ignore[arg-type]
        ("lb", "identity: a HostIdentity"),
    ],
)
def test_hostile_identities_are_refused(identity: object, message: str, tmp_path: Path) -> None:
    problems = validate_identity(identity)  # type: ignore[arg-type]
    assert any(message in problem for problem in problems), problems
    with pytest.raises(ValueError) as refused:
        write_identity(identity, etc_dir=tmp_path, set_kernel_hostname=True)  # type: ignore[arg-type]
    assert message in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_write_identity_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NetconfigError, match="is not a directory"):
        write_identity(IDENTITY, etc_dir=tmp_path / "missing")
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anyway
        with pytest.raises(NetconfigError, match="cannot write under"):
            write_identity(IDENTITY, etc_dir=tmp_path / "ro")
        assert list((tmp_path / "ro").iterdir()) == []


def test_read_identity_of_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text(
        "# generated\ndomain old.example\nnameserver 192.0.2.1 # main\n"
        "options edns0\nsearch a.example b.example\nnameserver 192.0.2.2\n"
    )
    assert read_identity(etc_dir=tmp_path) == HostIdentity(
        socket.gethostname(), ("192.0.2.1", "192.0.2.2"), ("a.example", "b.example")
    )


@pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="a UTS namespace needs root and unshare (util-linux)",
)
def test_the_kernel_hostname_is_set_only_when_asked(tmp_path: Path) -> None:
    """In a UTS namespace of its own, so the machine's hostname never changes."""
    mine = socket.gethostname()
    program = (
        "import socket, sys; from pathlib import Path; "
        "from lbadmin.engines.netconfig import HostIdentity, write_identity; "
        "before = socket.gethostname(); "
        "write_identity(HostIdentity('lb-uts-a'), etc_dir=Path(sys.argv[1])); "
        "unchanged = socket.gethostname() == before; "
        "write_identity(HostIdentity('lb-uts-b'), etc_dir=Path(sys.argv[1]), "
        "set_kernel_hostname=True); "
        "print(unchanged, socket.gethostname())"
    )
    result = subprocess.run(
        ["unshare", "--uts", "--", sys.executable, "-c", program, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "lb-uts-b"]
    assert (tmp_path / "hostname").read_text() == "lb-uts-b\n"
    assert socket.gethostname() == mine
