"""System Overview for Layer 4: services and real servers with their state and connection
counts from IPVS, and drain / halt / online. Unlike Layer 7 (HAProxy's runtime API), these
take effect through keepalived: the state is recorded, keepalived.conf is re-rendered from the
configuration that is running (pending changes stay pending) and keepalived reloads."""

from dataclasses import dataclass

from django.db import transaction

from lbadmin.engines.haproxy_runtime import LiveStatus
from lbadmin.engines.ipvs import IpvsService, read_ipvs
from lbadmin.engines.keepalived_apply import apply_keepalived_config
from lbadmin.models import AuditEntry, ConfigRevision, L4RealServer, L4VirtualService, User
from lbadmin.render.snapshot import AdminState, L4Protocol
from lbadmin.services.audit import audit_record
from lbadmin.services.config import keepalived_text
from lbadmin.services.daemons import daemon_controllers, layer4_unavailable_reason
from lbadmin.services.l4 import l4_admin_states
from lbadmin.services.locks import node_lock
from lbadmin.services.overview import summarise


@dataclass(frozen=True)
class L4ServerRow:
    server: L4RealServer
    status: LiveStatus
    connections: int | None  # active + inactive, over every port and protocol
    live_weight: int | None


@dataclass(frozen=True)
class L4ServiceRow:
    service: L4VirtualService
    status: LiveStatus
    connections: int | None
    servers: tuple[L4ServerRow, ...]


@dataclass(frozen=True)
class Layer4Overview:
    services: tuple[L4ServiceRow, ...]
    unavailable: str  # why Layer 4 cannot run on this host ('' when it can)


def layer4_overview() -> Layer4Overview:
    """Every Layer 4 service with its servers: two queries and one read of /proc/net/ip_vs."""
    services = list(L4VirtualService.objects.order_by("label"))
    servers_of: dict[int, list[L4RealServer]] = {}
    for server in L4RealServer.objects.order_by("label"):
        servers_of.setdefault(server.virtual_service_id, []).append(server)
    unavailable = layer4_unavailable_reason() if services else ""
    table = read_ipvs() if services and not unavailable else None
    rows = []
    for service in services:
        servers = tuple(
            _server_row(service, server, table) for server in servers_of.get(service.pk, ())
        )
        known = [row.connections for row in servers if row.connections is not None]
        rows.append(
            L4ServiceRow(
                service=service,
                status=summarise(tuple(row.status for row in servers)),
                connections=sum(known) if table is not None else None,
                servers=servers,
            )
        )
    return Layer4Overview(services=tuple(rows), unavailable=unavailable)


def _server_row(
    service: L4VirtualService, server: L4RealServer, table: tuple[IpvsService, ...] | None
) -> L4ServerRow:
    if table is None:
        return L4ServerRow(server, LiveStatus.UNKNOWN, None, None)
    protocols = {"tcp", "udp"} if service.protocol == L4Protocol.TCP_UDP else {service.protocol}
    entries = [
        entry
        for ipvs in table
        if ipvs.ip == service.ip and ipvs.port in service.port_list and ipvs.protocol in protocols
        for entry in ipvs.real_servers
        if entry.ip == server.ip and entry.port in {server.port or ipvs.port}
    ]
    if not entries:  # keepalived left it out: halted, or its health check failed
        halted = server.admin_state == AdminState.HALT
        return L4ServerRow(server, LiveStatus.HALTED if halted else LiveStatus.DOWN, 0, None)
    weight = min(entry.weight for entry in entries)
    connections = sum(entry.active + entry.inactive for entry in entries)
    status = LiveStatus.DRAINING if weight == 0 else LiveStatus.UP
    return L4ServerRow(server, status, connections, weight)


class StateRefused(ValueError):
    """keepalived could not run the service with that state (say the last server drained)."""


def l4server_set_state(
    *, actor: User | None, server: L4RealServer, state: AdminState, source_ip: str | None = None
) -> str:
    """Record drain / halt / online and have keepalived take it now (a reload: existing
    connections stay). Returns '' or a warning when keepalived could not take it now (it is
    recorded, and every later apply renders it). Raises StateRefused, recording nothing, for
    a state keepalived cannot run, such as every server of a service drained."""
    service = server.virtual_service
    running = (
        ConfigRevision.objects.filter(
            status__in=[ConfigRevision.Status.APPLIED, ConfigRevision.Status.UNCHANGED]
        )
        .exclude(document=None)
        .only("document")
        .first()
    )
    with transaction.atomic():
        L4RealServer.objects.filter(pk=server.pk).update(admin_state=state)
        text = ""
        if running is not None:
            try:
                text = keepalived_text(running.document, l4_admin_states())
            except ValueError as error:  # leaving the block rolls the state back
                raise StateRefused(
                    f"{service.label}/{server.label} stays as it was: {error}"
                ) from error
        audit_record(
            action=AuditEntry.Action.SERVER_STATE_CHANGED,
            actor=actor,
            source_ip=source_ip,
            target=f"L4 real server {service.label}/{server.label}",
            detail={"state": str(state)},
        )
    server.admin_state = state
    if running is None:
        return "Recorded; it takes effect with the first apply of the configuration."
    try:
        with node_lock("config-apply", timeout=30):  # never in the middle of an apply
            result = apply_keepalived_config(daemon_controllers()["keepalived"], text)
    except TimeoutError as error:
        return (
            f"Recorded, but keepalived did not take it now ({error}); it applies at the next apply."
        )
    if not result.ok:
        return f"Recorded, but keepalived did not take it now: {result.error}"
    return ""
