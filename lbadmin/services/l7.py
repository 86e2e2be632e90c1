"""Writes of Layer 7 virtual services, real servers and settings. Each write is one
transaction that also marks the configuration pending and records who did it."""

from typing import Any

from django.db import transaction

from lbadmin.models import AuditEntry, L7Settings, RealServer, User, VirtualService
from lbadmin.render.snapshot import L7Protocol, Persistence
from lbadmin.services.audit import audit_record
from lbadmin.services.changes import HAPROXY, STUNNEL, config_changed


def assign_fields(instance: Any, values: dict[str, Any]) -> list[str]:
    """Save new field values; returns the names of the fields that changed (for the audit)."""
    changed = sorted(name for name, value in values.items() if getattr(instance, name) != value)
    for name, value in values.items():
        setattr(instance, name, value)
    instance.save()
    return changed


def _record(
    action: AuditEntry.Action,
    actor: User | None,
    target: str,
    engines: tuple[str, ...] = (HAPROXY,),
    **detail: Any,
) -> None:
    audit_record(action=action, actor=actor, target=target, detail=detail)
    config_changed(engines)


class ServiceInUse(ValueError):
    """The service cannot be deleted: SSL terminations send to it."""


def _mode_defaults(protocol: str) -> dict[str, Any]:
    """What a new service gets unless told otherwise, as on the appliance: HTTP mode inserts
    the SERVERID cookie; TCP mode (the guide's Lync pools) sticks on the source address."""
    if protocol == L7Protocol.HTTP:
        return {"persistence": Persistence.HTTP_COOKIE, "cookie_name": "SERVERID"}
    return {"persistence": Persistence.SOURCE_IP}


@transaction.atomic
def virtualservice_create(*, actor: User | None, values: dict[str, Any]) -> VirtualService:
    values = _mode_defaults(values.get("protocol", L7Protocol.HTTP)) | values
    service = VirtualService.objects.create(**values)
    _record(AuditEntry.Action.CONFIG_CREATED, actor, f"L7 virtual service {service.label}")
    return service


@transaction.atomic
def virtualservice_update(
    *, actor: User | None, service: VirtualService, values: dict[str, Any]
) -> VirtualService:
    changed = assign_fields(service, values)
    # Its SSL terminations listen on its address: only a new address changes their files.
    fronted = "ip" in changed and service.ssl_terminations.exists()
    _record(
        AuditEntry.Action.CONFIG_UPDATED,
        actor,
        f"L7 virtual service {service.label}",
        (HAPROXY, STUNNEL) if fronted else (HAPROXY,),
        changed=changed,
    )
    return service


@transaction.atomic
def virtualservice_delete(*, actor: User | None, service: VirtualService) -> None:
    terminations = list(service.ssl_terminations.values_list("label", flat=True))
    if terminations:
        raise ServiceInUse(
            f"Virtual service {service.label} is used by SSL termination "
            f"{', '.join(terminations)}: delete or re-associate the termination first."
        )
    label = service.label
    service.delete()
    _record(AuditEntry.Action.CONFIG_DELETED, actor, f"L7 virtual service {label}")


@transaction.atomic
def realserver_create(
    *, actor: User | None, service: VirtualService, values: dict[str, Any]
) -> RealServer:
    server = RealServer.objects.create(virtual_service=service, **values)
    _record(
        AuditEntry.Action.CONFIG_CREATED, actor, f"L7 real server {service.label}/{server.label}"
    )
    return server


@transaction.atomic
def realserver_update(
    *, actor: User | None, server: RealServer, values: dict[str, Any]
) -> RealServer:
    changed = assign_fields(server, values)
    _record(
        AuditEntry.Action.CONFIG_UPDATED,
        actor,
        f"L7 real server {server.virtual_service.label}/{server.label}",
        changed=changed,
    )
    return server


@transaction.atomic
def realserver_delete(*, actor: User | None, server: RealServer) -> None:
    target = f"L7 real server {server.virtual_service.label}/{server.label}"
    server.delete()
    _record(AuditEntry.Action.CONFIG_DELETED, actor, target)


@transaction.atomic
def l7settings_update(*, actor: User | None, values: dict[str, Any]) -> L7Settings:
    settings = L7Settings.load()
    changed = assign_fields(settings, values)
    _record(
        AuditEntry.Action.CONFIG_UPDATED,
        actor,
        "Layer 7 advanced configuration",
        changed=changed,
    )
    return settings
