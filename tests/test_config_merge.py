"""config_merge: part of the configuration changed through the import's forms, the rest left
as it is (ids included), all or nothing."""

import copy

import pytest

from lbadmin.models import ConfigState, RealServer, VirtualService
from lbadmin.services.config import ImportRejected, config_export, config_import, config_merge

pytestmark = pytest.mark.django_db


def service(label: str, ip: str, port: int) -> dict:
    return {
        "label": label, "ip": ip, "ports": [port], "protocol": "tcp", "balance": "leastconn",
        "persistence": "none", "cookie_name": "SERVERID", "persistence_timeout_s": 300,
        "health_check": "connect", "check_port": None, "check_interval_ms": 4000,
        "fallback_ip": None, "fallback_port": None, "manual_config": False, "manual_text": "",
        "real_servers": [
            {"label": "RS-1", "ip": "127.0.0.2", "port": port, "weight": 100, "reencrypt": False}
        ],
    }  # fmt: skip


@pytest.fixture
def two_services() -> None:
    document = config_export()
    document["layer7"]["virtual_services"] = [
        service("Kept", "127.1.0.1", 80),
        service("Replaced", "127.1.0.2", 80),
    ]
    config_import(actor=None, document=document)


def test_replaces_only_what_it_names(two_services) -> None:
    kept = VirtualService.objects.get(label="Kept").pk
    server_timeout = config_export()["layer7"]["settings"]["server_timeout_ms"]
    ConfigState.objects.update(pending_engines=[])  # as after an apply
    replacement = service("Replaced", "127.1.0.2", 81)
    config_merge(
        actor=None,
        reason="test",
        remove={"layer7": ["Replaced"]},
        add={"layer7": [replacement]},
        settings={"client_timeout_ms": 60_000},
    )
    assert VirtualService.objects.get(label="Kept").pk == kept
    document = config_export()
    assert document["layer7"]["virtual_services"][1] == replacement
    assert document["layer7"]["settings"]["client_timeout_ms"] == 60_000
    assert document["layer7"]["settings"]["server_timeout_ms"] == server_timeout  # not named
    assert ConfigState.load().pending_engines == ["haproxy"]  # only HAProxy's services changed


def test_a_refused_item_changes_nothing(two_services) -> None:
    before = config_export()
    generation = ConfigState.load().generation
    bad = copy.deepcopy(service("New", "127.1.0.3", 80))
    bad["real_servers"][0]["ip"] = "127.0.0.2; reboot"
    with pytest.raises(ImportRejected) as rejected:
        config_merge(
            actor=None, reason="test", remove={"layer7": ["Replaced"]}, add={"layer7": [bad]}
        )
    assert rejected.value.problems == [
        "virtual_services[0].real_servers[0].ip: “127.0.0.2; reboot” is not an IPv4 or IPv6 "
        "address."
    ]
    assert config_export() == before and ConfigState.load().generation == generation
    assert RealServer.objects.count() == 2
