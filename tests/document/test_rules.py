"""The whole-document rules, each at its JSON path, on the guide's configuration (a real
export): labels, references, addresses across sections, and what each layer allows."""

from __future__ import annotations

from typing import Any

import pytest

from lbadmin.document import ClusterConfig
from tests.document.support import l4_service, l7_service, minimal, problems, upgraded


@pytest.fixture
def doc() -> dict[str, Any]:
    document = upgraded()
    assert problems(document) == []
    return document


def l7(document: dict[str, Any], label: str) -> dict[str, Any]:
    return next(s for s in document["layer7"]["virtual_services"] if s["label"] == label)


def l4(document: dict[str, Any], label: str) -> dict[str, Any]:
    return next(s for s in document["layer4"]["virtual_services"] if s["label"] == label)


# The guide's services, by index in the export (sorted by label).
FE_8081 = "layer7.virtual_services[4]"  # FePoolExtWebSvcs8081, HTTP, 192.168.20.30:8081
FRONT_END = "layer7.virtual_services[5]"  # FrontEndPool, TCP, 192.168.10.30, 6 ports
EDGE_AV = "layer4.virtual_services[6]"  # IntEdgeAv3478, UDP, NAT, 192.168.10.10:3478
EDGE_5061 = "layer4.virtual_services[5]"  # IntEdgeAccess5061, TCP, NAT


# --- Labels ------------------------------------------------------------------------------------


def test_labels_are_unique_where_the_webui_keeps_them_unique(doc: dict[str, Any]) -> None:
    services = doc["layer7"]["virtual_services"]
    services[3]["label"] = services[0]["label"]
    l7(doc, "FrontEndPool")["real_servers"][1]["label"] = "FE-1"
    doc["layer4"]["virtual_services"][2]["label"] = "ExtEdgeAccess443"
    doc["ssl"]["terminations"][1]["label"] = doc["ssl"]["terminations"][0]["label"]
    doc["ssl"]["certificates"][2]["label"] = "Edge-csr"
    assert problems(doc) == [
        f"{FRONT_END}.real_servers[1].label: “FE-1” is already the label of real_servers[0]",
        "layer7.virtual_services[3].label: “DirPoolExtWebSvcs8080” is already the label of "
        "virtual_services[0]",
        "ssl.certificates[2].label: “Edge-csr” is already the label of certificates[1]",
        "ssl.terminations[1].label: “SSL-DirPoolExtWebSvcs4443” is already the label of "
        "terminations[0]",
        "layer4.virtual_services[2].label: “ExtEdgeAccess443” is already the label of "
        "virtual_services[0]",
    ]


def test_labels_may_repeat_across_services_and_layers(doc: dict[str, Any]) -> None:
    # FE-1 is a real server of several services; a Layer 4 service may share a Layer 7 label.
    doc["layer4"]["virtual_services"][0]["label"] = "FrontEndPool"
    assert problems(doc) == []


def test_fallback_is_not_a_real_server_label(doc: dict[str, Any]) -> None:
    l7(doc, "FrontEndPool")["real_servers"][0]["label"] = "fallback"
    assert problems(doc) == [
        f"{FRONT_END}.real_servers[0].label: “fallback” is reserved for the fallback server"
    ]


def test_real_servers_of_a_layer7_service_differ_in_address_or_port(doc: dict[str, Any]) -> None:
    servers = l7(doc, "FePoolExtWebSvcs8081")["real_servers"]
    servers[1]["ip"] = servers[0]["ip"]
    assert problems(doc) == [
        f"{FE_8081}.real_servers[1].ip: real_servers[0] has the same address and port already"
    ]
    servers[1]["port"] = 4444
    assert problems(doc) == []


# --- Layer 7 ------------------------------------------------------------------------------------


def test_http_cookie_persistence_needs_http_mode(doc: dict[str, Any]) -> None:
    l7(doc, "FrontEndPool")["persistence"] = "http_cookie"
    assert problems(doc) == [f"{FRONT_END}.persistence: HTTP cookie persistence needs HTTP mode"]


def test_reencrypt_needs_http_mode(doc: dict[str, Any]) -> None:
    l7(doc, "FrontEndPool")["real_servers"][1]["reencrypt"] = True
    assert problems(doc) == [f"{FRONT_END}.real_servers[1].reencrypt: re-encrypt needs HTTP mode"]
    l7(doc, "FrontEndPool")["real_servers"][1]["reencrypt"] = False
    l7(doc, "FePoolExtWebSvcs8081")["real_servers"][1]["reencrypt"] = True
    assert problems(doc) == []


def test_a_fallback_port_needs_a_fallback_address(doc: dict[str, Any]) -> None:
    l7(doc, "FrontEndPool")["fallback_port"] = 8080
    assert problems(doc) == [
        f"{FRONT_END}.fallback_ip: must be given with fallback_port (the fallback server)"
    ]
    l7(doc, "FrontEndPool")["fallback_ip"] = "192.168.10.99"
    assert problems(doc) == []


def test_manual_configuration_with_no_lines_yet_is_accepted(doc: dict[str, Any]) -> None:
    """What the WebUI makes when Manual Configuration is ticked on the add form."""
    l7(doc, "FrontEndPool").update(manual_config=True, manual_text="")
    assert problems(doc) == []
    l7(doc, "FrontEndPool")["manual_text"] = " \n\r\n\t\n"
    assert problems(doc) == []


def test_manual_lines_are_checked_when_ticked_every_one(doc: dict[str, Any]) -> None:
    lines = (
        "balance roundrobin\nlisten evil\n\n  server s1 10.0.0.1:80 check\nacl x src -f /etc/shadow"
    )
    l7(doc, "FrontEndPool").update(manual_config=False, manual_text=lines)
    assert problems(doc) == []  # kept as text while unticked, as the WebUI keeps it
    l7(doc, "FrontEndPool")["manual_config"] = True
    found = problems(doc)
    assert [line.split(": ", 1)[0] for line in found] == [f"{FRONT_END}.manual_text"] * 2
    assert found[0].startswith(f"{FRONT_END}.manual_text: line 2 starts a new “listen” section")
    assert found[1].startswith(f"{FRONT_END}.manual_text: line 4 ")
    l7(doc, "FrontEndPool")["manual_text"] = "timeout server 30s\n" * 201
    assert problems(doc) == [f"{FRONT_END}.manual_text: holds 201 lines: at most 200"]
    l7(doc, "FrontEndPool")["manual_text"] = "timeout server 30s\rx\nbalance " + "x" * 1000
    assert problems(doc) == [
        f"{FRONT_END}.manual_text: line 1 contains a control character",
        f"{FRONT_END}.manual_text: line 2 is too long (at most 1000)",
    ]


# --- Addresses across sections ------------------------------------------------------------------


def test_an_address_and_port_belong_to_one_layer7_service(doc: dict[str, Any]) -> None:
    l7(doc, "FePoolExtWebSvcs8081")["ports"] = [8080, 8081]
    assert problems(doc) == [
        f"{FE_8081}.ports[0]: 192.168.20.30:8080/TCP is already used by virtual service "
        "FePoolExtWebSvcs8080"
    ]
    l7(doc, "FePoolExtWebSvcs8081")["ip"] = "192.168.20.31"  # the terminations move with it
    assert problems(doc) == []


def test_terminations_listen_on_their_services_address(doc: dict[str, Any]) -> None:
    doc["ssl"]["terminations"][1]["port"] = 8080  # on 192.168.20.30, like FePoolExtWebSvcs8080
    assert problems(doc) == [
        "ssl.terminations[1].port: 192.168.20.30:8080/TCP is already used by virtual service "
        "FePoolExtWebSvcs8080"
    ]
    doc["ssl"]["terminations"][1]["port"] = 8081  # its own service's port
    assert problems(doc)[0].endswith("is already used by virtual service FePoolExtWebSvcs8081")
    doc["ssl"]["terminations"][1].update(port=4443, virtual_service="DirPoolExtWebSvcs8081")
    assert problems(doc) == [
        "ssl.terminations[1].port: 192.168.20.20:4443/TCP is already used by SSL termination "
        "SSL-DirPoolExtWebSvcs4443"
    ]


def test_layer4_collides_by_address_port_and_protocol(doc: dict[str, Any]) -> None:
    edge = l4(doc, "IntEdgeAv3478")
    edge.update(ip="192.168.10.30", ports=[443])  # FrontEndPool's address and port, but UDP
    assert problems(doc) == []
    edge["protocol"] = "tcp_udp"
    assert problems(doc) == [
        f"{EDGE_AV}.ports[0]: 192.168.10.30:443/TCP is already used by virtual service FrontEndPool"
    ]
    edge.update(ip="192.168.20.30", ports=[4443], protocol="tcp")
    assert problems(doc) == [
        f"{EDGE_AV}.ports[0]: 192.168.20.30:4443/TCP is already used by SSL termination "
        "SSL-FePoolExtWebSvcs4443"
    ]


def test_layer4_services_collide_with_each_other_per_protocol(doc: dict[str, Any]) -> None:
    l4(doc, "IntEdgeAccess5061").update(ports=[3478], protocol="tcp")  # IntEdgeAv3478 is UDP
    assert problems(doc) == []
    l4(doc, "IntEdgeAccess5061")["protocol"] = "tcp_udp"
    assert problems(doc) == [
        f"{EDGE_AV}.ports[0]: 192.168.10.10:3478/UDP is already used by Layer 4 virtual service "
        "IntEdgeAccess5061"
    ]


def test_ipv6_listeners_are_shown_in_brackets() -> None:
    services = [l7_service("A", "2001:db8::1", [80]), l7_service("B", "2001:DB8::0:1", [80])]
    assert problems(minimal(layer7={"virtual_services": services})) == [
        "layer7.virtual_services[1].ports[0]: [2001:db8::1]:80/TCP is already used by virtual "
        "service A"
    ]


# --- Terminations -------------------------------------------------------------------------------


def test_a_termination_names_an_http_mode_layer7_service(doc: dict[str, Any]) -> None:
    doc["ssl"]["terminations"][0]["virtual_service"] = "Nowhere"
    doc["ssl"]["terminations"][1]["virtual_service"] = "FrontEndPool"
    assert problems(doc) == [
        "ssl.terminations[0].virtual_service: no Layer 7 virtual service is labelled “Nowhere”",
        "ssl.terminations[1].virtual_service: “FrontEndPool” is in TCP mode: a termination sends "
        "it HTTP, so it needs an HTTP-mode service",
    ]


def test_a_termination_names_a_signed_certificate(doc: dict[str, Any]) -> None:
    doc["ssl"]["terminations"][0]["certificate"] = "Nothing"
    doc["ssl"]["terminations"][1]["certificate"] = "Edge-csr"
    assert problems(doc) == [
        "ssl.terminations[0].certificate: no certificate is labelled “Nothing”",
        "ssl.terminations[1].certificate: “Edge-csr” is a CSR still waiting for its certificate",
    ]
    doc["ssl"]["terminations"][1]["certificate"] = "FE-cert"
    doc["ssl"]["terminations"][0]["certificate"] = "Default Self Signed Certificate"
    assert problems(doc) == []


def test_custom_ciphers_only_in_custom_mode(doc: dict[str, Any]) -> None:
    termination = doc["ssl"]["terminations"][0]
    termination["mode"] = "custom"
    assert problems(doc) == ["ssl.terminations[0].ciphers: is required in custom mode"]
    termination["ciphers"] = "ECDHE-RSA-AES128-GCM-SHA256:!aNULL"
    assert problems(doc) == []
    termination["mode"] = "compatibility"
    assert problems(doc) == [
        "ssl.terminations[0].ciphers: must be empty: only custom mode takes a cipher list"
    ]


@pytest.mark.parametrize(
    ("ciphers", "says"),
    [
        ("ECDHE-RSA-AES128-GCM-SHA256:NULL-SHA", "“NULL” selects ciphers without encryption"),
        ("RC4-SHA", "“RC4” selects ciphers"),
        ("DEFAULT:@SECLEVEL=0", "“@SECLEVEL” selects ciphers"),
        ("NOSUCHCIPHER", "names no cipher OpenSSL knows"),
        ("TLS_AES_128_GCM_SHA256", "names no cipher OpenSSL knows"),
        ("ECDHE RSA", "is not a cipher list: use cipher names separated by colons"),
    ],
)
def test_weak_or_unknown_custom_ciphers_are_refused(
    doc: dict[str, Any], ciphers: str, says: str
) -> None:
    doc["ssl"]["terminations"][0].update(mode="custom", ciphers=ciphers)
    found = problems(doc)
    assert len(found) == 1 and found[0].startswith("ssl.terminations[0].ciphers: "), found
    assert says in found[0]


def test_a_certificate_without_a_certificate_is_a_pending_csr() -> None:
    token = upgraded()["ssl"]["certificates"][1]["key_encrypted"]
    where = "ssl.certificates[0]"

    def certificate(**fields: Any) -> list[str]:
        item = {"label": "c", "source": "csr", "key_encrypted": token, **fields}
        return problems(minimal(ssl={"certificates": [item]}))

    for source in ("upload", "self_signed"):
        assert certificate(source=source) == [
            f"{where}.certificate_pem: is required: only a CSR (source csr) waits for one"
        ]
    assert certificate() == [
        f"{where}.csr_pem: is required while the CSR waits for its certificate"
    ]
    csr = upgraded()["ssl"]["certificates"][1]["csr_pem"]
    chain = upgraded()["ssl"]["certificates"][2]["chain_pem"]
    assert certificate(csr_pem=csr) == []
    assert certificate(csr_pem=csr, chain_pem=chain) == [
        f"{where}.chain_pem: must be empty while there is no certificate"
    ]


# --- Layer 4 ------------------------------------------------------------------------------------


def test_minimum_connections_are_at_most_the_maximum(doc: dict[str, Any]) -> None:
    server = l4(doc, "IntEdgeAv3478")["real_servers"][0]
    server.update(min_connections=100, max_connections=0)  # 0: unlimited
    assert problems(doc) == []
    server["max_connections"] = 99
    assert problems(doc) == [
        f"{EDGE_AV}.real_servers[0].min_connections: must not be more than max_connections (99)"
    ]


def test_a_layer4_service_whose_servers_all_have_weight_0_is_refused(doc: dict[str, Any]) -> None:
    servers = l4(doc, "IntEdgeAv3478")["real_servers"]
    servers[0]["weight"] = 0
    assert problems(doc) == []
    servers[1]["weight"] = 0
    assert problems(doc) == [
        f"{EDGE_AV}.real_servers: every real server has weight 0, which keepalived refuses: "
        "give one a weight"
    ]
    l4(doc, "IntEdgeAv3478")["real_servers"] = []  # rendered as a comment: fine
    assert problems(doc) == []


def test_several_ports_forward_each_to_the_same_port(doc: dict[str, Any]) -> None:
    edge = l4(doc, "IntEdgeAv3478")
    edge["ports"] = [3478, 3479]
    assert problems(doc) == [
        f"{EDGE_AV}.real_servers[{n}].port: must be null: a service with several ports forwards "
        "each to the same port"
        for n in (0, 1)
    ]
    for server in edge["real_servers"]:
        server["port"] = None
    assert problems(doc) == []


def test_direct_routing_and_tunnel_cannot_change_the_port(doc: dict[str, Any]) -> None:
    edge = l4(doc, "IntEdgeAv3478")
    edge["real_servers"][0]["port"] = 3479
    assert problems(doc) == []  # NAT can
    for forwarding in ("dr", "tun"):
        edge["forwarding"] = forwarding
        assert problems(doc) == [
            f"{EDGE_AV}.real_servers[0].port: direct routing and tunnel cannot change the port: "
            "use null or 3478"
        ]
    edge["real_servers"][0]["port"] = 3478
    assert problems(doc) == []


def test_nat_and_direct_routing_keep_the_address_family(doc: dict[str, Any]) -> None:
    edge = l4(doc, "IntEdgeAv3478")
    edge["real_servers"][1]["ip"] = "2001:db8::11"
    for forwarding in ("nat", "dr"):
        edge["forwarding"] = forwarding
        assert problems(doc) == [
            f"{EDGE_AV}.real_servers[1].ip: NAT and direct routing keep the address family: use "
            "an IPv4 address like the virtual service's"
        ]
    edge["forwarding"] = "tun"
    assert problems(doc) == []


def test_layer4_servers_differ_in_address_and_the_port_they_get(doc: dict[str, Any]) -> None:
    servers = l4(doc, "IntEdgeAv3478")["real_servers"]
    servers[1].update(ip=servers[0]["ip"], port=None)  # null: 3478, as servers[0]'s
    assert problems(doc) == [
        f"{EDGE_AV}.real_servers[1].ip: real_servers[0] has the same address and port already"
    ]


# --- Several rules at once ------------------------------------------------------------------------


def test_every_rule_problem_is_reported_at_once(doc: dict[str, Any]) -> None:
    l7(doc, "FrontEndPool")["persistence"] = "http_cookie"
    l7(doc, "FePoolExtWebSvcs8081")["fallback_port"] = 1
    l4(doc, "IntEdgeAv3478")["forwarding"] = "dr"
    l4(doc, "IntEdgeAv3478")["real_servers"][0]["port"] = 1
    l4(doc, "IntEdgeAccess5061")["real_servers"][0]["min_connections"] = 5
    l4(doc, "IntEdgeAccess5061")["real_servers"][0]["max_connections"] = 4
    doc["ssl"]["terminations"][0]["certificate"] = "Nothing"
    assert [line.split(": ", 1)[0] for line in problems(doc)] == [
        f"{FE_8081}.fallback_ip",
        f"{FRONT_END}.persistence",
        "ssl.terminations[0].certificate",
        f"{EDGE_5061}.real_servers[0].min_connections",
        f"{EDGE_AV}.real_servers[0].port",
    ]


def test_the_models_raise_what_document_problems_reports(doc: dict[str, Any]) -> None:
    l7(doc, "FrontEndPool")["persistence"] = "http_cookie"
    with pytest.raises(ValueError, match="HTTP cookie persistence needs HTTP mode"):
        ClusterConfig.model_validate(doc)


def test_layer4_minimal_service_gets_defaults() -> None:
    document = minimal(layer4={"virtual_services": [l4_service("A", "192.168.1.1", [80])]})
    service = ClusterConfig.model_validate(document).layer4.virtual_services[0]
    assert (service.forwarding, service.persistence, service.persistence_timeout_s) == (
        "dr",
        True,
        300,
    )


def test_a_termination_left_unnamed_is_named_as_the_webui_names_it() -> None:
    services = [l7_service("Web", "192.168.1.10", [80])]
    certificates = upgraded()["ssl"]["certificates"][:1]  # the default certificate
    document = minimal(
        layer7={"virtual_services": services},
        ssl={
            "certificates": certificates,
            "terminations": [{"virtual_service": "Web", "port": 443}],
        },
    )
    termination = ClusterConfig.model_validate(document).ssl.terminations[0]
    assert (termination.label, termination.certificate, termination.mode) == (
        "SSL-Web", "Default Self Signed Certificate", "high_security",
    )  # fmt: skip


def test_a_validated_document_is_a_value(doc: dict[str, Any]) -> None:
    config = ClusterConfig.model_validate(doc)
    with pytest.raises(ValueError, match="frozen"):
        config.layer7.settings.redispatch = False  # type: ignore[misc]
    assert config == ClusterConfig.model_validate(doc)
