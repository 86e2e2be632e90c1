"""The Setup Wizard for Lync through its pages: steps with Back/Next and validation at each,
the preview (changes, conflicts, diff), Create in one go and its apply, the PFX upload at the
persistence step, re-running on the deployment, hand edits, and removal."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from lbadmin.models import (
    ConfigRevision,
    L4VirtualService,
    LyncDeployment,
    RealServer,
    SslCertificate,
    SslTermination,
    VirtualService,
)
from lbadmin.services.changes import config_changed
from tests.certificate_support import self_signed_pfx

pytestmark = pytest.mark.django_db
START = "/lbadmin/wizard/lync/start/"


def step(number: int) -> str:
    return f"/lbadmin/wizard/lync/step/{number}/"


PARTS = {"version": "2013", "front_end": "on", "director": "on", "internal_edge": "on",
         "external_edge": "on"}  # fmt: skip
ADDRESSES = {
    "fe_vip": "192.168.10.30", "fe_web_vip": "192.168.20.30",
    "fe_servers": "FE-1 192.168.10.31\nFE-2 192.168.10.32", "fe_fqdns": "pool1.robtest.com",
    "dir_vip": "192.168.10.20", "dir_web_vip": "192.168.20.20",
    "dir_servers": "DIR-1 192.168.10.21\nDIR-2 192.168.10.22", "dir_fqdns": "",
    "edge_vip": "192.168.10.10",
    "int_edge_servers": "EDGE-1 192.168.100.10\nEDGE-2 192.168.100.11",
    "access_vip": "10.25.1.10", "webconf_vip": "10.25.1.11", "av_vip": "10.25.1.12",
    "ext_edge_servers": "EDGE-1 10.20.1.10 10.20.2.10 10.20.3.10\nEDGE-2 10.20.1.11",
}  # fmt: skip


def front_end_pfx() -> tuple[bytes, str]:
    """A Front End certificate for the pool's name, as a password-protected PFX."""
    password = "Pfx-Lync-2010"
    return self_signed_pfx("pool1.robtest.com", sans=["pool1.robtest.com"], password=password), (
        password
    )


def walk(admin, parts=None, addresses=None, persistence=None) -> str:
    """Steps 1 to 3 with the guide's answers; returns the preview page."""
    admin.get(START)
    response = admin.post(step(1), parts or PARTS)
    assert response.status_code == 302 and response["Location"] == step(2)
    response = admin.post(step(2), addresses or ADDRESSES)
    assert response.status_code == 302, response.content.decode()[:3000]
    if response["Location"] == step(3):
        response = admin.post(step(3), persistence or {"web_persistence": "none"})
        assert response.status_code == 302
    assert response["Location"] == step(4)
    return admin.get(step(4)).content.decode()


def create(admin, **extra) -> object:
    page = admin.get(step(4)).content.decode()
    return admin.post(step(4), {**confirmation(page), **extra})


def confirmation(page: str) -> dict[str, str]:
    """The hidden fields of a preview's confirmation form: what the preview was made from."""
    return {
        name: page.split(f'name="{name}" value="')[1].split('"')[0]
        for name in ("generation", "answers")
    }


def test_the_guides_deployment_step_by_step_then_created_and_applied(admin) -> None:
    page = walk(admin)
    for label in ("FrontEndPool", "FePoolExtWebSvcs4443", "DirectorPool", "IntEdgeAv3478",
                  "ExtEdgeAccess5269"):  # fmt: skip
        assert label in page
    assert 'id="wizard-create"' in page and "+listen FrontEndPool" in page  # the diff
    assert not VirtualService.objects.exists()  # nothing before Create

    response = create(admin)
    assert response.status_code == 302 and "/lbadmin/wizard/lync/progress/" in response["Location"]
    assert VirtualService.objects.get(label="FrontEndPool").ports == "135,443,444,5061,5065,5069"
    assert L4VirtualService.objects.get(label="IntEdgeAv3478").protocol == "udp"
    # EDGE-1 has an external address per VIP; EDGE-2 one for all three.
    web = L4VirtualService.objects.get(label="ExtEdgeWeb443").real_servers.order_by("label")
    assert [server.ip for server in web] == ["10.20.2.10", "10.20.1.11"]
    assert ConfigRevision.objects.filter(status="queued").exists()
    deployment = LyncDeployment.objects.get()
    assert deployment.answers["front_end"]["fqdns"] == ["pool1.robtest.com"]
    assert admin.get(response["Location"]).status_code == 200

    # The deployment page lists what the wizard made, and re-running starts from its answers.
    page = admin.get("/lbadmin/wizard/lync/").content.decode()
    assert 'id="wizard-deployment"' in page and "FrontEndPool" in page
    admin.get(START)
    assert "FE-2 192.168.10.32" in admin.get(step(2)).content.decode()


def test_each_step_validates_before_the_next(admin) -> None:
    admin.get(START)
    page = admin.post(step(1), {"version": "2013"}).content.decode()
    assert "Choose at least one part" in page

    admin.post(step(1), PARTS)
    bad = dict(ADDRESSES, fe_servers="FE-1 192.168.10.31\nFE-2 192.168.10.32; reboot",
               access_vip="10.25.1.10\nbind")  # fmt: skip
    page = admin.post(step(2), bad).content.decode()
    assert 'id="errors-fe_servers"' in page and "line 2 (ip)" in page
    assert 'id="errors-access_vip"' in page
    # Two parts on one address: said at this step.
    page = admin.post(step(2), dict(ADDRESSES, dir_web_vip="192.168.20.30")).content.decode()
    assert "192.168.20.30:8080/TCP would be used by both" in page

    admin.post(step(2), ADDRESSES)
    admin.post(step(1), dict(PARTS, version="2010"))
    page = admin.post(step(3), {"web_persistence": "none"}).content.decode()
    assert 'id="errors-web_persistence"' in page and "cookie persistence is required" in page
    page = admin.post(step(3), {"web_persistence": "cookie"}).content.decode()
    assert 'id="errors-certificate_file"' in page
    assert not VirtualService.objects.exists() and not LyncDeployment.objects.exists()


def test_back_keeps_the_answers_and_switching_a_part_off_and_on_gives_them_back(admin) -> None:
    walk(admin)
    page = admin.get(step(4)).content.decode()
    assert f'href="{step(3)}"' in page  # Back
    admin.post(step(1), dict(PARTS, director=None) | {"director": ""})
    assert "dir_vip" not in admin.get(step(2)).content.decode()
    admin.post(step(1), PARTS)
    assert "DIR-2 192.168.10.22" in admin.get(step(2)).content.decode()
    # Edge only: no persistence step.
    admin.post(step(1), {"version": "2010", "internal_edge": "on"})
    response = admin.post(
        step(2), {"edge_vip": "192.168.10.10", "int_edge_servers": "EDGE-1 192.168.100.10"}
    )
    assert response["Location"] == step(4)


def test_lync_2010_cookie_path_with_the_pfx_uploaded_in_the_wizard(admin, tmp_path) -> None:
    data, password = front_end_pfx()
    parts = {"version": "2010", "front_end": "on"}
    addresses = {key: value for key, value in ADDRESSES.items() if key.startswith("fe_")}
    admin.get(START)
    admin.post(step(1), parts)
    admin.post(step(2), addresses)
    upload = {"web_persistence": "cookie", "certificate_label": "Lync-FE",
              "certificate_password": "wrong"}  # fmt: skip
    page = admin.post(
        step(3), upload | {"certificate_file": SimpleUploadedFile("fe.pfx", data)}
    ).content.decode()
    assert (
        'id="errors-certificate_file"' in page
        and not SslCertificate.objects.filter(label="Lync-FE").exists()
    )
    response = admin.post(
        step(3),
        upload
        | {
            "certificate_password": password,
            "certificate_file": SimpleUploadedFile("fe.pfx", data),
        },
    )
    assert response["Location"] == step(4)
    assert create(admin).status_code == 302
    termination = SslTermination.objects.get(label="SSL-FePoolExtWebSvcs4443")
    assert termination.certificate.label == "Lync-FE"
    service = termination.virtual_service
    assert (service.label, service.protocol, service.cookie_name) == (
        "FePoolExtWebSvcs8081", "http", "MS-WSMAN",
    )  # fmt: skip
    assert all(server.reencrypt and server.port == 4443 for server in service.real_servers.all())
    assert LyncDeployment.objects.get().certificates_uploaded == [
        {"label": "Lync-FE", "fingerprint": termination.certificate.fingerprint_sha256}
    ]

    # Removing the deployment deletes what it made, the certificate it uploaded included.
    page = admin.get("/lbadmin/wizard/lync/remove/").content.decode()
    response = admin.post("/lbadmin/wizard/lync/remove/", confirmation(page))
    assert response.status_code == 302
    assert not VirtualService.objects.exists() and not SslTermination.objects.exists()
    assert not SslCertificate.objects.filter(label="Lync-FE").exists()
    assert not LyncDeployment.objects.exists()


def test_rerun_flags_hand_edits_and_overwrites_only_when_confirmed(admin) -> None:
    walk(admin)
    create(admin)
    server = RealServer.objects.get(virtual_service__label="FrontEndPool", label="FE-1")
    server.weight = 7
    server.save()
    config_changed()
    page = admin.get("/lbadmin/wizard/lync/").content.decode()
    assert "edited by hand" in page

    addresses = dict(ADDRESSES, fe_servers=ADDRESSES["fe_servers"] + "\nFE-3 192.168.10.33")
    page = walk(admin, addresses=addresses)
    assert 'id="wizard-hand-edits"' in page and 'id="wizard-overwrite"' in page
    create(admin)  # not confirmed
    assert not RealServer.objects.filter(label="FE-3").exists()
    create(admin, overwrite="on")
    assert RealServer.objects.get(virtual_service__label="FrontEndPool", label="FE-1").weight == 100
    pools = set(
        RealServer.objects.filter(label="FE-3").values_list("virtual_service__label", flat=True)
    )
    assert pools == {"FrontEndPool", "FePoolExtWebSvcs8080", "FePoolExtWebSvcs4443"}


def test_conflicts_with_what_exists_block_the_preview(admin) -> None:
    VirtualService.objects.create(label="Other", ip="192.168.10.30", ports="5061")
    page = walk(admin)
    assert 'id="wizard-conflicts"' in page and 'id="wizard-create"' not in page
    assert "virtual service Other is there already" in page
    admin.post(step(4), {"generation": "0"})
    assert list(VirtualService.objects.values_list("label", flat=True)) == ["Other"]


def test_the_slave_of_a_pair_refuses_the_wizard(admin) -> None:
    from lbadmin.models import HaNode

    node = HaNode.load()
    node.role, node.peer_ip = HaNode.Role.SLAVE, "192.0.2.1"
    node.save()
    admin.get(START)
    assert admin.post(step(1), PARTS).status_code == 403
    assert admin.post(step(4), {"generation": "0"}).status_code == 403
    assert not LyncDeployment.objects.exists()


def test_the_order_real_servers_are_listed_in_is_not_a_hand_edit(admin) -> None:
    walk(admin)
    create(admin)
    deployment = LyncDeployment.objects.get()
    for item in deployment.created_items["layer7"].values():
        item["real_servers"].reverse()  # as a database with another collation would list them
    deployment.save()
    page = admin.get("/lbadmin/wizard/lync/").content.decode()
    assert "FrontEndPool" in page and "by hand" not in page


def test_preflight_probes_the_servers_before_anything_exists(admin) -> None:
    """On loopback only: the Director pool of 127.77.x, DIR-1 listening, DIR-2 not."""
    import socket

    admin.get(START)
    admin.post(step(1), {"version": "2013", "director": "on"})
    response = admin.post(
        step(2),
        {"dir_vip": "127.77.10.20", "dir_web_vip": "127.77.20.20", "dir_fqdns": "",
         "dir_servers": "DIR-1 127.77.10.21\nDIR-2 127.77.10.22"},
    )  # fmt: skip
    admin.post(response["Location"], {"web_persistence": "none"})
    assert 'id="wizard-run-preflight"' in admin.get(step(4)).content.decode()  # on request
    with socket.create_server(("127.77.10.21", 5061)) as listener:
        listener.listen()
        page = admin.get("/lbadmin/wizard/lync/preflight/", headers={"HX-Request": "true"})
        page = page.content.decode()
        assert "<html" not in page  # htmx swaps the section in
        assert "<html" in admin.get("/lbadmin/wizard/lync/preflight/").content.decode()
    assert "Virtual services listening" not in page  # they do not exist yet
    row = page.split("DirectorPool → DIR-1 127.77.10.21")[1].split("</tr>")[0]
    assert "OK" in row
    row = page.split("DirectorPool → DIR-2 127.77.10.22")[1].split("</tr>")[0]
    assert "FAILED" in row and "refused" in row
    assert not VirtualService.objects.exists()


def test_create_applies_the_answers_previewed_and_no_others(admin) -> None:
    """Answers changed in another window after the preview: Create refuses."""
    page = walk(admin)
    admin.post(step(2), dict(ADDRESSES, fe_servers="FE-1 192.168.10.31\nFE-9 192.168.10.39"))
    response = admin.post(step(4), confirmation(page))
    assert "The answers changed since the preview" in response.content.decode()
    assert not VirtualService.objects.exists()
    # A generation that is not a plain number is refused as "changed", not a crash.
    fields = confirmation(admin.get(step(4)).content.decode())
    response = admin.post(step(4), {**fields, "generation": "\u00b2"})
    assert response.status_code == 200 and "changed since the preview" in response.content.decode()
    assert create(admin).status_code == 302
    assert RealServer.objects.filter(label="FE-9").exists()


def test_every_upload_of_one_wizard_run_is_the_deployments(admin) -> None:
    """Two PFX uploads at step 3 (the first one, say, for the wrong pool): Create records
    both, and removing the deployment deletes both."""
    admin.get(START)
    admin.post(step(1), {"version": "2010", "front_end": "on"})
    admin.post(step(2), {key: value for key, value in ADDRESSES.items() if key.startswith("fe_")})
    for label in ("Lync-A", "Lync-B"):
        data, password = front_end_pfx()
        response = admin.post(
            step(3),
            {"web_persistence": "cookie", "certificate_label": label,
             "certificate_password": password,
             "certificate_file": SimpleUploadedFile("fe.pfx", data)},
        )  # fmt: skip
        assert response["Location"] == step(4)
        admin.get(START)  # starting over keeps the uploads on record
        admin.post(step(1), {"version": "2010", "front_end": "on"})
        admin.post(step(2), {k: v for k, v in ADDRESSES.items() if k.startswith("fe_")})
    admin.post(step(3), {"web_persistence": "cookie", "certificate": "Lync-B"})
    assert create(admin).status_code == 302
    labels = [record["label"] for record in LyncDeployment.objects.get().certificates_uploaded]
    assert labels == ["Lync-A", "Lync-B"]
    page = admin.get("/lbadmin/wizard/lync/remove/").content.decode()
    admin.post("/lbadmin/wizard/lync/remove/", confirmation(page))
    assert not SslCertificate.objects.filter(label__in=["Lync-A", "Lync-B"]).exists()
