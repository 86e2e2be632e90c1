"""The Lync 2010/2013 Setup Wizard's planner: answers in, the guide's deployment out.

Pure: no models, no database, no I/O. ``plan()`` turns the wizard's answers into exactly the
items of the cluster configuration document (docs/config-format.md) that the deployment guide
(`Load Balancing Microsoft Lync 2010/2013`, v1.8.1) has the administrator type by hand:

- STEP 1: Layer 7 client and server timeouts of 30 minutes;
- STEP 2: the Front End pool (FrontEndPool, FePoolExtWebSvcs8080, FePoolExtWebSvcs4443, or for
  cookie persistence the SSL termination on 4443 → FePoolExtWebSvcs8081 → servers on 4443);
- STEP 3: the Director pool (the same shape, DirectorPool / DirPoolExtWebSvcs…);
- STEP 4 / STEP 5: the internal and external Edge pools (Layer 4 NAT);
- Appendix 2: the reverse-proxy VIPs (80 → 8080, 443 → 4443).

``validate()`` says, field by field, what is wrong with the answers before anything is built;
the import would refuse the same values, but the wizard says it at its own step.

STEP 3's text contradicts its own table; the table wins (see ``_director``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError

from lbadmin import allowlists

Version = Literal["2010", "2013"]
WebPersistence = Literal["none", "cookie"]
Items = list[dict[str, Any]]  # document items (virtual services, terminations)

VERSIONS: tuple[str, ...] = ("2010", "2013")
WEB_PERSISTENCES: tuple[str, ...] = ("none", "cookie")
# The certificate every appliance has from its first start: its label has spaces, which an
# uploaded certificate's label cannot (lbadmin.services.certificates).
DEFAULT_CERTIFICATE_LABEL = "Default Self Signed Certificate"

MAX_SERVERS = 64  # per pool: far more than any Lync pool (Microsoft's limit is 12 per pool)
TIMEOUT_30_MIN_MS = 1_800_000  # STEP 1: "1800000 ms which is 30 minutes"
PERSISTENCE_TIMEOUT_S = 1800  # STEP 4: "Change Persistence Timeout to 1800"


# --- Answers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A real server. External Edge servers also have their own external addresses, which
    the external Edge services balance to; their ``ip`` is the internal address (the one the
    internal Edge services use). The guide: "Public IP addresses are required for the 3 Edge
    Service VIPs and also for each corresponding service on the real servers" — Access on
    ``external_ip``, Web Conferencing and A/V on their own addresses, or on ``external_ip``
    too when they are not given (one external address per server, as in a lab)."""

    label: str
    ip: str
    external_ip: str | None = None
    external_webconf_ip: str | None = None
    external_av_ip: str | None = None

    def external_address(self, vip_name: str) -> str | None:
        """The address the external Edge service on ``vip_name`` ("access_vip", …) uses."""
        own = {"webconf_vip": self.external_webconf_ip, "av_vip": self.external_av_ip}
        return own.get(vip_name) or self.external_ip


@dataclass(frozen=True)
class FrontEndPart:
    """STEP 2. ``vip``: the internal FrontEndPool address; ``external_web_vip``: the address
    of the external web services (from the reverse proxy)."""

    vip: str = "192.168.10.30"
    external_web_vip: str = "192.168.20.30"
    servers: tuple[Server, ...] = ()
    # The pool's names (e.g. pool1.robtest.com, the external web services FQDN): the
    # post-apply checks say whether the certificate covers them. Not used by the plan.
    fqdns: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirectorPart:
    """STEP 3 (addresses from its table, not its text)."""

    vip: str = "192.168.10.20"
    external_web_vip: str = "192.168.20.20"
    servers: tuple[Server, ...] = ()
    fqdns: tuple[str, ...] = ()


@dataclass(frozen=True)
class EdgePart:
    """STEP 4: one address for the five internal Edge services; servers by internal address."""

    vip: str = "192.168.10.10"
    servers: tuple[Server, ...] = ()


@dataclass(frozen=True)
class ExternalEdgePart:
    """STEP 5: "three different IP's are used": Access, Web Conferencing, A/V. Servers need
    ``external_ip``."""

    access_vip: str = "10.25.1.10"
    webconf_vip: str = "10.25.1.11"
    av_vip: str = "10.25.1.12"
    servers: tuple[Server, ...] = ()


@dataclass(frozen=True)
class ReverseProxyPart:
    """Appendix 2: VIPs used instead of a reverse proxy, translating 80/443 to 8080/4443.

    ``front_end_vip`` makes ReverseProxyFE-http/-https, ``director_vip`` (the guide: "repeat
    the steps above … for the Director Server Web Services") ReverseProxyDir-http/-https.
    They point at the pool's servers: the ``front_end`` / ``director`` part's servers, unless
    servers are given here (e.g. when the pools are balanced by the other appliance pair)."""

    front_end_vip: str | None = "10.12.1.150"
    director_vip: str | None = None
    front_end_servers: tuple[Server, ...] = ()
    director_servers: tuple[Server, ...] = ()


@dataclass(frozen=True)
class LyncAnswers:
    version: Version
    front_end: FrontEndPart | None
    director: DirectorPart | None
    internal_edge: EdgePart | None
    external_edge: ExternalEdgePart | None
    reverse_proxy: ReverseProxyPart | None
    # "none" only for Lync 2013; 2010 (or 2013 with mobility) needs "cookie".
    web_persistence: WebPersistence
    # The uploaded Front End certificate, used by the SSL terminations of the cookie path.
    certificate_label: str | None = None


# --- Plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Items in exactly the export document's formats (docs/config-format.md)."""

    layer7_settings: dict[str, Any]  # the settings STEP 1 changes, only those
    layer7_services: tuple[dict[str, Any], ...]  # sorted by label
    layer4_services: tuple[dict[str, Any], ...]  # sorted by label
    terminations: tuple[dict[str, Any], ...]  # sorted by label

    def addresses(self) -> list[tuple[str, int, str]]:
        """Every (ip, port, protocol) the plan listens on; Layer 7 and SSL terminations are
        TCP. Sorted; a pair listed twice is listed twice (see ``address_users``)."""
        return sorted(address for address, _ in self.address_users())

    def address_users(self) -> list[tuple[tuple[str, int, str], str]]:
        """(ip, port, protocol) with what listens there ("virtual service X", …)."""
        return address_users(self.layer7_services, self.terminations, self.layer4_services)


def address_users(
    layer7: Iterable[dict[str, Any]],
    terminations: Iterable[dict[str, Any]],
    layer4: Iterable[dict[str, Any]],
) -> list[tuple[tuple[str, int, str], str]]:
    """(ip, port, protocol) with what listens there, for document items. A termination
    listens on its virtual service's address (skipped if that service is not among
    ``layer7``: the import refuses such a termination with its own message)."""
    users: list[tuple[tuple[str, int, str], str]] = []
    ip_of = {}
    for item in layer7:
        ip_of[item["label"]] = item["ip"]
        for port in item["ports"]:
            users.append(((item["ip"], port, "tcp"), f"virtual service {item['label']}"))
    for item in terminations:
        if item["virtual_service"] in ip_of:
            address = (ip_of[item["virtual_service"]], item["port"], "tcp")
            users.append((address, f"SSL termination {item['label']}"))
    for item in layer4:
        protocols = ("tcp", "udp") if item["protocol"] == "tcp_udp" else (item["protocol"],)
        for port in item["ports"]:
            for protocol in protocols:
                users.append(
                    ((item["ip"], port, protocol), f"Layer 4 virtual service {item['label']}")
                )
    return users


class InvalidAnswers(ValueError):
    """plan() was given answers validate() refuses."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# STEP 1 changes two of the Layer 7 settings (Client Timeout and Real Server Timeout); the
# others stay as the administrator has them.
STEP1_SETTINGS: dict[str, Any] = {
    "client_timeout_ms": TIMEOUT_30_MIN_MS,
    "server_timeout_ms": TIMEOUT_30_MIN_MS,
}


def plan(answers: LyncAnswers) -> Plan:
    """The guide's deployment for these answers; raises InvalidAnswers if validate() objects."""
    problems = validate(answers)
    if problems:
        raise InvalidAnswers(problems)
    return _build(answers)


# --- Building -----------------------------------------------------------------------------------


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value))  # the canonical form, as the import stores it


def _l7_service(
    label: str,
    ip: str,
    ports: Iterable[int],
    *,
    protocol: Literal["tcp", "http"],
    persistence: Literal["none", "source_ip", "http_cookie"],
    servers: Iterable[Server],
    server_port: int | None,
    cookie_name: str = "SERVERID",
    check_port: int | None = None,
    reencrypt: bool = False,
) -> dict[str, Any]:
    return {
        "label": label,
        "ip": _ip(ip),
        "ports": sorted(ports),
        "protocol": protocol,
        "balance": "leastconn",
        "persistence": persistence,
        "cookie_name": cookie_name,
        "persistence_timeout_s": PERSISTENCE_TIMEOUT_S,
        "health_check": "connect",
        "check_port": check_port,
        "check_interval_ms": 4000,
        "fallback_ip": None,
        "fallback_port": None,
        "manual_config": False,
        "manual_text": "",
        "real_servers": [
            {
                "label": server.label,
                "ip": _ip(server.ip),
                "port": server_port,
                "weight": 100,
                "reencrypt": reencrypt,
            }
            for server in sorted(servers, key=lambda server: server.label)
        ],
    }


def _l4_service(
    label: str, ip: str, port: int, protocol: Literal["tcp", "udp"], servers: list[tuple[str, str]]
) -> dict[str, Any]:
    """STEP 4/5: NAT, source-IP persistence for 1800 s, the server on the service's port."""
    return {
        "label": label,
        "ip": _ip(ip),
        "ports": [port],
        "protocol": protocol,
        "forwarding": "nat",
        "persistence": True,
        "persistence_timeout_s": PERSISTENCE_TIMEOUT_S,
        "scheduler": "wlc",
        "health_check": "connect",
        "check_port": None,
        "check_path": "/",
        "check_status": 200,
        "check_interval_s": 10,
        "check_timeout_s": 5,
        "real_servers": [
            {
                "label": server_label,
                "ip": _ip(server_ip),
                "port": port,
                "weight": 100,
                "min_connections": 0,
                "max_connections": 0,
            }
            for server_label, server_ip in sorted(servers)
        ],
    }


def _web_services(
    prefix: str, vip: str, servers: tuple[Server, ...], answers: LyncAnswers
) -> tuple[Items, Items]:
    """What STEP 2 and STEP 3 share: <prefix>ExtWebSvcs8080 and 4443 on the pool's external
    web VIP, as the tables' "None or cookie *" column says.

    none (Lync 2013 only): both TCP mode without persistence, servers on 8080 / 4443.
    cookie (Lync 2010, or 2013 with mobility): 8080 in HTTP mode with the SERVERID cookie;
    4443 is decrypted by the SSL termination SSL-<prefix>ExtWebSvcs4443 (the label the guide's
    screenshot shows) on the external web VIP and sent to <prefix>ExtWebSvcs8081 (HTTP mode,
    cookie MS-WSMAN), which re-encrypts to the servers on 4443. The termination takes
    <vip>:4443, so no Layer 7 service <prefix>ExtWebSvcs4443 is made (one service per IP:port).
    """
    name = f"{prefix}ExtWebSvcs"
    if answers.web_persistence == "none":
        return [
            _l7_service(
                f"{name}8080", vip, [8080], protocol="tcp", persistence="none",
                servers=servers, server_port=8080,
            ),
            _l7_service(
                f"{name}4443", vip, [4443], protocol="tcp", persistence="none",
                servers=servers, server_port=4443,
            ),
        ], []  # fmt: skip
    services = [
        _l7_service(
            f"{name}8080", vip, [8080], protocol="http", persistence="http_cookie",
            servers=servers, server_port=8080,
        ),
        _l7_service(
            f"{name}8081", vip, [8081], protocol="http", persistence="http_cookie",
            cookie_name="MS-WSMAN", servers=servers, server_port=4443, reencrypt=True,
        ),
    ]  # fmt: skip
    termination = {
        "label": f"SSL-{name}4443",
        "port": 4443,
        "mode": "high_security",  # the guide's "SSL Operation Mode: High Security"
        "ciphers": "",
        "virtual_service": f"{name}8081",
        "certificate": answers.certificate_label,
    }
    return services, [termination]


def _front_end(part: FrontEndPart, answers: LyncAnswers) -> tuple[Items, Items]:
    # STEP 2 table: FrontEndPool 192.168.10.30 135,443,444,5061,5065,5069, Other TCP, source IP;
    # "Set the Check Port field to 5061"; "Leave the Real Server Port field blank".
    pool = _l7_service(
        "FrontEndPool", part.vip, [135, 443, 444, 5061, 5065, 5069], protocol="tcp",
        persistence="source_ip", servers=part.servers, server_port=None, check_port=5061,
    )  # fmt: skip
    services, terminations = _web_services("FePool", part.external_web_vip, part.servers, answers)
    return [pool, *services], terminations


def _director(part: DirectorPart, answers: LyncAnswers) -> tuple[Items, Items]:
    """STEP 3. Its text and its table disagree; the table wins:

    - the text's "e.g. 192.168.20.30" for DirPoolExtWebSvcs8080/4443 is the Front End's
      external web VIP (copied from STEP 2): it would put two services on 192.168.20.30:8080
      and :4443. The table says 192.168.20.20: the Director's own ``external_web_vip``;
    - its Lync 2010 section creates "FePoolExtWebSvcs8081" on 192.168.20.30:8081 with FE-1 —
      STEP 2's label, address and servers again. We make DirPoolExtWebSvcs8081 on the
      Director's external web VIP, port 8081, with the Director servers on 4443 re-encrypted,
      behind SSL-DirPoolExtWebSvcs4443 (the termination label the guide shows);
    - "Other TCP" in the table vs "HTTP Mode" for 8080 in the text: HTTP mode only with cookie
      persistence (a cookie needs HTTP), TCP mode without (as in STEP 2).
    DirectorPool keeps what both say: 5061, TCP mode, source IP, servers on 5061, no check
    port (so the check connects to the server's port, 5061)."""
    pool = _l7_service(
        "DirectorPool", part.vip, [5061], protocol="tcp", persistence="source_ip",
        servers=part.servers, server_port=5061,
    )  # fmt: skip
    services, terminations = _web_services("DirPool", part.external_web_vip, part.servers, answers)
    return [pool, *services], terminations


# STEP 4 table: (label, port, protocol), all on the internal Edge VIP.
INTERNAL_EDGE: tuple[tuple[str, int, Literal["tcp", "udp"]], ...] = (
    ("IntEdgeAccess5061", 5061, "tcp"),
    ("IntEdgeWebConf8057", 8057, "tcp"),
    ("IntEdgeAv443", 443, "tcp"),
    ("IntEdgeAv3478", 3478, "udp"),
    ("IntEdgeAv5062", 5062, "tcp"),
)
# STEP 5 table: (label, which VIP, port, protocol, Lync 2013 only).
EXTERNAL_EDGE: tuple[tuple[str, str, int, Literal["tcp", "udp"], bool], ...] = (
    ("ExtEdgeAccess443", "access_vip", 443, "tcp", False),
    ("ExtEdgeAccess5061", "access_vip", 5061, "tcp", False),
    ("ExtEdgeAccess5269", "access_vip", 5269, "tcp", True),
    ("ExtEdgeWeb443", "webconf_vip", 443, "tcp", False),
    ("ExtEdgeAv443", "av_vip", 443, "tcp", False),
    ("ExtEdgeAv3478", "av_vip", 3478, "udp", False),
)


def _internal_edge(part: EdgePart) -> list[dict[str, Any]]:
    servers = [(server.label, server.ip) for server in part.servers]
    return [
        _l4_service(label, part.vip, port, protocol, servers)
        for label, port, protocol in INTERNAL_EDGE
    ]


def _external_edge(part: ExternalEdgePart, version: str) -> list[dict[str, Any]]:
    return [
        _l4_service(
            label,
            getattr(part, vip),
            port,
            protocol,
            [(server.label, server.external_address(vip) or "") for server in part.servers],
        )
        for label, vip, port, protocol, only_2013 in EXTERNAL_EDGE
        if version == "2013" or not only_2013
    ]


def _reverse_proxy_targets(
    part: ReverseProxyPart, answers: LyncAnswers
) -> tuple[
    tuple[str, str, str | None, tuple[Server, ...], FrontEndPart | DirectorPart | None], ...
]:
    """(answer name, label prefix, VIP, its own servers, the pool part it defaults to)."""
    return (
        ("front_end", "ReverseProxyFE", part.front_end_vip, part.front_end_servers,
         answers.front_end),
        ("director", "ReverseProxyDir", part.director_vip, part.director_servers,
         answers.director),
    )  # fmt: skip


def _reverse_proxy(part: ReverseProxyPart, answers: LyncAnswers) -> list[dict[str, Any]]:
    """Appendix 2: <name>-http (HTTP mode, servers on 8080) and <name>-https (TCP mode,
    servers on 4443) on one VIP. The guide sets nothing else, so each gets what the appliance
    gives a new service of its mode: the SERVERID cookie, or source-IP persistence."""
    services = []
    for _, name, vip, own, pool_part in _reverse_proxy_targets(part, answers):
        if vip is None:
            continue
        servers = own or (pool_part.servers if pool_part is not None else ())
        services += [
            _l7_service(
                f"{name}-http", vip, [80], protocol="http", persistence="http_cookie",
                servers=servers, server_port=8080,
            ),
            _l7_service(
                f"{name}-https", vip, [443], protocol="tcp", persistence="source_ip",
                servers=servers, server_port=4443,
            ),
        ]  # fmt: skip
    return services


def _build(answers: LyncAnswers) -> Plan:
    layer7: list[dict[str, Any]] = []
    terminations: list[dict[str, Any]] = []
    layer4: list[dict[str, Any]] = []
    if answers.front_end is not None:
        services, ends = _front_end(answers.front_end, answers)
        layer7 += services
        terminations += ends
    if answers.director is not None:
        services, ends = _director(answers.director, answers)
        layer7 += services
        terminations += ends
    if answers.internal_edge is not None:
        layer4 += _internal_edge(answers.internal_edge)
    if answers.external_edge is not None:
        layer4 += _external_edge(answers.external_edge, answers.version)
    if answers.reverse_proxy is not None:
        layer7 += _reverse_proxy(answers.reverse_proxy, answers)

    def by_label(items: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
        return tuple(sorted(items, key=lambda item: item["label"]))

    return Plan(
        layer7_settings=dict(STEP1_SETTINGS),
        layer7_services=by_label(layer7),
        layer4_services=by_label(layer4),
        terminations=by_label(terminations),
    )


# --- Validation ---------------------------------------------------------------------------------


def _message(error: ValidationError) -> str:
    return " ".join(error.messages)


def _check_ip(where: str, value: object, problems: list[str]) -> str | None:
    """The canonical address, or None after recording the problem."""
    if not isinstance(value, str):
        problems.append(f"{where}: enter an IPv4 or IPv6 address.")
        return None
    try:
        return allowlists.clean_ip(value)
    except ValidationError as error:
        problems.append(f"{where}: {_message(error)}")
        return None


def _check_label(where: str, value: object, problems: list[str]) -> str | None:
    if not isinstance(value, str):
        problems.append(f"{where}: enter a label.")
        return None
    try:
        return allowlists.clean_label(value)
    except ValidationError as error:
        problems.append(f"{where}: {_message(error)}")
        return None


def _family(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def _check_servers(
    where: str,
    servers: object,
    problems: list[str],
    *,
    layer7: bool = False,
    external: bool = False,
    l4_vips: tuple[str | None, ...] = (),
) -> None:
    """Labels and addresses of one part's servers: valid, unique within the part. Layer 4
    (NAT) servers keep the address family of their virtual services (``l4_vips``);
    ``external``: the external Edge, whose servers are reached on their ``external_ip``."""
    if not isinstance(servers, tuple | list) or not servers:
        problems.append(f"{where}: add at least one server.")
        return
    if len(servers) > MAX_SERVERS:
        problems.append(f"{where}: at most {MAX_SERVERS} servers per pool.")
        return
    seen_labels: dict[str, int] = {}
    seen_ips: dict[tuple[str, str], int] = {}
    families = sorted({_family(vip) for vip in l4_vips if vip is not None})
    for index, server in enumerate(servers):
        at = f"{where}[{index}]"
        if not isinstance(server, Server):
            problems.append(f"{at}: not a server.")
            continue
        label = _check_label(f"{at}.label", server.label, problems)
        if label is not None:
            if layer7 and label == "fallback":
                problems.append(f"{at}.label: “fallback” is reserved for the fallback server.")
            elif label in seen_labels:
                problems.append(
                    f"{at}.label: {label} is already the label of {where}[{seen_labels[label]}]."
                )
            else:
                seen_labels[label] = index
        ip = _check_ip(f"{at}.ip", server.ip, problems)
        # (field, address, the VIP it serves): addresses are unique per VIP within a part.
        targets: list[tuple[str, str | None, str]] = [("ip", ip, "")]
        if external:
            targets = _external_targets(at, server, problems)
        else:  # not used by this part's services, but kept in the answers: checked all the same
            for field in _EXTERNAL_FIELD.values():
                if getattr(server, field) is not None:
                    _check_ip(f"{at}.{field}", getattr(server, field), problems)
        reported: set[str] = set()
        for name, target, vip_name in targets:
            if target is None or name in reported:
                continue
            first = seen_ips.setdefault((vip_name, target), index)
            if first != index:
                reported.add(name)
                problems.append(
                    f"{at}.{name}: {target} is already the address of {where}[{first}]."
                )
            wrong = [family for family in families if family != _family(target)]
            if wrong:
                reported.add(name)
                problems.append(
                    f"{at}.{name}: Layer 4 NAT keeps the address family: use an IPv"
                    f"{wrong[0]} address like the virtual service's."
                )


# The external Edge VIPs and the server field holding the address each is balanced to
# (``external_ip`` when the server has no address of its own for that VIP).
_EXTERNAL_FIELD = {
    "access_vip": "external_ip",
    "webconf_vip": "external_webconf_ip",
    "av_vip": "external_av_ip",
}


def _external_targets(
    at: str, server: Server, problems: list[str]
) -> list[tuple[str, str | None, str]]:
    if server.external_ip is None:
        problems.append(f"{at}.external_ip: enter the Edge server's external address.")
        return []
    checked = {
        field: _check_ip(f"{at}.{field}", getattr(server, field), problems)
        for field in _EXTERNAL_FIELD.values()
        if getattr(server, field) is not None
    }
    targets = []
    for vip_name, field in _EXTERNAL_FIELD.items():
        field = field if field in checked else "external_ip"
        targets.append((field, checked[field], vip_name))
    return targets


MAX_FQDNS = 20


def _check_fqdns(where: str, names: object, problems: list[str]) -> None:
    if not isinstance(names, tuple | list) or len(names) > MAX_FQDNS:
        problems.append(f"{where}: give at most {MAX_FQDNS} names.")
        return
    for index, name in enumerate(names):
        if not isinstance(name, str):
            problems.append(f"{where}[{index}]: enter a DNS name.")
            continue
        try:
            allowlists.clean_dns_name(name)
        except ValidationError as error:
            problems.append(f"{where}[{index}]: {_message(error)}")


def _check_certificate(value: object, problems: list[str]) -> None:
    where = "certificate_label"
    if value is None or value == "":
        problems.append(
            f"{where}: cookie persistence decrypts port 4443 on the load balancer: "
            "upload the Front End certificate (PFX with its private key) and choose it."
        )
    elif value != DEFAULT_CERTIFICATE_LABEL:
        _check_label(where, value, problems)


def validate(answers: LyncAnswers) -> list[str]:
    """What is wrong with the answers, each problem prefixed with where it is
    ("front_end.servers[1].ip: …"); empty when plan() can build them."""
    problems: list[str] = []
    if answers.version not in VERSIONS:
        problems.append("version: choose 2010 or 2013.")
    if answers.web_persistence not in WEB_PERSISTENCES:
        problems.append("web_persistence: choose none or cookie.")
    elif (
        answers.web_persistence == "none"
        and answers.version == "2010"
        and (answers.front_end is not None or answers.director is not None)
    ):
        problems.append(
            "web_persistence: Lync 2010 web services need cookie persistence (the guide: "
            "“If 2010 front-end servers are used, then cookie persistence is required”)."
        )
    parts = (
        answers.front_end,
        answers.director,
        answers.internal_edge,
        answers.external_edge,
        answers.reverse_proxy,
    )
    if all(part is None for part in parts):
        problems.append("parts: choose at least one part of the deployment.")

    if answers.front_end is not None:
        part = answers.front_end
        _check_ip("front_end.vip", part.vip, problems)
        _check_ip("front_end.external_web_vip", part.external_web_vip, problems)
        _check_servers("front_end.servers", part.servers, problems, layer7=True)
        _check_fqdns("front_end.fqdns", part.fqdns, problems)
    if answers.director is not None:
        part = answers.director
        _check_ip("director.vip", part.vip, problems)
        _check_ip("director.external_web_vip", part.external_web_vip, problems)
        _check_servers("director.servers", part.servers, problems, layer7=True)
        _check_fqdns("director.fqdns", part.fqdns, problems)
    if answers.internal_edge is not None:
        part = answers.internal_edge
        vip = _check_ip("internal_edge.vip", part.vip, problems)
        _check_servers("internal_edge.servers", part.servers, problems, l4_vips=(vip,))
    if answers.external_edge is not None:
        part = answers.external_edge
        vips = tuple(
            _check_ip(f"external_edge.{name}", getattr(part, name), problems)
            for name in ("access_vip", "webconf_vip", "av_vip")
        )
        _check_servers("external_edge.servers", part.servers, problems, external=True, l4_vips=vips)
    if answers.reverse_proxy is not None:
        _check_reverse_proxy(answers.reverse_proxy, answers, problems)
    if answers.web_persistence == "cookie" and (
        answers.front_end is not None or answers.director is not None
    ):
        _check_certificate(answers.certificate_label, problems)
    elif answers.certificate_label not in (None, "", DEFAULT_CERTIFICATE_LABEL):
        # Not used without a termination, but kept in the answers: checked all the same.
        _check_label("certificate_label", answers.certificate_label, problems)
    if not problems:
        problems += conflicts(_build(answers))
    return problems


def _check_reverse_proxy(part: ReverseProxyPart, answers: LyncAnswers, problems: list[str]) -> None:
    if part.front_end_vip is None and part.director_vip is None:
        problems.append("reverse_proxy: give the Front End or the Director reverse-proxy VIP.")
    for pool, _, vip, own, pool_part in _reverse_proxy_targets(part, answers):
        if vip is not None:
            _check_ip(f"reverse_proxy.{pool}_vip", vip, problems)
        if own:  # checked even without their VIP: they are kept in the answers
            _check_servers(f"reverse_proxy.{pool}_servers", own, problems, layer7=True)
        elif vip is not None and pool_part is None:
            problems.append(
                f"reverse_proxy.{pool}_servers: deploy the {pool} part or list the servers "
                "the reverse-proxy VIP sends to."
            )


def conflicts(plan: Plan) -> list[str]:
    """Two things of the plan on one ip:port:protocol, or one label used twice."""
    problems: list[str] = []
    first_user: dict[tuple[str, int, str], str] = {}
    for (ip, port, protocol), user in plan.address_users():
        other = first_user.setdefault((ip, port, protocol), user)
        if other != user:
            problems.append(
                f"addresses: {ip}:{port}/{protocol.upper()} would be used by both {other} "
                f"and {user}: give them different addresses."
            )
    for kind, items in (
        ("Layer 7 virtual service", plan.layer7_services),
        ("SSL termination", plan.terminations),
        ("Layer 4 virtual service", plan.layer4_services),
    ):
        labels = [item["label"] for item in items]
        for label in sorted({label for label in labels if labels.count(label) > 1}):
            problems.append(f"labels: {kind} {label} would be created twice.")
    return problems
