"""A minimal document means what the WebUI would have made: each default is the WebUI's own
(its models' defaults, its forms' initial values and what the short add forms fill in),
compared with objects made through the WebUI's forms and exported."""

from __future__ import annotations

from typing import Any

import pytest

from lbadmin.document import ClusterConfig
from lbadmin.forms.l4 import L4RealServerForm, L4VirtualServiceForm
from lbadmin.forms.l7 import RealServerForm, VirtualServiceForm
from lbadmin.forms.terminations import TerminationForm
from lbadmin.models import VirtualService
from lbadmin.services import l4, l7, terminations
from lbadmin.services.certificates import certificate_default_ensure
from lbadmin.services.config import EXPORT_VERSION, config_export
from tests.document.support import minimal, problems


def dumped(document: dict[str, Any]) -> dict[str, Any]:
    assert problems(document) == []
    return ClusterConfig.model_validate(document).model_dump(mode="json")


def test_missing_booleans_take_the_webuis_defaults() -> None:
    """Version 2's import read a missing boolean as false."""
    document = minimal(
        layer7={"settings": {}},
        layer4={"virtual_services": [{"label": "A", "ip": "192.168.1.1", "ports": [80]}]},
    )
    config = ClusterConfig.model_validate(document)
    assert config.layer7.settings.redispatch is True
    assert config.layer4.virtual_services[0].persistence is True


def test_persistence_follows_the_mode_as_a_new_service_gets_it() -> None:
    services = [
        {"label": "H", "ip": "192.168.1.1", "ports": [80]},
        {"label": "T", "ip": "192.168.1.1", "ports": [81], "protocol": "tcp"},
        {
            "label": "N",
            "ip": "192.168.1.1",
            "ports": [82],
            "protocol": "tcp",
            "persistence": "none",
        },
    ]
    config = ClusterConfig.model_validate(minimal(layer7={"virtual_services": services}))
    assert [s.persistence for s in config.layer7.virtual_services] == [
        "http_cookie", "source_ip", "none",
    ]  # fmt: skip


def _valid(form: Any) -> dict[str, Any]:
    assert form.is_valid(), form.errors
    return form.values()


@pytest.mark.django_db
def test_a_minimal_document_is_what_the_webui_makes() -> None:
    """Empty appliance, then the short add forms with nothing but what they ask for (and the
    values their pages start with): the export equals the minimal document's dump."""
    assert dumped(minimal()) == {**config_export(), "version": 3}

    def add_l7(protocol: str, label: str, port: str) -> Any:
        data = {"label": label, "ip": "192.168.1.10", "ports": port, "protocol": protocol}
        service = l7.virtualservice_create(
            actor=None, values=_valid(VirtualServiceForm(data, add=True))
        )
        form = RealServerForm({"label": "R1", "ip": "192.168.1.21", "weight": "100"},
                              virtual_service=service)  # fmt: skip
        l7.realserver_create(actor=None, service=service, values=_valid(form))
        return service

    add_l7("http", "Web", "80")
    add_l7("tcp", "Mail", "25")
    data = {"label": "Dns", "ip": "192.168.1.20", "ports": "53", "protocol": "tcp",
            "forwarding": "dr"}  # fmt: skip
    service = l4.l4service_create(actor=None, values=_valid(L4VirtualServiceForm(data, add=True)))
    form = L4RealServerForm(
        {"label": "D1", "ip": "192.168.1.41", "weight": "100", "min_connections": "0",
         "max_connections": "0"}, virtual_service=service,
    )  # fmt: skip
    l4.l4server_create(actor=None, service=service, values=_valid(form))
    certificate = certificate_default_ensure()
    web = VirtualService.objects.get(label="Web")
    form = TerminationForm(
        {"label": "", "virtual_service": web.pk, "port": "443", "mode": "high_security",
         "ciphers": "", "certificate": certificate.pk}
    )  # fmt: skip
    terminations.termination_create(actor=None, values=_valid(form))

    exported = config_export()
    assert exported["version"] == EXPORT_VERSION == 2
    server = {"label": "R1", "ip": "192.168.1.21"}
    document = minimal(
        layer7={
            "virtual_services": [
                {"label": "Mail", "ip": "192.168.1.10", "ports": [25], "protocol": "tcp",
                 "real_servers": [server]},
                {"label": "Web", "ip": "192.168.1.10", "ports": [80], "real_servers": [server]},
            ]
        },
        ssl={
            "certificates": exported["ssl"]["certificates"],
            "terminations": [{"virtual_service": "Web", "port": 443}],
        },
        layer4={
            "virtual_services": [
                {"label": "Dns", "ip": "192.168.1.20", "ports": [53],
                 "real_servers": [{"label": "D1", "ip": "192.168.1.41"}]}
            ]
        },
    )  # fmt: skip
    assert dumped(document) == {**exported, "version": 3}
