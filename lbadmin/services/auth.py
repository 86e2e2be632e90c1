"""Accounts of the WebUI: the factory user, login throttling and lockout, password changes.

Failed logins are counted from the audit log itself, so the record admins read and the
counter that throttles can never disagree. The throttle slows and blocks the guessing source
(per account and source address, and per source address), never an account for everyone:
otherwise anyone who can reach the login form could lock the administrator out.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.db.models import Count, Max
from django.http import HttpRequest
from django.utils import timezone

from lbadmin.models import AuditEntry, User
from lbadmin.services.audit import audit_record, request_source_ip


@dataclass(frozen=True)
class LoginGate:
    """Whether a login attempt may be checked at all."""

    allowed: bool
    retry_after_seconds: int = 0
    reason: str = ""

    @property
    def message(self) -> str:
        seconds = self.retry_after_seconds
        if seconds >= 120:
            wait = f"{math.ceil(seconds / 60)} minutes"
        else:
            wait = f"{seconds} second{'' if seconds == 1 else 's'}"
        return f"{self.reason} Try again in {wait}."


def default_user_ensure() -> User:
    """Create the factory account loadbalancer/loadbalancer if no account exists yet."""
    user = User.objects.filter(username=settings.LBADMIN_DEFAULT_USERNAME).first()
    if user is not None or User.objects.exists():
        return user or User.objects.order_by("id").first()
    user = User(
        username=settings.LBADMIN_DEFAULT_USERNAME,
        is_staff=True,
        is_superuser=True,
        must_change_password=True,
    )
    user.set_password(settings.LBADMIN_DEFAULT_PASSWORD)
    user.save()
    return user


def _failures(*, since: datetime, **match: str | None) -> tuple[int, datetime | None]:
    row = AuditEntry.objects.filter(
        action=AuditEntry.Action.LOGIN_FAILED, at__gt=since, **match
    ).aggregate(count=Count("id"), last=Max("at"))
    return row["count"], row["last"]


def login_gate(*, username: str, source_ip: str | None, now: datetime | None = None) -> LoginGate:
    """Decide whether to check a password at all, before checking it.

    Per source address: at LBADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS failures (any account) the
    address is locked for the window. Per account and source address: after
    LBADMIN_LOGIN_THROTTLE_AFTER failures each attempt must wait 2**(extra failures) seconds;
    at LBADMIN_LOGIN_MAX_FAILURES_PER_USER that address is locked out of that account for the
    window. A successful login resets that pair's count. Other addresses are never held back,
    so the right password from elsewhere always gets in. Unknown sources (no address) count as
    one source.
    """
    now = now or timezone.now()
    window = timedelta(seconds=settings.LBADMIN_LOGIN_WINDOW_SECONDS)

    if source_ip:
        count, last = _failures(since=now - window, source_ip=source_ip)
        if count >= settings.LBADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS and last:
            return _refuse(
                "Too many failed logins from your address.", until=last + window, now=now
            )

    pair = {"username": username, "source_ip": source_ip}  # source_ip=None: IS NULL
    last_success = (
        AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN, **pair)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    since = max(now - window, last_success) if last_success else now - window
    count, last = _failures(since=since, **pair)
    if last is None:
        return LoginGate(allowed=True)
    if count >= settings.LBADMIN_LOGIN_MAX_FAILURES_PER_USER:
        # Said plainly: the administrator locked out here can sign in from another machine.
        return _refuse(
            "This account is locked after too many failed logins. "
            "Other addresses can still sign in.",
            until=last + window,
            now=now,
        )
    extra = count - settings.LBADMIN_LOGIN_THROTTLE_AFTER
    if extra >= 0:
        wait = timedelta(seconds=min(2**extra, settings.LBADMIN_LOGIN_WINDOW_SECONDS))
        if now < last + wait:
            return _refuse("Too many failed logins.", until=last + wait, now=now)
    return LoginGate(allowed=True)


def _refuse(reason: str, *, until: datetime, now: datetime) -> LoginGate:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    return LoginGate(allowed=False, retry_after_seconds=seconds, reason=reason)


@dataclass(frozen=True)
class LoginAttempt:
    gate: LoginGate
    user: User | None = None  # None: refused by the gate, or the password is wrong


def login_attempt(*, request: HttpRequest | None, username: str, password: str) -> LoginAttempt:
    """Check a password behind the throttle (login_gate). Attempts on one account run one at
    a time, so parallel guesses cannot all pass the gate before any of their failures is
    counted. A refused attempt checks no password and is recorded here; a wrong password is
    recorded by Django's user_login_failed signal (lbadmin.signals), in the same transaction."""
    source_ip = request_source_ip(request) if request else None
    with transaction.atomic():
        User.objects.select_for_update().filter(username=username).first()
        gate = login_gate(username=username, source_ip=source_ip)
        if not gate.allowed:
            audit_record(
                action=AuditEntry.Action.LOGIN_REFUSED,
                username=username,
                source_ip=source_ip,
                detail={"reason": gate.reason, "retry_after": gate.retry_after_seconds},
            )
            return LoginAttempt(gate)
        return LoginAttempt(gate, authenticate(request, username=username, password=password))


def login_succeeded(*, user: User, raw_password: str) -> None:
    """Remember whether the account still uses the factory password (known only at login)."""
    is_default = raw_password == settings.LBADMIN_DEFAULT_PASSWORD
    if user.must_change_password != is_default:
        user.must_change_password = is_default
        user.save(update_fields=["must_change_password"])


@transaction.atomic
def password_change(*, user: User, new_password: str, source_ip: str | None) -> None:
    validate_password(new_password, user)
    user.set_password(new_password)
    user.must_change_password = False
    user.save(update_fields=["password", "must_change_password"])
    audit_record(action=AuditEntry.Action.PASSWORD_CHANGED, actor=user, source_ip=source_ip)
