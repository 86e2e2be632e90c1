"""Django's authentication signals feed the audit log."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from lbadmin.models import AuditEntry, User
from lbadmin.services.audit import audit_record, request_source_ip


@receiver(user_logged_in)
def record_login(sender: type, request: HttpRequest, user: User, **kwargs: object) -> None:
    audit_record(action=AuditEntry.Action.LOGIN, actor=user, source_ip=request_source_ip(request))


@receiver(user_logged_out)
def record_logout(sender: type, request: HttpRequest, user: User | None, **kwargs: object) -> None:
    if user is not None:
        audit_record(
            action=AuditEntry.Action.LOGOUT, actor=user, source_ip=request_source_ip(request)
        )


@receiver(user_login_failed)
def record_failed_login(
    sender: str, credentials: dict, request: HttpRequest | None = None, **kwargs: object
) -> None:
    audit_record(
        action=AuditEntry.Action.LOGIN_FAILED,
        username=str(credentials.get("username", ""))[:150],
        source_ip=request_source_ip(request) if request else None,
    )
