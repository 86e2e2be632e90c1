"""The appliance's own network (interfaces, addresses, MTU, routes) and identity (hostname, DNS).

What *Local Configuration > Network Interface Configuration*, *Routing* and *Hostname & DNS*
apply on the node: the desired state is a frozen ``NetworkConfig`` / ``HostIdentity``;
``validate_network`` / ``validate_identity`` say what is wrong with it, field by field;
``apply_network`` makes the live state match it (and undoes itself on failure);
``read_network`` / ``read_identity`` show what is live; ``write_identity`` writes
``hostname``, ``resolv.conf`` and ``hosts`` under a directory (``/etc`` in production).

No Django. Every command is an argument list for ``ip`` (never a shell), built only from values
parsed with ``ipaddress`` and names checked against the live list; every call is bounded by
``netinfo.TIMEOUT_S``. Each network function takes ``netns``: a network namespace
(``ip netns add``) to work in instead of the caller's own. Live state is read through
``lbadmin.engines.netinfo`` (``links()``, ``routes()``).

Validation messages start with the field they are about, then ``": "``:
``interfaces[0].addresses[1]: …``, ``routes[2].gateway: …``, ``hostname: …``,
``dns_servers[0]: …``, ``search[1]: …`` (indexes into the config's tuples).

Decisions:
- Ownership, by record. The appliance manages the interfaces named in ``desired`` or
  ``previous`` (its record of what it applied last; None before the first apply); on those
  only the addresses stated there *for that interface*, and only the routes it set itself
  (protocol ``static``, OUR_PROTOCOL) to a destination stated in either. Anything else is
  never changed or removed: another address (a VIP keepalived holds on the MASTER, the
  installer's address, a DHCP or SLAAC address), a route made by hand (protocol ``boot``),
  by a DHCP client or by the kernel, an interface named in neither. Within that, live drift
  is corrected: a desired address or route that went missing is put back, a managed one that
  differs is replaced, a managed one no longer desired is removed. An interface dropped from
  ``desired`` but in ``previous`` loses its previous addresses; its MTU and up/down are left
  as they are. ``mtu=None`` leaves the MTU alone.
- Taking nothing from others (``validate_against_live``; ``apply_network`` refuses the same):
  an address whose IP is live elsewhere (or on the same interface with another prefix) and not
  on record, an address overlapping a live subnet not on record (foreign /32 and /128 make no
  subnet), a route to a live connected subnet or at the place (destination and metric) of a
  live route it did not set — unless it is the very same route, which is taken over — and an
  MTU below 1280 on a link carrying IPv6 addresses the configuration does not state.
- Putting back. What the appliance does not own and the kernel removed on the way (IPv6
  addresses and routes flushed with a link going down, secondaries of a deleted primary,
  routes that lost their link or source) is put back as it was before the apply — or as it
  was in ``baseline``, a ``LiveSnapshot`` taken before an earlier change that a revert undoes
  — with its label, protocol and source; never a dynamic address, one now live elsewhere, or
  one in ``keep_out`` (floating addresses: keepalived's to place).
- The loopback interface is not configurable (refused by name ``lo``; ``read_network`` omits
  every loopback device). Link-local addresses (``fe80::/10``, ``169.254.0.0/16``) belong to
  the kernel and are neither configured nor read; an IPv6 link-local *gateway* is allowed with
  an explicit interface (``default via fe80::1 dev eth1`` is common).
- Order (each phase computed from a fresh read, because the kernel has side effects):
  1. remove managed routes that are no longer desired (before the addresses they depend on);
  2. links: bring down, set MTU, bring up (down before addresses: a link going down flushes
     its IPv6 addresses, so they are added afterwards, to the down link, where they stay);
  3. remove managed addresses no longer desired (before adding: deleting a primary IPv4
     address takes its secondaries with it, promote_secondaries being 0 by default);
  4. add desired addresses that are missing (IPv4 with ``broadcast +``); then put back what
     the appliance does not own and the kernel removed since the start (see Putting back),
     each where it can still exist (link up, gateway on-link, source present);
  5. set desired routes that are missing or differ, with ``ip route replace … proto static``
     (atomic for the route the administrator may be using: the default gateway);
  6. remove its other routes to a desired destination (e.g. the old one with another
     metric). Then a fresh read must show nothing left to do, else it is a failure.
- Rollback. ``ApplyResult.before`` is a snapshot of the managed items as they were live (MTU,
  up, their addresses and routes). On a failed step the same engine converges back to it
  (best effort: every step is tried, failures are reported), so kernel side effects (routes
  flushed with an address, others' IPv6 addresses flushed with a link) are undone too. A
  revert of a confirmed-or-not change is ``apply_network(previous, previous=desired,
  baseline=snapshot_before_the_change)`` and restores ``previous`` exactly as far as it states
  it; ``read_network`` output states everything (MTU, up, addresses, routes).
- ``apply_network`` validates ``desired`` against the live interface list first and applies
  nothing if anything is wrong. It does not serialise concurrent callers (the service layer
  runs one apply per node at a time).
- Routes: one per destination (no ECMP); a destination is a network address with its prefix
  (host bits refused) or ``default`` (its family is the gateway's); ``metric=None`` is the
  kernel's default (0 for IPv4, 1024 for IPv6). Blackhole/unreachable and multipath routes are
  not represented and never touched. ``read_network`` reports each route's device as the
  kernel resolved it.
- IPv6 addresses are added with duplicate address detection (the kernel's default): they are
  ``tentative`` for about a second, and stay so while their link is down or has no carrier.
- Identity files are each replaced atomically (temporary file in the same directory, fsync,
  ``os.replace``), all three prepared before any is replaced. A ``resolv.conf`` symlink
  (resolvconf, systemd-resolved) is replaced by a plain file: the appliance owns DNS.
  ``hosts`` keeps every line but the ``127.0.1.1`` one, which names the host (as Debian's
  installer writes it), so ``sudo`` and friends can resolve the new name. The kernel hostname
  is only set when asked (``set_kernel_hostname=True``).

Measured on iproute2 6.1 / Linux 6.x (in network namespaces):
- Deleting an interface's last IPv4 address flushes every IPv4 route through that interface;
  a route through a link that is down, or whose gateway is in no connected subnet, is refused
  ("Error: Nexthop has invalid gateway."). ``ip route replace`` of a connected subnet replaces
  the kernel's own route (so such a destination is refused).
- ``ip link set … down`` flushes the link's IPv6 addresses (``keep_addr_on_down`` is 0 by
  default) and its routes; IPv6 addresses added to a down link stay. An MTU below 1280 removes
  every IPv6 address from the link, and adding one then fails ("RTNETLINK answers: Invalid
  argument").
- Deleting a primary IPv4 address deletes the secondaries of its subnet too (a namespace's
  ``promote_secondaries`` is 0; systemd's sysctl.d sets it to 1 on the host), and the routes
  whose ``src`` was one of them; with other IPv4 addresses left on the link, routes through
  a gateway in the deleted subnet stay (unreachable).
- ``ip route del <dst>`` without more deletes the first route to ``dst`` (any gateway, the
  lowest metric), so deletions name the exact gateway, device, protocol, metric and table.
- ip's words on failure: "Error: ipv4: Address already assigned.", "Error: ipv4: Address not
  found.", "RTNETLINK answers: No such process" (route to delete not found), 'Cannot find
  device "eth9"' (exit 1; the others exit 2).
- ``ip addr add`` sets no IPv4 broadcast address unless told (``broadcast +``).
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from lbadmin.engines import netinfo
from lbadmin.engines.netinfo import NetinfoError

MTU_MIN = 68
MTU_MAX = 65535
IPV6_MTU_MIN = 1280
METRIC_MAX = 2**32 - 1
MAX_INTERFACES = 256
MAX_ADDRESSES = 1024  # in the whole config
MAX_ROUTES = 1024
MAX_DNS_SERVERS = 3  # glibc's resolver reads three nameserver lines (MAXNS)
MAX_SEARCH_DOMAINS = 6
MAX_SEARCH_CHARS = 256
HOSTNAME_MAX = 253

DEFAULT_METRIC = {4: 0, 6: 1024}
STATIC_PROTOCOLS = ("boot", "static")  # ``ip route add`` by hand, and ours
OUR_PROTOCOL = "static"  # every route the appliance sets; "boot" is ip's default by hand
PRESERVED_PROTOCOLS = ("boot", "static", "dhcp")  # put back when the kernel flushes them
LOOPBACK_NAME = "lo"

# Linux allows most bytes in a name; the appliance only manages sensible ones (no leading '-',
# which ip would read as an option; no '/', ':', '@', whitespace; at most 15 bytes).
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_IP_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_PREFIXED_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}/[0-9]{1,3}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NetconfigError(RuntimeError):
    """A command or a file operation failed; the message quotes ip's (or the OS's) words."""


# ---------------------------------------------------------------------------------------------
# Desired state


@dataclass(frozen=True)
class InterfaceConfig:
    name: str
    up: bool = True
    mtu: int | None = None  # None: leave the MTU as it is
    addresses: tuple[str, ...] = ()  # "192.0.2.5/24", "2001:db8::5/64"


@dataclass(frozen=True)
class RouteConfig:
    destination: str  # "192.168.100.0/24", "2001:db8:100::/48" or "default"
    gateway: str | None = None  # None: a route straight onto ``interface``
    interface: str | None = None  # None: the one whose subnet holds the gateway
    metric: int | None = None  # None: the kernel's default (0 for IPv4, 1024 for IPv6)


@dataclass(frozen=True)
class NetworkConfig:
    interfaces: tuple[InterfaceConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()  # default gateways: destination "default"


@dataclass(frozen=True)
class HostIdentity:
    hostname: str
    dns_servers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    error: str | None = None  # what failed, with ip's own words; how the rollback went
    changes: list[str] = field(default_factory=list)  # the steps carried out, in order
    rollback: list[str] = field(default_factory=list)  # the steps that undid them
    rolled_back: bool = False  # after a failure: the managed items are back as they were
    before: NetworkConfig | None = None  # the managed items as they were live before


# ---------------------------------------------------------------------------------------------
# Parsing and validation


@dataclass(frozen=True)
class _Iface:
    name: str
    up: bool
    mtu: int | None
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True)
class _Route:
    destination: IPNetwork
    gateway: IPAddress | None
    interface: str | None
    metric: int | None

    @property
    def metric_value(self) -> int:
        return DEFAULT_METRIC[self.destination.version] if self.metric is None else self.metric


@dataclass(frozen=True)
class _Net:
    interfaces: tuple[_Iface, ...]
    routes: tuple[_Route, ...]


def _interface_name(value: object) -> str:
    if not isinstance(value, str) or not _IFNAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{value!r} is not a valid interface name")
    return value


def _ip(value: object) -> IPAddress:
    if not isinstance(value, str) or not _IP_TEXT.fullmatch(value):
        raise ValueError(f"{value!r} is not an IP address")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _interface_address(value: object) -> IPInterface:
    example = "such as 192.0.2.5/24 or 2001:db8::5/64"
    if not isinstance(value, str) or not _PREFIXED_TEXT.fullmatch(value):
        raise ValueError(f"{value!r} is not an address with a prefix length {example}")
    try:
        address = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an address with a prefix length {example}") from None
    ip, network = address.ip, address.network
    if network.prefixlen == 0:
        raise ValueError(f"{value!r}: a /0 prefix covers every address")
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast:
        raise ValueError(f"{value!r} cannot be an interface's address")
    if ip.is_link_local or ip in _LINK_LOCAL_V4:
        raise ValueError(f"{value!r} is link-local: the kernel manages those")
    if ip.version == 4 and (ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255")):
        raise ValueError(f"{value!r} is a reserved address")
    if ip.version == 6 and ip.ipv4_mapped is not None:
        raise ValueError(f"{value!r} is an IPv4-mapped address")
    if ip.version == 4 and network.prefixlen <= 30:
        if ip == network.network_address:
            raise ValueError(f"{value!r} is the network address of {network}")
        if ip == network.broadcast_address:
            raise ValueError(f"{value!r} is the broadcast address of {network}")
    if ip.version == 6 and network.prefixlen <= 126 and ip == network.network_address:
        raise ValueError(f"{value!r} is the subnet-router anycast address of {network}")
    return address


def _destination(value: object, gateway: IPAddress | None) -> IPNetwork:
    if value == "default":
        if gateway is None:
            raise ValueError("a default route needs a gateway (or write 0.0.0.0/0 or ::/0)")
        return ipaddress.ip_network("0.0.0.0/0" if gateway.version == 4 else "::/0")
    example = "such as 192.168.100.0/24, or default"
    if not isinstance(value, str) or not _PREFIXED_TEXT.fullmatch(value):
        raise ValueError(f"{value!r} is not a network with a prefix length {example}")
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a network with a prefix length {example}") from None
    if str(loose.network_address) != str(ipaddress.ip_interface(value).ip):
        raise ValueError(f"{value!r} has host bits set: the network is {loose}")
    if loose.network_address.is_loopback or loose.network_address.is_multicast:
        raise ValueError(f"{value!r} cannot be routed")
    if loose.version == 6 and loose.network_address.is_link_local:
        raise ValueError(f"{value!r} is link-local: the kernel manages those")
    return loose


def _metric(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= METRIC_MAX:
        raise ValueError(f"{value!r} is not a metric between 0 and {METRIC_MAX}")
    return value


def _parse(config: object, problems: list[str]) -> _Net:
    """The config with every value parsed; what cannot be parsed is left out and reported."""
    if not isinstance(config, NetworkConfig):
        problems.append(f"config: a NetworkConfig, not {type(config).__name__}")
        return _Net((), ())
    interfaces: list[_Iface] = []
    raw_interfaces = config.interfaces
    if not isinstance(raw_interfaces, tuple | list):
        problems.append("interfaces: a tuple of InterfaceConfig")
        raw_interfaces = ()
    if len(raw_interfaces) > MAX_INTERFACES:
        problems.append(f"interfaces: more than {MAX_INTERFACES}")
        raw_interfaces = ()
    total_addresses = 0
    for i, entry in enumerate(raw_interfaces):
        where = f"interfaces[{i}]"
        if not isinstance(entry, InterfaceConfig):
            problems.append(f"{where}: an InterfaceConfig, not {type(entry).__name__}")
            continue
        try:
            name = _interface_name(entry.name)
        except ValueError as exc:
            problems.append(f"{where}.name: {exc}")
            continue
        ok = True
        if type(entry.up) is not bool:
            problems.append(f"{where}.up: True or False, not {entry.up!r}")
            ok = False
        mtu = entry.mtu
        if mtu is not None and (type(mtu) is not int or not MTU_MIN <= mtu <= MTU_MAX):
            problems.append(f"{where}.mtu: {mtu!r} is not between {MTU_MIN} and {MTU_MAX}")
            ok = False
        addresses: list[IPInterface] = []
        raw_addresses = entry.addresses
        if not isinstance(raw_addresses, tuple | list):
            problems.append(f"{where}.addresses: a tuple of strings")
            raw_addresses = ()
        total_addresses += len(raw_addresses)
        if total_addresses > MAX_ADDRESSES:
            problems.append(f"{where}.addresses: more than {MAX_ADDRESSES} in all")
            raw_addresses = ()
        for j, text in enumerate(raw_addresses):
            try:
                addresses.append(_interface_address(text))
            except ValueError as exc:
                problems.append(f"{where}.addresses[{j}]: {exc}")
        if ok:
            interfaces.append(_Iface(name, entry.up, mtu, tuple(addresses)))
    routes: list[_Route] = []
    raw_routes = config.routes
    if not isinstance(raw_routes, tuple | list):
        problems.append("routes: a tuple of RouteConfig")
        raw_routes = ()
    if len(raw_routes) > MAX_ROUTES:
        problems.append(f"routes: more than {MAX_ROUTES}")
        raw_routes = ()
    for i, entry in enumerate(raw_routes):
        where = f"routes[{i}]"
        if not isinstance(entry, RouteConfig):
            problems.append(f"{where}: a RouteConfig, not {type(entry).__name__}")
            continue
        count = len(problems)
        gateway = interface = destination = metric = None
        if entry.gateway is not None:
            try:
                gateway = _ip(entry.gateway)
            except ValueError as exc:
                problems.append(f"{where}.gateway: {exc}")
        if entry.interface is not None:
            try:
                interface = _interface_name(entry.interface)
            except ValueError as exc:
                problems.append(f"{where}.interface: {exc}")
        if len(problems) == count:
            try:
                destination = _destination(entry.destination, gateway)
            except ValueError as exc:
                problems.append(f"{where}.destination: {exc}")
        try:
            metric = _metric(entry.metric)
        except ValueError as exc:
            problems.append(f"{where}.metric: {exc}")
        if len(problems) == count and destination is not None:
            routes.append(_Route(destination, gateway, interface, metric))
    return _Net(tuple(interfaces), tuple(routes))


def validate_network(config: NetworkConfig, live_interfaces: Iterable[object]) -> list[str]:
    """What is wrong with ``config`` on a node whose interfaces are ``live_interfaces`` (names,
    or objects with a ``name`` and ``addresses``: ``netinfo.Interface``/``netinfo.Link``); an
    empty list when nothing is. A gateway is reachable through a configured subnet or through
    one live on the node that the configuration does not state (the installer's address)."""
    items = list(live_interfaces)
    live = {getattr(item, "name", item) for item in items}
    live_addresses = {
        str(getattr(item, "name", item)): tuple(
            getattr(address, "address", address) for address in getattr(item, "addresses", ())
        )
        for item in items
    }
    problems: list[str] = []
    net = _parse(config, problems)
    if problems:
        return problems  # cross-checks on a partly parsed config would only confuse

    positions: dict[str, int] = {}
    for i, iface in enumerate(net.interfaces):
        where = f"interfaces[{i}]"
        if iface.name in positions:
            problems.append(f"{where}.name: {iface.name} is listed twice")
        positions.setdefault(iface.name, i)
        if iface.name == LOOPBACK_NAME:
            problems.append(f"{where}.name: the loopback interface is not configurable")
        elif iface.name not in live:
            problems.append(f"{where}.name: there is no interface {iface.name} on this node")
        has_v6 = any(address.version == 6 for address in iface.addresses)
        if has_v6 and iface.mtu is not None and iface.mtu < IPV6_MTU_MIN:
            problems.append(
                f"{where}.mtu: IPv6 needs an MTU of at least {IPV6_MTU_MIN} ({iface.mtu} given)"
            )

    # Addresses: no IP twice anywhere; no subnet shared by two interfaces.
    seen: dict[IPAddress, str] = {}
    placed: list[tuple[int, str, IPInterface]] = []
    for i, iface in enumerate(net.interfaces):
        for j, address in enumerate(iface.addresses):
            where = f"interfaces[{i}].addresses[{j}]"
            if address.ip in seen:
                problems.append(f"{where}: {address.ip} is already configured ({seen[address.ip]})")
                continue
            seen[address.ip] = f"{where}, {iface.name}"
            for other_i, other_name, other in placed:
                if not address.network.overlaps(other.network):
                    continue
                if other_i != i:
                    problems.append(
                        f"{where}: {address} overlaps {other} on {other_name} "
                        f"({address.network} and {other.network})"
                    )
                    break
                if address.network != other.network:  # a secondary shares the whole subnet
                    problems.append(
                        f"{where}: {address} overlaps {other} on the same interface with "
                        f"another prefix ({address.network} and {other.network})"
                    )
                    break
            placed.append((i, iface.name, address))

    by_name = {iface.name: iface for iface in net.interfaces}
    # Live subnets the configuration does not state: a gateway there is reachable too (while
    # the interface is up).
    unstated = [
        _Iface(
            link_name,
            by_name[link_name].up if link_name in by_name else True,
            None,
            tuple(
                address
                for address in addresses
                if not address.ip.is_link_local
                and address not in (by_name[link_name].addresses if link_name in by_name else ())
            ),
        )
        for link_name, addresses in live_addresses.items()
        if addresses and link_name != LOOPBACK_NAME
    ]
    connected = {
        address.network: iface.name
        for iface in net.interfaces
        for address in iface.addresses
        if address.network.prefixlen < address.network.max_prefixlen
    }
    destinations: dict[IPNetwork, int] = {}
    for i, route in enumerate(net.routes):
        where = f"routes[{i}]"
        destination, gateway, name = route.destination, route.gateway, route.interface
        shown = "default" if destination.prefixlen == 0 else str(destination)
        if destination in destinations:
            problems.append(
                f"{where}.destination: a route to {shown} is already configured "
                f"(routes[{destinations[destination]}])"
            )
        destinations.setdefault(destination, i)
        if destination in connected:
            problems.append(
                f"{where}.destination: {destination} is the subnet of {connected[destination]} "
                "itself, routed there already"
            )
        if gateway is None and name is None:
            problems.append(f"{where}.gateway: a route needs a gateway, an interface or both")
            continue
        if gateway is not None and gateway.version != destination.version:
            problems.append(
                f"{where}.gateway: {gateway} is IPv{gateway.version} but {shown} is "
                f"IPv{destination.version}"
            )
            continue
        if name is not None:
            if name == LOOPBACK_NAME:
                problems.append(f"{where}.interface: the loopback interface is not configurable")
                continue
            if name not in by_name:
                problems.append(
                    f"{where}.interface: {name} is not among the configured interfaces"
                    + ("" if name in live else f" (and there is no interface {name} here)")
                )
                continue
            if not by_name[name].up:
                problems.append(f"{where}.interface: {name} is configured down")
                continue
        if gateway is None:
            continue
        if seen.get(gateway) is not None or any(
            gateway == address.ip for iface in unstated for address in iface.addresses
        ):
            problems.append(f"{where}.gateway: {gateway} is this node's own address")
            continue
        if gateway.version == 6 and gateway.is_link_local:
            if name is None:
                problems.append(
                    f"{where}.interface: a link-local gateway ({gateway}) needs an interface"
                )
            continue
        holders = [
            iface
            for iface in (*net.interfaces, *unstated)
            if (name is None or iface.name == name) and _on_link(gateway, iface)
        ]
        if not holders:
            if name is not None and any(_on_link(gateway, iface) for iface in net.interfaces):
                problems.append(f"{where}.gateway: {gateway} is not in a subnet of {name}")
            else:
                problems.append(
                    f"{where}.gateway: {gateway} is not in any configured subnet, so it "
                    "cannot be reached"
                )
        elif not any(iface.up for iface in holders):
            down = ", ".join(iface.name for iface in holders)
            problems.append(
                f"{where}.gateway: {gateway} is only reachable through {down}, configured down"
            )
    return problems


def _on_link(gateway: IPAddress, iface: _Iface) -> bool:
    for address in iface.addresses:
        network = address.network
        if network.version != gateway.version or gateway not in network:
            continue
        if network.prefixlen == network.max_prefixlen:
            continue  # a /32 or /128 holds no other host to route through
        ends = (network.network_address, network.broadcast_address)
        if network.version == 4 and network.prefixlen <= 30 and gateway in ends:
            continue
        if network.version == 6 and network.prefixlen <= 126 and gateway == ends[0]:
            continue  # the subnet-router anycast address
        return True  # /31 (RFC 3021) and /127 (RFC 6164): the other end is the gateway
    return False


# ---------------------------------------------------------------------------------------------
# Live state


@dataclass
class _LiveLink:
    name: str
    admin_up: bool
    mtu: int
    loopback: bool
    addresses: list[IPInterface]  # everything but link-local and host-scope ones, ip's order
    labels: dict[IPInterface, str] = field(default_factory=dict)  # IPv4 labels but the name
    dynamic: set[IPInterface] = field(default_factory=set)  # DHCP/SLAAC: their client's


@dataclass
class _Live:
    links: dict[str, _LiveLink]
    # Unicast, single-path routes of the main table made by hand, by the appliance or by a
    # DHCP client (PRESERVED_PROTOCOLS); the kernel's connected routes are not here.
    routes: list[netinfo.Route]


def _is_static(route: netinfo.Route) -> bool:
    return route.type == "unicast" and not route.multipath and route.protocol in STATIC_PROTOCOLS


def _is_preserved(route: netinfo.Route) -> bool:
    return route.type == "unicast" and not route.multipath and route.protocol in PRESERVED_PROTOCOLS


def _kernel_address(item: netinfo.LinkAddress) -> bool:
    ip = item.address.ip
    return item.scope in ("link", "host") or ip.is_link_local or ip in _LINK_LOCAL_V4


def _read_live(netns: str | None) -> _Live:
    links = {
        link.name: _LiveLink(
            name=link.name,
            admin_up=link.admin_up,
            mtu=link.mtu,
            loopback=link.loopback,
            addresses=[item.address for item in link.addresses if not _kernel_address(item)],
            labels={item.address: item.label for item in link.addresses if item.label},
            dynamic={item.address for item in link.addresses if item.dynamic},
        )
        for link in netinfo.links(netns)
    }
    return _Live(links, [route for route in netinfo.routes(netns) if _is_preserved(route)])


@dataclass(frozen=True)
class LiveSnapshot:
    """The live network at one moment, as far as ``apply_network`` puts things back: every
    link's state, addresses (labels, which are dynamic) and the routes of PRESERVED_PROTOCOLS.
    Stored as JSON (``to_json``) and read back strictly (``from_json``)."""

    live: _Live

    def link_state(self, name: str) -> tuple[bool, int | None] | None:
        """(administratively up, MTU) of ``name`` then (MTU None when it is not one the
        appliance sets); None when it was not there."""
        link = self.live.links.get(name)
        if link is None or link.loopback:
            return None
        return link.admin_up, link.mtu if MTU_MIN <= link.mtu <= MTU_MAX else None

    def to_json(self) -> dict[str, object]:
        return {
            "links": [
                {
                    "name": link.name,
                    "up": link.admin_up,
                    "mtu": link.mtu,
                    "loopback": link.loopback,
                    "addresses": [str(a) for a in link.addresses],
                    "labels": {str(a): label for a, label in link.labels.items()},
                    "dynamic": [str(a) for a in link.dynamic],
                }
                for link in self.live.links.values()
            ],
            "routes": [
                {
                    "destination": str(route.destination),
                    "gateway": None if route.gateway is None else str(route.gateway),
                    "interface": route.interface,
                    "protocol": route.protocol,
                    "metric": route.metric,
                    "scope": route.scope,
                    "source": None if route.source is None else str(route.source),
                }
                for route in self.live.routes
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> LiveSnapshot:
        """A snapshot from ``to_json``'s output; ValueError naming the first bad field."""
        try:
            return cls(_live_from_json(data))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"snapshot: malformed ({exc!r})") from None


_LABEL_TEXT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}")


def _live_from_json(data: object) -> _Live:
    if not isinstance(data, dict):
        raise ValueError("snapshot: an object")
    links: dict[str, _LiveLink] = {}
    for i, item in enumerate(data["links"][:MAX_INTERFACES]):
        where = f"snapshot.links[{i}]"
        name = _field(f"{where}.name", _interface_name, item["name"])
        if name is None:
            raise ValueError(f"{where}.name: missing")
        mtu = item["mtu"]
        if type(mtu) is not int or not 0 <= mtu < 2**31:  # loopback's is 65536
            raise ValueError(f"{where}.mtu: {mtu!r}")
        if type(item["up"]) is not bool or type(item["loopback"]) is not bool:
            raise ValueError(f"{where}: up and loopback are true or false")
        addresses = [_snapshot_address(text, where) for text in item["addresses"][:MAX_ADDRESSES]]
        labels: dict[IPInterface, str] = {}
        for text, label in item["labels"].items():
            if not isinstance(label, str) or not _LABEL_TEXT.fullmatch(label):
                raise ValueError(f"{where}.labels: {label!r}")
            if not label.startswith(name + ":"):
                raise ValueError(f"{where}.labels: {label!r} is not a label of {name}")
            labels[_snapshot_address(text, where)] = label
        dynamic = {_snapshot_address(text, where) for text in item["dynamic"][:MAX_ADDRESSES]}
        links[name] = _LiveLink(
            name, item["up"], mtu, item["loopback"], addresses, labels=labels, dynamic=dynamic
        )
    routes: list[netinfo.Route] = []
    for i, item in enumerate(data["routes"][:MAX_ROUTES]):
        where = f"snapshot.routes[{i}]"
        if not isinstance(item["destination"], str) or not _PREFIXED_TEXT.fullmatch(
            item["destination"]
        ):
            raise ValueError(f"{where}.destination: {item['destination']!r}")
        destination = ipaddress.ip_network(item["destination"])
        gateway = _field(f"{where}.gateway", _ip, item["gateway"])
        source = _field(f"{where}.source", _ip, item["source"])
        interface = _field(f"{where}.interface", _interface_name, item["interface"])
        if item["protocol"] not in PRESERVED_PROTOCOLS:
            raise ValueError(f"{where}.protocol: {item['protocol']!r}")
        if item["scope"] not in ("global", "link", "host", "site"):
            raise ValueError(f"{where}.scope: {item['scope']!r}")
        metric = _field(f"{where}.metric", _metric, item["metric"])
        routes.append(
            netinfo.Route(
                destination=destination,
                gateway=gateway,
                interface=interface,
                protocol=item["protocol"],
                metric=metric if metric is not None else DEFAULT_METRIC[destination.version],
                type="unicast",
                scope=item["scope"],
                multipath=False,
                source=source,
            )
        )
    return _Live(links, routes)


def _field(where: str, parse: Callable[[object], T], value: object) -> T | None:
    """``parse(value)`` (None stays None), its ValueError prefixed with the field's path."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _snapshot_address(text: object, where: str) -> IPInterface:
    if not isinstance(text, str) or not _PREFIXED_TEXT.fullmatch(text):
        raise ValueError(f"{where}.addresses: {text!r}")
    return ipaddress.ip_interface(text)


def snapshot_live(netns: str | None = None) -> LiveSnapshot:
    """The live network now, to put back later (``apply_network(…, baseline=…)``). Raises
    NetinfoError when ip fails."""
    return LiveSnapshot(_read_live(netns))


def _config_addresses(link: netinfo.Link) -> tuple[str, ...]:
    chosen = [item for item in link.addresses if not _kernel_address(item) and not item.dynamic]
    v4 = [str(item.address) for item in chosen if item.address.version == 4]
    # ip lists IPv6 addresses newest first: reversed, they are in the order they were added.
    v6 = [str(item.address) for item in reversed(chosen) if item.address.version == 6]
    return tuple(v4 + v6)


def _route_config(route: netinfo.Route) -> RouteConfig:
    destination = route.destination
    return RouteConfig(
        destination="default" if destination.prefixlen == 0 else str(destination),
        gateway=None if route.gateway is None else str(route.gateway),
        interface=route.interface,
        metric=None if route.metric == DEFAULT_METRIC[destination.version] else route.metric,
    )


def read_network(netns: str | None = None) -> NetworkConfig:
    """The live network as a NetworkConfig: every interface but loopback ones (in ifindex
    order) with its administrative state, MTU and its static addresses (not link-local, not
    host-scope, not dynamic — DHCP/SLAAC; IPv4 primary first, IPv6 in the order added), and the
    static routes of the main table (protocol boot/static, unicast, single path; IPv4 then
    IPv6), defaults included as "default". Connected subnets (protocol kernel) are not routes
    here. Addresses keepalived holds (VIPs on the MASTER) are live addresses and appear.
    Raises NetinfoError when ip fails or prints what cannot be read."""
    links = netinfo.links(netns)
    interfaces = tuple(
        InterfaceConfig(
            name=link.name, up=link.admin_up, mtu=link.mtu, addresses=_config_addresses(link)
        )
        for link in links
        if not link.loopback
    )
    routes = tuple(_route_config(route) for route in netinfo.routes(netns) if _is_static(route))
    return NetworkConfig(interfaces=interfaces, routes=routes)


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True)
class _Owned:
    interfaces: frozenset[str]
    addresses: frozenset[tuple[str, IPAddress]]  # (interface, IP): where each one was put
    destinations: frozenset[IPNetwork]

    def route(self, route: netinfo.Route) -> bool:
        """A live route is the appliance's when it set it (its protocol) to a destination on
        record; a route to the same destination made by hand or by a DHCP client is not."""
        return route.protocol == OUR_PROTOCOL and route.destination in self.destinations


def _owned(*nets: _Net) -> _Owned:
    return _Owned(
        interfaces=frozenset(iface.name for net in nets for iface in net.interfaces),
        addresses=frozenset(
            (iface.name, a.ip) for net in nets for iface in net.interfaces for a in iface.addresses
        ),
        destinations=frozenset(route.destination for net in nets for route in net.routes),
    )


@dataclass(frozen=True)
class _Step:
    kind: str  # route-del, link-down, mtu, link-up, addr-del, addr-add, route-set, route-add
    description: str
    argv: tuple[str, ...]  # ip's arguments after the namespace
    interface: str | None = None
    address: IPInterface | None = None
    mtu: int | None = None
    route: netinfo.Route | None = None


def _family(version: int) -> str:
    return f"-{version}"


def _route_text(
    destination: IPNetwork, gateway: IPAddress | None, interface: str | None, metric: int
) -> str:
    text = "default" if destination.prefixlen == 0 else str(destination)
    if destination.prefixlen == 0 and gateway is None:
        text = str(destination)
    if gateway is not None:
        text += f" via {gateway}"
    if interface is not None:
        text += f" dev {interface}"
    if metric != DEFAULT_METRIC[destination.version]:
        text += f" metric {metric}"
    return text


def _route_del(route: netinfo.Route) -> _Step:
    argv = [_family(route.destination.version), "route", "del", str(route.destination)]
    if route.gateway is not None:
        argv += ["via", str(route.gateway)]
    if route.interface is not None:
        argv += ["dev", route.interface]
    argv += ["proto", route.protocol, "metric", str(route.metric), "table", "main"]
    text = _route_text(route.destination, route.gateway, route.interface, route.metric)
    return _Step("route-del", f"remove route {text}", tuple(argv), route=route)


def _route_set(want: _Route) -> _Step:
    destination = want.destination
    argv = [_family(destination.version), "route", "replace", str(destination)]
    if want.gateway is not None:
        argv += ["via", str(want.gateway)]
    if want.interface is not None:
        argv += ["dev", want.interface]
    argv += ["proto", "static", "metric", str(want.metric_value), "table", "main"]
    route = netinfo.Route(
        destination=destination,
        gateway=want.gateway,
        interface=want.interface,
        protocol="static",
        metric=want.metric_value,
        type="unicast",
        scope="global" if want.gateway is not None else "link",
        multipath=False,
    )
    text = _route_text(destination, want.gateway, want.interface, want.metric_value)
    return _Step("route-set", f"set route {text}", tuple(argv), route=route)


def _matches(live: netinfo.Route, want: _Route) -> bool:
    return (
        live.protocol == OUR_PROTOCOL
        and live.destination == want.destination
        and live.gateway == want.gateway
        and (want.interface is None or live.interface == want.interface)
        and live.metric == want.metric_value
    )


def _phase_routes_out(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    wanted = {route.destination for route in target.routes}
    return [
        _route_del(route)
        for route in live.routes
        if owned.route(route) and route.destination not in wanted
    ]


def _phase_links(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    steps: list[_Step] = []
    for iface in target.interfaces:
        link = live.links.get(iface.name)
        if link is None or link.loopback:
            continue
        name = iface.name
        if not iface.up and link.admin_up:
            steps.append(
                _Step("link-down", f"bring {name} down", ("link", "set", "dev", name, "down"), name)
            )
        if iface.mtu is not None and iface.mtu != link.mtu:
            steps.append(
                _Step(
                    "mtu",
                    f"set {name} MTU {iface.mtu} (was {link.mtu})",
                    ("link", "set", "dev", name, "mtu", str(iface.mtu)),
                    name,
                    mtu=iface.mtu,
                )
            )
        if iface.up and not link.admin_up:
            steps.append(
                _Step("link-up", f"bring {name} up", ("link", "set", "dev", name, "up"), name)
            )
    return steps


def _phase_addresses_out(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    wanted = {(iface.name, address) for iface in target.interfaces for address in iface.addresses}
    steps: list[_Step] = []
    for name in sorted(owned.interfaces):
        link = live.links.get(name)
        if link is None or link.loopback:
            continue
        for address in link.addresses:
            if (name, address.ip) in owned.addresses and (name, address) not in wanted:
                steps.append(
                    _Step(
                        "addr-del",
                        f"remove {address} from {name}",
                        (_family(address.version), "addr", "del", str(address), "dev", name),
                        name,
                        address=address,
                    )
                )
    return steps


def _phase_addresses_in(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    steps: list[_Step] = []
    for iface in target.interfaces:
        link = live.links.get(iface.name)
        if link is None or link.loopback:
            continue
        for address in iface.addresses:
            if address in link.addresses:
                continue
            argv = [_family(address.version), "addr", "add", str(address)]
            if address.version == 4 and address.network.prefixlen <= 30:
                argv += ["broadcast", "+"]
            argv += ["dev", iface.name]
            steps.append(
                _Step(
                    "addr-add",
                    f"add {address} to {iface.name}",
                    tuple(argv),
                    iface.name,
                    address=address,
                )
            )
    return steps


def _phase_routes_in(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    steps: list[_Step] = []
    for want in target.routes:
        if want.interface is not None and want.interface not in live.links:
            continue  # gone (only in a rollback: validation refuses it otherwise)
        if not any(_matches(route, want) for route in live.routes):
            steps.append(_route_set(want))
    return steps


def _phase_route_strays(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    steps: list[_Step] = []
    for want in target.routes:
        kept = False
        for route in live.routes:
            if route.destination != want.destination or not owned.route(route):
                continue
            if _matches(route, want) and not kept:
                kept = True
            else:
                steps.append(_route_del(route))
    return steps


_PHASES = (
    _phase_routes_out,
    _phase_links,
    _phase_addresses_out,
    _phase_addresses_in,
    _phase_routes_in,
    _phase_route_strays,
)


def _simulate(live: _Live, step: _Step) -> None:
    """What a step does to the live state, as far as we model it (for dry runs and checks)."""
    link = live.links.get(step.interface) if step.interface else None
    if step.kind == "route-add" and step.route is not None:
        live.routes.append(step.route)
    elif step.kind == "route-del":
        live.routes = [route for route in live.routes if route != step.route]
    elif step.kind == "route-set" and step.route is not None:
        new = step.route
        live.routes = [
            route
            for route in live.routes
            if not (route.destination == new.destination and route.metric == new.metric)
        ]
        live.routes.append(new)
    elif link is not None and step.kind in ("link-down", "link-up"):
        link.admin_up = step.kind == "link-up"
    elif link is not None and step.kind == "mtu" and step.mtu is not None:
        link.mtu = step.mtu
    elif link is not None and step.kind == "addr-del":
        link.addresses = [address for address in link.addresses if address != step.address]
    elif link is not None and step.kind == "addr-add" and step.address is not None:
        link.addresses.append(step.address)


def _plan(target: _Net, owned: _Owned, live: _Live) -> list[_Step]:
    state = copy.deepcopy(live)
    steps: list[_Step] = []
    for phase in _PHASES:
        for step in phase(target, owned, state):
            steps.append(step)
            _simulate(state, step)
    return steps


# ---------------------------------------------------------------------------------------------
# Applying


def _run_ip(netns: str | None, args: tuple[str, ...]) -> None:
    ns = netinfo._netns(netns)
    argv = [netinfo._binary("ip"), *(["-n", ns] if ns else []), *args]
    shown = "ip " + " ".join(args)
    try:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=netinfo.TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetconfigError(f"{shown} did not finish within {netinfo.TIMEOUT_S:g} s") from exc
    except OSError as exc:
        raise NetconfigError(f"{shown} could not run: {exc}") from exc
    if result.returncode != 0:
        words = result.stderr.decode(errors="replace").strip()[:2000]
        raise NetconfigError(f"{shown} exited {result.returncode}: {words or 'no message'}")


def _can_exist(route: netinfo.Route, live: _Live) -> bool:
    """Whether the kernel would take ``route`` back now: its link is up, its gateway on-link,
    its source address still here."""
    link = live.links.get(route.interface) if route.interface else None
    if link is None or not link.admin_up:
        return False
    if route.source is not None and not any(
        address.ip == route.source for other in live.links.values() for address in other.addresses
    ):
        return False
    gateway = route.gateway
    if gateway is None or (gateway.version == 6 and gateway.is_link_local):
        return True
    return any(
        gateway in address.network and address.network.prefixlen < address.network.max_prefixlen
        for address in link.addresses
    )


def _route_key(route: netinfo.Route) -> tuple:
    return (route.destination, route.gateway, route.interface, route.metric)


def _address_argv(address: IPInterface, name: str, label: str | None = None) -> tuple[str, ...]:
    argv = [_family(address.version), "addr", "add", str(address)]
    if address.version == 4 and address.network.prefixlen <= 30:
        argv += ["broadcast", "+"]
    if label is not None:
        argv += ["label", label]
    return (*argv, "dev", name)


def _put_back(
    pre: _Live, live: _Live, owned: _Owned, keep_out: frozenset[IPAddress]
) -> list[_Step]:
    """What the appliance does not own and was there in ``pre`` but is gone now, put back
    where it can still exist: the secondaries of a deleted primary, IPv6 addresses a link
    lost going down, routes through a link that went down or lost its last IPv4 address or
    whose ``src`` went — with their labels, protocols and sources. Never what a DHCP or SLAAC
    client keeps (dynamic), an address now live elsewhere, or one in ``keep_out`` (floating
    addresses: keepalived's to place)."""
    state = copy.deepcopy(live)
    steps: list[_Step] = []
    everywhere = {a.ip for link in state.links.values() for a in link.addresses}
    for name in sorted(owned.interfaces):
        old, link = pre.links.get(name), state.links.get(name)
        if old is None or link is None:
            continue
        for address in old.addresses:
            if (
                (name, address.ip) in owned.addresses
                or address.ip in everywhere
                or address.ip in keep_out
                or address in old.dynamic
                or (address.version == 6 and link.mtu < IPV6_MTU_MIN)
            ):
                continue
            label = old.labels.get(address)
            step = _Step(
                "addr-add",
                f"put back {address} on {name} (the kernel removed it with a managed change)",
                _address_argv(address, name, label),
                name,
                address=address,
            )
            steps.append(step)
            _simulate(state, step)
            if label:
                state.links[name].labels[address] = label
    for route in pre.routes:
        if owned.route(route) or not _can_exist(route, state):
            continue
        taken = any(
            other.destination == route.destination and other.metric == route.metric
            for other in state.routes
        )
        if taken:  # there already (or replaced at its place by a route of the same metric)
            continue
        argv = [_family(route.destination.version), "route", "add", str(route.destination)]
        if route.gateway is not None:
            argv += ["via", str(route.gateway)]
        if route.interface is not None:
            argv += ["dev", route.interface]
        if route.source is not None:
            argv += ["src", str(route.source)]
        argv += ["proto", route.protocol, "metric", str(route.metric), "table", "main"]
        text = _route_text(route.destination, route.gateway, route.interface, route.metric)
        step = _Step(
            "route-add",
            f"put back route {text} (the kernel removed it with a managed change)",
            tuple(argv),
            route=route,
        )
        steps.append(step)
        _simulate(state, step)
    return steps


def _converge(
    target: _Net,
    owned: _Owned,
    netns: str | None,
    *,
    done: list[str],
    stop_on_error: bool,
    pre: _Live,
    keep_out: frozenset[IPAddress] = frozenset(),
    on_step: Callable[[str], None] | None = None,
) -> list[str]:
    """Run the phases, each on a fresh read; the steps carried out go to ``done``. Between the
    address phases and the route phases, put back what the appliance does not own and the
    kernel removed since ``pre`` (``_put_back``). Returns the errors (at most one when
    ``stop_on_error``)."""
    errors: list[str] = []
    live: _Live | None = None
    phases: list[object] = list(_PHASES)
    phases.insert(phases.index(_phase_addresses_in) + 1, _put_back)
    for phase in phases:
        if live is None:
            try:
                live = _read_live(netns)
            except NetinfoError as exc:
                errors.append(f"cannot read the live state: {exc}")
                if stop_on_error:
                    return errors
                continue
        if phase is _put_back:
            steps = _put_back(pre, live, owned, keep_out)
        else:
            steps = phase(target, owned, live)  # type: ignore[operator]
        if steps:
            live = None  # the kernel may have done more than asked: read again
        for step in steps:
            try:
                if on_step is not None:
                    on_step(step.description)
                _run_ip(netns, step.argv)
            except (NetconfigError, NetinfoError) as exc:
                errors.append(f"{step.description}: {exc}")
                if stop_on_error:
                    return errors
                continue
            done.append(step.description)
    return errors


def _before(live: _Live, owned: _Owned, order: Iterable[str]) -> tuple[NetworkConfig, _Net]:
    """The managed items as they are live: public (for the caller) and parsed (to restore)."""
    public: list[InterfaceConfig] = []
    parsed: list[_Iface] = []
    for name in dict.fromkeys(order):
        link = live.links.get(name)
        if link is None or link.loopback:
            continue
        mine = [a for a in link.addresses if (name, a.ip) in owned.addresses]
        v4 = [a for a in mine if a.version == 4]
        v6 = [a for a in reversed(mine) if a.version == 6]
        addresses = tuple(v4 + v6)
        public.append(
            InterfaceConfig(name, link.admin_up, link.mtu, tuple(str(a) for a in addresses))
        )
        parsed.append(_Iface(name, link.admin_up, link.mtu, addresses))
    routes = [route for route in live.routes if owned.route(route)]
    return (
        NetworkConfig(tuple(public), tuple(_route_config(route) for route in routes)),
        _Net(
            tuple(parsed),
            tuple(_Route(r.destination, r.gateway, r.interface, r.metric) for r in routes),
        ),
    )


def plan_network(
    desired: NetworkConfig, *, previous: NetworkConfig | None, netns: str | None = None
) -> list[str]:
    """What ``apply_network`` would do now, without doing it (the drift of the managed items
    from ``desired``): an empty list when the live state matches. Raises ValueError when
    ``desired`` or ``previous`` is invalid, NetinfoError when ip fails."""
    live = _read_live(netns)
    problems = validate_network(desired, live.links.values())
    previous_problems: list[str] = []
    old = _parse(previous if previous is not None else NetworkConfig(), previous_problems)
    if problems or previous_problems:
        raise ValueError("; ".join(problems + [f"previous {p}" for p in previous_problems]))
    target = _parse(desired, [])
    return [step.description for step in _plan(target, _owned(target, old), live)]


def validate_against_live(
    desired: NetworkConfig, *, previous: NetworkConfig | None, netns: str | None = None
) -> list[str]:
    """What is wrong with ``desired`` on this node now: ``validate_network``'s problems, then
    what it would take from someone else (``previous`` is the appliance's record of what it
    made): an address live elsewhere or overlapping a live subnet it did not configure, a
    route over a connected subnet or in place of a route it did not set, an MTU that would
    strip IPv6 addresses it did not add. Raises NetinfoError when ip fails."""
    live = _read_live(netns)
    problems = validate_network(desired, live.links.values())
    if problems:
        return problems
    old = _parse(previous if previous is not None else NetworkConfig(), [])
    return _conflicts(_parse(desired, []), old, live)


def _conflicts(target: _Net, old: _Net, live: _Live) -> list[str]:
    owned = _owned(old)
    problems: list[str] = []
    foreign = [
        (link.name, address)
        for link in live.links.values()
        if not link.loopback
        for address in link.addresses
        if (link.name, address.ip) not in owned.addresses
    ]
    for i, iface in enumerate(target.interfaces):
        adopted = set(iface.addresses)  # stated here: the administrator's from now on
        for j, address in enumerate(iface.addresses):
            where = f"interfaces[{i}].addresses[{j}]"
            if (iface.name, address.ip) in owned.addresses:
                continue
            for name, other in foreign:
                if other.ip == address.ip and (name != iface.name or other != address):
                    problems.append(
                        f"{where}: {address.ip} is already live on {name} as {other}, not "
                        "configured here (a virtual service's floating address, or the host's "
                        "own): remove it there first"
                    )
                    break
                if other.ip == address.ip or other in adopted:
                    continue
                if other.network.prefixlen == other.network.max_prefixlen:
                    continue  # a /32 or /128 (a floating address) makes no subnet
                if not address.network.overlaps(other.network):
                    continue
                if name != iface.name or address.network != other.network:
                    problems.append(
                        f"{where}: {address} overlaps {other}, live on {name} and not "
                        f"configured here ({address.network} and {other.network})"
                    )
                    break
        link = live.links.get(iface.name)
        if iface.mtu is not None and iface.mtu < IPV6_MTU_MIN and link is not None:
            theirs = [str(a) for a in link.addresses if a.version == 6 and a not in iface.addresses]
            if theirs:
                problems.append(
                    f"interfaces[{i}].mtu: below {IPV6_MTU_MIN} the kernel removes every IPv6 "
                    f"address of {iface.name}, and {', '.join(theirs)} was not configured here"
                )
    connected = {
        address.network: link.name
        for link in live.links.values()
        if not link.loopback
        for address in link.addresses
        if address.network.prefixlen < address.network.max_prefixlen
    }
    recorded = {(route.destination, route.metric_value) for route in old.routes}
    for i, route in enumerate(target.routes):
        if (route.destination, route.metric_value) in recorded:
            continue  # the appliance's own place: someone's route there is drift, corrected
        where = f"routes[{i}].destination"
        shown = "default" if route.destination.prefixlen == 0 else str(route.destination)
        if route.destination in connected and route.destination not in owned.destinations:
            problems.append(
                f"{where}: {shown} is the connected subnet of {connected[route.destination]}, "
                "routed there by the kernel: a static route would replace it"
            )
            continue
        for other in live.routes:
            same_place = (
                other.destination == route.destination and other.metric == route.metric_value
            )
            adopted = other.gateway == route.gateway and route.interface in (None, other.interface)
            if same_place and not adopted:  # the very same route is taken over, not replaced
                text = _route_text(other.destination, other.gateway, other.interface, other.metric)
                problems.append(
                    f"{where}: a route {text} (protocol {other.protocol}) exists that was not "
                    "configured here and would be replaced: give this one another metric, or "
                    "remove that one where it was made"
                )
                break
    return problems


def apply_network(
    desired: NetworkConfig,
    *,
    previous: NetworkConfig | None,
    netns: str | None = None,
    on_step: Callable[[str], None] | None = None,
    baseline: LiveSnapshot | None = None,
    keep_out: Iterable[str] = (),
) -> ApplyResult:
    """Make the live network match ``desired`` for the items the appliance manages (see the
    module docstring for what it owns and in which order it works); ``previous`` is what it
    applied last (None the first time). Nothing is applied when ``desired`` is invalid on this
    node or would take what the appliance did not make (``validate_against_live``). When a
    step fails, everything already done is undone and the result says so, quoting ip.
    What the appliance does not own and the kernel removes on the way is put back as it was
    in ``baseline`` (a revert passes the snapshot taken before the change it undoes; by
    default the live state now), but never the IPs in ``keep_out`` (floating addresses).
    ``on_step`` is called with each step's description just before it runs (not for
    rollback steps). A hostile ``netns`` raises ValueError before anything runs."""
    netinfo._netns(netns)
    try:
        live = _read_live(netns)
    except NetinfoError as exc:
        return ApplyResult(ok=False, error=f"cannot read the live state: {exc}")
    problems = validate_network(desired, live.links.values())
    previous_problems: list[str] = []
    old = _parse(previous if previous is not None else NetworkConfig(), previous_problems)
    if problems:
        return ApplyResult(ok=False, error="refused, nothing applied: " + "; ".join(problems))
    if previous_problems:
        return ApplyResult(
            ok=False,
            error="refused, nothing applied: the previous configuration is unreadable: "
            + "; ".join(previous_problems),
        )
    target = _parse(desired, [])
    conflicts = _conflicts(target, old, live)
    if conflicts:
        return ApplyResult(ok=False, error="refused, nothing applied: " + "; ".join(conflicts))
    owned = _owned(target, old)
    order = [iface.name for iface in target.interfaces] + [i.name for i in old.interfaces]
    before, restore = _before(live, owned, order)
    pre = baseline.live if baseline is not None else live
    floating = frozenset(ipaddress.ip_address(ip) for ip in keep_out)

    changes: list[str] = []
    errors = _converge(
        target, owned, netns, done=changes, stop_on_error=True, on_step=on_step,
        pre=pre, keep_out=floating,
    )  # fmt: skip
    if not errors:
        try:
            left = _plan(target, owned, _read_live(netns))
        except NetinfoError as exc:
            errors = [f"cannot read the live state back: {exc}"]
        else:
            if left:
                errors = [
                    "the live state still differs after applying: "
                    + "; ".join(step.description for step in left)
                ]
    if not errors:
        return ApplyResult(ok=True, changes=changes, before=before)

    # Roll back: converge on the snapshot of the managed items, best effort.
    undo: list[str] = []
    rollback_errors = _converge(
        restore, owned, netns, done=undo, stop_on_error=False, pre=pre, keep_out=floating
    )
    error = errors[0]
    if rollback_errors:
        error += "; the rollback failed too: " + "; ".join(rollback_errors)
    else:
        error += "; rolled back"
        with contextlib.suppress(NetinfoError):
            now = _read_live(netns).links
            gone = [iface.name for iface in restore.interfaces if iface.name not in now]
            if gone:
                error += f" (no longer here: {', '.join(gone)})"
    return ApplyResult(
        ok=False,
        error=error,
        changes=changes,
        rollback=undo,
        rolled_back=not rollback_errors,
        before=before,
    )


# ---------------------------------------------------------------------------------------------
# Hostname and DNS

_RESOLV_HEADER = (
    "# Written by lbadmin (Local Configuration > Hostname & DNS); changes here are overwritten.\n"
)
_HOSTS_DEFAULT_HEAD = "127.0.0.1\tlocalhost\n"
_HOSTS_DEFAULT_TAIL = (
    "\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)
_HOSTS_SELF = "127.0.1.1"


def _hostname_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a host name"
    if len(value) > HOSTNAME_MAX:
        return f"longer than {HOSTNAME_MAX} characters"
    for label in value.split("."):
        if not _LABEL.fullmatch(label):
            return (
                f"{value!r}: each label must be 1 to 63 letters, digits or hyphens, "
                "not starting or ending with a hyphen"
            )
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value)
        return f"{value!r} is an IP address, not a host name"
    return None


def validate_identity(identity: HostIdentity) -> list[str]:
    """What is wrong with ``identity``: the hostname per RFC 1123 (labels of 1-63 letters,
    digits and hyphens, no hyphen at either end, 253 characters in all), DNS servers as IP
    addresses (at most three, as the resolver reads), search domains as host names (at most
    six, 256 characters)."""
    if not isinstance(identity, HostIdentity):
        return [f"identity: a HostIdentity, not {type(identity).__name__}"]
    problems: list[str] = []
    problem = _hostname_problem(identity.hostname)
    if problem:
        problems.append(f"hostname: {problem}")
    servers = identity.dns_servers
    if not isinstance(servers, tuple | list):
        problems.append("dns_servers: a tuple of addresses")
        servers = ()
    if len(servers) > MAX_DNS_SERVERS:
        problems.append(f"dns_servers: at most {MAX_DNS_SERVERS} (the resolver reads no more)")
    seen: set[IPAddress] = set()
    for i, server in enumerate(servers):
        try:
            address = _ip(server)
        except ValueError as exc:
            problems.append(f"dns_servers[{i}]: {exc}")
            continue
        if address.is_unspecified or address.is_multicast:
            problems.append(f"dns_servers[{i}]: {address} cannot be a DNS server")
        elif address.version == 6 and address.is_link_local:
            problems.append(f"dns_servers[{i}]: a link-local address needs a zone: not supported")
        elif address in seen:
            problems.append(f"dns_servers[{i}]: {address} is listed twice")
        seen.add(address)
    domains = identity.search
    if not isinstance(domains, tuple | list):
        problems.append("search: a tuple of domains")
        domains = ()
    if len(domains) > MAX_SEARCH_DOMAINS:
        problems.append(f"search: at most {MAX_SEARCH_DOMAINS} domains")
    elif all(isinstance(d, str) for d in domains) and len(" ".join(domains)) > MAX_SEARCH_CHARS:
        problems.append(f"search: longer than {MAX_SEARCH_CHARS} characters in all")
    for i, domain in enumerate(domains):
        problem = _hostname_problem(domain)
        if problem:
            problems.append(f"search[{i}]: {problem}")
        elif domains.index(domain) != i:
            problems.append(f"search[{i}]: {domain} is listed twice")
    return problems


def _resolv_text(identity: HostIdentity) -> str:
    text = _RESOLV_HEADER
    if identity.search:
        text += "search " + " ".join(identity.search) + "\n"
    for server in identity.dns_servers:
        text += f"nameserver {ipaddress.ip_address(server)}\n"
    return text


def _hosts_text(current: str | None, hostname: str) -> str:
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    line = f"{_HOSTS_SELF}\t{names}\n"
    if current is None:
        return _HOSTS_DEFAULT_HEAD + line + _HOSTS_DEFAULT_TAIL
    lines = current.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    kept = [text for text in lines if text.split("#", 1)[0].split()[:1] != [_HOSTS_SELF]]
    for index, text in enumerate(kept):
        if text.split("#", 1)[0].split()[:1] == ["127.0.0.1"]:
            kept.insert(index + 1, line)
            break
    else:
        kept.append(line)
    return "".join(kept)


def _prepare(path: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def write_identity(
    identity: HostIdentity,
    *,
    etc_dir: Path,
    update_hosts: bool = True,
    set_kernel_hostname: bool = False,
) -> None:
    """Write ``hostname``, ``resolv.conf`` and (``update_hosts``) the ``127.0.1.1`` line of
    ``hosts`` under ``etc_dir`` (``/etc`` in production), each replaced atomically; with
    ``set_kernel_hostname`` also set the running kernel's host name (``sethostname``, in the
    caller's UTS namespace; needs root). Raises ValueError (the ``validate_identity``
    messages) before writing anything when ``identity`` is invalid, NetconfigError when a file
    or the host name cannot be set."""
    problems = validate_identity(identity)
    if problems:
        raise ValueError("; ".join(problems))
    etc = Path(etc_dir)
    if not etc.is_dir():
        raise NetconfigError(f"{etc} is not a directory")
    texts = {
        etc / "resolv.conf": _resolv_text(identity),
        etc / "hostname": identity.hostname + "\n",
    }
    if update_hosts:
        hosts = etc / "hosts"
        try:
            current = hosts.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise NetconfigError(f"cannot read {hosts}: {exc}") from exc
        texts[hosts] = _hosts_text(current, identity.hostname)
    prepared: dict[Path, Path] = {}
    try:
        for path, text in texts.items():
            prepared[path] = _prepare(path, text)
        for path, temporary in prepared.items():
            os.replace(temporary, path)
        directory = os.open(etc, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise NetconfigError(f"cannot write under {etc}: {exc}") from exc
    finally:
        for temporary in prepared.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
    if set_kernel_hostname:
        try:
            socket.sethostname(identity.hostname)
        except OSError as exc:
            raise NetconfigError(f"cannot set the host name: {exc}") from exc


def read_identity(*, etc_dir: Path) -> HostIdentity:
    """The identity as the files under ``etc_dir`` state it (the running host name when there
    is no ``hostname`` file): nameserver lines in order, the last search (or domain) line.
    Not validated: it shows what is there."""
    etc = Path(etc_dir)
    try:
        hostname = (etc / "hostname").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        hostname = socket.gethostname()
    servers: list[str] = []
    search: tuple[str, ...] = ()
    try:
        resolv = (etc / "resolv.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        resolv = ""
    for line in resolv.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
        elif len(words) >= 2 and words[0] in ("search", "domain"):
            search = tuple(words[1:])
    return HostIdentity(hostname=hostname, dns_servers=tuple(servers), search=search)


__all__ = [
    "ApplyResult",
    "HostIdentity",
    "InterfaceConfig",
    "LiveSnapshot",
    "NetconfigError",
    "NetworkConfig",
    "RouteConfig",
    "apply_network",
    "plan_network",
    "read_identity",
    "read_network",
    "snapshot_live",
    "validate_against_live",
    "validate_identity",
    "validate_network",
    "write_identity",
]
