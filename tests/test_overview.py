"""System Overview: live state from a real HAProxy, drain / halt / online without a reload,
state that survives applies and restarts, drain-then-halt, constant query counts."""

import socket
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lbadmin.models import AuditEntry, ConfigRevision, RealServer, VirtualService
from lbadmin.services import l7
from lbadmin.services.config import config_apply_request, config_apply_run
from lbadmin.services.daemons import daemon_controllers, daemon_restart
from lbadmin.services.overview import admin_states_reassert
from tests.conftest import free_port, wait_until
from tests.support import fetch, http_backend, request_on

VIP = "127.0.11.30"
RIPS = {"FE-1": "127.0.11.31", "FE-2": "127.0.11.32"}


@pytest.fixture
def haproxy_stopped_after():
    yield
    daemon_controllers()["haproxy"].stop()


@pytest.fixture
def backends():
    port = free_port(RIPS["FE-1"])
    with http_backend(RIPS["FE-1"], port, "FE-1"), http_backend(RIPS["FE-2"], port, "FE-2"):
        yield port


def make_service(port: int, backend_port: int, **values: object) -> VirtualService:
    service = l7.virtualservice_create(
        actor=None,
        values={
            "label": "FrontEndPool", "ip": VIP, "ports": str(port), "protocol": "tcp",
            "balance": "roundrobin", "persistence": "none", "check_interval_ms": 200, **values,
        },
    )  # fmt: skip
    for label, ip in RIPS.items():
        l7.realserver_create(
            actor=None, service=service, values={"label": label, "ip": ip, "port": backend_port}
        )
    return service


def apply_now() -> ConfigRevision:
    revision = config_apply_run(config_apply_request(actor=None).pk)
    assert revision.status in ("applied", "unchanged"), revision.error
    return revision


def server_status(client, server: RealServer) -> str:
    url = f"/lbadmin/overview/table/?expanded={server.virtual_service_id}"
    page = client.get(url).content.decode()
    marker = f'id="rs-{server.pk}" data-status="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def reloads() -> int:
    return daemon_controllers()["haproxy"].show_proc().reloads


@pytest.mark.daemons
@pytest.mark.django_db
def test_drain_halt_online_act_at_once_without_a_reload(
    admin,
    backends: int,
    haproxy_stopped_after,
) -> None:
    port = free_port(VIP)
    service = make_service(port, backends)
    apply_now()
    fe1 = service.real_servers.get(label="FE-1")
    wait_until(lambda: server_status(admin, fe1) == "up", 5, "FE-1 up")
    before = reloads()

    # A long-lived connection on FE-1 (TCP mode: the connection is the session).
    held = socket.create_connection((VIP, port), timeout=5)
    owner = request_on(held)
    target = service.real_servers.get(label=owner)

    response = admin.post(
        f"/lbadmin/overview/servers/{target.pk}/state/",
        {"action": "drain", "expanded": str(service.pk)},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert f'id="rs-{target.pk}" data-status="draining"' in response.content.decode()
    # Existing connection continues; every new one goes to the other server.
    assert request_on(held) == owner
    other = ({*RIPS} - {owner}).pop()
    assert {fetch(VIP, port)[0] for _ in range(6)} == {other}

    admin.post(f"/lbadmin/overview/servers/{target.pk}/state/", {"action": "halt"})
    assert server_status(admin, target) == "halted"
    held.settimeout(3)
    assert held.recv(4096) == b""  # halt ended the session
    held.close()

    admin.post(f"/lbadmin/overview/servers/{target.pk}/state/", {"action": "online"})
    wait_until(lambda: server_status(admin, target) == "up", 5, "back up")
    assert {fetch(VIP, port)[0] for _ in range(6)} == set(RIPS)
    assert reloads() == before  # no reload for any of it
    target.refresh_from_db()
    assert target.admin_state == "online"
    states = list(
        AuditEntry.objects.filter(action=AuditEntry.Action.SERVER_STATE_CHANGED).values_list(
            "detail__state", flat=True
        )
    )
    assert states == ["online", "halt", "drain"]


@pytest.mark.daemons
@pytest.mark.django_db
def test_drain_survives_an_apply_and_a_restart(
    admin,
    backends: int,
    haproxy_stopped_after,
) -> None:
    port = free_port(VIP)
    service = make_service(port, backends)
    apply_now()
    fe1 = service.real_servers.get(label="FE-1")
    wait_until(lambda: server_status(admin, fe1) == "up", 5, "FE-1 up")
    admin.post(f"/lbadmin/overview/servers/{fe1.pk}/state/", {"action": "drain"})

    l7.l7settings_update(actor=None, values={"client_timeout_ms": 1_800_000})  # unrelated
    assert apply_now().status == "applied"
    assert server_status(admin, fe1) == "draining"
    assert {fetch(VIP, port)[0] for _ in range(4)} == {"FE-2"}

    assert daemon_restart("haproxy") == ""
    admin_states_reassert()  # what the restart task and `serve` do after a start
    wait_until(lambda: server_status(admin, fe1) == "draining", 5, "still draining")
    page = admin.get(f"/lbadmin/?expanded={service.pk}").content.decode()
    assert f'class="st-draining" id="rs-{fe1.pk}"' in page
    assert f'id="rs-{fe1.pk}"' not in admin.get("/lbadmin/").content.decode()  # collapsed
    assert {fetch(VIP, port)[0] for _ in range(4)} == {"FE-2"}


@pytest.mark.daemons
@pytest.mark.django_db
def test_a_stopped_backend_turns_red(admin, haproxy_stopped_after) -> None:
    port, backend_port = free_port(VIP), free_port(RIPS["FE-1"])
    with http_backend(RIPS["FE-2"], backend_port, "FE-2"):
        with http_backend(RIPS["FE-1"], backend_port, "FE-1"):
            service = make_service(port, backend_port)
            apply_now()
            fe1 = service.real_servers.get(label="FE-1")
            wait_until(lambda: server_status(admin, fe1) == "up", 5, "FE-1 up")
        # FE-1's backend has stopped: red within the health-check interval (200 ms here).
        wait_until(lambda: server_status(admin, fe1) == "down", 3, "FE-1 down")
        table = admin.get("/lbadmin/overview/table/").content.decode()
        assert f'class="service st-draining" id="vs-{service.pk}"' in table  # half available
        assert {fetch(VIP, port)[0] for _ in range(4)} == {"FE-2"}


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("closes_after", [1.5, None])
def test_drain_then_halt(
    admin,
    backends: int,
    celery_worker_process,
    haproxy_stopped_after,
    closes_after: float | None,
) -> None:
    port = free_port(VIP)
    service = make_service(port, backends)
    apply_now()
    held = socket.create_connection((VIP, port), timeout=5)
    owner = request_on(held)
    target = service.real_servers.get(label=owner)
    # Timeout 3 s: with the connection closing after 1.5 s the server halts when idle;
    # with it held open, the timeout halts it anyway.
    started = time.monotonic()
    admin.post(
        f"/lbadmin/overview/servers/{target.pk}/state/",
        {"action": "drain_then_halt", "timeout": "3s"},
    )
    assert server_status(admin, target) == "draining"
    if closes_after:
        time.sleep(closes_after)
        held.close()
    wait_until(lambda: server_status(admin, target) == "halted", 8, "halted")
    took = time.monotonic() - started
    if closes_after:
        assert took < 3, took  # halted when idle, before the timeout
    else:
        assert took >= 3, took
        held.close()
    target.refresh_from_db()
    assert (target.admin_state, target.halt_after) == ("halt", None)


@pytest.mark.django_db
def test_overview_query_count_is_constant_and_a_dead_haproxy_is_reported(admin) -> None:
    daemon_controllers()["haproxy"].stop()

    def make(count: int, start: int) -> None:
        for i in range(start, start + count):
            service = VirtualService.objects.create(
                label=f"svc{i}", ip=f"127.2.{i // 200}.{i % 200 + 1}", ports="80"
            )
            RealServer.objects.bulk_create(
                RealServer(virtual_service=service, label=f"rs{j}", ip=f"127.3.{i % 200}.{j + 1}")
                for j in range(3)
            )

    def queries() -> tuple[int, str]:
        ids = ",".join(map(str, VirtualService.objects.values_list("pk", flat=True)[:50]))
        with CaptureQueriesContext(connection) as captured:
            page = admin.get(f"/lbadmin/overview/table/?expanded={ids}").content.decode()
        return len(captured), page

    make(2, 0)
    queries()
    few, page = queries()
    assert "HAProxy is not answering" in page
    assert 'class="service st-unknown"' in page
    make(60, 2)
    many, page = queries()
    assert many == few
    assert page.count('class="service st-unknown"') == 50  # one page
    assert page.count('class="st-unknown" id="rs-') == 150  # every shown service expanded
    assert "Services 1–50 of 62" in page


@pytest.mark.django_db
def test_empty_overview_offers_the_setup_wizard_and_remembers_dismiss(admin, admin_user) -> None:
    page = admin.get("/lbadmin/").content.decode()
    assert "No Virtual Services configured." in page
    assert "Would you like to run the Setup Wizard?" in page
    assert admin.post("/lbadmin/overview/wizard/dismiss/").status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.setup_wizard_dismissed
    assert "Would you like to run the Setup Wizard?" not in admin.get("/lbadmin/").content.decode()


@pytest.mark.django_db
def test_state_buttons_are_post_only_and_allowlisted(admin) -> None:
    service = VirtualService.objects.create(label="x", ip="127.0.12.1", ports="80")
    server = RealServer.objects.create(virtual_service=service, label="a", ip="127.0.12.2")
    url = f"/lbadmin/overview/servers/{server.pk}/state/"
    assert admin.get(url).status_code == 405
    assert admin.get("/lbadmin/?expanded=1;2").status_code == 200  # ignored, not an error
    for bad in ("maint", "ready; shutdown", "", "drain\n"):
        admin.post(url, {"action": bad})
        server.refresh_from_db()
        assert server.admin_state == "online", bad
    admin.post(url, {"action": "drain_then_halt", "timeout": "%[x]"})
    server.refresh_from_db()
    assert server.admin_state == "online"


@pytest.mark.daemons
@pytest.mark.django_db
def test_a_halt_set_after_the_last_apply_survives_a_restart(
    admin,
    backends: int,
    haproxy_stopped_after,
) -> None:
    port = free_port(VIP)
    service = make_service(port, backends)
    apply_now()
    fe1 = service.real_servers.get(label="FE-1")
    admin.post(f"/lbadmin/overview/servers/{fe1.pk}/state/", {"action": "halt"})
    # No apply since: the running haproxy.cfg still has FE-1 online.
    assert daemon_restart("haproxy") == ""
    assert admin_states_reassert() == []
    assert server_status(admin, fe1) == "halted"
    assert {fetch(VIP, port)[0] for _ in range(4)} == {"FE-2"}
