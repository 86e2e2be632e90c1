"""The Setup Wizard for Lync through its page: preview, conflicts, create in one go, apply."""

import pytest

from lbadmin.models import ConfigRevision, L4VirtualService, SslTermination, VirtualService
from lbadmin.services.certificates import certificate_default_ensure

pytestmark = pytest.mark.django_db
URL = "/lbadmin/wizard/lync/"


def answers(**changes) -> dict:
    """The form as it comes, with the guide's addresses, for Lync 2013 without persistence."""
    data = {
        "version": "2013", "web_persistence": "none", "certificate": "",
        "front_end": "on", "fe_vip": "192.168.10.30", "fe_web_vip": "192.168.20.30",
        "fe_servers": "FE-1 192.168.10.31\nFE-2 192.168.10.32",
        "director": "on", "dir_vip": "192.168.10.20", "dir_web_vip": "192.168.20.20",
        "dir_servers": "DIR-1 192.168.10.21\nDIR-2 192.168.10.22",
        "internal_edge": "on", "edge_vip": "192.168.10.10",
        "edge_servers": "EDGE-1 192.168.100.10 10.20.1.10\nEDGE-2 192.168.100.11 10.20.1.11",
        "external_edge": "on", "access_vip": "10.25.1.10", "webconf_vip": "10.25.1.11",
        "av_vip": "10.25.1.12", "rp_vip": "10.12.1.150",
    }  # fmt: skip
    return {key: value for key, value in (data | changes).items() if value is not None}


def test_the_guides_deployment_is_previewed_then_created_and_applied(admin) -> None:
    page = admin.post(URL, answers(step="preview")).content.decode()
    for label in ("FrontEndPool", "FePoolExtWebSvcs4443", "DirectorPool", "IntEdgeAv3478",
                  "ExtEdgeAccess5269"):  # fmt: skip
        assert label in page
    assert 'id="wizard-create"' in page and not VirtualService.objects.exists()

    response = admin.post(URL, answers(step="create"))
    assert response.status_code == 302
    assert VirtualService.objects.get(label="FrontEndPool").ports == "135,443,444,5061,5065,5069"
    assert L4VirtualService.objects.get(label="IntEdgeAv3478").protocol == "udp"
    assert L4VirtualService.objects.get(label="ExtEdgeAccess443").persistence_timeout_s == 1800
    assert ConfigRevision.objects.filter(status="queued").exists()  # and it is applied

    # Running it again over the same addresses: every conflict is shown, nothing created.
    page = admin.post(URL, answers(step="preview")).content.decode()
    assert 'id="wizard-conflicts"' in page and 'id="wizard-create"' not in page
    assert "FrontEndPool exists already" in page
    count = VirtualService.objects.count()
    admin.post(URL, answers(step="create"))
    assert VirtualService.objects.count() == count


def test_lync_2010_needs_the_cookie_and_builds_the_ssl_termination(admin) -> None:
    page = admin.post(URL, answers(version="2010", step="preview")).content.decode()
    assert 'id="wizard-problems"' in page and "web_persistence" in page
    certificate_default_ensure()
    admin.post(
        URL,
        answers(
            version="2010", web_persistence="cookie", step="create",
            certificate="Default Self Signed Certificate", director=None, internal_edge=None,
            external_edge=None,
        ),
    )  # fmt: skip
    termination = SslTermination.objects.get(label="SSL-FePoolExtWebSvcs4443")
    assert termination.port == 4443 and termination.virtual_service.label == "FePoolExtWebSvcs8081"
    service = termination.virtual_service
    assert (service.protocol, service.cookie_name) == ("http", "MS-WSMAN")
    assert all(server.reencrypt and server.port == 4443 for server in service.real_servers.all())


def test_hostile_answers_are_refused_at_the_wizard(admin) -> None:
    page = admin.post(
        URL, answers(fe_servers="FE-1 192.168.10.31\nFE-2\n192.168.10.32; reboot", step="create")
    ).content.decode()
    assert "Nothing was created" in page or 'id="wizard-problems"' in page
    assert "192.168.10.32; reboot" not in str(VirtualService.objects.values_list("ip"))
    assert not VirtualService.objects.exists()
