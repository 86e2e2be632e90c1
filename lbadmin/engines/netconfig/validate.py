"""What is wrong with a desired network: on its own (``validate_network``) and against what is
live and not the appliance's (``_conflicts``); messages start with the field they are about."""

from __future__ import annotations

from collections.abc import Iterable

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
)
from lbadmin.engines.netconfig.plan import _owned, _route_text


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
