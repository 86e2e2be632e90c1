"""Writes of SSL terminations. Each write is one transaction that also marks HAProxy (the
service's PROXY-protocol socket) and stunnel pending and records who did it."""

from typing import Any

from django.db import transaction

from lbadmin.models import AuditEntry, SslTermination, User
from lbadmin.services.audit import audit_record
from lbadmin.services.changes import HAPROXY, STUNNEL, config_changed
from lbadmin.services.l7 import assign_fields


def _record(action: AuditEntry.Action, actor: User | None, target: str, **detail: Any) -> None:
    audit_record(action=action, actor=actor, target=target, detail=detail)
    config_changed((HAPROXY, STUNNEL))


@transaction.atomic
def termination_create(*, actor: User | None, values: dict[str, Any]) -> SslTermination:
    termination = SslTermination.objects.create(**values)
    _record(
        AuditEntry.Action.CONFIG_CREATED,
        actor,
        f"SSL termination {termination.label}",
        service=termination.virtual_service.label,
        port=termination.port,
        certificate=termination.certificate.label,
    )
    return termination


@transaction.atomic
def termination_update(
    *, actor: User | None, termination: SslTermination, values: dict[str, Any]
) -> SslTermination:
    changed = assign_fields(termination, values)
    _record(
        AuditEntry.Action.CONFIG_UPDATED,
        actor,
        f"SSL termination {termination.label}",
        changed=changed,
    )
    return termination


@transaction.atomic
def termination_delete(*, actor: User | None, termination: SslTermination) -> None:
    label = termination.label
    termination.delete()
    _record(AuditEntry.Action.CONFIG_DELETED, actor, f"SSL termination {label}")
