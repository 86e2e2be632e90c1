"""Every Layer 7 field against hostile input: each value is refused with a message next to its
field, nothing is saved, and the configuration is not marked changed."""

import pytest

from lbadmin.models import ConfigState, L7Settings, RealServer, VirtualService

pytestmark = pytest.mark.django_db

# Values that try to smuggle HAProxy syntax or other text past a field.
INJECTIONS = [
    "web\n    stats enable",
    "web\r\nlisten evil",
    "web # comment",
    "web#x",
    'we"b',
    "we'b",
    "we\\b",
    "${VAR}",
    "%[src]",
    "we b",
    "we\tb",
    "we\x00b",
    "\x1b[31mred",
    " web",
    "web ",
    "wéb",
]
LABELS = [*INJECTIONS, "x" * 65, ""]
IPS = [
    "192.168.10.30 ", " 192.168.10.30", "192.168.10.30\n", "192.168.10.30:80",
    "192.168.10.30/24", "192.168.010.30", "1.2.3.4 # x", "${IP}", "::1%eth0", "0.0.0.0",
    "::", "224.0.0.1", "fe80::1", "999.1.1.1", "localhost", "1.2.3", "", "1.2.3.4\x00",
]  # fmt: skip
PORT_LISTS = [
    "0", "65536", "+80", "80.0", "0x50", "８０", "80;81", "80\n81", "1e3", "-1",
    "80,80", "", "80,,81", "%[dst_port]", "${PORT}", "80 81",
    ",".join(str(p) for p in range(1000, 1065)),
]  # fmt: skip
SINGLE_PORTS = ["0", "65536", "50 61", "+5061", "５０６１", "5061\n", "0x13c5", "${P}"]
COOKIES = ["MS WSMAN", "a;b", "a=b", 'a"b', "a'b", "a#b", "${X}", "%[src]", "a\nb", "é", "a,b"]
DURATIONS = ["30 m", "30min", "-1", "0", "99999999999", "2d", "30m\n", "1.5s", "%[x]", "", "25h"]
WEIGHTS = ["257", "-1", "1.5", "abc", " 100", "100 ", "", "1e2", "１００"]
MANUAL = [
    "listen evil\n    bind :1",
    # HAProxy unquotes and unescapes before it reads a section keyword (found in review).
    '"program" x\ncommand /bin/sh -c "id > /tmp/pwn"',
    "'global'\ninsecure-fork-wanted",
    "\\x6cisten evil",
    'http-request set-header X-Leak "${DJANGO_SECRET_KEY}"',
    "http-request return status 200 file /etc/shadow",
    "errorfile 503 /etc/shadow",
    "balance roundrobin\nstats enable",
    "balance roundrobin\nglobal\n    stats socket /tmp/x level admin",
    "backend other",
    "  frontend f",
    ".if 1",
    ".endif",
    "option httplog\x00",
    "option httplog\x1b",
    "",
    # Lines that reach files, sockets or programs (security review; the whole table is in
    # tests/test_manual_lines_security.py).
    "acl a src -f /var/lib/lbadmin/secrets/certificates.key",
    "http-request set-header X %[src,map_ip(/etc/shadow)]",
    "filter spoe engine x config /etc/shadow",
    "bind unix@/etc/passwd mode 666",
]

SERVICE = {
    "label": "FrontEndPool",
    "ip": "127.0.10.30",
    "ports": "135,443,444,5061,5065,5069",
    "protocol": "tcp",
    "manual_config": "",
    "manual_text": "",
    "balance": "leastconn",
    "persistence": "source_ip",
    "cookie_name": "SERVERID",
    "persistence_timeout": "30m",
    "health_check": "connect",
    "check_port": "5061",
    "check_interval": "4s",
    "fallback_ip": "",
    "fallback_port": "",
}
SERVER = {"label": "FE-1", "ip": "127.0.10.31", "port": "", "weight": "100", "reencrypt": ""}
SETTINGS = {
    "redispatch": "on",
    "connect_timeout": "4000",
    "client_timeout": "1800000",
    "server_timeout": "30m",
}


@pytest.fixture
def service(db) -> VirtualService:
    service = VirtualService.objects.create(
        label="FrontEndPool", ip="127.0.10.30", ports="135,443,444,5061,5065,5069",
        protocol="tcp", persistence="source_ip", check_port=5061,
    )  # fmt: skip
    RealServer.objects.create(virtual_service=service, label="FE-1", ip="127.0.10.31")
    return service


def snapshot_of_database() -> tuple:
    L7Settings.load()  # a page view may create the singleton rows; that is no change
    return (
        list(VirtualService.objects.values()),
        list(RealServer.objects.values()),
        list(L7Settings.objects.values()),
        ConfigState.load().generation,
    )


def post_refused(client, url: str, data: dict, field: str) -> None:
    before = snapshot_of_database()
    response = client.post(url, data)
    assert response.status_code == 200, f"{field}={data[field]!r} was accepted"
    page = response.content.decode()
    assert f'id="errors-{field}"' in page, f"no message next to {field} for {data[field]!r}"
    assert snapshot_of_database() == before


def test_valid_baselines_are_accepted(admin, service) -> None:
    url = f"/lbadmin/cluster/l7/services/{service.pk}/modify/"
    assert admin.post(url, SERVICE).status_code == 302
    server = service.real_servers.get()
    assert admin.post(f"/lbadmin/cluster/l7/servers/{server.pk}/modify/", SERVER).status_code == 302
    assert admin.post("/lbadmin/cluster/l7/advanced/", SETTINGS).status_code == 302
    L7Settings.objects.get(client_timeout_ms=1800000, server_timeout_ms=1800000)


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", v) for v in LABELS]
    + [("ip", v) for v in IPS]
    + [("ports", v) for v in PORT_LISTS]
    + [("check_port", v) for v in SINGLE_PORTS]
    + [("fallback_port", v) for v in SINGLE_PORTS]
    + [("fallback_ip", v) for v in IPS if v]
    + [("cookie_name", v) for v in COOKIES]
    + [("persistence_timeout", v) for v in DURATIONS]
    + [("check_interval", v) for v in [*DURATIONS, "50ms", "2h"]]
    + [("protocol", v) for v in ["udp", "HTTP", "tcp\n", ""]]
    + [("balance", v) for v in ["static-rr", "leastconn ", ""]]
    + [("persistence", v) for v in ["cookie", ""]]
    + [("health_check", v) for v in ["httpchk", ""]],
)
def test_hostile_virtual_service_values_are_refused(admin, service, field: str, value: str) -> None:
    data = {**SERVICE, field: value}
    if field == "fallback_port":
        data["fallback_ip"] = "127.0.10.40"
    if field == "cookie_name":
        data.update(protocol="http", persistence="http_cookie")
    post_refused(admin, f"/lbadmin/cluster/l7/services/{service.pk}/modify/", data, field)


@pytest.mark.parametrize("value", MANUAL)
def test_manual_lines_cannot_leave_their_section(admin, service, value: str) -> None:
    data = {**SERVICE, "manual_config": "on", "manual_text": value}
    post_refused(admin, f"/lbadmin/cluster/l7/services/{service.pk}/modify/", data, "manual_text")


@pytest.mark.parametrize(
    ("field", "value"), [("label", v) for v in LABELS] + [("ip", v) for v in IPS]
)
def test_hostile_values_in_the_add_form_are_refused(admin, db, field: str, value: str) -> None:
    data = {"label": "Web", "ip": "127.0.10.50", "ports": "80", "protocol": "http", field: value}
    post_refused(admin, "/lbadmin/cluster/l7/services/add/", data, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", v) for v in LABELS]
    + [("ip", v) for v in IPS]
    + [("port", v) for v in SINGLE_PORTS]
    + [("weight", v) for v in WEIGHTS],
)
def test_hostile_real_server_values_are_refused(admin, service, field: str, value: str) -> None:
    data = {**SERVER, "label": "FE-2", "ip": "127.0.10.32", field: value}
    post_refused(admin, f"/lbadmin/cluster/l7/services/{service.pk}/servers/add/", data, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f in ("connect_timeout", "client_timeout", "server_timeout") for v in DURATIONS],
)
def test_hostile_timeouts_are_refused(admin, db, field: str, value: str) -> None:
    post_refused(admin, "/lbadmin/cluster/l7/advanced/", {**SETTINGS, field: value}, field)


def test_timeouts_accept_milliseconds_and_units(admin, db) -> None:
    data = {**SETTINGS, "connect_timeout": "4s", "client_timeout": "30m", "server_timeout": "1h"}
    assert admin.post("/lbadmin/cluster/l7/advanced/", data).status_code == 302
    settings = L7Settings.load()
    assert (settings.connect_timeout_ms, settings.client_timeout_ms) == (4000, 1_800_000)
    assert settings.server_timeout_ms == 3_600_000
    assert not settings.logging and settings.redispatch


def test_no_address_and_port_belongs_to_two_services(admin, service) -> None:
    data = {"label": "Other", "ip": "127.0.10.30", "ports": "8080,443", "protocol": "tcp"}
    response = admin.post("/lbadmin/cluster/l7/services/add/", data)
    assert "127.0.10.30:443 is already used by virtual service FrontEndPool" in (
        response.content.decode()
    )
    assert VirtualService.objects.count() == 1
    # The same port on another address is fine, and IPv6 spellings are made canonical.
    data.update(ip="0:0:0:0:0:0:0:1", ports="443")
    assert admin.post("/lbadmin/cluster/l7/services/add/", data).status_code == 302
    assert VirtualService.objects.get(label="Other").ip == "::1"


def test_labels_are_unique(admin, service) -> None:
    data = {"label": "FrontEndPool", "ip": "127.0.10.60", "ports": "80", "protocol": "http"}
    response = admin.post("/lbadmin/cluster/l7/services/add/", data)
    assert "A virtual service with this label already exists." in response.content.decode()
    server_data = {**SERVER, "ip": "127.0.10.33"}
    response = admin.post(f"/lbadmin/cluster/l7/services/{service.pk}/servers/add/", server_data)
    assert "already has a real server with this label" in response.content.decode()


def test_cookie_persistence_needs_http_mode(admin, service) -> None:
    data = {**SERVICE, "persistence": "http_cookie"}
    response = admin.post(f"/lbadmin/cluster/l7/services/{service.pk}/modify/", data)
    assert "HTTP cookie persistence needs HTTP mode" in response.content.decode()
