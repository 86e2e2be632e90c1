"""Local Configuration's state: what is stored (``configured_network``, the record of what
was applied in ``HostSettings``), what is live, and what cannot be applied because an interface
is missing (``applicable_part``). The flow of a change is in ``network``, going back in
``network_revert``; see ``network``'s docstring for how they fit."""

import dataclasses
from typing import Any

from django.conf import settings

from lbadmin.engines import netconfig, netinfo
from lbadmin.engines.netconfig import (
    InterfaceConfig,
    NetworkConfig,
    RouteConfig,
)
from lbadmin.models import (
    HostSettings,
    NetworkAddress,
    NetworkInterface,
    StaticRoute,
)


class NetworkRefused(ValueError):
    """The change is invalid or cannot be made here; nothing was changed. ``fields`` holds,
    for each problem, the form field it is about (None: the change as a whole)."""

    def __init__(self, problems: list[str], fields: list[str | None] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.fields = fields if fields is not None else [None] * len(problems)


def management_off_reason() -> str:
    """Why this node's network is shown read-only ('' when the appliance manages it)."""
    if settings.LBADMIN_MANAGE_NETWORK:
        return ""
    return (
        "network management is off (LBADMIN_MANAGE_NETWORK is not set): this host's network "
        "is not the appliance's to change (a container or a developer's machine), so its live "
        "state is shown read-only."
    )


def network_problem() -> str:
    """What is wrong with this node's network now ('' when nothing): a missing interface, a
    revert that could not be completed. Shown on System Overview and by health."""
    stored = HostSettings.objects.filter(pk=1).values_list("network_problem", flat=True).first()
    return stored or ""


def netns() -> str | None:
    return settings.LBADMIN_NETWORK_NETNS or None


# --- Configured and live state -----------------------------------------------------------------


def configured_network() -> NetworkConfig:
    interfaces = []
    for interface in NetworkInterface.objects.prefetch_related("addresses"):  # added order
        interfaces.append(
            InterfaceConfig(
                name=interface.name,
                up=interface.up,
                mtu=interface.mtu,
                addresses=tuple(a.address for a in interface.addresses.all()),
            )
        )
    routes = tuple(
        RouteConfig(
            destination=route.destination,
            gateway=route.gateway or None,
            interface=route.interface or None,
            metric=route.metric,
        )
        for route in StaticRoute.objects.all()
    )
    return NetworkConfig(interfaces=tuple(interfaces), routes=routes)


def live_network() -> tuple[NetworkConfig | None, list[Any], str]:
    """(live config, live interfaces, error) of the managed namespace."""
    try:
        return netconfig.read_network(netns()), netinfo.interfaces(netns()), ""
    except (netinfo.NetinfoError, netconfig.NetconfigError) as error:
        return None, [], str(error)


def config_as_json(config: NetworkConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_json(data: dict[str, Any] | None) -> NetworkConfig | None:
    """A stored NetworkConfig (None when there is none). Its values are checked by the engine
    (validate_network) before anything is applied from it."""
    if not data:
        return None
    return NetworkConfig(
        interfaces=tuple(
            InterfaceConfig(
                name=item["name"],
                up=item["up"],
                mtu=item["mtu"],
                addresses=tuple(item["addresses"]),
            )
            for item in data["interfaces"]
        ),
        routes=tuple(
            RouteConfig(
                destination=item["destination"],
                gateway=item["gateway"],
                interface=item["interface"],
                metric=item.get("metric"),
            )
            for item in data["routes"]
        ),
    )


def live_interface_names() -> list[str]:
    try:
        return [link.name for link in netinfo.links(netns())]
    except netinfo.NetinfoError:
        return []


def applicable_part(
    config: NetworkConfig, live_names: list[str]
) -> tuple[NetworkConfig, list[str]]:
    """``config`` without what cannot be applied because an interface is missing (its own
    settings, the routes through it or only reachable through it), and a line for each
    missing interface."""
    live = set(live_names)
    interfaces = tuple(item for item in config.interfaces if item.name in live)
    missing = [item.name for item in config.interfaces if item.name not in live]
    if not missing:
        return config, []
    routes = [route for route in config.routes if route.interface in (None, *live)]
    reduced = NetworkConfig(interfaces=interfaces, routes=tuple(routes))
    unreachable = {
        int(problem.split("]", 1)[0].removeprefix("routes["))
        for problem in netconfig.validate_network(reduced, live_names)
        if problem.startswith("routes[")
    }
    kept = tuple(route for index, route in enumerate(routes) if index not in unreachable)
    dropped = [route for route in config.routes if route not in kept]
    lines = [
        f"{name} is missing: its settings are not applied"
        + (
            f" (nor the routes {', '.join(route.destination for route in dropped)})"
            if dropped
            else ""
        )
        for name in missing
    ]
    return NetworkConfig(interfaces=interfaces, routes=kept), lines


def locked_state() -> HostSettings:
    HostSettings.load()
    return HostSettings.objects.select_for_update().get(pk=1)


def store_configured(config: NetworkConfig) -> None:
    """Make the database hold ``config``, keeping the rows that stay as they are (their ids
    are in other sessions' pages; a new address goes last, as it went live)."""
    wanted = {item.name: item for item in config.interfaces}
    NetworkInterface.objects.exclude(name__in=wanted).delete()
    rows = {row.name: row for row in NetworkInterface.objects.all()}
    for name, item in wanted.items():
        row = rows.get(name) or NetworkInterface(name=name)
        if row.pk is None or (row.up, row.mtu) != (item.up, item.mtu):
            row.up, row.mtu = item.up, item.mtu
            row.save()
        rows[name] = row
    places = {address: rows[item.name] for item in config.interfaces for address in item.addresses}
    NetworkAddress.objects.exclude(address__in=places).delete()
    kept = {row.address: row for row in NetworkAddress.objects.all()}
    for address, interface in places.items():
        row = kept.get(address)
        if row is None:
            NetworkAddress.objects.create(interface=interface, address=address)
        elif row.interface_id != interface.pk:
            row.interface = interface
            row.save()
    routes = {(route.destination, route.gateway or ""): route for route in config.routes}
    for row in StaticRoute.objects.all():
        route = routes.pop((row.destination, row.gateway), None)
        if route is None:
            row.delete()
        elif (row.interface, row.metric) != (route.interface or "", route.metric):
            row.interface, row.metric = route.interface or "", route.metric
            row.save()
    for (destination, gateway), route in routes.items():
        StaticRoute.objects.create(
            destination=destination,
            gateway=gateway,
            interface=route.interface or "",
            metric=route.metric,
        )
