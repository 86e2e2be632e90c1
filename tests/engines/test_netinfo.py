"""lbadmin.engines.netinfo: interfaces and addresses from ``ip -j addr show``, the interface a
VIP floats on, whether this node holds it, and ip_nonlocal_bind.

Parsing and the choice of interface are tested on recorded ``ip -j`` output; everything else
in a network namespace this module makes (a veth pair, documentation addresses) and removes,
pass or fail. The root namespace's sysctls are never changed: a test checks they are the same
afterwards.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines import netinfo
from lbadmin.engines.netinfo import Interface, NetinfoError

NS = f"nit{os.getpid()}"

needs_netns = pytest.mark.skipif(
    shutil.which("ip") is None or os.geteuid() != 0,
    reason="network namespaces need root and iproute2 (apt-get install iproute2)",
)

# Recorded from `ip -j addr show` (iproute2 6.1), trimmed of fields netinfo does not read.
RECORDED = [
    {
        "ifindex": 1,
        "ifname": "lo",
        "flags": ["LOOPBACK", "UP", "LOWER_UP"],
        "mtu": 65536,
        "operstate": "UNKNOWN",
        "address": "00:00:00:00:00:00",
        "addr_info": [
            {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"},
            {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host"},
        ],
    },
    {
        "ifindex": 2,
        "ifname": "eth1",
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "mtu": 1500,
        "operstate": "UP",
        "address": "66:02:ea:71:5f:36",
        "addr_info": [
            {"family": "inet", "local": "192.168.10.1", "prefixlen": 24, "scope": "global"},
            # A VIP keepalived added on the MASTER.
            {"family": "inet", "local": "192.168.10.10", "prefixlen": 32, "scope": "global"},
            {"family": "inet6", "local": "2001:db8:10::1", "prefixlen": 64, "scope": "global"},
            {"family": "inet6", "local": "fe80::6402:eaff:fe71:5f36", "prefixlen": 64},
        ],
    },
    {
        "ifindex": 3,
        "ifname": "eth2",
        # Administratively up, no carrier (the peer is down).
        "flags": ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"],
        "mtu": 9000,
        "operstate": "DOWN",
        "address": "36:62:2a:4d:e3:a2",
        "addr_info": [
            {"family": "inet", "local": "10.25.0.2", "prefixlen": 16, "scope": "global"},
            {"family": "inet", "local": "10.25.1.2", "prefixlen": 24, "scope": "global"},
            {"family": "inet6", "local": "fe80::3462:2aff:fe4d:e3a2", "prefixlen": 64},
        ],
    },
    {
        "ifindex": 4,
        "ifname": "tun0",
        "flags": ["POINTOPOINT", "NOARP"],
        "mtu": 1480,
        "operstate": "DOWN",
        "addr_info": [
            {
                "family": "inet",
                "local": "198.51.100.1",
                "address": "198.51.100.2",
                "prefixlen": 32,
            }
        ],
    },
]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, tuple[str, ...]]]:
    """netinfo reads RECORDED instead of running ip; the calls are returned."""
    calls: list[tuple[str | None, tuple[str, ...]]] = []

    def fake_ip(netns: str | None, *args: str) -> str:
        calls.append((netns, args))
        return json.dumps(RECORDED)

    monkeypatch.setattr(netinfo, "run_ip", fake_ip)
    return calls


def test_interfaces_are_parsed(recorded) -> None:
    interfaces = netinfo.interfaces()
    assert recorded == [(None, ("-j", "addr", "show"))]
    assert [i.name for i in interfaces] == ["lo", "eth1", "eth2", "tun0"]
    lo, eth1, eth2, tun0 = interfaces
    assert lo == Interface(
        name="lo",
        state="up",
        mtu=65536,
        mac="00:00:00:00:00:00",
        addresses=(ipaddress.ip_interface("127.0.0.1/8"), ipaddress.ip_interface("::1/128")),
    )
    assert eth1.is_up and eth1.mac == "66:02:ea:71:5f:36" and eth1.mtu == 1500
    assert eth1.addresses == (
        ipaddress.IPv4Interface("192.168.10.1/24"),
        ipaddress.IPv4Interface("192.168.10.10/32"),
        ipaddress.IPv6Interface("2001:db8:10::1/64"),
        ipaddress.IPv6Interface("fe80::6402:eaff:fe71:5f36/64"),
    )
    assert eth2.state == "down" and not eth2.is_up  # UP without LOWER_UP
    assert eth2.mtu == 9000
    assert tun0.mac is None and tun0.state == "down"
    assert tun0.addresses == (ipaddress.IPv4Interface("198.51.100.1/32"),)


def test_interface_for(recorded) -> None:
    assert netinfo.interface_for("192.168.10.20") == "eth1"
    # The VIP itself, held here as a /32: still its subnet's interface, as on the BACKUP.
    assert netinfo.interface_for("192.168.10.10") == "eth1"
    assert netinfo.interface_for("2001:db8:10::10") == "eth1"
    # The longest prefix wins: 10.25.1.0/24 over 10.25.0.0/16 (both on eth2 here).
    assert netinfo.interface_for("10.25.1.12") == "eth2"
    assert netinfo.interface_for("10.25.200.1") == "eth2"
    assert netinfo.interface_for("127.0.10.30") == "lo"
    # No subnet holds it; a point-to-point /32 is not a subnet.
    assert netinfo.interface_for("203.0.113.10") is None
    assert netinfo.interface_for("198.51.100.1") is None
    # fe80::/64 is on eth1 and eth2: ambiguous, so no guess.
    assert netinfo.interface_for("fe80::1") is None
    assert all(netns is None for netns, _args in recorded)


def test_holds_address(recorded) -> None:
    assert netinfo.holds_address("192.168.10.10")
    assert netinfo.holds_address("192.168.10.1")
    assert netinfo.holds_address("2001:db8:10::1")
    assert netinfo.holds_address("198.51.100.1")
    assert not netinfo.holds_address("192.168.10.20")
    assert not netinfo.holds_address("198.51.100.2")  # the tunnel's far end
    # Compared as addresses, not text.
    assert netinfo.holds_address("2001:db8:10:0::1")


@pytest.mark.parametrize(
    "output",
    [
        "not json",
        "{}",  # an object, not a list
        "[1]",
        '[{"flags": []}]',  # no ifname
        '[{"ifname": "x", "addr_info": [{"family": "inet", "local": "x", "prefixlen": 24}]}]',
        '[{"ifname": "x", "mtu": "big"}]',
    ],
)
def test_unreadable_ip_output_raises(output: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netinfo, "run_ip", lambda netns, *args: output)
    with pytest.raises(NetinfoError, match=r"^cannot read the output of ip -j addr show: "):
        netinfo.interfaces()


HOSTILE_NETNS = [
    "-n",
    "--all",
    "-",
    ".",
    "..",
    "../etc",
    "a/b",
    "a b",
    "a\n",
    "",
    "x" * 65,
    "é",
    1,
]


@pytest.mark.parametrize("netns", HOSTILE_NETNS)
def test_hostile_namespace_names_raise(netns: object, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(Path, "write_text", no_process)
    for call in (
        lambda: netinfo.interfaces(netns),
        lambda: netinfo.interface_for("192.0.2.1", netns),
        lambda: netinfo.holds_address("192.0.2.1", netns),
        lambda: netinfo.set_nonlocal_bind(True, netns),
        lambda: netinfo.nonlocal_bind(netns),
    ):
        with pytest.raises(
            ValueError, match=re.escape(f"invalid network namespace name: {netns!r}")
        ):
            call()


NOT_AN_ADDRESS = "does not appear to be an IPv4 or IPv6 address"


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("", f"'' {NOT_AN_ADDRESS}"),
        ("eth1", f"'eth1' {NOT_AN_ADDRESS}"),
        ("192.0.2.1/24", f"'192.0.2.1/24' {NOT_AN_ADDRESS}"),
        ("192.0.2.1 ", f"'192.0.2.1 ' {NOT_AN_ADDRESS}"),
        ("::g", f"'::g' {NOT_AN_ADDRESS}"),
        ("fe80::1%eth0", "not an IP address without a scope: 'fe80::1%eth0'"),
        (None, "not an IP address: None"),
        (1, "not an IP address: 1"),
    ],
)
def test_bad_addresses_raise(address: object, refusal: str, recorded) -> None:
    with pytest.raises(ValueError, match=re.escape(refusal)):
        netinfo.interface_for(address)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape(refusal)):
        netinfo.holds_address(address)  # type: ignore[arg-type]
    assert recorded == []  # refused before ip runs


@pytest.mark.parametrize("enabled", ["yes", 1, 0, None])
def test_set_nonlocal_bind_wants_a_bool(enabled: object, monkeypatch) -> None:
    monkeypatch.setattr(Path, "write_text", lambda *a, **k: pytest.fail("wrote a sysctl"))
    refusal = re.escape(f"enabled must be True or False: {enabled!r}")
    with pytest.raises(ValueError, match=refusal):
        netinfo.set_nonlocal_bind(enabled)  # type: ignore[arg-type]


def test_commands_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netinfo, "TIMEOUT_S", 0.2)
    with pytest.raises(NetinfoError, match="did not finish within"):
        netinfo._run(["sleep", "5"])
    monkeypatch.setattr(netinfo, "MAX_OUTPUT_BYTES", 10)
    with pytest.raises(NetinfoError, match="more than 10 bytes"):
        netinfo._run([sys.executable, "-c", "print('x' * 11)"])
    with pytest.raises(NetinfoError, match="exited 3: oops"):
        netinfo._run([sys.executable, "-c", "import sys; sys.stderr.write('oops'); sys.exit(3)"])


# ---------------------------------------------------------------------------------------------
# In a network namespace


def ip(*args: str) -> str:
    return subprocess.run(
        ["ip", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def root_sysctls() -> dict[str, str]:
    return {
        name: Path("/proc/sys", *name.split(".")).read_text()
        for name in ("net.ipv4.ip_nonlocal_bind", "net.ipv6.ip_nonlocal_bind")
    }


@pytest.fixture
def namespace() -> Iterator[str]:
    """NS with eth1 (veth, its peer eth1p up too): 192.0.2.1/24, 2001:db8::1/64 (no DAD)."""
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30, check=False)
    before = root_sysctls()
    try:
        ip("netns", "add", NS)
        ip("-n", NS, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
        ip("-n", NS, "addr", "add", "192.0.2.1/24", "dev", "eth1")
        ip("-n", NS, "addr", "add", "2001:db8::1/64", "dev", "eth1", "nodad")
        for name in ("lo", "eth1", "eth1p"):
            ip("-n", NS, "link", "set", name, "up")
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30, check=False)
        assert root_sysctls() == before, "the root namespace's sysctls changed"


@needs_netns
def test_interfaces_in_a_namespace(namespace: str) -> None:
    interfaces = {i.name: i for i in netinfo.interfaces(namespace)}
    assert set(interfaces) == {"lo", "eth1", "eth1p"}
    eth1 = interfaces["eth1"]
    assert eth1.is_up and eth1.mtu == 1500
    assert eth1.mac is not None and len(eth1.mac.split(":")) == 6
    assert ipaddress.IPv4Interface("192.0.2.1/24") in eth1.addresses
    assert ipaddress.IPv6Interface("2001:db8::1/64") in eth1.addresses
    assert interfaces["lo"].addresses == (
        ipaddress.IPv4Interface("127.0.0.1/8"),
        ipaddress.IPv6Interface("::1/128"),
    )
    # The peer going down takes eth1's carrier: still administratively up, but down.
    ip("-n", namespace, "link", "set", "eth1p", "down")
    states = {i.name: i.state for i in netinfo.interfaces(namespace)}
    assert states == {"lo": "up", "eth1": "down", "eth1p": "down"}


@needs_netns
def test_the_interface_a_vip_floats_on_and_who_holds_it(namespace: str) -> None:
    assert netinfo.interface_for("192.0.2.10", namespace) == "eth1"
    assert netinfo.interface_for("2001:db8::10", namespace) == "eth1"
    assert netinfo.interface_for("198.51.100.10", namespace) is None
    assert not netinfo.holds_address("192.0.2.10", namespace)
    # What keepalived does on becoming MASTER, and on leaving it.
    ip("-n", namespace, "addr", "add", "192.0.2.10/32", "dev", "eth1")
    ip("-n", namespace, "addr", "add", "2001:db8::10/128", "dev", "eth1", "nodad")
    assert netinfo.holds_address("192.0.2.10", namespace)
    assert netinfo.holds_address("2001:db8::10", namespace)
    assert netinfo.interface_for("192.0.2.10", namespace) == "eth1"
    assert not netinfo.holds_address("192.0.2.10")  # the root namespace has its own addresses
    ip("-n", namespace, "addr", "del", "192.0.2.10/32", "dev", "eth1")
    assert not netinfo.holds_address("192.0.2.10", namespace)
    assert netinfo.holds_address("2001:db8::10", namespace)


@needs_netns
def test_an_unknown_namespace_raises() -> None:
    missing = rf'exited \d+: Cannot open network namespace "{NS}-missing"'
    with pytest.raises(NetinfoError, match=f" -n {NS}-missing -j addr show {missing}"):
        netinfo.interfaces(f"{NS}-missing")
    with pytest.raises(
        NetinfoError, match=f" netns exec {NS}-missing .*ip_nonlocal_bind=1.* {missing}"
    ):
        netinfo.set_nonlocal_bind(True, f"{NS}-missing")


BIND = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
try:
    s.bind((sys.argv[1], 8443)); print("bound")
except OSError as error:
    print(error.errno)
"""


def bind_in(namespace: str, address: str) -> str:
    argv = ["ip", "netns", "exec", namespace, sys.executable, "-c", BIND, address]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


@needs_netns
def test_nonlocal_bind_lets_the_backup_bind_a_vip(namespace: str) -> None:
    # A fresh namespace starts with 0 (the default), whatever the root namespace has.
    assert not netinfo.nonlocal_bind(namespace)
    vips = ("192.0.2.10", "2001:db8::10")
    for vip in vips:
        assert bind_in(namespace, vip).strip() == "99"  # EADDRNOTAVAIL
    netinfo.set_nonlocal_bind(True, netns=namespace)
    assert netinfo.nonlocal_bind(namespace)
    for vip in vips:
        assert bind_in(namespace, vip).strip() == "bound"
    netinfo.set_nonlocal_bind(False, netns=namespace)
    assert not netinfo.nonlocal_bind(namespace)
    assert bind_in(namespace, "192.0.2.10").strip() == "99"


@needs_netns
def test_nonlocal_bind_in_the_current_namespace(namespace: str) -> None:
    """Without netns it writes /proc/sys of the caller's own namespace: run from inside NS,
    it sets NS's value (the root namespace's is checked unchanged by the fixture)."""
    program = (
        "from lbadmin.engines import netinfo; "
        "netinfo.set_nonlocal_bind(True); print(netinfo.nonlocal_bind())"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", program],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "True"
    assert netinfo.nonlocal_bind(namespace)
