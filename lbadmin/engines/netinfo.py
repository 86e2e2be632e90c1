"""This node's interfaces and addresses, and the sysctl that lets daemons bind floating ones.

What the HA pair needs from the network: which interface a floating address (VIP) belongs on,
whether this node holds it right now (the VRRP MASTER does), and
``net.ipv4/ipv6.ip_nonlocal_bind`` so HAProxy and stunnel on the BACKUP can bind VIPs they do
not hold yet (keepalived adds and removes the addresses under them).

No Django. Every command is an argument list (``ip``, ``sysctl``), never a shell; every wait is
bounded (``TIMEOUT_S``) and output is capped (``MAX_OUTPUT_BYTES``); a failure raises
``NetinfoError`` carrying the command's own words (all of it ``processes.run_command``'s doing).
Each function takes ``netns``: the name of a network namespace (``ip netns add``) to look into
instead of the caller's own.

Measured on iproute2 6.1 / Linux 6.x:
- ``ip -j addr show`` prints one JSON object per interface: ``ifname``, ``flags`` (``UP``,
  ``LOWER_UP``, ``NO-CARRIER`` …), ``operstate`` (``UP``, ``DOWN``, ``UNKNOWN`` for loopback,
  ``LOWERLAYERDOWN``), ``mtu``, ``address`` (the MAC; absent on some tunnel devices) and
  ``addr_info`` (``family`` inet/inet6, ``local``, ``prefixlen``). A veth whose peer is down is
  ``UP`` without ``LOWER_UP``: it cannot pass traffic, so it counts as down here.
- ``ip -n <ns> …`` runs in the namespace ``/run/netns/<ns>`` and fails ("Cannot open network
  namespace") for an unknown one.
- ``ip_nonlocal_bind`` is per network namespace for both IPv4 and IPv6: setting it inside a
  namespace leaves the others (and the root namespace) unchanged. ``/proc/sys/net`` shows the
  namespace of the process that reads it, so ``ip netns exec <ns> sysctl`` sets the
  namespace's own value.
- keepalived adds a VIP as ``<vip>/32`` (``/128``) ``scope global`` on the instance's
  interface, next to the node's own ``/24``, and removes it on leaving MASTER (not when it is
  SIGKILLed: then the address stays until the interface or node goes away).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lbadmin.engines.daemons import find_binary
from lbadmin.engines.processes import run_command

TIMEOUT_S = 10.0
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # ~40,000 addresses of JSON; more is not a real node

# A name under /run/netns: no '/', not '.' or '..', and no leading '-' (it would be read as an
# option by ip).
_NETNS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}")

_SYSCTLS = ("net.ipv4.ip_nonlocal_bind", "net.ipv6.ip_nonlocal_bind")
_PROC_SYS = Path("/proc/sys")

InterfaceAddress = ipaddress.IPv4Interface | ipaddress.IPv6Interface
_Entry = TypeVar("_Entry")


class NetinfoError(RuntimeError):
    """A command failed, timed out or printed what we cannot read; the message quotes it."""


@dataclass(frozen=True)
class Interface:
    name: str
    state: str  # "up": administratively up and with carrier (LOWER_UP); otherwise "down"
    mtu: int
    mac: str | None  # "00:00:00:00:00:00" on loopback; None for devices without one
    addresses: tuple[InterfaceAddress, ...]  # e.g. IPv4Interface("192.0.2.1/24"), in ip's order

    @property
    def is_up(self) -> bool:
        return self.state == "up"


def _netns(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NETNS.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid network namespace name: {value!r}")
    return value


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise ValueError(f"not an IP address: {value!r}")
    if "%" in value:  # a scope ("fe80::1%eth0"): ipaddress takes any text after it
        raise ValueError(f"not an IP address without a scope: {value!r}")
    return ipaddress.ip_address(value)  # ValueError for anything else


def _binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise NetinfoError(f"{name} is not installed (apt-get install iproute2 procps)")
    return path


def _run(argv: list[str]) -> str:
    # The limits are read at each call: tests lower them.
    return run_command(
        argv, timeout=TIMEOUT_S, max_output=MAX_OUTPUT_BYTES, error=NetinfoError
    ).text


def run_ip(netns: str | None, *args: str) -> str:
    """``ip [-n netns] <args>``'s output: an argument list, a bounded wait and output, and
    NetinfoError with ip's own words when it fails."""
    ns = _netns(netns)
    return _run([_binary("ip"), *(["-n", ns] if ns else []), *args])


def _interface(entry: dict) -> Interface:
    flags = entry.get("flags") or []
    addresses: list[InterfaceAddress] = []
    for info in entry.get("addr_info") or []:
        if info.get("family") not in ("inet", "inet6") or "local" not in info:
            continue
        addresses.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
    return Interface(
        name=str(entry["ifname"]),
        state="up" if "UP" in flags and "LOWER_UP" in flags else "down",
        mtu=int(entry.get("mtu", 0)),
        mac=entry.get("address"),
        addresses=tuple(addresses),
    )


def _addr_show(netns: str | None, read: Callable[[dict], _Entry]) -> list[_Entry]:
    """``read`` of each interface ``ip -j addr show`` prints, in ifindex order."""
    text = run_ip(netns, "-j", "addr", "show")
    try:
        entries = json.loads(text)
        if not isinstance(entries, list):
            raise TypeError(f"a list of interfaces, not {type(entries).__name__}")
        return [read(entry) for entry in entries]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NetinfoError(f"cannot read the output of ip -j addr show: {exc}") from exc


def interfaces(netns: str | None = None) -> list[Interface]:
    """Every interface of this node (or of ``netns``), in ifindex order, from
    ``ip -j addr show``."""
    return _addr_show(netns, _interface)


def interface_for(
    address: str, netns: str | None = None, *, among: list[Interface] | None = None
) -> str | None:
    """The interface whose configured subnet contains ``address``: where a VIP floats.
    ``among``: interfaces already read (one read for many addresses), else read now.

    Host routes (``/32``, ``/128``, such as a VIP keepalived added) are not subnets and are
    skipped, so the answer is the same on the MASTER and the BACKUP. The longest prefix wins;
    None when no interface has such a subnet, or when two interfaces share the best one (an
    ambiguous configuration — e.g. any link-local ``fe80::`` address — is not guessed at).
    """
    wanted = _address(address)
    best_prefix, names = -1, []
    for interface in interfaces(netns) if among is None else among:
        for configured in interface.addresses:
            network = configured.network
            if network.version != wanted.version or network.prefixlen == network.max_prefixlen:
                continue
            if wanted not in network:
                continue
            if network.prefixlen > best_prefix:
                best_prefix, names = network.prefixlen, [interface.name]
            elif network.prefixlen == best_prefix and interface.name not in names:
                names.append(interface.name)
    return names[0] if len(names) == 1 else None


def holds_address(address: str, netns: str | None = None) -> bool:
    """Whether ``address`` is configured on any interface of this node (or ``netns``) now:
    the VRRP MASTER holds the floating addresses, the BACKUP does not."""
    wanted = _address(address)
    return any(
        configured.ip == wanted
        for interface in interfaces(netns)
        for configured in interface.addresses
    )


def _sysctls() -> tuple[str, ...]:
    # Without IPv6 in the kernel (ipv6.disable=1) there is no net.ipv6 tree, in any namespace.
    ipv6 = (_PROC_SYS / "net" / "ipv6").is_dir()
    return tuple(name for name in _SYSCTLS if ipv6 or not name.startswith("net.ipv6."))


def _proc_path(name: str) -> Path:
    return _PROC_SYS.joinpath(*name.split("."))


def set_nonlocal_bind(enabled: bool = True, netns: str | None = None) -> None:
    """Set net.ipv4.ip_nonlocal_bind and net.ipv6.ip_nonlocal_bind (per network namespace) in
    this namespace or in ``netns``: with 1, HAProxy and stunnel on the BACKUP can bind the
    VIPs before keepalived adds them. Needs root (CAP_NET_ADMIN in the namespace)."""
    if type(enabled) is not bool:
        raise ValueError(f"enabled must be True or False: {enabled!r}")
    value = "1" if enabled else "0"
    ns = _netns(netns)
    if ns is None:
        for name in _sysctls():
            try:
                _proc_path(name).write_text(value + "\n")
            except OSError as exc:
                raise NetinfoError(f"cannot set {name}={value}: {exc}") from exc
        return
    _run(
        [
            _binary("ip"),
            "netns",
            "exec",
            ns,
            _binary("sysctl"),
            "-q",
            "-w",
            *(f"{name}={value}" for name in _sysctls()),
        ]
    )


def nonlocal_bind(netns: str | None = None) -> bool:
    """Whether ip_nonlocal_bind is on (for IPv4 and, where the kernel has it, IPv6)."""
    ns = _netns(netns)
    names = _sysctls()
    if ns is None:
        try:
            values = [_proc_path(name).read_text().strip() for name in names]
        except OSError as exc:
            raise NetinfoError(f"cannot read {', '.join(names)}: {exc}") from exc
    else:
        output = _run([_binary("ip"), "netns", "exec", ns, _binary("sysctl"), "-n", *names])
        values = output.split()
    if len(values) != len(names):
        raise NetinfoError(f"unexpected sysctl output for {', '.join(names)}: {values!r}")
    return all(value == "1" for value in values)


# ---------------------------------------------------------------------------------------------
# Links with their addresses' flags, and routes (what Local Configuration reads; see netconfig)
#
# Measured on iproute2 6.1 / Linux 6.x:
# - ``addr_info`` entries carry ``scope`` (global, link, host), ``dynamic`` (DHCP/SLAAC: a
#   finite lifetime), ``tentative`` (IPv6 DAD not finished; also while the link is down) and
#   ``dadfailed``. Global IPv6 addresses are listed newest first; IPv4 ones primary first.
# - ``ip -j route show table main`` lists IPv4 only (``-6`` for IPv6). ``dst`` is "default" for
#   a /0 and has no prefix length for a host route ("10.4.0.7", "2001:db8:7::5"). ``protocol``
#   is absent for "boot" (what ``ip route add`` uses by default), ``metric`` is absent for an
#   IPv4 metric 0 (IPv6 always has one, 1024 by default), ``type`` is absent for unicast
#   ("blackhole", "unreachable" …), and a multipath route has ``nexthops`` instead of
#   ``gateway``/``dev``.


@dataclass(frozen=True)
class LinkAddress:
    address: InterfaceAddress
    scope: str  # "global", "link", "host", "site"
    dynamic: bool  # has a finite lifetime (DHCP, SLAAC)
    tentative: bool  # IPv6 duplicate address detection not finished (or the link is down)
    dadfailed: bool  # IPv6 duplicate address detection found the address in use
    label: str | None = None  # an IPv4 address's label when it is not the interface's name


@dataclass(frozen=True)
class Link:
    name: str
    admin_up: bool  # the UP flag (``ip link set … up``), whatever the carrier
    lower_up: bool  # carrier (LOWER_UP)
    loopback: bool
    mtu: int
    mac: str | None
    addresses: tuple[LinkAddress, ...]  # in ip's order


@dataclass(frozen=True)
class Route:
    destination: ipaddress.IPv4Network | ipaddress.IPv6Network  # "default" is 0.0.0.0/0, ::/0
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    interface: str | None
    protocol: str  # "boot" (ip's default), "static", "kernel", "dhcp", "ra", or a number
    metric: int  # 0 when ip prints none (IPv4)
    type: str  # "unicast" when ip prints none; "blackhole", "unreachable", …
    scope: str  # "global" when ip prints none; "link" for a route without gateway, …
    multipath: bool  # several nexthops (gateway and interface are then None)
    source: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None  # ``src`` (prefsrc)

    @property
    def is_default(self) -> bool:
        return self.destination.prefixlen == 0


def _label(value: object, ifname: str) -> str | None:
    """An address label worth keeping: another name than the interface's, as ip accepts it
    back (the interface's name, then ':' and at most 15 bytes in all); None otherwise."""
    if not isinstance(value, str) or value == ifname:
        return None
    if not _LABEL.fullmatch(value) or not value.startswith(ifname + ":"):
        return None  # not one ip would take back: not kept
    return value


def _link(entry: dict) -> Link:
    flags = entry.get("flags") or []
    addresses: list[LinkAddress] = []
    for info in entry.get("addr_info") or []:
        if info.get("family") not in ("inet", "inet6") or "local" not in info:
            continue
        addresses.append(
            LinkAddress(
                address=ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"),
                scope=str(info.get("scope", "global")),
                dynamic=bool(info.get("dynamic", False)),
                tentative=bool(info.get("tentative", False)),
                dadfailed=bool(info.get("dadfailed", False)),
                label=_label(info.get("label"), str(entry["ifname"])),
            )
        )
    return Link(
        name=str(entry["ifname"]),
        admin_up="UP" in flags,
        lower_up="LOWER_UP" in flags,
        loopback="LOOPBACK" in flags,
        mtu=int(entry.get("mtu", 0)),
        mac=entry.get("address"),
        addresses=tuple(addresses),
    )


def links(netns: str | None = None) -> list[Link]:
    """Every interface of this node (or of ``netns``), in ifindex order, with its
    administrative state and its addresses' flags, from ``ip -j addr show``."""
    return _addr_show(netns, _link)


def _route(entry: dict, version: int) -> Route:
    dst = str(entry["dst"])
    if dst == "default":
        dst = "0.0.0.0/0" if version == 4 else "::/0"
    destination = ipaddress.ip_network(dst)  # a host route has no "/32": ip_network adds it
    gateway = ipaddress.ip_address(entry["gateway"]) if "gateway" in entry else None
    if destination.version != version or (gateway is not None and gateway.version != version):
        raise ValueError(f"an IPv{version} route with {entry.get('dst')!r} via {gateway}")
    return Route(
        destination=destination,
        gateway=gateway,
        interface=str(entry["dev"]) if "dev" in entry else None,
        protocol=str(entry.get("protocol", "boot")),
        metric=int(entry.get("metric", 0)),
        type=str(entry.get("type", "unicast")),
        scope=str(entry.get("scope", "global")),
        multipath="nexthops" in entry,
        source=ipaddress.ip_address(entry["prefsrc"]) if "prefsrc" in entry else None,
    )


def routes(netns: str | None = None) -> list[Route]:
    """The main routing table of this node (or of ``netns``): IPv4 routes, then IPv6 ones
    (where the kernel has IPv6), in ip's order, from ``ip -j -4/-6 route show table main``."""
    result: list[Route] = []
    for version in (4, 6):
        if version == 6 and not (_PROC_SYS / "net" / "ipv6").is_dir():
            continue
        text = run_ip(netns, "-j", f"-{version}", "route", "show", "table", "main")
        try:
            entries = json.loads(text) if text.strip() else []
            if not isinstance(entries, list):
                raise TypeError(f"a list of routes, not {type(entries).__name__}")
            result.extend(_route(entry, version) for entry in entries)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NetinfoError(f"cannot read the output of ip -j -{version} route: {exc}") from exc
    return result


@dataclass(frozen=True)
class RouteChoice:
    """How this node reaches an address now (``ip route get``)."""

    interface: str | None
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    source: ipaddress.IPv4Address | ipaddress.IPv6Address | None


def route_get(address: str, netns: str | None = None) -> RouteChoice:
    """The interface, gateway and source address the kernel picks for ``address`` (an IP
    address, checked): the path a reply to a client at that address takes. NetinfoError when
    there is no route or ip fails."""
    target = _address(address)
    if isinstance(target, ipaddress.IPv6Address) and target.ipv4_mapped is not None:
        target = target.ipv4_mapped
    text = run_ip(netns, "-j", f"-{target.version}", "route", "get", str(target))
    try:
        entries = json.loads(text)
        entry = entries[0]
        gateway = ipaddress.ip_address(entry["gateway"]) if "gateway" in entry else None
        source = ipaddress.ip_address(entry["prefsrc"]) if "prefsrc" in entry else None
        interface = str(entry["dev"]) if "dev" in entry else None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise NetinfoError(f"cannot read the output of ip route get: {exc}") from exc
    return RouteChoice(interface=interface, gateway=gateway, source=source)


__all__ = [
    "Interface",
    "Link",
    "LinkAddress",
    "NetinfoError",
    "Route",
    "RouteChoice",
    "holds_address",
    "interface_for",
    "interfaces",
    "links",
    "nonlocal_bind",
    "route_get",
    "routes",
    "run_ip",
    "set_nonlocal_bind",
]
