"""The Lync Setup Wizard's planner against the deployment guide's tables
(/work/shared/seed/000_cdd81a144dff6c39.txt, "Load Balancing Microsoft Lync 2010/2013" v1.8.1),
its validation, and the appliance's own import accepting what it plans."""

import dataclasses
from typing import Any

import pytest

from lbadmin.wizard.lync import (
    DEFAULT_CERTIFICATE_LABEL,
    DirectorPart,
    EdgePart,
    ExternalEdgePart,
    FrontEndPart,
    InvalidAnswers,
    LyncAnswers,
    Plan,
    ReverseProxyPart,
    Server,
    plan,
    validate,
)

# --- The guide's test environment ---------------------------------------------------------------
# The guide names one server per pool (FE-1 192.168.10.31, DIR-1 192.168.10.21, EDGE-1
# 192.168.100.10 inside and 10.20.1.10 outside) and says "Repeat the above steps to add your
# other … Server(s)": the second server of each pool is ours.
FE_SERVERS = (Server("FE-1", "192.168.10.31"), Server("FE-2", "192.168.10.32"))
DIR_SERVERS = (Server("DIR-1", "192.168.10.21"), Server("DIR-2", "192.168.10.22"))
EDGE_SERVERS = (
    Server("EDGE-1", "192.168.100.10", external_ip="10.20.1.10"),
    Server("EDGE-2", "192.168.100.11", external_ip="10.20.1.11"),
)
# Appendix 2 gives 10.12.1.150 for the Front End reverse-proxy VIPs; for the Director it only
# says "Repeat the steps above": 10.12.1.151 is ours.
RP_FE_VIP, RP_DIR_VIP = "10.12.1.150", "10.12.1.151"

CERT = "FE-cert"


def guide_answers(version: str, web_persistence: str, certificate: str | None = CERT):
    return LyncAnswers(
        version=version,  # type: ignore[arg-type]
        front_end=FrontEndPart("192.168.10.30", "192.168.20.30", FE_SERVERS),
        director=DirectorPart("192.168.10.20", "192.168.20.20", DIR_SERVERS),
        internal_edge=EdgePart("192.168.10.10", EDGE_SERVERS),
        external_edge=ExternalEdgePart("10.25.1.10", "10.25.1.11", "10.25.1.12", EDGE_SERVERS),
        reverse_proxy=ReverseProxyPart(front_end_vip=RP_FE_VIP, director_vip=RP_DIR_VIP),
        web_persistence=web_persistence,  # type: ignore[arg-type]
        certificate_label=certificate,
    )


# --- The guide's tables, transcribed ------------------------------------------------------------
# Layer 7: label -> (ip, ports, protocol, persistence, cookie name, check port,
#                    real-server port, re-encrypt, servers)
FE, DIR = "FE", "DIR"
SERVERS = {FE: FE_SERVERS, DIR: DIR_SERVERS}

# STEP 2 table: FrontEndPool 192.168.10.30 "135, 443, 444, 5061, 5065, 5069", Layer 7,
# "Other TCP", "Source IP address"; text: "Set the Check Port field to 5061", "Leave the Real
# Server Port field blank".
STEP2_POOL = {
    "FrontEndPool": (
        "192.168.10.30", [135, 443, 444, 5061, 5065, 5069], "tcp", "source_ip", "SERVERID",
        5061, None, False, FE,
    ),
}  # fmt: skip
# STEP 2 table, "None or cookie *" — Lync 2013 only, no persistence: FePoolExtWebSvcs8080 and
# FePoolExtWebSvcs4443 on 192.168.20.30, "Other TCP", servers on 8080 / 4443.
STEP2_WEB_NONE = {
    "FePoolExtWebSvcs8080": ("192.168.20.30", [8080], "tcp", "none", "SERVERID", None, 8080, False, FE),  # noqa: E501
    "FePoolExtWebSvcs4443": ("192.168.20.30", [4443], "tcp", "none", "SERVERID", None, 4443, False, FE),  # noqa: E501
}  # fmt: skip
# STEP 2 with cookie ("Configuring the FePoolExtWebSvcs8080 VIP": HTTP Mode, persistence on;
# "Lync 2010": SSL termination SSL-FePoolExtWebSvcs4443 on 4443, then FePoolExtWebSvcs8081
# 192.168.20.30:8081 HTTP Mode, HTTP Cookie MS-WSMAN, servers on 4443 with Re-Encrypt).
STEP2_WEB_COOKIE = {
    "FePoolExtWebSvcs8080": ("192.168.20.30", [8080], "http", "http_cookie", "SERVERID", None, 8080, False, FE),  # noqa: E501
    "FePoolExtWebSvcs8081": ("192.168.20.30", [8081], "http", "http_cookie", "MS-WSMAN", None, 4443, True, FE),  # noqa: E501
}  # fmt: skip
# STEP 3 table: DirectorPool 192.168.10.20 5061 "Other TCP" source IP (servers on 5061, the
# text's RIP form); DirPoolExtWebSvcs8080/4443 on 192.168.20.20 — THE TABLE'S ADDRESS. The
# step's text says "e.g. 192.168.20.30" for both, the Front End's external web VIP copied from
# STEP 2, which would put a second service on 192.168.20.30:8080 and :4443; and its Lync 2010
# section creates "FePoolExtWebSvcs8081" on 192.168.20.30:8081 with FE-1 again (STEP 2's
# label, address and servers). We follow the table: the Director's services on 192.168.20.20,
# DirPoolExtWebSvcs8081 with the Director servers behind SSL-DirPoolExtWebSvcs4443 (the label
# the guide's screenshot shows), and never two services on one IP:port.
STEP3_POOL = {
    "DirectorPool": ("192.168.10.20", [5061], "tcp", "source_ip", "SERVERID", None, 5061, False, DIR),  # noqa: E501
}  # fmt: skip
STEP3_WEB_NONE = {
    "DirPoolExtWebSvcs8080": ("192.168.20.20", [8080], "tcp", "none", "SERVERID", None, 8080, False, DIR),  # noqa: E501
    "DirPoolExtWebSvcs4443": ("192.168.20.20", [4443], "tcp", "none", "SERVERID", None, 4443, False, DIR),  # noqa: E501
}  # fmt: skip
STEP3_WEB_COOKIE = {
    "DirPoolExtWebSvcs8080": ("192.168.20.20", [8080], "http", "http_cookie", "SERVERID", None, 8080, False, DIR),  # noqa: E501
    "DirPoolExtWebSvcs8081": ("192.168.20.20", [8081], "http", "http_cookie", "MS-WSMAN", None, 4443, True, DIR),  # noqa: E501
}  # fmt: skip
# Appendix 2: ReverseProxyFE-http 10.12.1.150:80 HTTP Mode -> FE servers on 8080;
# ReverseProxyFE-https 10.12.1.150:443 TCP Mode -> FE servers on 4443; "Repeat … for the
# Director Server Web Services". Persistence: what the appliance gives a new service of that
# mode (the guide changes nothing): SERVERID cookie / source IP.
APPENDIX2 = {
    "ReverseProxyFE-http": (RP_FE_VIP, [80], "http", "http_cookie", "SERVERID", None, 8080, False, FE),  # noqa: E501
    "ReverseProxyFE-https": (RP_FE_VIP, [443], "tcp", "source_ip", "SERVERID", None, 4443, False, FE),  # noqa: E501
    "ReverseProxyDir-http": (RP_DIR_VIP, [80], "http", "http_cookie", "SERVERID", None, 8080, False, DIR),  # noqa: E501
    "ReverseProxyDir-https": (RP_DIR_VIP, [443], "tcp", "source_ip", "SERVERID", None, 4443, False, DIR),  # noqa: E501
}  # fmt: skip
# The SSL terminations of the cookie path: label -> (port, Layer 7 service it sends to).
TERMINATIONS_COOKIE = {
    "SSL-FePoolExtWebSvcs4443": (4443, "FePoolExtWebSvcs8081"),
    "SSL-DirPoolExtWebSvcs4443": (4443, "DirPoolExtWebSvcs8081"),
}

# Layer 4: label -> (ip, port, protocol, servers' address attribute)
# STEP 4 table (internal Edge): all on 192.168.10.10, servers by internal address
# (EDGE-1 192.168.100.10), UDP for IntEdgeAv3478.
STEP4 = {
    "IntEdgeAccess5061": ("192.168.10.10", 5061, "tcp", "ip"),
    "IntEdgeWebConf8057": ("192.168.10.10", 8057, "tcp", "ip"),
    "IntEdgeAv443": ("192.168.10.10", 443, "tcp", "ip"),
    "IntEdgeAv3478": ("192.168.10.10", 3478, "udp", "ip"),
    "IntEdgeAv5062": ("192.168.10.10", 5062, "tcp", "ip"),
}
# STEP 5 table (external Edge): three addresses, servers by external address (EDGE-1
# 10.20.1.10), UDP for ExtEdgeAv3478, ExtEdgeAccess5269 "(Lync 2013 only)".
STEP5 = {
    "ExtEdgeAccess443": ("10.25.1.10", 443, "tcp", "external_ip"),
    "ExtEdgeAccess5061": ("10.25.1.10", 5061, "tcp", "external_ip"),
    "ExtEdgeWeb443": ("10.25.1.11", 443, "tcp", "external_ip"),
    "ExtEdgeAv443": ("10.25.1.12", 443, "tcp", "external_ip"),
    "ExtEdgeAv3478": ("10.25.1.12", 3478, "udp", "external_ip"),
}
STEP5_2013_ONLY = {"ExtEdgeAccess5269": ("10.25.1.10", 5269, "tcp", "external_ip")}


def expected_layer7(web_persistence: str) -> dict[str, tuple]:
    web = (
        {**STEP2_WEB_NONE, **STEP3_WEB_NONE}
        if web_persistence == "none"
        else {**STEP2_WEB_COOKIE, **STEP3_WEB_COOKIE}
    )
    return {**STEP2_POOL, **STEP3_POOL, **web, **APPENDIX2}


def expected_layer4(version: str) -> dict[str, tuple]:
    return {**STEP4, **STEP5, **(STEP5_2013_ONLY if version == "2013" else {})}


# --- Checks shared by the deployment tests ------------------------------------------------------


def assert_layer7(result: Plan, expected: dict[str, tuple]) -> None:
    services = {item["label"]: item for item in result.layer7_services}
    assert sorted(services) == sorted(expected)
    for label, row in expected.items():
        ip, ports, protocol, persistence, cookie, check_port, port, reencrypt, pool = row
        item = services[label]
        assert (item["ip"], item["ports"], item["protocol"]) == (ip, ports, protocol), label
        assert (item["persistence"], item["cookie_name"]) == (persistence, cookie), label
        assert item["check_port"] == check_port, label
        # What the guide leaves at the appliance's defaults:
        assert item["persistence_timeout_s"] == 1800, label
        assert item["balance"] == "leastconn", label
        assert item["health_check"] == "connect", label
        assert item["check_interval_ms"] == 4000, label
        assert (item["fallback_ip"], item["fallback_port"]) == (None, None), label
        assert (item["manual_config"], item["manual_text"]) == (False, ""), label
        assert item["real_servers"] == [
            {"label": s.label, "ip": s.ip, "port": port, "weight": 100, "reencrypt": reencrypt}
            for s in SERVERS[pool]
        ], label


def assert_layer4(result: Plan, expected: dict[str, tuple]) -> None:
    services = {item["label"]: item for item in result.layer4_services}
    assert sorted(services) == sorted(expected)
    for label, (ip, port, protocol, address) in expected.items():
        item = services[label]
        assert (item["ip"], item["ports"], item["protocol"]) == (ip, [port], protocol), label
        # STEP 4: "Change the Forwarding Method to NAT", "Change Persistence Timeout to 1800";
        # persistence "Source IP address"; the rest the appliance's defaults.
        assert item["forwarding"] == "nat", label
        assert (item["persistence"], item["persistence_timeout_s"]) == (True, 1800), label
        assert item["scheduler"] == "wlc", label
        assert (item["health_check"], item["check_port"]) == ("connect", None), label
        assert item["real_servers"] == [
            {
                "label": s.label,
                "ip": getattr(s, address),
                "port": port,  # "Set the Real Server Port field to 5061" (the VIP's port)
                "weight": 100,
                "min_connections": 0,
                "max_connections": 0,
            }
            for s in EDGE_SERVERS
        ], label


def assert_no_shared_address(result: Plan) -> None:
    addresses = result.addresses()
    assert len(addresses) == len(set(addresses)), addresses


# --- The deployments ----------------------------------------------------------------------------


def test_lync_2013_without_persistence_is_the_guides_tables():
    result = plan(guide_answers("2013", "none", certificate=None))

    # STEP 1: client and server timeouts of 30 minutes; nothing else.
    assert result.layer7_settings == {
        "client_timeout_ms": 1_800_000,
        "server_timeout_ms": 1_800_000,
    }
    assert_layer7(result, expected_layer7("none"))
    assert_layer4(result, expected_layer4("2013"))
    assert result.terminations == ()
    # 3 Front End + 3 Director + 4 reverse proxy; 5 internal + 6 external Edge.
    assert (len(result.layer7_services), len(result.layer4_services)) == (10, 11)
    assert_no_shared_address(result)
    assert ("10.25.1.10", 5269, "tcp") in result.addresses()
    assert {("192.168.10.10", 3478, "udp"), ("10.25.1.12", 3478, "udp")} <= set(result.addresses())
    assert [item["label"] for item in result.layer7_services] == sorted(
        item["label"] for item in result.layer7_services
    )


def test_lync_2010_with_cookie_is_the_guides_tables():
    result = plan(guide_answers("2010", "cookie"))

    assert result.layer7_settings["client_timeout_ms"] == 1_800_000
    assert result.layer7_settings["server_timeout_ms"] == 1_800_000
    assert_layer7(result, expected_layer7("cookie"))
    assert_layer4(result, expected_layer4("2010"))
    assert {item["label"]: item for item in result.terminations} == {
        label: {
            "label": label,
            "port": port,
            "mode": "high_security",  # the guide's "SSL Operation Mode: High Security"
            "ciphers": "",
            "virtual_service": service,
            "certificate": CERT,
        }
        for label, (port, service) in TERMINATIONS_COOKIE.items()
    }
    # No Layer 7 service on 4443 of the external web VIPs: the terminations listen there.
    labels = {item["label"] for item in result.layer7_services}
    assert not labels & {"FePoolExtWebSvcs4443", "DirPoolExtWebSvcs4443"}
    assert ("192.168.20.30", 4443, "tcp") in result.addresses()
    assert ("192.168.20.20", 4443, "tcp") in result.addresses()
    assert (len(result.layer7_services), len(result.terminations)) == (10, 2)
    assert len(result.layer4_services) == 10  # no ExtEdgeAccess5269 for Lync 2010
    assert_no_shared_address(result)


def test_lync_2013_with_mobility_uses_the_cookie_path_and_keeps_5269():
    result = plan(guide_answers("2013", "cookie", certificate=DEFAULT_CERTIFICATE_LABEL))
    assert_layer7(result, expected_layer7("cookie"))
    assert_layer4(result, expected_layer4("2013"))
    assert {item["certificate"] for item in result.terminations} == {DEFAULT_CERTIFICATE_LABEL}
    assert_no_shared_address(result)


def test_ext_edge_access_5269_only_for_lync_2013():
    labels = {
        version: {item["label"] for item in plan(guide_answers(version, "cookie")).layer4_services}
        for version in ("2010", "2013")
    }
    assert "ExtEdgeAccess5269" in labels["2013"]
    assert "ExtEdgeAccess5269" not in labels["2010"]
    assert labels["2013"] - labels["2010"] == {"ExtEdgeAccess5269"}


def test_edge_services_udp_3478_and_1800_s_persistence():
    result = plan(guide_answers("2013", "none"))
    protocols = {item["label"]: item["protocol"] for item in result.layer4_services}
    assert {label for label, protocol in protocols.items() if protocol == "udp"} == {
        "IntEdgeAv3478",
        "ExtEdgeAv3478",
    }
    assert {item["persistence_timeout_s"] for item in result.layer4_services} == {1800}
    assert all(item["persistence"] is True for item in result.layer4_services)
    # "Note that three different IP's are used" for the external Edge.
    external = {item["ip"] for item in result.layer4_services if item["label"].startswith("Ext")}
    assert external == {"10.25.1.10", "10.25.1.11", "10.25.1.12"}


def test_step3_follows_its_table_not_its_text():
    """STEP 3's text gives the Director's external web services the Front End's address
    (192.168.20.30) and names its Lync 2010 service FePoolExtWebSvcs8081: the planner uses the
    table's 192.168.20.20 and DirPoolExtWebSvcs8081, and refuses the text's address."""
    for persistence in ("none", "cookie"):
        result = plan(guide_answers("2010" if persistence == "cookie" else "2013", persistence))
        director = [item for item in result.layer7_services if item["label"].startswith("Dir")]
        assert {item["ip"] for item in director} == {"192.168.10.20", "192.168.20.20"}
        for item in director:  # the Director's servers, never the Front End's
            assert {s["ip"] for s in item["real_servers"]} == {s.ip for s in DIR_SERVERS}
        fe_web = [item for item in result.layer7_services if item["ip"] == "192.168.20.30"]
        assert {item["label"] for item in fe_web} <= {
            "FePoolExtWebSvcs8080",
            "FePoolExtWebSvcs4443",
            "FePoolExtWebSvcs8081",
        }

    # Taking the text literally (192.168.20.30 for the Director too) is refused, by address.
    text_literal = dataclasses.replace(
        guide_answers("2010", "cookie"),
        director=DirectorPart("192.168.10.20", "192.168.20.30", DIR_SERVERS),
    )
    problems = validate(text_literal)
    assert any("192.168.20.30:8080/TCP" in problem for problem in problems), problems
    assert any("192.168.20.30:8081/TCP" in problem for problem in problems), problems
    assert any(
        "192.168.20.30:4443/TCP" in problem and "SSL termination" in problem for problem in problems
    ), problems
    with pytest.raises(InvalidAnswers) as raised:
        plan(text_literal)
    assert raised.value.problems == problems


def test_parts_are_optional():
    only_edge = LyncAnswers(
        version="2013",
        front_end=None,
        director=None,
        internal_edge=None,
        external_edge=ExternalEdgePart(servers=EDGE_SERVERS),
        reverse_proxy=None,
        web_persistence="none",
    )
    result = plan(only_edge)
    assert result.layer7_services == () and result.terminations == ()
    assert [item["label"] for item in result.layer4_services] == sorted([*STEP5, *STEP5_2013_ONLY])


def test_plan_items_have_exactly_the_documents_keys():
    from lbadmin.services import config, l4

    result = plan(guide_answers("2010", "cookie"))
    service_keys = {*config._SERVICE_FIELDS, "real_servers"}
    for item in result.layer7_services:
        assert set(item) == service_keys
        for server in item["real_servers"]:
            assert set(server) == set(config._SERVER_KEYS_IN_ORDER)
    for item in result.layer4_services:
        assert set(item) == {*l4._SERVICE_FIELDS, "real_servers"}
        for server in item["real_servers"]:
            assert set(server) == set(l4._SERVER_FIELDS)
    for item in result.terminations:
        assert set(item) == set(config._TERMINATION_FIELDS_IN_ORDER)
    assert set(result.layer7_settings) <= set(config._SETTINGS_KEYS_IN_ORDER)


# --- validate() ---------------------------------------------------------------------------------


def test_guide_answers_are_valid():
    assert validate(guide_answers("2013", "none", certificate=None)) == []
    assert validate(guide_answers("2010", "cookie")) == []
    assert validate(guide_answers("2013", "cookie")) == []


def test_lync_2010_without_persistence_is_refused():
    problems = validate(guide_answers("2010", "none"))
    assert len(problems) == 1
    assert problems[0].startswith("web_persistence: Lync 2010")
    with pytest.raises(InvalidAnswers) as raised:
        plan(guide_answers("2010", "none"))
    assert raised.value.problems == problems


def test_cookie_path_needs_a_certificate():
    problems = validate(guide_answers("2010", "cookie", certificate=None))
    assert len(problems) == 1 and problems[0].startswith("certificate_label: ")
    # Without a pool there is no termination, so no certificate is needed.
    edge_only = dataclasses.replace(
        guide_answers("2010", "cookie", certificate=None),
        front_end=None,
        director=None,
        reverse_proxy=None,
    )
    assert validate(edge_only) == []
    hostile = validate(guide_answers("2010", "cookie", certificate="cert\n1"))
    assert len(hostile) == 1 and hostile[0].startswith("certificate_label: Use 1 to 64")


def test_duplicate_server_labels_and_addresses_are_refused():
    answers = dataclasses.replace(
        guide_answers("2013", "none"),
        front_end=FrontEndPart(
            servers=(
                Server("FE-1", "192.168.10.31"),
                Server("FE-1", "192.168.10.32"),
                Server("FE-3", "192.168.10.31"),
            )
        ),
    )
    assert validate(answers) == [
        "front_end.servers[1].label: FE-1 is already the label of front_end.servers[0].",
        "front_end.servers[2].ip: 192.168.10.31 is already the address of front_end.servers[0].",
    ]


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            {"front_end": FrontEndPart(servers=(Server("FE-1\nbackend x", "192.168.10.31"),))},
            "front_end.servers[0].label: Use 1 to 64 characters",
        ),
        (
            {"director": DirectorPart(servers=(Server("DIR-1", "192.168.10.21 "),))},
            "director.servers[0].ip: “192.168.10.21 ” is not an IPv4 or IPv6 address.",
        ),
        (
            {"internal_edge": EdgePart(vip="192.168.10.10/24", servers=EDGE_SERVERS)},
            "internal_edge.vip: “192.168.10.10/24” is not an IPv4 or IPv6 address.",
        ),
        (
            {"external_edge": ExternalEdgePart(servers=(Server("EDGE-1", "192.168.100.10"),))},
            "external_edge.servers[0].external_ip: enter the Edge server's external address.",
        ),
        (
            {
                "external_edge": ExternalEdgePart(
                    servers=(Server("EDGE-1", "192.168.100.10", "2001:db8::10"),)
                )
            },
            "external_edge.servers[0].external_ip: Layer 4 NAT keeps the address family",
        ),
        (
            {"front_end": FrontEndPart(servers=(Server("fallback", "192.168.10.31"),))},
            "front_end.servers[0].label: “fallback” is reserved",
        ),
        ({"director": DirectorPart(servers=())}, "director.servers: add at least one server."),
        (
            {"reverse_proxy": ReverseProxyPart(front_end_vip="10.12.1.150 ; rm -rf /")},
            "reverse_proxy.front_end_vip: “10.12.1.150 ; rm -rf /” is not an IPv4",
        ),
        (
            {"version": "2016"},
            "version: choose 2010 or 2013.",
        ),
    ],
)
def test_hostile_or_wrong_values_are_refused_with_a_message(replace, expected):
    problems = validate(dataclasses.replace(guide_answers("2013", "none"), **replace))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_reverse_proxy_needs_servers_to_point_at():
    answers = dataclasses.replace(guide_answers("2013", "none"), director=None)
    assert validate(answers) == [
        "reverse_proxy.director_servers: deploy the director part or list the servers the "
        "reverse-proxy VIP sends to."
    ]
    pointed = dataclasses.replace(
        answers, reverse_proxy=ReverseProxyPart(RP_FE_VIP, RP_DIR_VIP, (), DIR_SERVERS)
    )
    assert validate(pointed) == []
    https = {item["label"]: item for item in plan(pointed).layer7_services}["ReverseProxyDir-https"]
    assert [server["ip"] for server in https["real_servers"]] == [s.ip for s in DIR_SERVERS]


def test_one_address_for_two_parts_is_refused():
    # The reverse-proxy VIPs of both pools on one address: two services on :80 and :443.
    answers = dataclasses.replace(
        guide_answers("2013", "none"),
        reverse_proxy=ReverseProxyPart(front_end_vip=RP_FE_VIP, director_vip=RP_FE_VIP),
    )
    problems = validate(answers)
    assert problems == [
        "addresses: 10.12.1.150:80/TCP would be used by both virtual service "
        "ReverseProxyDir-http and virtual service ReverseProxyFE-http: give them different "
        "addresses.",
        "addresses: 10.12.1.150:443/TCP would be used by both virtual service "
        "ReverseProxyDir-https and virtual service ReverseProxyFE-https: give them different "
        "addresses.",
    ]
    # TCP and UDP on one port are two addresses: the internal Edge and the Front End on one
    # IP collide on 443/TCP and 5061/TCP only.
    shared = dataclasses.replace(
        guide_answers("2013", "none"), internal_edge=EdgePart("192.168.10.30", EDGE_SERVERS)
    )
    collisions = sorted(problem.split(" ")[1] for problem in validate(shared))
    assert collisions == ["192.168.10.30:443/TCP", "192.168.10.30:5061/TCP"]


def test_ipv6_addresses_are_canonical_in_the_plan():
    answers = LyncAnswers(
        version="2013",
        front_end=None,
        director=None,
        internal_edge=EdgePart("2001:DB8:0::10", (Server("EDGE-1", "2001:db8:0:0::100"),)),
        external_edge=None,
        reverse_proxy=None,
        web_persistence="none",
    )
    result = plan(answers)
    assert {item["ip"] for item in result.layer4_services} == {"2001:db8::10"}
    assert {item["real_servers"][0]["ip"] for item in result.layer4_services} == {"2001:db8::100"}


# --- The appliance's own import accepts the plan ------------------------------------------------


def document_of(result: Plan, certificates: list[dict[str, Any]]) -> dict[str, Any]:
    from lbadmin.services.config import EXPORT_FORMAT, EXPORT_VERSION, config_export

    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "layer7": {
            "settings": {**config_export()["layer7"]["settings"], **result.layer7_settings},
            "virtual_services": list(result.layer7_services),
        },
        "ssl": {"certificates": certificates, "terminations": list(result.terminations)},
        "layer4": {"virtual_services": list(result.layer4_services)},
        "ha": {"advert_interval_ms": 100, "preempt": False},
    }


def by_label(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["label"]: item for item in items}


def assert_exported(result: Plan) -> None:
    from lbadmin.services.config import config_export

    exported = config_export()
    settings = exported["layer7"]["settings"]
    assert {name: settings[name] for name in result.layer7_settings} == result.layer7_settings
    assert by_label(exported["layer7"]["virtual_services"]) == by_label(
        list(result.layer7_services)
    )
    assert by_label(exported["ssl"]["terminations"]) == by_label(list(result.terminations))
    assert by_label(exported["layer4"]["virtual_services"]) == by_label(
        list(result.layer4_services)
    )


@pytest.mark.django_db
def test_import_accepts_the_lync_2013_plan():
    from lbadmin.services.config import config_import

    result = plan(guide_answers("2013", "none"))
    config_import(actor=None, document=document_of(result, []), reason="lync wizard test")
    assert_exported(result)


@pytest.mark.django_db
def test_import_accepts_the_lync_2010_cookie_plan_with_its_terminations():
    from lbadmin.services.certificates import certificate_default_ensure
    from lbadmin.services.config import config_export, config_import

    certificate = certificate_default_ensure()
    assert certificate.label == DEFAULT_CERTIFICATE_LABEL
    result = plan(guide_answers("2010", "cookie", certificate=certificate.label))
    certificates = config_export()["ssl"]["certificates"]
    config_import(actor=None, document=document_of(result, certificates), reason="lync wizard test")
    assert_exported(result)
    assert len(config_export()["ssl"]["terminations"]) == 2
