"""System Overview: every virtual service and real server with its live state, and the
drain / halt / online actions that take a server out of service without a reload."""

from dataclasses import dataclass
from datetime import timedelta

from django.core.paginator import Page, Paginator
from django.db import transaction
from django.utils import timezone

from lbadmin.engines.daemons import DaemonError
from lbadmin.engines.haproxy_apply import apply_lock
from lbadmin.engines.haproxy_runtime import (
    LiveStatus,
    ServerState,
    ServerStats,
    runtime_snapshot,
    server_connections,
    server_set_state,
)
from lbadmin.models import AuditEntry, RealServer, User, VirtualService
from lbadmin.render.haproxy import FALLBACK_SERVER
from lbadmin.render.snapshot import AdminState
from lbadmin.services import jobs
from lbadmin.services.audit import audit_record
from lbadmin.services.daemons import daemon_controllers


@dataclass(frozen=True)
class ServerRow:
    server: RealServer
    status: LiveStatus
    connections: int | None
    live_weight: int | None
    check: str


@dataclass(frozen=True)
class ServiceRow:
    service: VirtualService
    status: LiveStatus
    connections: int | None
    servers: tuple[ServerRow, ...]
    expanded: bool  # its real servers are shown


@dataclass(frozen=True)
class Overview:
    services: tuple[ServiceRow, ...]
    runtime_ok: bool
    runtime_error: str
    page: Page


SERVICES_PER_PAGE = 50


def overview(page_number: str | int | None = 1, expanded: frozenset[int] = frozenset()) -> Overview:
    """One page of services: at most three database queries (count, services, the real
    servers of the expanded ones) and one runtime-API round trip, however many services and
    servers exist. Real servers are listed only for the `expanded` services."""
    page = Paginator(VirtualService.objects.order_by("label"), SERVICES_PER_PAGE).get_page(
        page_number
    )
    shown = [service.pk for service in page if service.pk in expanded]
    servers_of: dict[int, list[RealServer]] = {}
    for server in RealServer.objects.filter(virtual_service_id__in=shown).order_by("label"):
        servers_of.setdefault(server.virtual_service_id, []).append(server)
    live = runtime_snapshot(
        daemon_controllers()["haproxy"], proxies=[service.label for service in page]
    )
    rows = []
    for service in page:
        proxy = live.proxies.get(service.label) if live.ok else None
        servers = tuple(
            _server_row(server, proxy.servers.get(server.label) if proxy else None)
            for server in servers_of.get(service.pk, ())
        )
        # The colour summarises every real server HAProxy runs for the service, shown or not
        # (not the fallback server, which only answers when they are all gone).
        statuses = tuple(
            stats.status
            for name, stats in (proxy.servers.items() if proxy else ())
            if name != FALLBACK_SERVER
        )
        rows.append(
            ServiceRow(
                service=service,
                status=summarise(statuses),
                connections=proxy.connections if proxy else None,
                servers=servers,
                expanded=service.pk in expanded,
            )
        )
    return Overview(services=tuple(rows), runtime_ok=live.ok, runtime_error=live.error, page=page)


def _server_row(server: RealServer, stats: ServerStats | None) -> ServerRow:
    if stats is None:  # not applied yet, or HAProxy is not answering
        return ServerRow(server, LiveStatus.UNKNOWN, None, None, "")
    return ServerRow(server, stats.status, stats.connections, stats.weight, stats.check)


def summarise(statuses: tuple[LiveStatus, ...]) -> LiveStatus:
    """A service's colour from its servers': green only if all are up, red if none can take
    traffic, blue if all are halted, yellow when in between."""
    known = [s for s in statuses if s is not LiveStatus.UNKNOWN]
    if not known:
        return LiveStatus.UNKNOWN
    if all(s is LiveStatus.UP for s in known):
        return LiveStatus.UP
    if all(s is LiveStatus.HALTED for s in known):
        return LiveStatus.HALTED
    if any(s in (LiveStatus.UP, LiveStatus.DRAINING) for s in known):
        return LiveStatus.DRAINING
    return LiveStatus.DOWN


def realserver_set_state(
    *, actor: User | None, server: RealServer, state: AdminState, source_ip: str | None = None
) -> str:
    """Record the state, then tell HAProxy through its runtime API (no reload). Returns ''
    or a warning for the administrator when HAProxy could not take it right now (it is
    recorded, and every later apply, restart or reboot renders it)."""
    service = server.virtual_service
    with transaction.atomic():
        RealServer.objects.filter(pk=server.pk).update(admin_state=state, halt_after=None)
        audit_record(
            action=AuditEntry.Action.SERVER_STATE_CHANGED,
            actor=actor,
            source_ip=source_ip,
            target=f"L7 real server {service.label}/{server.label}",
            detail={"state": str(state)},
        )
    server.admin_state, server.halt_after = state, None
    control = daemon_controllers()["haproxy"]
    try:
        # Not between an apply's state dump and its reload, or the new worker would miss it.
        with apply_lock(control.layout.run_dir, timeout=10):
            server_set_state(
                control, service.label, server.label, ServerState(state.value), weight=server.weight
            )
    except (DaemonError, OSError) as error:  # OSError covers the lock's TimeoutError
        return (
            f"Recorded, but HAProxy did not take it now ({error}); it applies at the next reload."
        )
    return ""


def admin_states_reassert() -> list[str]:
    """Give a freshly started HAProxy the drain/halt states recorded since its configuration
    was last rendered (a restart or a reboot would otherwise forget them). Returns problems."""
    control = daemon_controllers()["haproxy"]
    problems = []
    for server in RealServer.objects.exclude(admin_state=AdminState.ONLINE).select_related(
        "virtual_service"
    ):
        try:
            server_set_state(
                control,
                server.virtual_service.label,
                server.label,
                ServerState(server.admin_state),
                weight=server.weight,
            )
        except DaemonError as error:  # e.g. a server added since the last apply
            problems.append(f"{server.virtual_service.label}/{server.label}: {error}")
    return problems


def realserver_drain_then_halt(
    *, actor: User | None, server: RealServer, timeout: timedelta, source_ip: str | None = None
) -> str:
    """Drain now; the worker halts the server once it has no connections left, or when the
    timeout passes — the guide's two-step maintenance without anyone watching the counter."""
    warning = realserver_set_state(
        actor=actor, server=server, state=AdminState.DRAIN, source_ip=source_ip
    )
    server.halt_after = timezone.now() + timeout
    RealServer.objects.filter(pk=server.pk).update(halt_after=server.halt_after)
    transaction.on_commit(lambda: jobs.enqueue("drain_then_halt_task", server.pk, countdown=0.5))
    return warning


def drain_then_halt_step(server_id: int) -> bool:
    """One look at a draining server; halts it when idle or overdue. True when finished
    (halted, or someone changed the server's state meanwhile)."""
    server = RealServer.objects.select_related("virtual_service").filter(pk=server_id).first()
    if server is None or server.admin_state != AdminState.DRAIN or server.halt_after is None:
        return True
    connections = server_connections(
        daemon_controllers()["haproxy"], server.virtual_service.label, server.label
    )
    if connections == 0 or timezone.now() >= server.halt_after:
        # Only if nobody changed the server meanwhile (an Online click must win).
        still_draining = RealServer.objects.filter(
            pk=server.pk, admin_state=AdminState.DRAIN, halt_after=server.halt_after
        ).exists()
        if still_draining:
            realserver_set_state(actor=None, server=server, state=AdminState.HALT)
        return True
    return False
