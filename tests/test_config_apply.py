"""The apply pipeline end to end: database → Celery worker → real HAProxy → traffic, with
revisions, failures that keep the old configuration serving, rollback, export and import."""

import json
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from lbadmin.models import ConfigRevision, ConfigState, RealServer, VirtualService
from lbadmin.services import l7
from lbadmin.services.config import (
    ImportRejected,
    config_apply_request,
    config_export,
    config_import,
    config_rollback,
    haproxy_running_text,
)
from lbadmin.services.daemons import daemon_controllers
from tests.conftest import free_port, wait_until
from tests.support import fetch, http_backend

VIP = "127.0.10.30"
RIPS = ("127.0.10.31", "127.0.10.32")


@pytest.fixture
def haproxy_stopped_after():
    """HAProxy started by the worker's apply lives in the test var dir: stop it afterwards."""
    yield
    daemon_controllers()["haproxy"].stop()


@pytest.fixture
def backends():
    port = free_port(RIPS[0])
    with http_backend(RIPS[0], port, "FE-1"), http_backend(RIPS[1], port, "FE-2"):
        yield port


def wait_for(revision: ConfigRevision, timeout: float = 30) -> ConfigRevision:
    def finished() -> bool:
        revision.refresh_from_db()
        return revision.finished

    wait_until(finished, timeout, f"revision {revision.pk} to finish", interval=0.1)
    return revision


def web_service(port: int, backend_port: int, **values: object) -> VirtualService:
    service = l7.virtualservice_create(
        actor=None,
        values={
            "label": "Web", "ip": VIP, "ports": str(port), "protocol": "http",
            "balance": "roundrobin", "persistence": "none", **values,
        },
    )  # fmt: skip
    for label, ip in zip(("FE-1", "FE-2"), RIPS, strict=True):
        l7.realserver_create(
            actor=None, service=service, values={"label": label, "ip": ip, "port": backend_port}
        )
    return service


def spread(port: int, requests: int = 20) -> Counter:
    return Counter(fetch(VIP, port)[0] for _ in range(requests))


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
def test_apply_makes_haproxy_serve_the_configuration(
    celery_worker_process,
    haproxy_stopped_after,
    backends: int,
) -> None:
    port = free_port(VIP)
    web_service(port, backends)
    assert ConfigState.load().pending

    revision = wait_for(config_apply_request(actor=None))

    assert revision.status == ConfigRevision.Status.APPLIED, revision.error
    assert not ConfigState.load().pending
    assert spread(port) == Counter({"FE-1": 10, "FE-2": 10})  # round robin, both servers
    assert revision.text == haproxy_running_text()
    assert len(revision.sha256) == 64
    assert "+listen Web" in revision.diff
    assert revision.document["layer7"]["virtual_services"][0]["label"] == "Web"
    assert revision.duration_ms is not None

    # Nothing changed: the next apply does not reload.
    again = wait_for(config_apply_request(actor=None))
    assert again.status == ConfigRevision.Status.UNCHANGED


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
def test_a_failed_reload_keeps_the_old_configuration_serving(
    celery_worker_process,
    haproxy_stopped_after,
    backends: int,
) -> None:
    port = free_port(VIP)
    web_service(port, backends)
    good = wait_for(config_apply_request(actor=None))
    assert good.status == ConfigRevision.Status.APPLIED, good.error

    # 192.0.2.10 (TEST-NET-1) is not an address of this host: `haproxy -c` passes, the bind
    # fails at reload. Only a bind is attempted; no traffic goes there.
    l7.virtualservice_create(
        actor=None,
        values={"label": "Elsewhere", "ip": "192.0.2.10", "ports": str(port), "protocol": "tcp"},
    )
    bad = wait_for(config_apply_request(actor=None))

    assert bad.status == ConfigRevision.Status.FAILED
    assert "192.0.2.10" in bad.error
    assert haproxy_running_text() == good.text  # the last good file is back in place
    assert sum(spread(port).values()) == 20  # and the old worker still serves
    assert ConfigState.load().pending


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
def test_rollback_restores_the_database_and_applies_it(
    celery_worker_process,
    haproxy_stopped_after,
    backends: int,
) -> None:
    port = free_port(VIP)
    service = web_service(port, backends)
    first = wait_for(config_apply_request(actor=None))
    # Take FE-2 away and apply: every request goes to FE-1.
    l7.realserver_delete(actor=None, server=service.real_servers.get(label="FE-2"))
    second = wait_for(config_apply_request(actor=None))
    assert second.status == ConfigRevision.Status.APPLIED
    assert spread(port) == Counter({"FE-1": 20})

    rollback = wait_for(config_rollback(actor=None, revision=first))

    assert rollback.kind == ConfigRevision.Kind.ROLLBACK
    assert rollback.status == ConfigRevision.Status.APPLIED, rollback.error
    assert set(RealServer.objects.values_list("label", flat=True)) == {"FE-1", "FE-2"}
    assert spread(port) == Counter({"FE-1": 10, "FE-2": 10})
    assert rollback.text == first.text


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
def test_lbconfig_apply_waits_for_the_outcome(
    celery_worker_process,
    haproxy_stopped_after,
    backends: int,
    capsys,
) -> None:
    port = free_port(VIP)
    web_service(port, backends)
    call_command("lbconfig", "apply", "--wait", "--timeout", "30")
    assert "Applied" in capsys.readouterr().out
    assert sum(spread(port, 4).values()) == 4


@pytest.mark.django_db
def test_clicks_while_an_apply_is_queued_join_it() -> None:
    first = config_apply_request(actor=None)
    assert config_apply_request(actor=None).pk == first.pk
    # Once it runs, the next click queues one more apply (to pick up later changes) — only one.
    ConfigRevision.objects.filter(pk=first.pk).update(status=ConfigRevision.Status.RUNNING)
    second = config_apply_request(actor=None)
    assert second.pk != first.pk
    assert config_apply_request(actor=None).pk == second.pk
    assert ConfigRevision.objects.count() == 2


@pytest.mark.django_db
def test_an_apply_cut_short_is_marked_interrupted(haproxy_stopped_after) -> None:
    from lbadmin.services.config import config_apply_run

    dead = ConfigRevision.objects.create(status=ConfigRevision.Status.RUNNING)
    queued = ConfigRevision.objects.create()
    done = config_apply_run(queued.pk)
    dead.refresh_from_db()
    assert dead.status == ConfigRevision.Status.INTERRUPTED
    assert done.status in (ConfigRevision.Status.APPLIED, ConfigRevision.Status.UNCHANGED)


GUIDE = {
    "format": "lbadmin-cluster-config",
    "version": 2,
    "ssl": {"certificates": [], "terminations": []},
    "layer4": {"virtual_services": []},
    "ha": {"advert_interval_ms": 100, "preempt": False},
    "layer7": {
        "settings": {
            "logging": False, "log_only_errors": False, "redispatch": True,
            "connect_timeout_ms": 4000, "client_timeout_ms": 1800000, "server_timeout_ms": 1800000,
        },
        "virtual_services": [
            {
                "label": "FePoolExtWebSvcs8081", "ip": "192.168.20.30", "ports": [8081],
                "protocol": "http", "balance": "leastconn", "persistence": "http_cookie",
                "cookie_name": "MS-WSMAN", "persistence_timeout_s": 1800,
                "health_check": "connect", "check_port": None, "check_interval_ms": 4000,
                "fallback_ip": None, "fallback_port": None, "manual_config": False,
                "manual_text": "",
                "real_servers": [
                    {"label": "FE-1", "ip": "192.168.10.31", "port": 4443, "weight": 100,
                     "reencrypt": True},
                    {"label": "FE-2", "ip": "192.168.10.32", "port": 4443, "weight": 100,
                     "reencrypt": True},
                ],
            },
            {
                "label": "FrontEndPool", "ip": "192.168.10.30",
                "ports": [135, 443, 444, 5061, 5065, 5069], "protocol": "tcp",
                "balance": "leastconn", "persistence": "source_ip", "cookie_name": "SERVERID",
                "persistence_timeout_s": 1800, "health_check": "connect", "check_port": 5061,
                "check_interval_ms": 4000, "fallback_ip": None, "fallback_port": None,
                "manual_config": False, "manual_text": "",
                "real_servers": [
                    {"label": "FE-1", "ip": "192.168.10.31", "port": None, "weight": 100,
                     "reencrypt": False},
                ],
            },
        ],
    },
}  # fmt: skip


@pytest.mark.django_db
def test_export_import_export_is_identical() -> None:
    config_import(actor=None, document=GUIDE)
    exported = config_export()
    assert exported == GUIDE
    config_import(actor=None, document=json.loads(json.dumps(exported)))
    assert config_export() == exported
    assert ConfigState.load().pending


@pytest.mark.django_db
def test_a_bad_document_changes_nothing(tmp_path) -> None:
    config_import(actor=None, document=GUIDE)
    generation = ConfigState.load().generation
    bad = json.loads(json.dumps(GUIDE))
    bad["layer7"]["virtual_services"][1]["label"] = "Front\nEndPool"
    bad["layer7"]["virtual_services"][0]["real_servers"][1]["port"] = 70000
    bad["layer7"]["virtual_services"][0]["surprise"] = 1
    with pytest.raises(ImportRejected) as rejected:
        config_import(actor=None, document=bad)
    problems = rejected.value.problems
    assert any(
        problem.startswith("virtual_services[1] ")
        and problem.endswith(".label: Use 1 to 64 characters: letters, digits and _ . : - only.")
        for problem in problems
    ), problems
    assert (
        "virtual_services[0].real_servers[1].port: “70000” is not a port: use a whole number "
        "from 1 to 65535."
    ) in problems
    assert "virtual_services[0]: unknown keys surprise" in problems
    assert config_export() == GUIDE  # nothing changed
    assert ConfigState.load().generation == generation

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    refusal = r"^nothing was changed:\n  virtual_services\[0\]: unknown keys surprise\n"
    with pytest.raises(CommandError, match=refusal):
        call_command("lbconfig", "import", str(path))


@pytest.mark.django_db
def test_lbconfig_export_writes_the_document(tmp_path) -> None:
    config_import(actor=None, document=GUIDE)
    out = tmp_path / "config.json"
    call_command("lbconfig", "export", "-o", str(out))
    assert json.loads(out.read_text()) == GUIDE
    # And importing it on an empty appliance gives the identical document.
    VirtualService.objects.all().delete()
    call_command("lbconfig", "import", str(out))
    assert config_export() == GUIDE


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
def test_restart_haproxy_from_maintenance(
    client,
    admin_user,
    celery_worker_process,
    haproxy_stopped_after,
    backends: int,
) -> None:
    port = free_port(VIP)
    web_service(port, backends)
    assert wait_for(config_apply_request(actor=None)).status == ConfigRevision.Status.APPLIED
    haproxy = daemon_controllers()["haproxy"]
    before = haproxy.pid()
    client.force_login(admin_user)
    response = client.post("/lbadmin/maintenance/services/haproxy/restart/", follow=True)
    assert "HAProxy restarted." in response.content.decode()
    assert haproxy.pid() not in (None, before)  # a new master: connections were dropped
    assert sum(spread(port, 4).values()) == 4


@pytest.mark.django_db
def test_an_apply_whose_worker_died_is_shown_interrupted(client, admin_user) -> None:
    orphan = ConfigRevision.objects.create(status=ConfigRevision.Status.RUNNING)
    client.force_login(admin_user)
    box = client.get(f"/lbadmin/apply/{orphan.pk}/").content.decode()
    assert "The apply was interrupted" in box  # no apply holds the node lock
    orphan.refresh_from_db()
    assert orphan.status == ConfigRevision.Status.INTERRUPTED
