"""The audit log: the one place that records who did what."""

import logging
from typing import Any

from django.http import HttpRequest

from lbadmin.models import AuditEntry, User

logger = logging.getLogger("lbadmin.audit")


def request_source_ip(request: HttpRequest) -> str | None:
    """The address the request came from. Gunicorn faces the browser directly, so no proxy
    header is trusted: a client could forge one to dodge the per-address lockout."""
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: AuditEntry.Action,
    actor: User | None = None,
    username: str = "",
    source_ip: str | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry.objects.create(
        action=action,
        actor=actor,
        username=username or (actor.get_username() if actor else ""),
        source_ip=source_ip,
        target=target,
        detail=detail or {},
    )
    logger.info(
        "%s user=%s from=%s%s",
        action.value,
        entry.username or "-",
        source_ip or "-",
        f" target={target}" if target else "",
    )
    return entry
