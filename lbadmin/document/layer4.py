"""Layer 4 (keepalived driving IPVS): virtual services and their real servers."""

from __future__ import annotations

from math import inf
from typing import Annotated, Any

from pydantic import Field

from lbadmin.document import addresses
from lbadmin.document.addresses import Listener
from lbadmin.document.base import (
    DocumentModel,
    Indexed,
    Loc,
    Rules,
    items_of,
    repeats,
    report_repeated_labels,
)
from lbadmin.document.fields import (
    CheckPath,
    CheckSeconds,
    CheckStatus,
    Connections,
    IpAddress,
    Label,
    Lax,
    PersistenceTimeoutS,
    Port,
    Ports,
    Weight,
)
from lbadmin.render.snapshot import Forwarding, L4HealthCheck, L4Protocol, Scheduler

_SAME_PORT = (Forwarding.DR, Forwarding.TUNNEL)  # IPVS cannot change the port


class L4RealServer(DocumentModel):
    """A real server of a Layer 4 virtual service (IPVS thresholds: 0 = none)."""

    label: Label
    ip: IpAddress
    port: Port | None = Field(None, description="null: the virtual service's port")
    weight: Weight = 100
    min_connections: Connections = 0
    max_connections: Connections = Field(0, description="0: unlimited")

    @staticmethod
    def _check(rules: Rules, server: L4RealServer | None, data: Any) -> None:
        if server is not None and server.min_connections > (server.max_connections or inf):
            rules.add(
                ("min_connections",),
                f"must not be more than max_connections ({server.max_connections})",
                server.min_connections,
            )


class L4VirtualService(DocumentModel):
    """A Layer 4 virtual service: one IPVS service per port and protocol."""

    label: Label
    ip: IpAddress
    ports: Ports
    protocol: Annotated[L4Protocol, Lax] = L4Protocol.TCP
    forwarding: Annotated[Forwarding, Lax] = Forwarding.DR
    persistence: bool = True
    persistence_timeout_s: PersistenceTimeoutS = 300
    scheduler: Annotated[Scheduler, Lax] = Scheduler.WLC
    health_check: Annotated[L4HealthCheck, Lax] = L4HealthCheck.CONNECT
    check_port: Port | None = Field(None, description="null: each real server's port")
    check_path: CheckPath = "/"
    check_status: CheckStatus = 200
    check_interval_s: CheckSeconds = 10
    check_timeout_s: CheckSeconds = 5
    real_servers: list[L4RealServer] = []

    @property
    def protocols(self) -> tuple[str, ...]:
        """The transport protocols it takes ("tcp", "udp")."""
        if self.protocol is L4Protocol.TCP_UDP:
            return ("tcp", "udp")
        return (self.protocol.value,)

    @staticmethod
    def _check(rules: Rules, service: L4VirtualService | None, data: Any) -> None:
        servers, _ = items_of(service, data, ("real_servers",), L4RealServer)
        report_repeated_labels(rules, ("real_servers",), servers)
        if service is None:
            return
        for index, server in servers:
            service._server_rules(rules, index, server)
        # keepalived drops a second server at the same address and port (the port it is
        # sent to: its own, else the service's).
        for index, first in repeats(servers, lambda server: (server.ip, service._port_of(server))):
            rules.add(
                ("real_servers", index, "ip"),
                f"real_servers[{first}] has the same address and port already",
            )
        if servers and not any(server.weight for _, server in servers):
            # keepalived's quorum needs a total weight of at least 1 (lbadmin.render.keepalived)
            rules.add(
                ("real_servers",),
                "every real server has weight 0, which keepalived refuses: give one a weight",
            )

    def _server_rules(self, rules: Rules, index: int, server: L4RealServer) -> None:
        """What IPVS forwarding allows: the port rules and the address family."""
        where: Loc = ("real_servers", index)
        if server.port is not None and len(self.ports) > 1:
            rules.add(
                (*where, "port"),
                "must be null: a service with several ports forwards each to the same port",
                server.port,
            )
        elif (
            server.port is not None
            and self.forwarding in _SAME_PORT
            and server.port not in self.ports
        ):
            rules.add(
                (*where, "port"),
                f"direct routing and tunnel cannot change the port: use null or {self.ports[0]}",
                server.port,
            )
        if self.forwarding is not Forwarding.TUNNEL and (":" in server.ip) != (":" in self.ip):
            family = 6 if ":" in self.ip else 4
            rules.add(
                (*where, "ip"),
                f"NAT and direct routing keep the address family: use an IPv{family} address "
                "like the virtual service's",
                server.ip,
            )

    def _port_of(self, server: L4RealServer) -> int | None:
        if server.port is not None:
            return server.port
        return self.ports[0] if len(self.ports) == 1 else None


class Layer4(DocumentModel):
    """Layer 4: the virtual services (labels unique)."""

    virtual_services: list[L4VirtualService] = []

    @staticmethod
    def _check(rules: Rules, layer4: Layer4 | None, data: Any) -> None:
        services, _ = items_of(layer4, data, ("virtual_services",), L4VirtualService)
        addresses.check_services(rules, services, listeners_of)


def listeners_of(services: Indexed[Any], prefix: Loc = ()) -> list[Listener]:
    return addresses.listeners_of(
        services, prefix, section="layer4", owner="Layer 4 virtual service"
    )
