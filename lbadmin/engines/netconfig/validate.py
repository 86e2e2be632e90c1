"""What is wrong with a desired network: on its own (``validate_network``) and against what is
live and not the appliance's (``_conflicts``); messages start with the field they are about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lbadmin.engines.netconfig.live import _Live
from lbadmin.engines.netconfig.model import (
    IPV6_MTU_MIN,
    LOOPBACK_NAME,
    IPAddress,
    IPInterface,
    IPNetwork,
    NetworkConfig,
    _Iface,
    _Net,
    _parse,
    _Route,
)
from lbadmin.engines.netconfig.plan import _owned, _route_text


def validate_network(config: NetworkConfig, live_interfaces: Iterable[object]) -> list[str]:
    """What is wrong with ``config`` on a node whose interfaces are ``live_interfaces`` (names,
    or objects with a ``name`` and ``addresses``: ``netinfo.Interface``/``netinfo.Link``); an
    empty list when nothing is. A gateway is reachable through a configured subnet or through
    one live on the node that the configuration does not state (the installer's address)."""
    items = list(live_interfaces)
    problems: list[str] = []
    net = _parse(config, problems)
    if problems:
        return problems  # cross-checks on a partly parsed config would only confuse
    live = _LiveNames(
        names=frozenset(str(getattr(item, "name", item)) for item in items),
        addresses={
            str(getattr(item, "name", item)): tuple(
                getattr(address, "address", address) for address in getattr(item, "addresses", ())
            )
            for item in items
        },
    )
    problems += _interface_problems(net, live)
    seen, address_problems = _address_problems(net)
    problems += address_problems
    context = _RouteContext(
        by_name={iface.name: iface for iface in net.interfaces},
        connected={
            address.network: iface.name
            for iface in net.interfaces
            for address in iface.addresses
            if address.network.prefixlen < address.network.max_prefixlen
        },
        own=set(seen) | {a.ip for iface in _unstated(net, live) for a in iface.addresses},
        unstated=_unstated(net, live),
        live=live,
    )
    first: dict[IPNetwork, int] = {}
    for i, route in enumerate(net.routes):
        shown = "default" if route.destination.prefixlen == 0 else str(route.destination)
        if route.destination in first:
            problems.append(
                f"routes[{i}].destination: a route to {shown} is already configured "
                f"(routes[{first[route.destination]}])"
            )
        first.setdefault(route.destination, i)
        problems += _route_problems(f"routes[{i}]", route, context, net)
    return problems


@dataclass(frozen=True)
class _LiveNames:
    names: frozenset[str]
    addresses: dict[str, tuple[IPInterface, ...]]  # empty when only names were given


@dataclass(frozen=True)
class _RouteContext:
    by_name: dict[str, _Iface]
    connected: dict[IPNetwork, str]  # configured subnets and their interface
    own: set[IPAddress]  # configured or live on this node
    unstated: list[_Iface]  # live subnets the configuration does not state
    live: _LiveNames


def _interface_problems(net: _Net, live: _LiveNames) -> list[str]:
    problems: list[str] = []
    positions: dict[str, int] = {}
    for i, iface in enumerate(net.interfaces):
        where = f"interfaces[{i}]"
        if iface.name in positions:
            problems.append(f"{where}.name: {iface.name} is listed twice")
        positions.setdefault(iface.name, i)
        if iface.name == LOOPBACK_NAME:
            problems.append(f"{where}.name: the loopback interface is not configurable")
        elif iface.name not in live.names:
            problems.append(f"{where}.name: there is no interface {iface.name} on this node")
        has_v6 = any(address.version == 6 for address in iface.addresses)
        if has_v6 and iface.mtu is not None and iface.mtu < IPV6_MTU_MIN:
            problems.append(
                f"{where}.mtu: IPv6 needs an MTU of at least {IPV6_MTU_MIN} ({iface.mtu} given)"
            )
    return problems


def _address_problems(net: _Net) -> tuple[dict[IPAddress, str], list[str]]:
    """No IP twice anywhere; no subnet shared by two interfaces, nor by one with two prefixes.
    Returns where each IP is configured, and the problems."""
    problems: list[str] = []
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
    return seen, problems


def _unstated(net: _Net, live: _LiveNames) -> list[_Iface]:
    """Live subnets the configuration does not state: a gateway there is reachable too (while
    the interface is up)."""
    by_name = {iface.name: iface for iface in net.interfaces}
    result = []
    for name, addresses in live.addresses.items():
        if not addresses or name == LOOPBACK_NAME:
            continue
        stated = by_name[name].addresses if name in by_name else ()
        kept = tuple(a for a in addresses if not a.ip.is_link_local and a not in stated)
        result.append(_Iface(name, by_name[name].up if name in by_name else True, None, kept))
    return result


def _route_problems(where: str, route: _Route, context: _RouteContext, net: _Net) -> list[str]:
    destination, gateway, name = route.destination, route.gateway, route.interface
    shown = "default" if destination.prefixlen == 0 else str(destination)
    problems: list[str] = []
    if destination in context.connected:
        problems.append(
            f"{where}.destination: {destination} is the subnet of "
            f"{context.connected[destination]} itself, routed there already"
        )
    if gateway is None and name is None:
        return [*problems, f"{where}.gateway: a route needs a gateway, an interface or both"]
    if gateway is not None and gateway.version != destination.version:
        return [
            *problems,
            f"{where}.gateway: {gateway} is IPv{gateway.version} but {shown} is "
            f"IPv{destination.version}",
        ]
    if name is not None:
        problem = _route_interface_problem(name, context)
        if problem:
            return [*problems, f"{where}.interface: {problem}"]
    if gateway is not None:
        problem = _gateway_problem(gateway, name, context, net)
        if problem:
            field_name = "interface" if problem.startswith("a link-local") else "gateway"
            problems.append(f"{where}.{field_name}: {problem}")
    return problems


def _route_interface_problem(name: str, context: _RouteContext) -> str:
    if name == LOOPBACK_NAME:
        return "the loopback interface is not configurable"
    if name not in context.by_name:
        missing = "" if name in context.live.names else f" (and there is no interface {name} here)"
        return f"{name} is not among the configured interfaces{missing}"
    if not context.by_name[name].up:
        return f"{name} is configured down"
    return ""


def _gateway_problem(
    gateway: IPAddress, name: str | None, context: _RouteContext, net: _Net
) -> str:
    if gateway in context.own:
        return f"{gateway} is this node's own address"
    if gateway.version == 6 and gateway.is_link_local:
        return "" if name is not None else f"a link-local gateway ({gateway}) needs an interface"
    holders = [
        iface
        for iface in (*net.interfaces, *context.unstated)
        if (name is None or iface.name == name) and _on_link(gateway, iface)
    ]
    if not holders:
        if name is not None and any(_on_link(gateway, iface) for iface in net.interfaces):
            return f"{gateway} is not in a subnet of {name}"
        return f"{gateway} is not in any configured subnet, so it cannot be reached"
    if not any(iface.up for iface in holders):
        down = ", ".join(iface.name for iface in holders)
        return f"{gateway} is only reachable through {down}, configured down"
    return ""


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
