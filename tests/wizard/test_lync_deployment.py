"""The Setup Wizard for Lync as an owned deployment, through `manage.py lync_wizard` and the
service behind it (lbadmin.services.wizard): the guide's tables through `lbconfig export`,
the dry run, re-runs that change only what differs, removal of exactly what the wizard made,
hand edits flagged before they are overwritten, conflicts with what the wizard does not own,
and hostile answers refused with the field they are in.

The guide's tables and the checks against them are those of tests/wizard/test_lync_plan.py.
"""

import copy
import dataclasses
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lbadmin.models import (
    ConfigRevision,
    ConfigState,
    L4VirtualService,
    LyncDeployment,
    RealServer,
    SslCertificate,
    SslTermination,
    VirtualService,
)
from lbadmin.services import l4, l7
from lbadmin.services.certificates import certificate_default_ensure, certificate_upload
from lbadmin.services.config import config_export, config_import
from lbadmin.services.wizard import (
    Change,
    WizardRefused,
    deployment_current,
    upload_record,
    wizard_apply,
    wizard_preview,
    wizard_remove,
)
from lbadmin.wizard.answers import answers_from_document, answers_to_document
from lbadmin.wizard.lync import (
    DEFAULT_CERTIFICATE_LABEL,
    MAX_SERVERS,
    InvalidAnswers,
    Plan,
    ReverseProxyPart,
    Server,
)
from tests.certificate_support import self_signed_pem
from tests.wizard.test_lync_plan import (
    RP_DIR_VIP,
    RP_FE_VIP,
    TERMINATIONS_COOKIE,
    assert_layer4,
    assert_layer7,
    expected_layer4,
    expected_layer7,
    guide_answers,
)

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "lync-2013-guide.json"

# The pools a Front End server is in: STEP 2's three and Appendix 2's two.
FE_POOLS = {
    # label: the port FE servers are sent to (None: the port the client connected to)
    "FrontEndPool": None,
    "FePoolExtWebSvcs8080": 8080,
    "FePoolExtWebSvcs4443": 4443,
    "ReverseProxyFE-http": 8080,
    "ReverseProxyFE-https": 4443,
}
LAYER7_2013 = 8  # 3 Front End + 3 Director + 2 reverse proxy (the example has no Director one)
LAYER4_2013 = 11  # 5 internal + 6 external Edge


# --- Helpers ------------------------------------------------------------------------------------


def example() -> dict[str, Any]:
    """docs/examples/lync-2013-guide.json: the guide's answers for Lync 2013."""
    return json.loads(EXAMPLE.read_text())


def cookie_2010(certificate: str) -> dict[str, Any]:
    """The example for Lync 2010 (cookie persistence), with the Director's reverse-proxy VIP
    too, so that every row of the guide's tables is made."""
    document = example()
    document.update(version="2010", web_persistence="cookie", certificate=certificate)
    document["reverse_proxy"]["director_vip"] = RP_DIR_VIP
    return document


def with_fe(document: dict[str, Any], *servers: tuple[str, str]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    document["front_end"]["servers"] = [{"label": label, "ip": ip} for label, ip in servers]
    return document


def write(tmp_path: Path, document: Any, name: str = "answers.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def wizard(*args: str) -> str:
    out = StringIO()
    call_command("lync_wizard", *args, stdout=out)
    return out.getvalue()


def wizard_refused(*args: str) -> tuple[str, str]:
    """Run the command expecting it to refuse: (what it printed, the error)."""
    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("lync_wizard", *args, stdout=out)
    return out.getvalue(), str(refused.value)


_exports = iter(range(1_000_000))


def exported(tmp_path: Path) -> dict[str, Any]:
    """The configuration as `lbconfig export` writes it."""
    path = tmp_path / f"export-{next(_exports)}.json"
    call_command("lbconfig", "export", "-o", str(path))
    return json.loads(path.read_text())


def as_plan(document: dict[str, Any]) -> Plan:
    """An export document in the planner's shape, for test_lync_plan's checks."""
    return Plan(
        layer7_settings=document["layer7"]["settings"],
        layer7_services=tuple(document["layer7"]["virtual_services"]),
        layer4_services=tuple(document["layer4"]["virtual_services"]),
        terminations=tuple(document["ssl"]["terminations"]),
    )


def by_label(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["label"]: item for item in items}


def layer7(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return by_label(document["layer7"]["virtual_services"])


def layer4(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return by_label(document["layer4"]["virtual_services"])


def state() -> tuple[Any, ...]:
    """Everything "nothing changed" covers: the configuration, its generation, the
    deployment, the revisions."""
    return (
        config_export(),
        ConfigState.load().generation,
        list(LyncDeployment.objects.values("answers", "created_items", "layer7_settings")),
        ConfigRevision.objects.count(),
    )


def add_by_hand(*, layer7=(), layer4=(), terminations=()) -> None:
    """Objects the administrator makes, through the same validated import as the WebUI."""
    document = config_export()
    document["layer7"]["virtual_services"] += [copy.deepcopy(item) for item in layer7]
    document["layer4"]["virtual_services"] += [copy.deepcopy(item) for item in layer4]
    document["ssl"]["terminations"] += [copy.deepcopy(item) for item in terminations]
    config_import(actor=None, document=document, reason="by hand")


def hand_l7(label: str, ip: str, ports: list[int], protocol: str = "tcp") -> dict[str, Any]:
    return {
        "label": label, "ip": ip, "ports": ports, "protocol": protocol,
        "balance": "roundrobin", "persistence": "none", "cookie_name": "SERVERID",
        "persistence_timeout_s": 300, "health_check": "connect", "check_port": None,
        "check_interval_ms": 2000, "fallback_ip": None, "fallback_port": None,
        "manual_config": False, "manual_text": "",
        "real_servers": [
            {"label": "WEB-1", "ip": "192.168.30.21", "port": 8000, "weight": 7,
             "reencrypt": False},
        ],
    }  # fmt: skip


def hand_l4(label: str, ip: str, port: int, protocol: str) -> dict[str, Any]:
    return {
        "label": label, "ip": ip, "ports": [port], "protocol": protocol,
        "forwarding": "nat", "persistence": False, "persistence_timeout_s": 300,
        "scheduler": "wrr", "health_check": "none", "check_port": None, "check_path": "/",
        "check_status": 200, "check_interval_s": 10, "check_timeout_s": 5,
        "real_servers": [
            {"label": "LOG-1", "ip": "192.168.30.31", "port": port, "weight": 3,
             "min_connections": 0, "max_connections": 0},
        ],
    }  # fmt: skip


def hand_termination(label: str, service: str, port: int, certificate: str) -> dict[str, Any]:
    return {
        "label": label, "port": port, "mode": "compatibility", "ciphers": "",
        "virtual_service": service, "certificate": certificate,
    }  # fmt: skip


def uploaded_certificate(label: str) -> SslCertificate:
    """A Front End certificate as the wizard's certificate step uploads it (key and
    certificate in one PEM)."""
    pem = self_signed_pem("pool1.robtest.com", sans=["pool1.robtest.com"])
    return certificate_upload(actor=None, label=label, data=pem, password=None)


# --- The guide's tables through `lbconfig export` -----------------------------------------------


def test_the_example_is_the_guides_test_environment():
    """The example answers are test_lync_plan's (the guide's addresses), with the pool's FQDN,
    internal Edge servers by their internal address only, and no Director reverse-proxy VIP
    (the guide only says to "repeat" the Front End's)."""
    guide = guide_answers("2013", "none", certificate=None)
    edge = guide.internal_edge
    assert answers_from_document(example()) == dataclasses.replace(
        guide,
        front_end=dataclasses.replace(guide.front_end, fqdns=("pool1.robtest.com",)),
        internal_edge=dataclasses.replace(
            edge, servers=tuple(Server(server.label, server.ip) for server in edge.servers)
        ),
        reverse_proxy=ReverseProxyPart(front_end_vip=RP_FE_VIP),
    )


def test_lync_2013_through_the_command_is_the_guides_tables(tmp_path):
    before = exported(tmp_path)

    output = wizard("--answers", str(EXAMPLE))

    after = exported(tmp_path)
    result = as_plan(after)
    # STEP 1: the two timeouts of 30 minutes, the rest as they were.
    assert after["layer7"]["settings"] == {
        **before["layer7"]["settings"],
        "client_timeout_ms": 1_800_000,
        "server_timeout_ms": 1_800_000,
    }
    expected = {
        label: row
        for label, row in expected_layer7("none").items()
        if not label.startswith("ReverseProxyDir")  # the example has no Director RP VIP
    }
    assert_layer7(result, expected)
    assert_layer4(result, expected_layer4("2013"))
    assert "ExtEdgeAccess5269" in layer4(after)
    assert after["ssl"]["terminations"] == []
    assert (len(result.layer7_services), len(result.layer4_services)) == (8, 11)

    deployment = deployment_current()
    assert deployment is not None and LyncDeployment.objects.count() == 1
    assert deployment.answers == answers_to_document(answers_from_document(example()))
    assert deployment.layer7_settings_before == {
        name: before["layer7"]["settings"][name]
        for name in ("client_timeout_ms", "server_timeout_ms")
    }
    assert deployment.created_items == {
        "layer7": layer7(after),
        "terminations": {},
        "layer4": layer4(after),
    }
    assert "apply queued as revision" in output
    assert ConfigRevision.objects.filter(status=ConfigRevision.Status.QUEUED).count() == 1


def test_lync_2010_cookie_through_the_command_is_the_guides_tables(tmp_path):
    certificate = certificate_default_ensure()
    assert certificate.label == DEFAULT_CERTIFICATE_LABEL

    wizard("--answers", write(tmp_path, cookie_2010(certificate.label)))

    after = exported(tmp_path)
    result = as_plan(after)
    assert after["layer7"]["settings"]["client_timeout_ms"] == 1_800_000
    assert after["layer7"]["settings"]["server_timeout_ms"] == 1_800_000
    assert_layer7(result, expected_layer7("cookie"))
    assert_layer4(result, expected_layer4("2010"))
    assert "ExtEdgeAccess5269" not in layer4(after)  # Lync 2013 only
    assert by_label(after["ssl"]["terminations"]) == {
        label: {
            "label": label,
            "port": port,
            "mode": "high_security",
            "ciphers": "",
            "virtual_service": service,
            "certificate": DEFAULT_CERTIFICATE_LABEL,
        }
        for label, (port, service) in TERMINATIONS_COOKIE.items()
    }
    # The certificate is the appliance's own: it stays, and the wizard did not record it.
    assert [item["label"] for item in after["ssl"]["certificates"]] == [DEFAULT_CERTIFICATE_LABEL]
    assert deployment_current().certificates_uploaded == []


# --- --dry-run ------------------------------------------------------------------------------------


def test_dry_run_prints_the_preview_and_changes_nothing(tmp_path):
    before = state()
    export_before = exported(tmp_path)

    output = wizard("--answers", str(EXAMPLE), "--dry-run")

    assert state() == before
    assert exported(tmp_path) == export_before
    assert not LyncDeployment.objects.exists()
    assert ConfigRevision.objects.count() == 0
    # The changes, one line per object,
    assert "  create  virtual service FrontEndPool\n" in output
    assert "  create  Layer 4 virtual service IntEdgeAv3478\n" in output
    assert "  change  settings Layer 7 timeouts (STEP 1)\n" in output
    changes = output.split("Changes:\n", 1)[1].split("Plan:\n", 1)[0].splitlines()
    assert len(changes) == LAYER7_2013 + LAYER4_2013 + 1
    # the plan,
    assert (
        "  L7 FrontEndPool 192.168.10.30:135,443,444,5061,5065,5069 tcp source_ip -> "
        "FE-1 192.168.10.31, FE-2 192.168.10.32\n"
    ) in output
    assert "  L4 ExtEdgeAv3478 10.25.1.12:3478 udp -> EDGE-1 10.20.1.10, EDGE-2 10.20.1.11\n" in (
        output
    )
    # and the configuration diff: haproxy.cfg and keepalived.conf, now → after.
    diff = output.split("Configuration diff:\n", 1)[1]
    assert "+++ haproxy.cfg after the wizard" in diff
    assert "+listen FrontEndPool\n" in diff
    for port in (135, 443, 444, 5061, 5065, 5069):
        assert f"+    bind 192.168.10.30:{port}\n" in diff
    assert "+    server FE-1 192.168.10.31 weight 100 check port 5061 " in diff
    assert "-    timeout client 43000ms\n" in diff  # STEP 1
    assert "+    timeout client 1800000ms\n" in diff
    assert "+++ keepalived.conf after the wizard" in diff
    assert "+virtual_server 192.168.10.10 3478 {\n" in diff
    assert "stunnel" not in diff  # no termination without cookie persistence
    assert "apply queued" not in output


def test_dry_run_of_a_remove_and_of_a_refused_run(tmp_path):
    printed, error = wizard_refused("--remove", "--dry-run")
    assert "There is no Lync deployment to remove." in printed
    assert "refuse" in error

    wizard("--answers", str(EXAMPLE))
    before = state()
    output = wizard("--remove", "--dry-run")
    assert "  remove  virtual service FrontEndPool\n" in output
    assert "  remove  Layer 4 virtual service ExtEdgeAccess5269\n" in output
    assert "  change  settings Layer 7 timeouts (STEP 1)\n" in output
    assert "-listen FrontEndPool\n" in output
    assert "Plan:" not in output
    assert state() == before


# --- Re-running ---------------------------------------------------------------------------------


def test_rerun_with_the_same_answers_changes_nothing(tmp_path):
    wizard("--answers", str(EXAMPLE))
    export_before = exported(tmp_path)
    generation = ConfigState.load().generation

    preview = wizard_preview(answers_from_document(example()))
    assert preview.conflicts == [] and preview.problems == []
    assert len(preview.changes) == LAYER7_2013 + LAYER4_2013 + 1
    assert {(change.action, change.hand_edit) for change in preview.changes} == {("keep", "")}
    assert preview.diff == ""

    output = wizard("--answers", str(EXAMPLE))

    lines = output.split("Changes:\n", 1)[1].split("Plan:\n", 1)[0].splitlines()
    assert len(lines) == LAYER7_2013 + LAYER4_2013 + 1
    assert all(line.startswith("  keep    ") for line in lines), lines
    assert "Configuration diff:\n  (no change)\n" in output
    assert exported(tmp_path) == export_before
    assert ConfigState.load().generation == generation  # nothing written: nothing pending
    assert LyncDeployment.objects.count() == 1


def test_rerun_adds_and_removes_a_front_end_server_in_every_pool(tmp_path):
    hand = hand_l7("Intranet", "192.168.30.10", [80], "http")
    add_by_hand(layer7=[hand], layer4=[hand_l4("Syslog", "192.168.30.11", 514, "udp")])
    wizard("--answers", str(EXAMPLE))
    first = exported(tmp_path)
    fe = [("FE-1", "192.168.10.31"), ("FE-2", "192.168.10.32")]

    # Add FE-3: it joins every pool with Front End servers, and nothing else changes.
    three = with_fe(example(), *fe, ("FE-3", "192.168.10.33"))
    preview = wizard_preview(answers_from_document(three))
    changed = {change.label for change in preview.changes if change.action != "keep"}
    assert changed == set(FE_POOLS)
    assert {change.action for change in preview.changes if change.label in FE_POOLS} == {"change"}
    wizard("--answers", write(tmp_path, three))

    second = exported(tmp_path)
    for label, item in layer7(second).items():
        servers = {server["label"]: server for server in item["real_servers"]}
        if label in FE_POOLS:
            assert servers["FE-3"] == {
                "label": "FE-3",
                "ip": "192.168.10.33",
                "port": FE_POOLS[label],
                "weight": 100,
                "reencrypt": False,
            }, label
            assert {**item, "real_servers": item["real_servers"][:2]} == layer7(first)[label]
        else:
            assert item == layer7(first)[label], label
    assert second["layer4"] == first["layer4"]  # the Edge pools have no Front End server
    assert second["layer7"]["settings"] == first["layer7"]["settings"]

    # Remove FE-2: gone from all of them.
    without = with_fe(example(), fe[0], ("FE-3", "192.168.10.33"))
    wizard("--answers", write(tmp_path, without, "without.json"))

    third = exported(tmp_path)
    for label, item in layer7(third).items():
        labels = [server["label"] for server in item["real_servers"]]
        if label in FE_POOLS:
            assert labels == ["FE-1", "FE-3"], label
        else:
            assert item == layer7(first)[label], label
    assert not RealServer.objects.filter(label="FE-2").exists()
    # The administrator's own objects were never touched.
    assert layer7(third)["Intranet"] == hand
    assert layer4(third)["Syslog"] == hand_l4("Syslog", "192.168.30.11", 514, "udp")
    assert deployment_current().answers == answers_to_document(answers_from_document(without))


def test_rerun_can_drop_and_add_whole_parts(tmp_path):
    wizard("--answers", str(EXAMPLE))
    document = example()
    document["external_edge"] = None
    document["reverse_proxy"]["director_vip"] = RP_DIR_VIP

    preview = wizard_preview(answers_from_document(document))
    actions = {change.label: change.action for change in preview.changes}
    assert {label for label, action in actions.items() if action == "remove"} == {
        label for label in expected_layer4("2013") if label.startswith("Ext")
    }
    assert {label for label, action in actions.items() if action == "create"} == {
        "ReverseProxyDir-http",
        "ReverseProxyDir-https",
    }
    wizard("--answers", write(tmp_path, document))

    after = exported(tmp_path)
    assert sorted(layer4(after)) == sorted(
        label for label in expected_layer4("2013") if "Int" in label
    )
    assert [s["label"] for s in layer7(after)["ReverseProxyDir-https"]["real_servers"]] == [
        "DIR-1",
        "DIR-2",
    ]
    assert set(deployment_current().created_items["layer4"]) == set(layer4(after))


# --- Removing -----------------------------------------------------------------------------------


def test_remove_deletes_exactly_what_the_wizard_made(tmp_path):
    # The administrator's own timeouts, services and termination exist before the wizard.
    l7.l7settings_update(
        actor=None, values={"client_timeout_ms": 50_000, "server_timeout_ms": 60_000}
    )
    certificate_default_ensure()
    add_by_hand(
        layer7=[hand_l7("Intranet", "192.168.30.10", [80], "http")],
        layer4=[hand_l4("Syslog", "192.168.30.11", 514, "udp")],
        terminations=[hand_termination("SSL-Intranet", "Intranet", 443, DEFAULT_CERTIFICATE_LABEL)],
    )
    before = exported(tmp_path)
    wizard("--answers", str(EXAMPLE))
    wizard("--answers", write(tmp_path, with_fe(example(), ("FE-1", "192.168.10.31"))))
    assert len(layer7(exported(tmp_path))) == 1 + LAYER7_2013

    output = wizard("--remove")

    assert exported(tmp_path) == before  # the timeouts too: 50 s and 60 s again
    assert not LyncDeployment.objects.exists()
    assert "  remove  virtual service FrontEndPool\n" in output
    assert "Intranet" not in output.split("Configuration diff:")[0]
    assert "apply queued as revision" in output
    # Nothing left to remove.
    _, error = wizard_refused("--remove")
    assert "There is no Lync deployment to remove." in error


def test_step1_changes_only_the_two_timeouts(tmp_path):
    """The guide's STEP 1 sets Client and Real Server Timeout; the administrator's other
    Layer 7 settings stay, and changing them later is not a hand edit of the wizard's."""
    l7.l7settings_update(actor=None, values={"logging": True, "connect_timeout_ms": 5000})
    before = config_export()["layer7"]["settings"]
    wizard("--answers", str(EXAMPLE))
    settings = config_export()["layer7"]["settings"]
    assert settings == {**before, "client_timeout_ms": 1_800_000, "server_timeout_ms": 1_800_000}

    l7.l7settings_update(actor=None, values={"logging": False})
    changes = {change.label: change for change in wizard_preview(None).changes}
    assert changes["Layer 7 timeouts (STEP 1)"].hand_edit == ""
    wizard("--remove")
    assert config_export()["layer7"]["settings"] == {**before, "logging": False}


def test_remove_keeps_timeouts_edited_by_hand_since(tmp_path):
    before = config_export()["layer7"]["settings"]
    wizard("--answers", str(EXAMPLE))
    l7.l7settings_update(actor=None, values={"client_timeout_ms": 600_000})

    preview = wizard_preview(None)
    assert Change("settings", "Layer 7 timeouts (STEP 1)", "keep", "edited by hand") in (
        preview.changes
    )
    assert preview.overwrites == []  # keeping the administrator's values overwrites nothing
    wizard("--remove")

    settings = config_export()["layer7"]["settings"]
    assert settings == {**before, "client_timeout_ms": 600_000, "server_timeout_ms": 1_800_000}


def test_remove_deletes_the_uploaded_certificate_only_if_unused():
    uploaded_certificate("FE-cert")
    answers = answers_from_document(cookie_2010("FE-cert"))
    wizard_apply(
        actor=None,
        answers=answers,
        certificates_uploaded=[upload_record(SslCertificate.objects.get(label="FE-cert"))],
    )
    assert [record["label"] for record in deployment_current().certificates_uploaded] == ["FE-cert"]
    assert set(
        SslCertificate.objects.get(label="FE-cert").terminations.values_list("label", flat=True)
    ) == set(TERMINATIONS_COOKIE)
    # A re-run by the command (no upload) keeps what the wizard uploaded on record.
    wizard_apply(actor=None, answers=answers)
    assert [record["label"] for record in deployment_current().certificates_uploaded] == ["FE-cert"]

    wizard_remove(actor=None)

    assert not SslCertificate.objects.filter(label="FE-cert").exists()
    assert config_export()["ssl"] == {"certificates": [], "terminations": []}

    # Used by the administrator's own termination as well: it stays, and so does theirs.
    uploaded_certificate("FE-cert")
    wizard_apply(
        actor=None,
        answers=answers,
        certificates_uploaded=[upload_record(SslCertificate.objects.get(label="FE-cert"))],
    )
    add_by_hand(
        layer7=[hand_l7("Intranet", "192.168.30.10", [80], "http")],
        terminations=[hand_termination("SSL-Intranet", "Intranet", 443, "FE-cert")],
    )
    wizard_remove(actor=None)
    assert SslCertificate.objects.filter(label="FE-cert").exists()
    assert [item["label"] for item in config_export()["ssl"]["terminations"]] == ["SSL-Intranet"]


def test_every_certificate_the_wizard_uploaded_goes_with_the_deployment():
    """A re-run that uploads another Front End certificate: both are the wizard's."""
    uploaded_certificate("FE-cert")
    wizard_apply(
        actor=None,
        answers=answers_from_document(cookie_2010("FE-cert")),
        certificates_uploaded=[upload_record(SslCertificate.objects.get(label="FE-cert"))],
    )
    uploaded_certificate("FE-cert-2")
    wizard_apply(
        actor=None,
        answers=answers_from_document(cookie_2010("FE-cert-2")),
        certificates_uploaded=[upload_record(SslCertificate.objects.get(label="FE-cert-2"))],
        overwrite_hand_edits=False,
    )
    assert [record["label"] for record in deployment_current().certificates_uploaded] == [
        "FE-cert",
        "FE-cert-2",
    ]
    wizard_remove(actor=None)
    assert not SslCertificate.objects.filter(label__in=["FE-cert", "FE-cert-2"]).exists()


def test_remove_is_refused_when_a_termination_not_made_by_the_wizard_needs_a_service():
    certificate_default_ensure()
    wizard_apply(actor=None, answers=answers_from_document(cookie_2010(DEFAULT_CERTIFICATE_LABEL)))
    add_by_hand(
        terminations=[
            hand_termination("SSL-extra", "FePoolExtWebSvcs8081", 9443, DEFAULT_CERTIFICATE_LABEL)
        ]
    )
    before = state()

    preview = wizard_preview(None)

    assert preview.conflicts == [
        "SSL termination SSL-extra (not made by the wizard) uses virtual service "
        "FePoolExtWebSvcs8081, which the wizard would remove."
    ]
    with pytest.raises(WizardRefused) as refused:
        wizard_remove(actor=None)
    assert refused.value.problems == preview.conflicts
    assert state() == before


# --- Hand edits ---------------------------------------------------------------------------------


def test_a_hand_edit_is_flagged_and_only_overwritten_when_allowed(tmp_path):
    wizard("--answers", str(EXAMPLE))
    server = RealServer.objects.get(virtual_service__label="FrontEndPool", label="FE-1")
    l7.realserver_update(actor=None, server=server, values={"weight": 50})  # as the WebUI does
    answers = answers_from_document(example())

    preview = wizard_preview(answers)

    edited = Change("virtual service", "FrontEndPool", "change", "edited by hand")
    assert [change for change in preview.changes if change.hand_edit] == [edited]
    assert preview.overwrites == [edited]
    assert not preview.blocked  # a confirmation, not a conflict
    before = state()
    with pytest.raises(WizardRefused) as refused:
        wizard_apply(actor=None, answers=answers)
    assert refused.value.problems == [
        "virtual service FrontEndPool was edited by hand since the wizard made it: confirm "
        "that the wizard may overwrite it."
    ]
    assert state() == before
    # The command says so too, and changes nothing.
    printed, error = wizard_refused("--answers", str(EXAMPLE))
    assert "  change  virtual service FrontEndPool  [edited by hand]\n" in printed
    assert "pass --overwrite-hand-edits" in printed
    assert "virtual service FrontEndPool was edited by hand" in error
    assert state() == before
    # Removing would overwrite it as well.
    printed, error = wizard_refused("--remove")
    assert "  remove  virtual service FrontEndPool  [edited by hand]\n" in printed
    assert state() == before

    wizard("--answers", str(EXAMPLE), "--overwrite-hand-edits")

    assert RealServer.objects.get(virtual_service__label="FrontEndPool", label="FE-1").weight == 100
    assert not [change for change in wizard_preview(answers).changes if change.hand_edit]


def test_a_service_deleted_by_hand_is_flagged_and_made_again_when_allowed(tmp_path):
    wizard("--answers", str(EXAMPLE))
    made = layer4(exported(tmp_path))["IntEdgeAv3478"]
    l4.l4service_delete(actor=None, service=L4VirtualService.objects.get(label="IntEdgeAv3478"))
    answers = answers_from_document(example())

    preview = wizard_preview(answers)

    deleted = Change("Layer 4 virtual service", "IntEdgeAv3478", "create", "deleted by hand")
    assert [change for change in preview.changes if change.hand_edit] == [deleted]
    before = state()
    with pytest.raises(WizardRefused, match="IntEdgeAv3478 was deleted by hand"):
        wizard_apply(actor=None, answers=answers)
    assert state() == before

    wizard_apply(actor=None, answers=answers, overwrite_hand_edits=True)
    assert layer4(exported(tmp_path))["IntEdgeAv3478"] == made

    # Deleted by hand, then the whole deployment removed: nothing to overwrite there.
    l4.l4service_delete(actor=None, service=L4VirtualService.objects.get(label="IntEdgeAv3478"))
    assert [change for change in wizard_preview(None).changes if change.hand_edit] == []
    wizard("--remove")
    assert config_export()["layer4"]["virtual_services"] == []


def test_a_hand_edit_the_new_answers_agree_with_does_not_block(tmp_path):
    wizard("--answers", str(EXAMPLE))
    # The administrator added FE-3 to FrontEndPool by hand, as the guide's STEP 2 shows.
    l7.realserver_create(
        actor=None,
        service=RealServer.objects.get(
            virtual_service__label="FrontEndPool", label="FE-1"
        ).virtual_service,
        values={"label": "FE-3", "ip": "192.168.10.33", "port": None, "weight": 100},
    )
    three = with_fe(
        example(), ("FE-1", "192.168.10.31"), ("FE-2", "192.168.10.32"), ("FE-3", "192.168.10.33")
    )
    answers = answers_from_document(three)

    preview = wizard_preview(answers)

    agreed = Change("virtual service", "FrontEndPool", "keep", "edited by hand")
    assert agreed in preview.changes
    assert preview.overwrites == []
    wizard("--answers", write(tmp_path, three))  # no --overwrite-hand-edits needed

    assert {c.hand_edit for c in wizard_preview(answers).changes} == {""}
    for label in FE_POOLS:
        servers = layer7(exported(tmp_path))[label]["real_servers"]
        assert [server["label"] for server in servers] == ["FE-1", "FE-2", "FE-3"], label


def test_real_servers_in_another_order_are_not_a_hand_edit(monkeypatch):
    """The export orders real servers by the database's collation (en_US, say, which ignores
    case and hyphens first: fe-a before FE-B), the planner by code point (FE-B before fe-a):
    the same servers in another order are not an edit."""
    from lbadmin.services import wizard as wizard_service

    answers = answers_from_document(
        with_fe(example(), ("fe-a", "192.168.10.31"), ("FE-B", "192.168.10.32"))
    )
    wizard_apply(actor=None, answers=answers)
    exporting = wizard_service.config_export

    def collated() -> dict[str, Any]:
        document = exporting()
        for item in document["layer7"]["virtual_services"]:
            item["real_servers"].sort(key=lambda server: server["label"].casefold())
        return document

    monkeypatch.setattr(wizard_service, "config_export", collated)
    planned = [s["label"] for s in layer7(exporting())["FrontEndPool"]["real_servers"]]
    assert planned == ["FE-B", "fe-a"]
    assert [s["label"] for s in layer7(collated())["FrontEndPool"]["real_servers"]] == [
        "fe-a",
        "FE-B",
    ]

    preview = wizard_preview(answers)

    assert {(change.action, change.hand_edit) for change in preview.changes} == {("keep", "")}
    # A real difference still is one.
    server = RealServer.objects.get(virtual_service__label="FrontEndPool", label="fe-a")
    l7.realserver_update(actor=None, server=server, values={"weight": 1})
    assert [c.label for c in wizard_preview(answers).changes if c.hand_edit] == ["FrontEndPool"]


# --- Conflicts ----------------------------------------------------------------------------------

ADDRESS_CONFLICTS = {
    "layer 7 on a Layer 7 port": (
        {"layer7": [hand_l7("Other", "192.168.10.30", [8443, 443])]},
        "virtual service FrontEndPool on 192.168.10.30:443/TCP: virtual service Other is there "
        "already.",
    ),
    "layer 7 on a Layer 4 TCP port": (
        {"layer7": [hand_l7("Other", "192.168.10.10", [5061])]},
        "Layer 4 virtual service IntEdgeAccess5061 on 192.168.10.10:5061/TCP: virtual service "
        "Other is there already.",
    ),
    "layer 4 UDP": (
        {"layer4": [hand_l4("Stun", "192.168.10.10", 3478, "udp")]},
        "Layer 4 virtual service IntEdgeAv3478 on 192.168.10.10:3478/UDP: Layer 4 virtual "
        "service Stun is there already.",
    ),
    "layer 4 TCP and UDP": (
        {"layer4": [hand_l4("Stun", "10.25.1.12", 3478, "tcp_udp")]},
        "Layer 4 virtual service ExtEdgeAv3478 on 10.25.1.12:3478/UDP: Layer 4 virtual service "
        "Stun is there already.",
    ),
    "SSL termination": (
        {
            "layer7": [hand_l7("Mobility", "192.168.20.30", [9000], "http")],
            "terminations": [
                hand_termination("SSL-Mobility", "Mobility", 4443, DEFAULT_CERTIFICATE_LABEL)
            ],
        },
        "virtual service FePoolExtWebSvcs4443 on 192.168.20.30:4443/TCP: SSL termination "
        "SSL-Mobility is there already.",
    ),
    "a Layer 7 label": (
        {"layer7": [hand_l7("DirectorPool", "192.168.30.40", [5061])]},
        "virtual service DirectorPool exists already and was not made by the wizard.",
    ),
    "a Layer 4 label": (
        {"layer4": [hand_l4("IntEdgeAv443", "192.168.30.40", 443, "tcp")]},
        "Layer 4 virtual service IntEdgeAv443 exists already and was not made by the wizard.",
    ),
}


@pytest.mark.parametrize("case", ADDRESS_CONFLICTS, ids=list(ADDRESS_CONFLICTS))
def test_conflicts_with_what_the_wizard_does_not_own_are_refused(tmp_path, case):
    objects, expected = ADDRESS_CONFLICTS[case]
    certificate_default_ensure()
    add_by_hand(**objects)
    before = state()
    answers = answers_from_document(example())

    preview = wizard_preview(answers)

    assert preview.conflicts == [expected]
    assert preview.blocked and preview.problems == []
    with pytest.raises(WizardRefused) as refused:
        wizard_apply(actor=None, answers=answers, overwrite_hand_edits=True)
    assert refused.value.problems == [expected]
    printed, error = wizard_refused("--answers", str(EXAMPLE))
    assert f"Conflicts (nothing can be created):\n  {expected}\n" in printed
    assert expected in error
    assert state() == before


def test_the_same_port_in_the_other_protocol_is_no_conflict():
    # 3478/TCP beside the guide's 3478/UDP; the Front End's 5061 on another address.
    add_by_hand(
        layer4=[hand_l4("StunTcp", "192.168.10.10", 3478, "tcp")],
        layer7=[hand_l7("Other", "192.168.10.31", [5061])],
    )
    preview = wizard_preview(answers_from_document(example()))
    assert preview.conflicts == []
    wizard_apply(actor=None, answers=answers_from_document(example()))
    assert {"StunTcp", "IntEdgeAv3478"} <= set(layer4(config_export()))


def test_a_rerun_that_needs_an_address_someone_else_took_is_refused(tmp_path):
    wizard("--answers", str(EXAMPLE))
    add_by_hand(layer7=[hand_l7("Other", RP_DIR_VIP, [80])])
    before = state()
    document = example()
    document["reverse_proxy"]["director_vip"] = RP_DIR_VIP

    _, error = wizard_refused("--answers", write(tmp_path, document))

    assert (
        f"virtual service ReverseProxyDir-http on {RP_DIR_VIP}:80/TCP: virtual service Other is "
        "there already."
    ) in error
    assert state() == before


def test_a_certificate_that_does_not_exist_is_refused_at_the_preview(tmp_path):
    before = state()
    answers = answers_from_document(cookie_2010("FE-cert"))

    preview = wizard_preview(answers)

    assert preview.blocked
    missing = "certificate_label: there is no usable certificate “FE-cert”"
    assert [conflict[: len(missing)] for conflict in preview.conflicts] == [missing]
    with pytest.raises(WizardRefused) as refused:
        wizard_apply(actor=None, answers=answers)
    assert refused.value.problems == preview.conflicts
    _, error = wizard_refused("--answers", write(tmp_path, cookie_2010("FE-cert")))
    assert missing in error
    assert state() == before


def test_a_preview_made_before_another_change_is_refused():
    answers = answers_from_document(example())
    preview = wizard_preview(answers)
    l7.l7settings_update(actor=None, values={"connect_timeout_ms": 5000})  # someone else
    before = state()

    with pytest.raises(WizardRefused, match="changed since the preview"):
        wizard_apply(actor=None, answers=answers, expected_generation=preview.generation)
    assert state() == before

    wizard_apply(
        actor=None, answers=answers, expected_generation=wizard_preview(answers).generation
    )
    assert deployment_current() is not None
    stale = wizard_preview(None).generation - 1
    with pytest.raises(WizardRefused, match="changed since the preview"):
        wizard_remove(actor=None, expected_generation=stale)
    assert deployment_current() is not None


# --- Hostile and malformed answers --------------------------------------------------------------


def _set(path: str, value: Any):
    """A change to the example: the value at a dotted path ("front_end.servers.0.ip")."""

    def change(document: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return document

    return change


def _too_many(document: dict[str, Any]) -> dict[str, Any]:
    document["front_end"]["servers"] = [
        {"label": f"FE-{n}", "ip": f"192.168.11.{n}"} for n in range(1, MAX_SERVERS + 2)
    ]
    return document


# What allowlists.clean_label says (it never repeats the value).
LABEL_RULE = "Use 1 to 64 characters: letters, digits and _ . : - only."

HOSTILE = {
    "not an object": (lambda document: [document], "answers: expected a JSON object."),
    "unknown key": (_set("reboot", True), "reboot: unknown key."),
    "unknown part key": (_set("front_end.shell", "x"), "front_end.shell: unknown key."),
    "unknown server key": (
        _set("director.servers.0", {"label": "DIR-1", "ip": "192.168.10.21", "cmd": "x"}),
        "director.servers[0].cmd: unknown key.",
    ),
    "a number for a string": (_set("version", 2013), "version: expected a string."),
    "a string for a list": (
        _set("front_end.servers", "FE-1"),
        "front_end.servers: expected a list of servers.",
    ),
    "a list for a part": (
        _set("internal_edge", []),
        "internal_edge: expected an object, or null when the part is not deployed.",
    ),
    "a number for an address": (_set("front_end.vip", 5), "front_end.vip: expected a string."),
    "a command after an address": (
        _set("front_end.servers.0.ip", "192.168.10.31; reboot"),
        "front_end.servers[0].ip: “192.168.10.31; reboot” is not an IPv4 or IPv6 address.",
    ),
    "a newline in a label": (
        _set("front_end.servers.0.label", "FE-1\nlisten evil"),
        "front_end.servers[0].label: " + LABEL_RULE,
    ),
    "a space in a label": (
        _set("internal_edge.servers.1.label", "EDGE 2"),
        "internal_edge.servers[1].label: " + LABEL_RULE,
    ),
    "a quote in a label": (
        _set("external_edge.servers.0.label", 'EDGE-1"'),
        "external_edge.servers[0].label: " + LABEL_RULE,
    ),
    "a wildcard FQDN": (
        _set("front_end.fqdns.0", "*.x"),
        "front_end.fqdns[0]: “*.x” is not a fully qualified DNS name like pool1.example.com.",
    ),
    "a space in an FQDN": (
        _set("director.fqdns", ["a b"]),
        "director.fqdns[0]: “a b” is not a fully qualified DNS name like pool1.example.com.",
    ),
    "too many servers": (_too_many, f"front_end.servers: at most {MAX_SERVERS} servers per pool."),
    "an unknown version": (_set("version", "2016"), "version: choose 2010 or 2013."),
    "an unknown persistence": (
        _set("web_persistence", "sticky"),
        "web_persistence: choose none or cookie.",
    ),
    "a hostile certificate label": (
        lambda document: {**document, "web_persistence": "cookie", "certificate": "c\nert"},
        "certificate_label: " + LABEL_RULE,
    ),
    "a hostile certificate label without cookies": (
        _set("certificate", "c;rm -rf /"),
        "certificate_label: " + LABEL_RULE,
    ),
    "a hostile address the plan does not use": (
        _set("internal_edge.servers.0.external_ip", "10.20.1.10 ; reboot"),
        "internal_edge.servers[0].external_ip: “10.20.1.10 ; reboot” is not an IPv4 or IPv6 "
        "address.",
    ),
    "hostile servers of a reverse-proxy VIP not deployed": (
        _set("reverse_proxy.director_servers", [{"label": "D\n1", "ip": "192.168.10.21"}]),
        "reverse_proxy.director_servers[0].label: " + LABEL_RULE,
    ),
    "an external Edge server without its address": (
        _set("external_edge.servers.1", {"label": "EDGE-2", "ip": "192.168.100.11"}),
        "external_edge.servers[1].external_ip: enter the Edge server's external address.",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_answers_are_refused_with_the_field_and_change_nothing(tmp_path, case):
    mutate, expected = HOSTILE[case]
    wizard("--answers", str(EXAMPLE))  # an existing deployment must survive them too
    before = state()

    for extra in ((), ("--dry-run",)):
        printed, error = wizard_refused("--answers", write(tmp_path, mutate(example())), *extra)
        assert expected in error or (extra and expected in printed), (error, printed)
        assert state() == before
    # A newline in a value never starts a line of its own in what the command prints.
    hostile = json.dumps(mutate(example()))
    for tail in [part.split('"')[0] for part in hostile.split("\\n")[1:]]:
        assert not any(line.startswith(tail) for line in (printed + error).splitlines()), tail


def test_answers_that_are_not_json_or_not_there(tmp_path):
    before = state()
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "2013",')
    _, error = wizard_refused("--answers", str(bad))
    assert "bad.json is not JSON" in error
    _, error = wizard_refused("--answers", str(tmp_path / "missing.json"))
    assert "cannot read" in error and "missing.json" in error
    assert state() == before


def test_answers_document_round_trip():
    for answers in (
        guide_answers("2010", "cookie"),
        guide_answers("2013", "none", certificate=None),
        answers_from_document(example()),
        answers_from_document(with_fe(example(), *[(f"FE-{n}", f"10.0.0.{n}") for n in (1, 2)])),
    ):
        document = answers_to_document(answers)
        assert json.loads(json.dumps(document)) == document  # plain JSON
        assert answers_from_document(json.loads(json.dumps(document))) == answers
    # And the example file itself: the document of its answers adds only the empty fields.
    document = answers_to_document(answers_from_document(example()))
    assert document["front_end"]["servers"][0] == {
        "label": "FE-1",
        "ip": "192.168.10.31",
        "external_ip": None,
        "external_webconf_ip": None,
        "external_av_ip": None,
    }
    with pytest.raises(InvalidAnswers) as invalid:
        answers_from_document({**document, "front_end": {"servers": [{"label": 1}]}})
    assert invalid.value.problems == [  # in the fields' order, the same every run
        "front_end.vip: missing.",  # never the guide's lab address by omission
        "front_end.external_web_vip: missing.",
        "front_end.servers[0].label: expected a string.",
        "front_end.servers[0].ip: expected a string.",
    ]
    with pytest.raises(InvalidAnswers) as invalid:
        answers_from_document({**document, "reverse_proxy": {"director_vip": "10.12.1.151"}})
    assert invalid.value.problems == ["reverse_proxy.front_end_vip: missing (null for none)."]
    with pytest.raises(InvalidAnswers) as invalid:
        answers_from_document({key: document[key] for key in document if key != "web_persistence"})
    assert invalid.value.problems == ["web_persistence: expected a string."]


# --- Queries ------------------------------------------------------------------------------------

PREVIEW_QUERY_BOUND = 30  # 24 today: two exports, the deployment, the states


def test_preview_queries_do_not_grow_with_the_servers(django_assert_max_num_queries):
    counts = []
    for servers in (2, 20):
        fe = [(f"FE-{n}", f"192.168.10.{100 + n}") for n in range(1, servers + 1)]
        answers = answers_from_document(with_fe(example(), *fe))
        wizard_apply(actor=None, answers=answers, overwrite_hand_edits=True)
        assert len(RealServer.objects.filter(label__startswith="FE-")) == servers * len(FE_POOLS)
        with (
            django_assert_max_num_queries(PREVIEW_QUERY_BOUND),
            CaptureQueriesContext(connection) as queries,
        ):
            preview = wizard_preview(answers)
        assert {change.action for change in preview.changes} == {"keep"}
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_the_slave_of_a_pair_refuses_the_command_too():
    """The WebUI's middleware refuses the slave's wizard pages; the command goes through the
    same service, which refuses as well (the master's next push would undo it)."""
    from lbadmin.models import HaNode

    node = HaNode.load()
    node.role, node.peer_ip = HaNode.Role.SLAVE, "192.0.2.1"
    node.save()
    before = state()
    _, error = wizard_refused("--answers", str(EXAMPLE))
    assert "slave of a clustered pair" in error and "192.0.2.1" in error
    assert state() == before


def test_removal_never_deletes_a_later_certificate_under_an_uploaded_label():
    """The wizard remembers its uploads by label and fingerprint."""
    record = upload_record(uploaded_certificate("FE-cert"))
    answers = answers_from_document(example())  # no termination: the certificate is unused
    wizard_apply(actor=None, answers=answers, certificates_uploaded=[record])
    SslCertificate.objects.filter(label="FE-cert").delete()
    replacement = uploaded_certificate("FE-cert")  # the administrator's own, same label
    assert replacement.fingerprint_sha256 != record["fingerprint"]
    wizard_remove(actor=None)
    assert SslCertificate.objects.filter(label="FE-cert").exists()


# --- The wizard writes only its own objects ----------------------------------------------------


def test_the_administrators_objects_are_never_rewritten():
    """Create, re-run and remove change the wizard's objects only: the administrator's keep
    their rows (ids), and so do the wizard's objects a re-run leaves as they are."""
    uploaded_certificate("Intranet-cert")
    add_by_hand(
        layer7=[hand_l7("Intranet", "192.168.30.10", [80], "http")],
        terminations=[hand_termination("SSL-Intranet", "Intranet", 443, "Intranet-cert")],
    )
    ids = lambda: (  # noqa: E731
        VirtualService.objects.get(label="Intranet").pk,
        RealServer.objects.get(virtual_service__label="Intranet").pk,
        SslTermination.objects.get(label="SSL-Intranet").pk,
        SslCertificate.objects.get(label="Intranet-cert").pk,
    )
    mine = ids()
    wizard_apply(actor=None, answers=answers_from_document(example()))
    assert ids() == mine
    director = VirtualService.objects.get(label="DirectorPool").pk
    fe = VirtualService.objects.get(label="FrontEndPool").pk
    more = with_fe(example(), ("FE-1", "192.168.10.31"), ("FE-2", "192.168.10.32"),
                   ("FE-3", "192.168.10.33"))  # fmt: skip
    wizard_apply(actor=None, answers=answers_from_document(more))
    assert ids() == mine
    assert VirtualService.objects.get(label="DirectorPool").pk == director  # kept: untouched
    assert VirtualService.objects.get(label="FrontEndPool").pk != fe  # changed: replaced
    wizard_remove(actor=None)
    assert ids() == mine


def test_a_termination_made_by_hand_on_a_wizard_service_follows_it():
    """The administrator's SSL termination on a service the wizard then changes is made
    again on the new service (the same values, through the same form)."""
    uploaded_certificate("FE-cert")
    answers = answers_from_document(cookie_2010("FE-cert"))
    wizard_apply(actor=None, answers=answers)
    add_by_hand(terminations=[hand_termination("SSL-Web8443", "FePoolExtWebSvcs8080", 8443,
                                               "FE-cert")])  # fmt: skip
    more = with_fe(cookie_2010("FE-cert"), ("FE-1", "192.168.10.31"), ("FE-9", "192.168.10.39"))
    wizard_apply(actor=None, answers=answers_from_document(more))
    termination = SslTermination.objects.get(label="SSL-Web8443")
    assert termination.virtual_service.label == "FePoolExtWebSvcs8080"
    servers = termination.virtual_service.real_servers.values_list("label", flat=True)
    assert set(servers) == {"FE-1", "FE-9"}
    assert termination.port == 8443 and termination.mode == "compatibility"
