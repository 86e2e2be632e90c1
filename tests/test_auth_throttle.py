"""Login throttling and lockout, per account and source address and per source address, from
the audit log: the guessing source is held back, never the account for everyone."""

import base64
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from django.utils import timezone

from lbadmin.models import AuditEntry, HaNode, User
from lbadmin.services.auth import login_gate

pytestmark = pytest.mark.django_db

LIMITS = {
    "LBADMIN_LOGIN_WINDOW_SECONDS": 900,
    "LBADMIN_LOGIN_MAX_FAILURES_PER_USER": 5,
    "LBADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LBADMIN_LOGIN_THROTTLE_AFTER": 3,
}


def fail(username: str, ip: str | None, at: datetime) -> None:
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
def test_max_failures_lock_the_guessing_address_out_of_the_account_only() -> None:
    now = timezone.now()
    for _ in range(5):
        fail("loadbalancer", "127.0.0.5", now)
    # The guessing address, long after the exponential wait: locked for the window.
    later = now + timedelta(minutes=14)
    gate = login_gate(username="loadbalancer", source_ip="127.0.0.5", now=later)
    assert not gate.allowed
    assert "locked" in gate.reason and "Other addresses can still sign in." in gate.reason
    assert gate.retry_after_seconds == 60
    assert login_gate(
        username="loadbalancer", source_ip="127.0.0.5", now=now + timedelta(minutes=15)
    ).allowed
    # Any other address: not locked, not even slowed down.
    assert login_gate(username="loadbalancer", source_ip="127.0.0.9", now=now).allowed


@override_settings(**LIMITS)
def test_the_slow_down_holds_back_the_guessing_address_only() -> None:
    now = timezone.now()
    for _ in range(4):
        fail("loadbalancer", "127.0.0.5", now)
    assert not login_gate(username="loadbalancer", source_ip="127.0.0.5", now=now).allowed
    assert login_gate(username="loadbalancer", source_ip="127.0.0.6", now=now).allowed


@override_settings(**LIMITS)
def test_failures_from_unknown_sources_count_as_one_source() -> None:
    now = timezone.now()
    for _ in range(5):
        fail("loadbalancer", None, now)
    assert not login_gate(username="loadbalancer", source_ip=None, now=now).allowed
    assert login_gate(username="loadbalancer", source_ip="127.0.0.9", now=now).allowed


@override_settings(**LIMITS)
def test_other_accounts_are_not_locked_by_one_accounts_failures() -> None:
    now = timezone.now()
    for _ in range(5):
        fail("loadbalancer", "127.0.0.5", now)
    assert login_gate(username="operator", source_ip="127.0.0.6", now=now).allowed


@override_settings(**LIMITS)
def test_successful_login_resets_the_count_of_its_address_only() -> None:
    now = timezone.now()
    for ip in ("127.0.0.5", "127.0.0.6"):
        for _ in range(4):
            fail("loadbalancer", ip, now - timedelta(seconds=60))
    # The administrator signs in from .5; .6 (the guesser) gains nothing from it.
    AuditEntry.objects.create(
        action=AuditEntry.Action.LOGIN,
        username="loadbalancer",
        source_ip="127.0.0.5",
        at=now - timedelta(seconds=30),
    )
    fail("loadbalancer", "127.0.0.5", now - timedelta(seconds=20))
    fail("loadbalancer", "127.0.0.6", now - timedelta(seconds=20))
    assert login_gate(username="loadbalancer", source_ip="127.0.0.5", now=now).allowed
    gate = login_gate(username="loadbalancer", source_ip="127.0.0.6", now=now)
    assert not gate.allowed and "locked" in gate.reason


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
    # Locked out from 127.0.0.1 only: the same account from another address gets in at once.
    elsewhere = type(client)()
    response = elsewhere.post(
        "/lbadmin/login/",
        {"username": "loadbalancer", "password": "loadbalancer"},
        REMOTE_ADDR="127.0.0.2",
    )
    assert response.status_code == 302
    assert elsewhere.session["_auth_user_id"] == str(default_user.pk)


GUESSER = "203.0.113.66"
ADMIN_DESK = "198.51.100.7"
STRONG = "Corr3ct-Horse-Battery"


def fifty_failures_from(
    client: Client, ip: str, url: str, post: Callable[[Client, str, str, str], HttpResponse]
) -> None:
    """50 failed logins on `loadbalancer` from one address: a few real ones through ``url``
    (the throttle lets the first ones check the password), the rest as the audit rows the
    real ones leave, for speed."""
    for _ in range(3):
        post(client, url, "wrong-guess", ip)
    failed = AuditEntry.objects.filter(
        action=AuditEntry.Action.LOGIN_FAILED, username="loadbalancer", source_ip=ip
    )
    assert failed.count() == 3
    now = timezone.now()
    for i in range(47):
        fail("loadbalancer", ip, now - timedelta(seconds=i))
    assert failed.count() == 50


def form_login(client: Client, url: str, password: str, ip: str) -> HttpResponse:
    return client.post(url, {"username": "loadbalancer", "password": password}, REMOTE_ADDR=ip)


@override_settings(**LIMITS)
def test_fifty_failures_from_one_address_do_not_lock_out_the_administrator(client) -> None:
    user = User(username="loadbalancer", is_staff=True, is_superuser=True)
    user.set_password(STRONG)
    user.save()
    fifty_failures_from(client, GUESSER, "/lbadmin/login/", form_login)

    # The right password from the guessing address: refused unchecked.
    refused = form_login(client, "/lbadmin/login/", STRONG, GUESSER)
    assert refused.status_code == 200
    assert "Too many failed logins from your address." in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_REFUSED).source_ip == GUESSER

    # The administrator at another address signs in at once.
    admin = type(client)()
    answer = form_login(admin, "/lbadmin/login/", STRONG, ADMIN_DESK)
    assert answer.status_code == 302, answer.content.decode()
    assert admin.session["_auth_user_id"] == str(user.pk)
    assert AuditEntry.objects.get(action=AuditEntry.Action.LOGIN).source_ip == ADMIN_DESK

    # The guesser is still blocked afterwards: the administrator's login resets only its own
    # address's count.
    again = form_login(client, "/lbadmin/login/", STRONG, GUESSER)
    assert "Too many failed logins from your address." in again.content.decode()
    assert "_auth_user_id" not in client.session


def pairing_request(client: Client, url: str, password: str, ip: str) -> HttpResponse:
    payload = {
        "username": "loadbalancer",
        "password": password,
        "master_ip": "192.0.2.1",
        "slave_ip": "192.0.2.2",
        "master_node_id": "6f1c1f0e-2a4b-4c8e-9d3a-1b2c3d4e5f60",
        "master_fingerprint": "ab" * 32,
        "pair_key": base64.b64encode(b"k" * 32).decode(),
    }
    return client.post(url, json.dumps(payload), content_type="application/json", REMOTE_ADDR=ip)


@override_settings(**LIMITS)
def test_fifty_failed_pairings_from_one_address_do_not_block_the_real_master(client) -> None:
    user = User(username="loadbalancer", is_staff=True, is_superuser=True)
    user.set_password(STRONG)
    user.save()
    url = "/lbadmin/api/ha/pair/"
    fifty_failures_from(client, GUESSER, url, pairing_request)

    blocked = pairing_request(client, url, STRONG, GUESSER)
    assert blocked.status_code == 429
    assert "Too many failed logins from your address." in blocked.json()["error"]
    assert HaNode.load().role == HaNode.Role.STANDALONE

    # The real master, at another address, pairs at once with the right password.
    answer = pairing_request(type(client)(), url, STRONG, ADMIN_DESK)
    assert answer.status_code == 200, answer.content.decode()
    assert HaNode.load().role == HaNode.Role.SLAVE
    assert pairing_request(client, url, STRONG, GUESSER).status_code == 429
