"""The desired state (frozen dataclasses), its limits, and the strict parsers every value goes
through before anything reaches ``ip`` (see the package docstring)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TypeVar

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
