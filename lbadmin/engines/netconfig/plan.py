"""Planning: which ``ip`` steps, in which phase, make the live state match the desired one for
what the appliance owns; ``_simulate`` models each step for dry runs."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lbadmin.engines import netinfo
from lbadmin.engines.netconfig.live import _Live
from lbadmin.engines.netconfig.model import (
    DEFAULT_METRIC,
    OUR_PROTOCOL,
    IPAddress,
    IPInterface,
    IPNetwork,
    _Net,
    _Route,
)

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
