"""The management plane's own protections: HTTPS only, cookies, CSRF, session timeout."""

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import HttpsClient

pytestmark = pytest.mark.django_db


def test_plain_http_is_redirected_to_https() -> None:
    response = Client().get("/lbadmin/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/lbadmin/login/"


def test_https_responses_carry_hsts_and_framing_protection(client) -> None:
    response = client.get("/lbadmin/login/")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_session_and_csrf_cookies_are_secure_and_httponly(client, default_user) -> None:
    page = client.get("/lbadmin/login/")
    csrf = page.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["secure"] and csrf["httponly"] and csrf["samesite"] == "Strict"
    response = client.post(
        "/lbadmin/login/", {"username": "loadbalancer", "password": "loadbalancer"}
    )
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Strict"
    # A browser-session cookie; the server ends the session after the idle timeout.
    assert session["max-age"] == ""
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_state_changes_need_a_csrf_token(default_user) -> None:
    strict = HttpsClient(enforce_csrf_checks=True)
    response = strict.post(
        "/lbadmin/login/", {"username": "loadbalancer", "password": "loadbalancer"}
    )
    assert response.status_code == 403
    assert "_auth_user_id" not in strict.session


def test_idle_sessions_expire(client, default_user) -> None:
    client.post("/lbadmin/login/", {"username": "loadbalancer", "password": "loadbalancer"})
    assert client.get("/lbadmin/").status_code == 200
    session = client.session
    session.set_expiry(-1)  # as if the idle timeout had passed
    session.save()
    assert client.get("/lbadmin/").status_code == 302


def test_polling_does_not_keep_an_idle_session_alive(client, default_user) -> None:
    import time

    from django.contrib.sessions.models import Session

    client.post("/lbadmin/login/", {"username": "loadbalancer", "password": "loadbalancer"})
    key = client.session.session_key

    def expiry():
        return Session.objects.get(session_key=key).expire_date

    first = expiry()
    time.sleep(1.1)
    assert client.get("/lbadmin/overview/table/", HTTP_HX_REQUEST="true").status_code == 200
    assert expiry() == first  # a poll is not activity
    assert client.get("/lbadmin/").status_code == 200
    assert expiry() > first  # a page the administrator opens is
