"""Login throttling and lockout, per account and per source address, from the audit log."""

import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from lbadmin.models import AuditEntry
from lbadmin.services.auth import login_gate

pytestmark = pytest.mark.django_db

LIMITS = {
    "LBADMIN_LOGIN_WINDOW_SECONDS": 900,
    "LBADMIN_LOGIN_MAX_FAILURES_PER_USER": 5,
    "LBADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LBADMIN_LOGIN_THROTTLE_AFTER": 3,
}


def fail(username: str, ip: str, at) -> None:
    AuditEntry.objects.create(
        action=AuditEntry.Action.LOGIN_FAILED, username=username, source_ip=ip, at=at
    )


@override_settings(**LIMITS)
def test_first_failures_are_not_throttled() -> None:
    now = timezone.now()
    for i in range(3):
        fail("loadbalancer", "127.0.0.5", now - timedelta(seconds=10 - i))
    assert login_gate(username="loadbalancer", source_ip="127.0.0.5", now=now).allowed


@override_settings(**LIMITS)
def test_failures_past_the_threshold_must_wait_exponentially() -> None:
    now = timezone.now()
    for _ in range(4):
        fail("loadbalancer", "127.0.0.5", now)
    # 4 failures = 1 beyond the threshold of 3: wait 2**1 = 2 s after the last one.
    gate = login_gate(
        username="loadbalancer", source_ip="127.0.0.5", now=now + timedelta(seconds=1)
    )
    assert not gate.allowed
    assert gate.retry_after_seconds == 1
    assert "Try again in 1 second." in gate.message
    assert login_gate(
        username="loadbalancer", source_ip="127.0.0.5", now=now + timedelta(seconds=2)
    ).allowed


@override_settings(**LIMITS)
def test_account_locks_after_max_failures_for_the_window() -> None:
    now = timezone.now()
    for _ in range(5):
        fail("loadbalancer", "127.0.0.5", now)
    # Even from another address, and long after the exponential wait.
    later = now + timedelta(minutes=14)
    gate = login_gate(username="loadbalancer", source_ip="127.0.0.9", now=later)
    assert not gate.allowed
    assert "locked" in gate.reason
    assert gate.retry_after_seconds == 60
    assert login_gate(
        username="loadbalancer", source_ip="127.0.0.9", now=now + timedelta(minutes=15)
    ).allowed


@override_settings(**LIMITS)
def test_other_accounts_are_not_locked_by_one_accounts_failures() -> None:
    now = timezone.now()
    for _ in range(5):
        fail("loadbalancer", "127.0.0.5", now)
    assert login_gate(username="operator", source_ip="127.0.0.6", now=now).allowed


@override_settings(**LIMITS)
def test_successful_login_resets_the_account_count() -> None:
    now = timezone.now()
    for _ in range(4):
        fail("loadbalancer", "127.0.0.5", now - timedelta(seconds=60))
    AuditEntry.objects.create(
        action=AuditEntry.Action.LOGIN, username="loadbalancer", at=now - timedelta(seconds=30)
    )
    fail("loadbalancer", "127.0.0.5", now - timedelta(seconds=20))
    assert login_gate(username="loadbalancer", source_ip="127.0.0.5", now=now).allowed


@override_settings(**LIMITS)
def test_address_locks_after_failures_across_many_accounts() -> None:
    now = timezone.now()
    for i in range(20):
        fail(f"guess{i}", "127.0.0.7", now - timedelta(seconds=i))
    gate = login_gate(username="loadbalancer", source_ip="127.0.0.7", now=now)
    assert not gate.allowed
    assert "address" in gate.reason
    # The same account from another address is fine: only the address is blocked.
    assert login_gate(username="loadbalancer", source_ip="127.0.0.8", now=now).allowed


@override_settings(**LIMITS)
def test_old_failures_outside_the_window_do_not_count() -> None:
    now = timezone.now()
    for _ in range(10):
        fail("loadbalancer", "127.0.0.5", now - timedelta(minutes=16))
    assert login_gate(username="loadbalancer", source_ip="127.0.0.5", now=now).allowed


@override_settings(**{**LIMITS, "LBADMIN_LOGIN_THROTTLE_AFTER": 10})  # lockout alone
def test_lockout_through_the_login_form_is_recorded_and_logged(
    client, default_user, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="lbadmin")
    for _ in range(5):
        client.post("/lbadmin/login/", {"username": "loadbalancer", "password": "wrong-one"})
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED).count() == 5
    # The right password is now refused without being checked.
    response = client.post(
        "/lbadmin/login/", {"username": "loadbalancer", "password": "loadbalancer"}
    )
    assert response.status_code == 200
    assert "locked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    refused = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_REFUSED)
    assert refused.username == "loadbalancer"
    assert refused.source_ip == "127.0.0.1"
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN).exists()
    assert "login_failed user=loadbalancer from=127.0.0.1" in caplog.text
    assert "login_refused user=loadbalancer" in caplog.text
