"""The layout, the menu, and the pages that exist so far."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lbadmin.menu import MENU
from lbadmin.models import AuditEntry

pytestmark = pytest.mark.django_db

STRONG = "Corr3ct-Horse-Battery"


@pytest.fixture
def admin_client(client, default_user):
    default_user.set_password(STRONG)
    default_user.must_change_password = False
    default_user.save()
    client.force_login(default_user)
    return client


def menu_url_names() -> list[str]:
    names = []
    for section in MENU:
        if section.url_name:
            names.append(section.url_name)
        names.extend(item.url_name for item in section.items)
    return names


def test_every_menu_entry_works(admin_client) -> None:
    page = admin_client.get("/lbadmin/").content.decode()
    for name in menu_url_names():
        url = reverse(name)
        assert f'href="{url}"' in page
        assert admin_client.get(url).status_code == 200, name


def test_layout_shows_appliance_hostname_clock_and_user(admin_client) -> None:
    import socket

    page = admin_client.get("/lbadmin/").content.decode()
    assert socket.gethostname() in page
    assert 'id="clock"' in page
    assert "Logged in as <strong>loadbalancer</strong>" in page
    assert 'id="pending-changes"' in page
    assert "/lbadmin/static/htmx/htmx.min.js" in page
    assert "No Virtual Services configured." in page


def test_htmx_is_served_from_the_installed_package(admin_client) -> None:
    from django.contrib.staticfiles import finders

    path = finders.find("htmx/htmx.min.js")
    assert path and "js_lib_htmx" in path
    assert b"htmx" in open(path, "rb").read(4096)  # noqa: SIM115


def test_audit_log_query_count_is_constant(admin_client, default_user) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get("/lbadmin/logs/audit/").status_code == 200
        return len(captured)

    AuditEntry.objects.create(action=AuditEntry.Action.LOGIN, actor=default_user)
    queries()  # the first visit creates the singleton rows (ConfigState)
    few = queries()
    AuditEntry.objects.bulk_create(
        AuditEntry(action=AuditEntry.Action.LOGIN_FAILED, actor=default_user, username=f"u{i}")
        for i in range(120)
    )
    assert queries() == few
    page = admin_client.get("/lbadmin/logs/audit/").content.decode()
    assert "Page 1 of 3" in page
    assert "Failed login" in page


def test_health_reports_database_and_daemons_without_login(client) -> None:
    response = client.get("/lbadmin/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] is True
    assert set(body["daemons"]) == {"haproxy", "stunnel", "keepalived"}
    assert all(isinstance(v, bool) for v in body["daemons"].values())


def test_service_status_lists_the_three_daemons(admin_client) -> None:
    page = admin_client.get("/lbadmin/reports/services/").content.decode()
    for name in ("haproxy", "stunnel", "keepalived"):
        assert f"<td>{name}</td>" in page
