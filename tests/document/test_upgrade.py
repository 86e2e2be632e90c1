"""Version 2 to 3 on real version-2 exports, and the round trip: the models are the document."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization

from lbadmin.document import FORMAT, VERSION, ClusterConfig, upgrade
from tests.document.support import FIXTURE_SECRETS_KEY, V2_FIXTURES, problems, v2_fixture


@pytest.mark.parametrize("name", V2_FIXTURES)
def test_a_version_2_export_upgrades_to_a_valid_version_3_document(name: str) -> None:
    original = v2_fixture(name)
    kept = copy.deepcopy(original)
    document = upgrade(original)
    assert original == kept  # the input is left as it was
    assert document["version"] == VERSION == 3
    assert {key: value for key, value in document.items() if key != "version"} == {
        key: value for key, value in original.items() if key != "version"
    }
    assert problems(document) == []


@pytest.mark.parametrize("name", V2_FIXTURES)
def test_round_trip_the_models_are_the_document(name: str) -> None:
    document = upgrade(v2_fixture(name))
    config = ClusterConfig.model_validate(document)
    dumped = config.model_dump(mode="json")
    assert dumped == document  # dicts: key order aside
    assert ClusterConfig.model_validate(dumped) == config
    assert ClusterConfig.model_validate_json(json.dumps(document)) == config


def test_the_fixtures_cover_what_the_document_can_hold() -> None:
    """Real exports of every kind of object: the upgrade and round trip are tested on them."""
    guide, ssl, webui = (upgrade(v2_fixture(name)) for name in V2_FIXTURES)
    assert len(guide["layer7"]["virtual_services"]) == 8
    assert len(guide["layer4"]["virtual_services"]) == 11
    assert {item["source"] for item in ssl["ssl"]["certificates"]} == {
        "upload", "csr", "self_signed",
    }  # fmt: skip
    assert any(item["chain_pem"] for item in ssl["ssl"]["certificates"])
    assert len(ssl["ssl"]["terminations"]) == 2
    manual = [s for s in webui["layer7"]["virtual_services"] if s["manual_config"]]
    assert [(s["label"], s["manual_text"]) for s in manual] == [("Manual", "")]
    layer4 = webui["layer4"]["virtual_services"]
    assert {s["protocol"] for s in layer4} == {"tcp", "udp", "tcp_udp"}
    assert {s["forwarding"] for s in layer4} == {"nat", "dr", "tun"}
    assert webui["ha"] == {"advert_interval_ms": 250, "preempt": True}


def test_the_fixture_keys_decrypt_under_the_fixture_key() -> None:
    """No secret the tests cannot reproduce: each key decrypts and matches its certificate."""
    fernet = Fernet(FIXTURE_SECRETS_KEY)
    for item in v2_fixture("config-v2-guide-ssl.json")["ssl"]["certificates"]:
        key = serialization.load_pem_private_key(fernet.decrypt(item["key_encrypted"]), None)
        if item["certificate_pem"]:
            public = x509.load_pem_x509_certificate(item["certificate_pem"].encode()).public_key()
        else:
            public = x509.load_pem_x509_csr(item["csr_pem"].encode()).public_key()
        assert public == key.public_key(), item["label"]


@pytest.mark.parametrize(
    "data",
    [
        None, [], "x", 2, {}, {"version": 2}, {"format": "other", "version": 2},
        {"format": FORMAT, "version": 1}, {"format": FORMAT, "version": 2.0},
        {"format": FORMAT, "version": "2"}, {"format": FORMAT, "version": True},
        {"format": FORMAT, "version": 4},
    ],
)  # fmt: skip
def test_anything_else_is_left_for_document_problems_to_explain(data: Any) -> None:
    assert upgrade(data) is data
    assert problems(upgrade(data))


def test_a_version_3_document_is_left_as_it_is() -> None:
    document = upgrade(v2_fixture("config-v2-webui.json"))
    assert upgrade(document) is document


def test_an_upgraded_document_still_has_to_be_valid() -> None:
    """The upgrade changes the number, not what is wrong: version 2 took a Layer 4 service
    whose servers all have weight 0 (and its apply failed); version 3 refuses it."""
    document = v2_fixture("config-v2-guide.json")
    for server in document["layer4"]["virtual_services"][0]["real_servers"]:
        server["weight"] = 0
    assert problems(upgrade(document)) == [
        "layer4.virtual_services[0].real_servers: every real server has weight 0, which "
        "keepalived refuses: give one a weight"
    ]
