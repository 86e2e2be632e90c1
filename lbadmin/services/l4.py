"""Writes of Layer 4 virtual services and real servers. Each write is one transaction that
also marks keepalived pending and records who did it."""

from typing import Any

from django.db import transaction

from lbadmin.forms.l4 import (  # checks imported documents, until issue 19 part 1
    L4RealServerForm,
    L4VirtualServiceForm,
)
from lbadmin.models import AuditEntry, L4RealServer, L4VirtualService, User
from lbadmin.render.snapshot import AdminState, KeepalivedSnapshot
from lbadmin.render.snapshot import L4RealServer as L4RealServerSnapshot
from lbadmin.render.snapshot import L4VirtualService as L4VirtualServiceSnapshot
from lbadmin.services.audit import audit_record
from lbadmin.services.changes import KEEPALIVED, config_changed
from lbadmin.services.document_forms import form_data, form_problems
from lbadmin.services.l7 import assign_fields


def _record(action: AuditEntry.Action, actor: User | None, target: str, **detail: Any) -> None:
    audit_record(action=action, actor=actor, target=target, detail=detail)
    config_changed((KEEPALIVED,))


@transaction.atomic
def l4service_create(*, actor: User | None, values: dict[str, Any]) -> L4VirtualService:
    service = L4VirtualService.objects.create(**values)
    _record(AuditEntry.Action.CONFIG_CREATED, actor, f"L4 virtual service {service.label}")
    return service


@transaction.atomic
def l4service_update(
    *, actor: User | None, service: L4VirtualService, values: dict[str, Any]
) -> L4VirtualService:
    changed = assign_fields(service, values)
    _record(
        AuditEntry.Action.CONFIG_UPDATED,
        actor,
        f"L4 virtual service {service.label}",
        changed=changed,
    )
    return service


@transaction.atomic
def l4service_delete(*, actor: User | None, service: L4VirtualService) -> None:
    label = service.label
    service.delete()
    _record(AuditEntry.Action.CONFIG_DELETED, actor, f"L4 virtual service {label}")


@transaction.atomic
def l4server_create(
    *, actor: User | None, service: L4VirtualService, values: dict[str, Any]
) -> L4RealServer:
    server = L4RealServer.objects.create(virtual_service=service, **values)
    _record(
        AuditEntry.Action.CONFIG_CREATED, actor, f"L4 real server {service.label}/{server.label}"
    )
    return server


@transaction.atomic
def l4server_update(
    *, actor: User | None, server: L4RealServer, values: dict[str, Any]
) -> L4RealServer:
    changed = assign_fields(server, values)
    _record(
        AuditEntry.Action.CONFIG_UPDATED,
        actor,
        f"L4 real server {server.virtual_service.label}/{server.label}",
        changed=changed,
    )
    return server


@transaction.atomic
def l4server_delete(*, actor: User | None, server: L4RealServer) -> None:
    target = f"L4 real server {server.virtual_service.label}/{server.label}"
    server.delete()
    _record(AuditEntry.Action.CONFIG_DELETED, actor, target)


# --- The cluster configuration document (see lbadmin.services.config) ------------------------

_SERVICE_FIELDS = (
    "label", "ip", "ports", "protocol", "forwarding", "persistence", "persistence_timeout_s",
    "scheduler", "health_check", "check_port", "check_path", "check_status",
    "check_interval_s", "check_timeout_s",
)  # fmt: skip
_SERVER_FIELDS = ("label", "ip", "port", "weight", "min_connections", "max_connections")

AdminStates = dict[tuple[str, str], str]


def l4_export() -> list[dict[str, Any]]:
    """The Layer 4 services with their real servers, as plain values, sorted by label."""
    servers: dict[int, list[dict[str, Any]]] = {}
    for server in L4RealServer.objects.order_by("virtual_service_id", "label").values(
        "virtual_service_id", *_SERVER_FIELDS
    ):
        servers.setdefault(server.pop("virtual_service_id"), []).append(server)
    services = []
    for service in L4VirtualService.objects.order_by("label").values("id", *_SERVICE_FIELDS):
        service_id = service.pop("id")
        service["ports"] = [int(port) for port in service["ports"].split(",") if port]
        service["real_servers"] = servers.get(service_id, [])
        services.append(service)
    return services


def l4_admin_states() -> AdminStates:
    """(service label, server label) -> drain/halt, for Layer 4 servers not online."""
    return {
        (service, server): state
        for service, server, state in L4RealServer.objects.exclude(
            admin_state=AdminState.ONLINE
        ).values_list("virtual_service__label", "label", "admin_state")
    }


def keepalived_snapshot(document: dict[str, Any], states: AdminStates) -> KeepalivedSnapshot:
    """The renderer's input from an (already validated) export document."""
    return KeepalivedSnapshot(
        services=tuple(
            L4VirtualServiceSnapshot(
                **{name: item[name] for name in _SERVICE_FIELDS if name != "ports"},
                ports=tuple(item["ports"]),
                real_servers=tuple(
                    L4RealServerSnapshot(
                        **server,
                        state=AdminState(
                            states.get((item["label"], server["label"]), AdminState.ONLINE)
                        ),
                    )
                    for server in item["real_servers"]
                ),
            )
            for item in document["layer4"]["virtual_services"]
        )
    )


def l4_import(items: list[Any], kept_states: AdminStates) -> list[str]:
    """Re-create the Layer 4 services of an imported document through the WebUI's forms;
    returns the problems. Drain/halt set on System Overview survive (as for Layer 7)."""
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"layer4.virtual_services[{index}]"
        data = form_data(item, {*_SERVICE_FIELDS, "real_servers"}, where, problems)
        form = L4VirtualServiceForm(data)
        if not form.is_valid():
            problems += form_problems(where, form)
            continue
        service = L4VirtualService.objects.create(**form.values())
        for number, server in enumerate(item.get("real_servers") or []):
            server_where = f"{where}.real_servers[{number}]"
            server_form = L4RealServerForm(
                form_data(server, set(_SERVER_FIELDS), server_where, problems),
                virtual_service=service,
            )
            if server_form.is_valid():
                values = server_form.values()
                state = kept_states.get((service.label, values["label"]), AdminState.ONLINE)
                L4RealServer.objects.create(virtual_service=service, admin_state=state, **values)
            else:
                problems += form_problems(server_where, server_form)
    return problems
