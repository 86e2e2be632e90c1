"""The value types: strict JSON types (the defects probing found in version 2's import), bounds,
allowlists taken from the renderers, canonical forms and the messages that say what a value
must be."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.fernet import Fernet

from lbadmin.document import ClusterConfig
from lbadmin.render.checks import LABEL
from lbadmin.render.haproxy import _COOKIE_NAME
from lbadmin.render.keepalived import CHECK_PATH
from tests.document.support import FIXTURE_SECRETS_KEY, l4_service, l7_service, minimal, problems

SERVICE = "layer7.virtual_services[0]"


def l7(**fields: Any) -> dict[str, Any]:
    """A document with one Layer 7 service (and its one real server) changed by ``fields``."""
    server = fields.pop("server", {})
    service = l7_service("Web", "192.168.1.10", [80]) | fields
    service["real_servers"] = [{"label": "WEB-1", "ip": "192.168.1.21", **server}]
    return minimal(layer7={"virtual_services": [service]})


def l4(**fields: Any) -> dict[str, Any]:
    server = fields.pop("server", {})
    service = l4_service("Dns", "192.168.1.20", [53]) | fields
    service["real_servers"] = [{"label": "DNS-1", "ip": "192.168.1.41", **server}]
    return minimal(layer4={"virtual_services": [service]})


def one(document: dict[str, Any]) -> str:
    found = problems(document)
    assert len(found) == 1, found
    return found[0]


# --- Strict JSON types: version 2's import read these through the forms' text ---------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (1, "1"), ("no", '"no"'), ("true", '"true"'), ("", '""'), (None, "null"),
     ([], "a list"), ({}, "an object"), (0.0, "0.0")],
)  # fmt: skip
def test_a_boolean_is_true_or_false_only(value: Any, shown: str) -> None:
    assert problems(minimal(layer7={"settings": {"redispatch": value}})) == [
        f"layer7.settings.redispatch: {shown} is not true or false"
    ]
    assert problems(l4(persistence=value)) == [
        f"layer4.virtual_services[0].persistence: {shown} is not true or false"
    ]
    assert problems(l7(server={"reencrypt": value})) == [
        f"{SERVICE}.real_servers[0].reencrypt: {shown} is not true or false"
    ]


def test_no_from_the_probe_is_not_true() -> None:
    assert problems(minimal(layer7={"settings": {"logging": "no"}})) == [
        'layer7.settings.logging: "no" is not true or false'
    ]
    assert problems(minimal(ha={"preempt": 0})) == ["ha.preempt: 0 is not true or false"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (l7(ports=["81"]), f'{SERVICE}.ports[0]: "81" is not a port (1–65535)'),
        (l7(ports=[81.0]), f"{SERVICE}.ports[0]: 81.0 is not a port (1–65535)"),
        (l7(ports=[True]), f"{SERVICE}.ports[0]: true is not a port (1–65535)"),
        (l7(ports=[65536]), f"{SERVICE}.ports[0]: 65536 is not a port (1–65535)"),
        (l7(ports=[0]), f"{SERVICE}.ports[0]: 0 is not a port (1–65535)"),
        (l7(check_port="5061"), f'{SERVICE}.check_port: "5061" is not a port (1–65535)'),
        (
            l7(server={"weight": "7"}),
            f'{SERVICE}.real_servers[0].weight: "7" is not a weight (0–256; 0: no new connections)',
        ),
        (
            l7(server={"port": "8080"}),
            f'{SERVICE}.real_servers[0].port: "8080" is not a port (1–65535)',
        ),
        (
            l4(server={"weight": 257}),
            "layer4.virtual_services[0].real_servers[0].weight: 257 is not a weight "
            "(0–256; 0: no new connections)",
        ),
        (
            minimal(layer7={"settings": {"client_timeout_ms": "30m"}}),
            'layer7.settings.client_timeout_ms: "30m" is not a timeout: must be 1 to 86400000 ms',
        ),
    ],
)
def test_numbers_are_json_numbers_in_their_range(document: dict[str, Any], expected: str) -> None:
    assert problems(document) == [expected]


def test_ports_are_a_list_of_distinct_ports_kept_sorted() -> None:
    config = ClusterConfig.model_validate(l7(ports=[443, 80, 8080]))
    assert config.layer7.virtual_services[0].ports == [80, 443, 8080]
    assert problems(l7(ports=[80, 443, 80])) == [f"{SERVICE}.ports: port 80 is listed twice"]
    assert problems(l7(ports=[])) == [f"{SERVICE}.ports: must be a list of 1 to 64 ports"]
    assert problems(l7(ports=list(range(1, 66)))) == [
        f"{SERVICE}.ports: must be a list of 1 to 64 ports"
    ]
    assert problems(l7(ports=list(range(1, 65)))) == []
    assert problems(l7(ports="80,443")) == [f"{SERVICE}.ports: must be a list of 1 to 64 ports"]


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [
        ("connect_timeout_ms", 1, 86_400_000),
        ("client_timeout_ms", 1, 86_400_000),
        ("server_timeout_ms", 1, 86_400_000),
    ],
)
def test_layer7_timeouts_are_bounded(field: str, low: int, high: int) -> None:
    for good in (low, high):
        assert problems(minimal(layer7={"settings": {field: good}})) == []
    for bad in (low - 1, high + 1):
        assert one(minimal(layer7={"settings": {field: bad}})).startswith(
            f"layer7.settings.{field}: {bad} is not a timeout"
        )


@pytest.mark.parametrize(
    ("make", "field", "low", "high"),
    [
        (l7, "check_interval_ms", 100, 3_600_000),
        (l7, "persistence_timeout_s", 1, 86_400),
        (l4, "persistence_timeout_s", 1, 86_400),
        (l4, "check_interval_s", 1, 3600),
        (l4, "check_timeout_s", 1, 3600),
        (l4, "check_status", 100, 599),
    ],
)
def test_service_numbers_are_bounded(make: Any, field: str, low: int, high: int) -> None:
    section = "layer7" if make is l7 else "layer4"
    for good in (low, high):
        assert problems(make(**{field: good})) == []
    for bad in (low - 1, high + 1):
        assert one(make(**{field: bad})).startswith(
            f"{section}.virtual_services[0].{field}: {bad} "
        )


def test_connection_thresholds_are_bounded() -> None:
    assert problems(l4(server={"max_connections": 1_000_000})) == []
    assert problems(l4(server={"min_connections": -1})) == [
        "layer4.virtual_services[0].real_servers[0].min_connections: -1 is not a connection "
        "count: must be 0 to 1000000"
    ]


# --- Texts: the renderers' own allowlists ---------------------------------------------------


LABELS = ["Web", "a" * 64, "a" * 65, "", "a b", "a\n", "\na", "é", "x;y", "A-Z_a.z:0-9", "a\x00"]


@pytest.mark.parametrize("label", LABELS)
def test_labels_are_the_renderers_labels(label: str) -> None:
    """The same pattern as lbadmin.render.checks.LABEL, fullmatch (no trailing newline)."""
    found = problems(l7(label=label))
    assert (found == []) == bool(LABEL.fullmatch(label)), found
    if found:
        assert found[0].startswith(f"{SERVICE}.label: ")
        assert found[0].endswith("is not a label: use 1 to 64 letters, digits and _ . : - only")


def test_the_default_certificate_label_is_for_certificates_only() -> None:
    label = "Default Self Signed Certificate"
    assert one(l7(label=label)).startswith(f"{SERVICE}.label: ")
    found = problems(minimal(ssl={"certificates": [{"label": label, "source": "x"}]}))
    assert not any(".label" in line for line in found), found


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("192.168.1.10", "192.168.1.10"),
        ("2001:DB8::0:1", "2001:db8::1"),
        ("169.254.1.1", "169.254.1.1"),
        ("::ffff:192.168.1.1", "::ffff:c0a8:101"),
    ],
)
def test_addresses_are_kept_in_canonical_text(value: str, canonical: str) -> None:
    config = ClusterConfig.model_validate(l7(ip=value))
    assert config.layer7.virtual_services[0].ip == canonical


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("192.168.1.10/24", '"192.168.1.10/24" is not an IPv4 or IPv6 address'),
        (" 192.168.1.10", '" 192.168.1.10" is not an IPv4 or IPv6 address'),
        ("192.168.1.10\n", '"192.168.1.10\\n" is not an IPv4 or IPv6 address'),
        ("host.example.com", '"host.example.com" is not an IPv4 or IPv6 address'),
        ("fe80::1%eth0", '"fe80::1%eth0" is a scoped IPv6 address, which is not supported'),
        ("fe80::1", '"fe80::1" is an IPv6 link-local address, which is not supported'),
        ("224.0.0.1", '"224.0.0.1" is not a unicast address: multicast and 0.0.0.0/:: cannot'),
        ("0.0.0.0", '"0.0.0.0" is not a unicast address'),
        ("::", '"::" is not a unicast address'),
        (3232235786, "3232235786 is not an IP address: must be text such as 192.168.10.30"),
    ],
)
def test_addresses_are_unicast_and_exact(value: Any, says: str) -> None:
    found = one(l7(ip=value))
    assert found.startswith(f"{SERVICE}.ip: {says}"), found
    assert one(l7(server={"ip": value})).startswith(f"{SERVICE}.real_servers[0].ip: {says}")
    assert one(l7(fallback_ip=value)).startswith(f"{SERVICE}.fallback_ip: {says}")


@pytest.mark.parametrize("name", ["SERVERID", "MS-WSMAN", "a|b~c", "a b", "a#b", "$x", "a\n", ""])
def test_cookie_names_are_the_renderers(name: str) -> None:
    found = problems(l7(cookie_name=name))
    assert (found == []) == bool(_COOKIE_NAME.fullmatch(name)), found


@pytest.mark.parametrize("path", ["/", "/health?full=1", "/a#b", "/a b", "x", "/a\n", "/" * 256])
def test_check_paths_are_the_renderers(path: str) -> None:
    found = problems(l4(check_path=path))
    assert (found == []) == bool(CHECK_PATH.fullmatch(path)), found


def test_heartbeat_interval_in_steps_of_ten() -> None:
    for good in (10, 100, 40950):
        assert problems(minimal(ha={"advert_interval_ms": good})) == []
    for bad, shown in ((0, "0"), (5, "5"), (155, "155"), (40960, "40960"), ("100", '"100"')):
        assert problems(minimal(ha={"advert_interval_ms": bad})) == [
            f"ha.advert_interval_ms: {shown} is not a heartbeat interval: must be 10 to 40950 ms "
            "in steps of 10"
        ]


def test_enumerations_take_their_json_strings_only() -> None:
    assert problems(l7(protocol="HTTP")) == [
        f'{SERVICE}.protocol: "HTTP" is not one of "http" or "tcp"'
    ]
    assert problems(l4(forwarding=1)) == [
        'layer4.virtual_services[0].forwarding: 1 is not one of "nat", "dr" or "tun"'
    ]


def test_manual_text_is_bounded() -> None:
    assert problems(l7(manual_text="x" * 200_000)) == []
    assert problems(l7(manual_text="x" * 200_001)) == [
        f"{SERVICE}.manual_text: must be text of at most 200000 characters"
    ]
    assert problems(l7(manual_text=["balance roundrobin"])) == [
        f"{SERVICE}.manual_text: must be text of at most 200000 characters"
    ]


# --- Certificates: shapes only ----------------------------------------------------------------


def certificate(**fields: Any) -> dict[str, Any]:
    item = {"label": "cert", "source": "upload", "key_encrypted": TOKEN, **fields}
    return minimal(ssl={"certificates": [item]})


TOKEN = Fernet(FIXTURE_SECRETS_KEY).encrypt(b"-----BEGIN PRIVATE KEY-----\n").decode()
BODY = base64.b64encode(bytes(range(256)) * 2).decode()  # 683 characters, "=" padded
LINES = "".join(BODY[at : at + 64] + "\n" for at in range(0, len(BODY), 64))
PEM = f"-----BEGIN CERTIFICATE-----\n{LINES}-----END CERTIFICATE-----\n"
CSR = PEM.replace("CERTIFICATE", "CERTIFICATE REQUEST")


def test_pem_as_the_appliance_writes_it() -> None:
    assert problems(certificate(certificate_pem=PEM, chain_pem=PEM + PEM)) == []
    assert problems(certificate(source="csr", csr_pem=CSR)) == []
    where = "ssl.certificates[0]"
    for bad in (
        PEM.rstrip("\n"),  # no final newline
        PEM + PEM,  # two certificates
        PEM.replace(LINES[:65], LINES[:64] + "x\n"),  # a line of 65
        PEM.replace("\n", "\r\n"),
        PEM.replace("CERTIFICATE", "PRIVATE KEY"),
        "junk" + PEM,
        CSR,
    ):
        assert problems(certificate(certificate_pem=bad)) == [
            f"{where}.certificate_pem: is not one PEM certificate (-----BEGIN CERTIFICATE----- …) "
            "or empty"
        ]
    assert one(certificate(chain_pem=PEM + "x", certificate_pem=PEM)).startswith(
        f"{where}.chain_pem: is not PEM certificates"
    )
    assert one(certificate(source="csr", csr_pem=PEM)).startswith(f"{where}.csr_pem: ")


def test_the_private_key_is_a_fernet_token() -> None:
    where = "ssl.certificates[0].key_encrypted"
    base = {"certificate_pem": PEM}
    assert problems(certificate(**base)) == []
    assert problems(certificate(**base, key_encrypted="-----BEGIN PRIVATE KEY-----")) == [
        f"{where}: is not an encrypted private key (a Fernet token, gAAAAA…)"
    ]
    assert problems(certificate(**base, key_encrypted=TOKEN[:-4])) == [
        f'{where}: "{TOKEN[:36]}... is not a Fernet token (base64 of version, time, IV, '
        "AES blocks and HMAC)"
    ]
    found = one(certificate(**base, key_encrypted=None))
    assert found == f"{where}: is not an encrypted private key (a Fernet token, gAAAAA…)"


def test_certificate_source_is_known() -> None:
    assert one(certificate(certificate_pem=PEM, source="pfx")) == (
        'ssl.certificates[0].source: "pfx" is not one of "upload", "csr" or "self_signed"'
    )
