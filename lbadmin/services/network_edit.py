"""One administrator's change to the stored network (``NetworkEdit``): replayed by the node's
worker on whatever is stored when its turn comes."""

import dataclasses
from typing import Any

from lbadmin.engines.netconfig import (
    InterfaceConfig,
    NetworkConfig,
    RouteConfig,
)
from lbadmin.services.network_state import NetworkRefused

# --- One change ---------------------------------------------------------------------------------

EDIT_KINDS = ("address-add", "address-remove", "interface-set", "route-add", "route-remove")


@dataclasses.dataclass(frozen=True)
class NetworkEdit:
    """One administrator's change, replayed on whatever is stored when the worker gets to it
    (so two sessions never overwrite each other). Values come from the pages' forms; the
    engine validates the configuration they make before anything is applied."""

    kind: str
    interface: str = ""
    address: str = ""
    up: bool = True
    mtu: int | None = None
    destination: str = ""
    gateway: str = ""
    metric: int | None = None

    def describe(self) -> str:
        if self.kind == "address-add":
            return f"add {self.address} on {self.interface}"
        if self.kind == "address-remove":
            return f"remove {self.address} from {self.interface}"
        if self.kind == "interface-set":
            state = "up" if self.up else "down"
            return f"{self.interface} {state}, MTU {self.mtu or 'unchanged'}"
        if self.kind == "route-add":
            return f"route {self.destination} via {self.gateway or self.interface}"
        return f"remove route {self.destination}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "NetworkEdit":
        """Strict: exactly the fields, each of its type (a task's argument is an input)."""
        fields = {field.name: field.type for field in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != set(fields):
            raise NetworkRefused(["the change is malformed"])
        if data["kind"] not in EDIT_KINDS or type(data["up"]) is not bool:
            raise NetworkRefused(["the change is malformed"])
        for number in ("mtu", "metric"):
            if data[number] is not None and type(data[number]) is not int:
                raise NetworkRefused(["the change is malformed"])
        texts = ("kind", "interface", "address", "destination", "gateway")
        if not all(isinstance(data[name], str) and len(data[name]) <= 64 for name in texts):
            raise NetworkRefused(["the change is malformed"])
        return cls(**data)

    def applied_to(self, config: NetworkConfig) -> NetworkConfig:
        """``config`` with this change made; NetworkRefused when it no longer fits (another
        session got there first)."""
        interfaces = list(config.interfaces)
        names = [item.name for item in interfaces]
        if self.kind == "address-add":
            for item in interfaces:
                if self.address.split("/")[0] in {a.split("/")[0] for a in item.addresses}:
                    raise NetworkRefused(
                        [f"{self.address} is configured already (on {item.name})"], ["address"]
                    )
            if self.interface not in names:
                interfaces.append(InterfaceConfig(name=self.interface))
                names.append(self.interface)
            index = names.index(self.interface)
            item = interfaces[index]
            interfaces[index] = dataclasses.replace(item, addresses=(*item.addresses, self.address))
        elif self.kind == "address-remove":
            found = [item for item in interfaces if self.address in item.addresses]
            if not found or found[0].name != self.interface:
                raise NetworkRefused(
                    [f"{self.address} is no longer configured on {self.interface}"]
                )
            index = names.index(self.interface)
            interfaces[index] = dataclasses.replace(
                found[0], addresses=tuple(a for a in found[0].addresses if a != self.address)
            )
        elif self.kind == "interface-set":
            if self.interface in names:
                index = names.index(self.interface)
                interfaces[index] = dataclasses.replace(interfaces[index], up=self.up, mtu=self.mtu)
            else:
                interfaces.append(InterfaceConfig(name=self.interface, up=self.up, mtu=self.mtu))
        routes = list(config.routes)
        if self.kind == "route-add":
            if any(route.destination == self.destination for route in routes):
                raise NetworkRefused(
                    [f"a route to {self.destination} exists: remove it first"], ["destination"]
                )
            routes.append(
                RouteConfig(
                    destination=self.destination,
                    gateway=self.gateway or None,
                    interface=self.interface or None,
                    metric=self.metric,
                )
            )
        elif self.kind == "route-remove":
            kept = [route for route in routes if route.destination != self.destination]
            if len(kept) == len(routes):
                raise NetworkRefused([f"there is no longer a route to {self.destination}"])
            routes = kept
        return NetworkConfig(interfaces=tuple(interfaces), routes=tuple(routes))

    def field_of(self, problem: str, config: NetworkConfig) -> str | None:
        """The form field a validation message (``interfaces[0].mtu: …``) is about, when it
        is about what this change edits."""
        path = problem.split(": ", 1)[0]
        names = [item.name for item in config.interfaces]
        if self.kind in ("address-add", "interface-set") and self.interface in names:
            where = f"interfaces[{names.index(self.interface)}]"
            if self.kind == "address-add":
                item = config.interfaces[names.index(self.interface)]
                if self.address in item.addresses:
                    at = f"{where}.addresses[{item.addresses.index(self.address)}]"
                    if path == at:
                        return "address"
            elif path == f"{where}.mtu":
                return "mtu"
            elif path.startswith(where):
                return "interface"
        if self.kind == "route-add":
            for index, route in enumerate(config.routes):
                if route.destination == self.destination and path.startswith(f"routes[{index}]"):
                    part = path.rsplit(".", 1)[-1]
                    fields = ("destination", "gateway", "interface", "metric")
                    return part if part in fields else None
        return None
