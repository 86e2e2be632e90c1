"""The live network as the engine reads it (``_Live``), as the administrator sees it
(``read_network``), and as a revert puts it back (``LiveSnapshot``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lbadmin.engines import netinfo
from lbadmin.engines.netconfig.model import (
    _LINK_LOCAL_V4,
    _PREFIXED_TEXT,
    DEFAULT_METRIC,
    MAX_ADDRESSES,
    MAX_INTERFACES,
    MAX_ROUTES,
    MTU_MAX,
    MTU_MIN,
    PRESERVED_PROTOCOLS,
    STATIC_PROTOCOLS,
    InterfaceConfig,
    IPInterface,
    NetworkConfig,
    RouteConfig,
    T,
    _interface_name,
    _ip,
    _metric,
)

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

    def interface_names(self) -> list[str]:
        """Every interface there was, loopback included (as ``netinfo.links`` names them)."""
        return list(self.live.links)

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
