"""Every Layer 7 field against hostile input: each value is refused with a message next to its
field, nothing is saved, and the configuration is not marked changed."""

import html

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
QUOTE = "contains a quote, a backslash, a backtick or $ (not allowed in manual lines)."
READS = "which reads files, opens sockets or runs programs."
SECTION = "section: manual lines must stay inside this service."
# Each hostile manual text and why it is refused.
MANUAL = {
    "listen evil\n    bind :1": f"Line 1 starts a new “listen” {SECTION}",
    # HAProxy unquotes and unescapes before it reads a section keyword (found in review).
    '"program" x\ncommand /bin/sh -c "id > /tmp/pwn"': f"Line 1 {QUOTE}",
    "'global'\ninsecure-fork-wanted": f"Line 1 {QUOTE}",
    "\\x6cisten evil": f"Line 1 {QUOTE}",
    'http-request set-header X-Leak "${DJANGO_SECRET_KEY}"': f"Line 1 {QUOTE}",
    "http-request return status 200 file /etc/shadow": f"Line 1 uses “file”, {READS}",
    "errorfile 503 /etc/shadow": f"Line 1 uses “errorfile”, {READS}",
    "balance roundrobin\nstats enable": f"Line 2 uses “stats”, {READS}",
    "balance roundrobin\nglobal\n    stats socket /tmp/x level admin": (
        f"Line 2 starts a new “global” {SECTION}"
    ),
    "backend other": f"Line 1 starts a new “backend” {SECTION}",
    "  frontend f": f"Line 1 starts a new “frontend” {SECTION}",
    ".if 1": "Line 1 is a conditional block or directive (“.if”), not allowed here.",
    ".endif": "Line 1 is a conditional block or directive (“.endif”), not allowed here.",
    "option httplog\x00": "Null characters are not allowed.",
    "option httplog\x1b": "Line 1 contains a control character.",
    "": "Enter the HAProxy lines for this service.",
    # Lines that reach files, sockets or programs (security review; the whole table is in
    # tests/test_manual_lines_security.py).
    "acl a src -f /var/lib/lbadmin/secrets/certificates.key": f"Line 1 uses “-f”, {READS}",
    "http-request set-header X %[src,map_ip(/etc/shadow)]": (
        "Line 1 uses “map_ip(…)”, which is not an allowed sample fetch or converter."
    ),
    "filter spoe engine x config /etc/shadow": f"Line 1 uses “filter”, {READS}",
    "bind unix@/etc/passwd mode 666": (
        "Line 1 uses “unix@/etc/passwd”: address prefixes such as unix@ or abns@ are not allowed."
    ),
}

# Why each hostile value is refused, by field: {value: reason}; None stands for every other
# value of that field's list.
REQUIRED = "This field is required."
NULL = "Null characters are not allowed."
NOT_AN_IP = "is not an IPv4 or IPv6 address."
NOT_A_PORT = "is not a port: use a whole number from 1 to 65535."
NOT_A_DURATION = (
    "is not a duration: use milliseconds (1800000) or a number with ms, s, m or h (30m)."
)
NOT_A_CHOICE = "is not one of the available choices."
IP_REASONS = {
    "0.0.0.0": "Use a unicast address, not a multicast or 0.0.0.0/::.",
    "::": "Use a unicast address, not a multicast or 0.0.0.0/::.",
    "224.0.0.1": "Use a unicast address, not a multicast or 0.0.0.0/::.",
    "fe80::1": "IPv6 link-local addresses are not supported.",
    "::1%eth0": "Scoped IPv6 addresses are not supported.",
    "1.2.3.4\x00": NULL,
    None: NOT_AN_IP,
}
TIMEOUT_REASONS = {
    "": REQUIRED,
    "0": "Use a duration from 1ms to 24h.",
    "25h": "Use a duration from 1ms to 24h.",
    None: NOT_A_DURATION,
}
REASONS: dict[str, dict[str | None, str]] = {
    "label": {
        "": REQUIRED,
        "we\x00b": NULL,
        None: "Use 1 to 64 characters: letters, digits and _ . : - only.",
    },
    "ip": {**IP_REASONS, "": REQUIRED},
    "fallback_ip": IP_REASONS,
    "ports": {
        "": REQUIRED,
        "80,80": "A port is listed twice.",
        PORT_LISTS[-1]: "At most 64 ports per virtual service.",
        None: NOT_A_PORT,
    },
    "check_port": {None: NOT_A_PORT},
    "fallback_port": {None: NOT_A_PORT},
    "port": {None: NOT_A_PORT},
    "cookie_name": {None: "Use 1 to 64 characters: letters, digits and ! & * + - . ^ _ | ~ only."},
    "persistence_timeout": {
        "": REQUIRED,
        "0": "Use a duration from 1s to 24h.",
        "25h": "Use a duration from 1s to 24h.",
        None: NOT_A_DURATION,
    },
    "check_interval": {
        "": REQUIRED,
        **{v: "Use a duration from 100ms to 1h." for v in ("0", "25h", "50ms", "2h")},
        None: NOT_A_DURATION,
    },
    **{
        field: {"": REQUIRED, None: NOT_A_CHOICE}
        for field in ("protocol", "balance", "persistence", "health_check")
    },
    "weight": {"": REQUIRED, None: "Weight must be a whole number from 0 to 256."},
    "connect_timeout": TIMEOUT_REASONS,
    "client_timeout": TIMEOUT_REASONS,
    "server_timeout": TIMEOUT_REASONS,
    "manual_text": MANUAL,
}

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


def post_refused(client, url: str, data: dict, field: str, reason: str | None = None) -> None:
    """``data`` is refused with ``reason`` (default: the one REASONS gives for this value) next
    to ``field``, and nothing in the database changed."""
    before = snapshot_of_database()
    response = client.post(url, data)
    assert response.status_code == 200, f"{field}={data[field]!r} was accepted"
    page = response.content.decode()
    assert f'id="errors-{field}"' in page, f"no message next to {field} for {data[field]!r}"
    errors = html.unescape(page.split(f'id="errors-{field}">', 1)[1].split("</div>", 1)[0])
    if reason is None:
        reasons = REASONS[field]
        reason = reasons.get(data[field], reasons.get(None))
    assert reason and reason in errors, f"{field}={data[field]!r}: {errors}"
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
