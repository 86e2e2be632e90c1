"""Cluster Configuration > Layer 7 pages, the blue box, and View Configuration."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lbadmin.models import AuditEntry, ConfigRevision, ConfigState, RealServer, VirtualService

pytestmark = pytest.mark.django_db


def add_service(client, **data: str):
    form = {"label": "FrontEndPool", "ip": "192.168.10.30", "ports": "135,443,444,5061,5065,5069"}
    form.update({"protocol": "tcp", **data})
    return client.post("/lbadmin/cluster/l7/services/add/", form)


def test_the_guides_add_form_creates_a_service_with_mode_defaults(admin) -> None:
    assert add_service(admin).status_code == 302
    tcp = VirtualService.objects.get(label="FrontEndPool")
    assert tcp.port_list == (135, 443, 444, 5061, 5065, 5069)
    assert tcp.persistence == "source_ip"  # the guide's table for TCP-mode Lync services
    response = admin.post(
        "/lbadmin/cluster/l7/services/add/",
        {"label": "FePoolExtWebSvcs8080", "ip": "192.168.20.30", "ports": "8080",
         "protocol": "http"},
    )  # fmt: skip
    assert response.status_code == 302
    http = VirtualService.objects.get(label="FePoolExtWebSvcs8080")
    assert (http.persistence, http.cookie_name) == ("http_cookie", "SERVERID")
    entry = AuditEntry.objects.filter(action=AuditEntry.Action.CONFIG_CREATED).first()
    assert entry.target == "L7 virtual service FePoolExtWebSvcs8080"
    assert entry.username == "loadbalancer"


def test_modify_sets_the_check_port_and_cookie_name(admin) -> None:
    add_service(admin)
    service = VirtualService.objects.get()
    page = admin.get(f"/lbadmin/cluster/l7/services/{service.pk}/modify/").content.decode()
    assert 'value="FrontEndPool"' in page
    assert 'name="check_port"' in page
    data = {
        "label": "FrontEndPool", "ip": "192.168.10.30", "ports": "135,443,444,5061,5065,5069",
        "protocol": "tcp", "balance": "leastconn", "persistence": "source_ip",
        "cookie_name": "SERVERID", "persistence_timeout": "30m", "health_check": "connect",
        "check_port": "5061", "check_interval": "4s", "fallback_ip": "", "fallback_port": "",
        "manual_text": "",
    }  # fmt: skip
    assert admin.post(f"/lbadmin/cluster/l7/services/{service.pk}/modify/", data).status_code == 302
    service.refresh_from_db()
    assert service.check_port == 5061
    assert service.persistence_timeout_s == 1800


def test_real_servers_blank_port_and_default_weight(admin) -> None:
    # The guide's FePoolExtWebSvcs8081: HTTP mode (Re-Encrypt needs it, see below).
    add_service(admin, label="FePoolExtWebSvcs8081", ports="8081", protocol="http")
    service = VirtualService.objects.get()
    page = admin.get(f"/lbadmin/cluster/l7/services/{service.pk}/servers/add/").content.decode()
    assert 'name="weight" value="100"' in page
    response = admin.post(
        f"/lbadmin/cluster/l7/services/{service.pk}/servers/add/",
        {"label": "FE-1", "ip": "192.168.10.31", "port": "", "weight": "100"},
    )
    assert response.status_code == 302
    server = RealServer.objects.get()
    assert (server.port, server.weight, server.reencrypt) == (None, 100, False)
    page = admin.get("/lbadmin/cluster/l7/servers/").content.decode()
    assert "(client's port)" in page
    # Re-encrypt is a flag on modify, as in the guide's Lync 2010 steps.
    response = admin.post(
        f"/lbadmin/cluster/l7/servers/{server.pk}/modify/",
        {"label": "FE-1", "ip": "192.168.10.31", "port": "4443", "weight": "100",
         "reencrypt": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    server.refresh_from_db()
    assert (server.port, server.reencrypt) == (4443, True)


def test_delete_is_post_only_and_cascades(admin) -> None:
    add_service(admin)
    service = VirtualService.objects.get()
    RealServer.objects.create(virtual_service=service, label="FE-1", ip="192.168.10.31")
    url = f"/lbadmin/cluster/l7/services/{service.pk}/delete/"
    assert admin.get(url).status_code == 405
    assert admin.post(url).status_code == 302
    assert not RealServer.objects.exists()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.CONFIG_DELETED).exists()


def test_a_change_shows_the_blue_box_until_applied(admin) -> None:
    page = admin.get("/lbadmin/cluster/l7/services/").content.decode()
    assert 'id="reload-haproxy"' not in page
    add_service(admin)
    page = admin.get("/lbadmin/cluster/l7/services/").content.decode()
    assert 'id="reload-haproxy"' in page
    assert "Configuration changes are pending" in page
    assert ConfigState.load().pending_engines == ["haproxy"]
    ConfigState.objects.update(pending_engines=[])  # what a successful apply does
    assert 'id="reload-haproxy"' not in admin.get("/lbadmin/").content.decode()


def test_reload_button_queues_an_apply_and_the_box_polls_it(admin) -> None:
    add_service(admin)
    response = admin.post("/lbadmin/apply/", HTTP_HX_REQUEST="true")
    revision = ConfigRevision.objects.get()
    box = response.content.decode()
    assert f'hx-get="/lbadmin/apply/{revision.pk}/"' in box
    assert "Waiting to apply the configuration" in box
    ConfigRevision.objects.filter(pk=revision.pk).update(
        status=ConfigRevision.Status.FAILED, error="[ALERT] cannot bind socket 192.0.2.10:80"
    )
    box = admin.get(f"/lbadmin/apply/{revision.pk}/").content.decode()
    assert "hx-trigger" not in box  # polling stops
    assert "The configuration was not applied" in box
    assert "cannot bind socket 192.0.2.10:80" in box
    assert 'id="reload-haproxy"' in box  # the changes are still pending


def test_pending_diff_shows_what_apply_would_change(admin) -> None:
    # A label no other test applies: the running file may hold what earlier tests applied.
    add_service(admin, label="PendingDiffProbe", ip="192.168.10.99")
    page = admin.get("/lbadmin/view/pending/").content.decode()
    assert "+listen PendingDiffProbe" in page
    assert "+    bind 192.168.10.99:5061" in page


def test_revision_pages(admin, admin_user) -> None:
    revision = ConfigRevision.objects.create(
        actor=admin_user, status=ConfigRevision.Status.APPLIED, text="global\n",
        sha256="a" * 64, diff="+global\n", document={"format": "x"},
    )  # fmt: skip
    page = admin.get("/lbadmin/view/revisions/").content.decode()
    assert "Roll back to this" in page
    page = admin.get(f"/lbadmin/view/revisions/{revision.pk}/").content.decode()
    assert "+global" in page and "a" * 64 in page


def test_restart_services_page_warns_about_dropped_connections(admin) -> None:
    page = admin.get("/lbadmin/maintenance/services/").content.decode()
    assert "Reload HAProxy" in page
    assert "every current connection is dropped" in page
    assert admin.get("/lbadmin/maintenance/services/haproxy/restart/").status_code == 405


@pytest.mark.parametrize(
    "url", ["/lbadmin/cluster/l7/services/", "/lbadmin/cluster/l7/servers/", "/lbadmin/"]
)
def test_page_queries_do_not_grow_with_the_configuration(admin, url: str) -> None:
    def make(count: int, start: int) -> None:
        for i in range(start, start + count):
            service = VirtualService.objects.create(
                label=f"svc{i}", ip=f"127.0.{i // 200}.{i % 200 + 1}", ports="80,443"
            )
            RealServer.objects.bulk_create(
                RealServer(virtual_service=service, label=f"rs{j}", ip=f"127.1.{i % 200}.{j + 1}")
                for j in range(3)
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin.get(url).status_code == 200
        return len(captured)

    make(2, 0)
    queries()  # the first visit creates the singleton rows (ConfigState)
    few = queries()
    make(40, 2)
    assert queries() == few


def test_a_manual_service_added_without_lines_still_applies(admin) -> None:
    response = add_service(admin, label="Manual", ip="192.168.10.98", manual_config="on")
    service = VirtualService.objects.get(label="Manual")
    assert response["Location"] == f"/lbadmin/cluster/l7/services/{service.pk}/modify/"
    page = admin.get("/lbadmin/view/pending/").content.decode()
    assert "+listen Manual" in page  # renders (binds only) instead of failing every apply


def test_apply_never_redirects_off_site(admin) -> None:
    response = admin.post("/lbadmin/apply/", {"next": "https://evil.example/"})
    assert response["Location"] == "/lbadmin/view/revisions/"
    response = admin.post("/lbadmin/apply/", {"next": "/lbadmin/maintenance/services/"})
    assert response["Location"] == "/lbadmin/maintenance/services/"
