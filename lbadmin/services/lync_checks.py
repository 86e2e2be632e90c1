"""The Lync Setup Wizard's post-apply checklist: what the deployment guide needs to be true once
the services exist, probed from the appliance itself, one green or red line each with why.

- Virtual services listening: every VIP port of the plan (Layer 7, SSL terminations, Layer 4)
  accepts a connection — UDP 3478 answers STUN. Layer 4 runs in the kernel's IPVS: on a host
  without it those lines are red with that reason rather than probed (nothing could answer).
- Real servers answering: every real server on every port it is balanced to, so a red VIP can
  be told apart from a dead pool.
- Certificate: on the cookie path (SSL termination on 4443) the uploaded certificate must be
  valid and name the pools' FQDNs, or clients refuse the TLS handshake.
- Edge routing (two-arm): the guide reaches the internal Edge servers through a static route
  (192.168.100.0/24 via 192.168.20.2) and has the external Edge servers use the load balancer
  as their default gateway (Layer 4 NAT needs the replies back through it), so the appliance
  must be on-link with their external addresses.

After Create (``deployment_checks``) what is probed is the configuration as it is now: the
objects the deployment made, as they are configured (a real server moved by hand is probed at
its new address, never at the one the answers gave), and a red line for each one deleted by
hand. Before Create (``preflight_checks``) nothing exists yet: the answers' plan is probed.

The probes themselves are lbadmin.engines.probes; this module decides what to probe and what
an outcome means. Re-running is just calling it again: it changes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from lbadmin.engines.daemons import format_address
from lbadmin.engines.netinfo import NetinfoError
from lbadmin.engines.probes import Probe, ProbeResult, Route, route_to, run_probes
from lbadmin.models import SslCertificate
from lbadmin.services.config import config_export
from lbadmin.services.daemons import layer4_unavailable_reason
from lbadmin.services.wizard import SECTIONS, deployment_current
from lbadmin.wizard.answers import answers_from_document
from lbadmin.wizard.lync import (
    EXTERNAL_EDGE,
    INTERNAL_EDGE,
    InvalidAnswers,
    LyncAnswers,
    Plan,
    plan,
)

GROUP_LISTENING = "Virtual services listening"
GROUP_SERVERS = "Real servers answering"
GROUP_CERTIFICATE = "Certificate"
GROUP_ROUTING = "Edge routing (two-arm)"

# The guide's route to the internal Edge servers (Internal Edge – the Details).
GUIDE_STATIC_ROUTE = "192.168.100.0/24 via 192.168.20.2"
_NAMES_SHOWN = 8  # certificate names listed in a red line before "… and N more"
# The SSL termination the planner makes for each pool on the cookie path (lync._web_services):
# the certificate a pool's clients see is the one its termination uses now.
POOL_TERMINATIONS = {
    "Front End pool": "SSL-FePoolExtWebSvcs4443",
    "Director pool": "SSL-DirPoolExtWebSvcs4443",
}


@dataclass(frozen=True)
class CheckLine:
    group: str
    subject: str  # what was checked: "FrontEndPool 192.168.10.30:443", "pool1.robtest.com"
    ok: bool
    reason: str  # why it is green or red, in the probe's or the guide's words


@dataclass(frozen=True)
class DeploymentChecks:
    """The checklist of the appliance's recorded deployment, as the page shows it."""

    lines: tuple[CheckLine, ...]
    problem: str  # the recorded answers cannot be planned ('' when they can)
    checked_at: datetime
    timeout_s: float

    @property
    def passed(self) -> int:
        return sum(line.ok for line in self.lines)

    @property
    def total(self) -> int:
        return len(self.lines)


def deployment_checks(*, timeout_s: float = 1.0) -> DeploymentChecks | None:
    """The checklist of the deployment the wizard made, against the configuration as it is
    now: the objects the deployment made, as configured now (edited by hand or not), are
    probed; one made and since deleted by hand is a red line. The pools' FQDNs come from the
    recorded answers. A fixed number of queries whatever the size: the deployment, the export
    (lbadmin.services.config.config_export) and the certificates. None when there is none."""
    deployment = deployment_current()
    if deployment is None:
        return None
    checked_at = timezone.now()
    try:
        answers = answers_from_document(deployment.answers)
    except InvalidAnswers as error:
        problem = f"The recorded answers cannot be checked: {'; '.join(error.problems)}"
        return DeploymentChecks((), problem, checked_at, timeout_s)
    current = config_export()
    configured, deleted = configured_plan(current, deployment.created_items or {})
    service_ips = {item["label"]: item["ip"] for item in current["layer7"]["virtual_services"]}
    lines = deleted + probe_lines(configured, timeout_s=timeout_s, service_ips=service_ips)
    certificates = {
        pool: item["certificate"]
        for item in configured.terminations
        for pool, label in POOL_TERMINATIONS.items()
        if item["label"] == label
    }
    lines += certificate_lines(answers, checked_at, pool_certificates=certificates)
    lines += configured_edge_routing_lines(configured.layer4_services)
    return DeploymentChecks(tuple(lines), "", checked_at, timeout_s)


def configured_plan(
    document: dict[str, Any], created_items: Mapping[str, Mapping[str, Any]]
) -> tuple[Plan, list[CheckLine]]:
    """The objects the deployment made (``created_items``: section → label → item) as the
    export ``document`` has them now, as a Plan (sorted by label, real servers too, as the
    planner sorts them); and a red line for each one that is not there any more."""
    sections = {
        "layer7": document["layer7"]["virtual_services"],
        "terminations": document["ssl"]["terminations"],
        "layer4": document["layer4"]["virtual_services"],
    }
    found: dict[str, list[dict[str, Any]]] = {}
    deleted: list[CheckLine] = []
    for section, kind in SECTIONS:
        existing = {item["label"]: item for item in sections[section]}
        found[section] = []
        for label in sorted(created_items.get(section, {})):
            item = existing.get(label)
            if item is None:
                reason = (
                    f"this {kind} was deleted by hand since the wizard made it: run the wizard "
                    "to re-create it"
                )
                deleted.append(CheckLine(GROUP_LISTENING, label, False, reason))
            elif "real_servers" in item:
                servers = sorted(item["real_servers"], key=lambda server: server["label"])
                found[section].append({**item, "real_servers": servers})
            else:
                found[section].append(item)
    configured = Plan(
        layer7_settings={},
        layer7_services=tuple(found["layer7"]),
        layer4_services=tuple(found["layer4"]),
        terminations=tuple(found["terminations"]),
    )
    return configured, deleted


def preflight_checks(answers: LyncAnswers, *, timeout_s: float = 1.0) -> DeploymentChecks:
    """Before Create (the wizard's preview): the same checks except the virtual services',
    which do not exist yet — are the servers answering, does the certificate fit, are the
    Edge servers routed as the guide needs."""
    checked_at = timezone.now()
    try:
        lines = lync_checklist(answers, timeout_s=timeout_s, now=checked_at, preflight=True)
    except InvalidAnswers as error:
        return DeploymentChecks((), "; ".join(error.problems), checked_at, timeout_s)
    return DeploymentChecks(tuple(lines), "", checked_at, timeout_s)


def lync_checklist(
    answers: LyncAnswers,
    *,
    timeout_s: float = 1.0,
    now: datetime | None = None,
    preflight: bool = False,
) -> list[CheckLine]:
    """Every check of the answers' deployment as planned (before Create: nothing is
    configured yet), in the page's order (listening, real servers, certificate, Edge
    routing). All probes run at once, so this takes about ``timeout_s``. ``now`` (for the
    certificate's validity) defaults to the current time. ``preflight``: without the virtual
    services' own lines. Raises InvalidAnswers if the answers cannot be planned."""
    lines = probe_lines(plan(answers), timeout_s=timeout_s, preflight=preflight)
    lines += certificate_lines(answers, now or timezone.now())
    lines += edge_routing_lines(answers)
    return lines


def probe_lines(
    planned: Plan,
    *,
    timeout_s: float = 1.0,
    preflight: bool = False,
    service_ips: Mapping[str, str] | None = None,
) -> list[CheckLine]:
    """The virtual services' lines (unless ``preflight``) then the real servers', for these
    items. ``service_ips``: the address of each virtual service a termination may name
    (default: the plan's own). All probes run at once: about ``timeout_s`` in all."""
    unavailable = layer4_unavailable_reason() if planned.layer4_services else ""
    ips = dict(service_ips or {item["label"]: item["ip"] for item in planned.layer7_services})
    listening = [] if preflight else _listening(planned, unavailable, ips)
    servers = _servers(planned)
    probes = [probe for _, probe, _ in listening if probe is not None]
    probes += [probe for _, targets in servers for _, probe in targets]
    results = run_probes(probes, timeout_s)

    lines: list[CheckLine] = []
    for subject, probe, fixed in listening:
        result = results[probe] if probe is not None else ProbeResult(False, fixed)
        lines.append(CheckLine(GROUP_LISTENING, subject, result.ok, result.reason))
    for subject, targets in servers:
        ok, reason = _server_outcome([(shown, results[probe]) for shown, probe in targets])
        lines.append(CheckLine(GROUP_SERVERS, subject, ok, reason))
    return lines


# --- What to probe ------------------------------------------------------------------------------


def _probe(ip: str, port: int, protocol: str) -> Probe:
    """UDP is probed with STUN: the guide's only UDP services are the A/V Edge on 3478, and
    without an application answer a UDP port cannot be told from a silent one."""
    return Probe("stun" if protocol == "udp" else "tcp", ip, port)


def _protocols(item: dict[str, Any]) -> tuple[str, ...]:
    protocol = item["protocol"]
    if protocol == "tcp_udp":
        return ("tcp", "udp")
    return ("udp",) if protocol == "udp" else ("tcp",)  # Layer 7 "tcp"/"http" are TCP


def _listening(
    plan_: Plan, unavailable: str, ip_of: Mapping[str, str]
) -> list[tuple[str, Probe | None, str]]:
    """(subject, probe, or None and the reason it is red without one) per VIP port. A
    termination listens on its virtual service's address (``ip_of``: label → address)."""
    entries: list[tuple[str, Probe | None, str]] = []
    for item in plan_.layer7_services:
        for port in item["ports"]:
            subject = f"{item['label']} {format_address(item['ip'], port)}"
            entries.append((subject, _probe(item["ip"], port, "tcp"), ""))
    for item in plan_.terminations:
        ip = ip_of.get(item["virtual_service"])
        if ip is None:  # not in a document the import accepted: said rather than raised
            reason = f"its virtual service {item['virtual_service']} does not exist"
            entries.append((item["label"], None, reason))
            continue
        subject = f"{item['label']} {format_address(ip, item['port'])}"
        entries.append((subject, _probe(ip, item["port"], "tcp"), ""))
    no_ipvs = (
        f"Layer 4 services run in IPVS, which this host does not have ({unavailable.rstrip('.')})"
    )
    for item in plan_.layer4_services:
        for port in item["ports"]:
            for protocol in _protocols(item):
                address = format_address(item["ip"], port)
                subject = f"{item['label']} {address}/{protocol.upper()}"
                if unavailable:
                    entries.append((subject, None, no_ipvs))
                else:
                    entries.append((subject, _probe(item["ip"], port, protocol), ""))
    return entries


def _servers(plan_: Plan) -> list[tuple[str, list[tuple[str, Probe]]]]:
    """(subject, [(port as shown, probe)]) per real server of every service: a Layer 7 server
    without a port gets the client's port, i.e. each port of the service."""
    entries: list[tuple[str, list[tuple[str, Probe]]]] = []
    for item in (*plan_.layer7_services, *plan_.layer4_services):
        protocols = _protocols(item)
        for server in item["real_servers"]:
            ports = [server["port"]] if server["port"] is not None else item["ports"]
            targets = [
                (str(port) if protocol == "tcp" else f"{port}/{protocol.upper()}",
                 _probe(server["ip"], port, protocol))
                for port in ports
                for protocol in protocols
            ]  # fmt: skip
            entries.append((f"{item['label']} → {server['label']} {server['ip']}", targets))
    return entries


def _server_outcome(outcomes: list[tuple[str, ProbeResult]]) -> tuple[bool, str]:
    """Green when every port answers; a red line names each port that does not, and why."""
    answered = [shown for shown, result in outcomes if result.ok]
    failed = [(shown, result) for shown, result in outcomes if not result.ok]
    if not failed:
        if len(outcomes) == 1:
            return True, f"answers on {outcomes[0][0]}: {outcomes[0][1].reason}"
        return True, f"answers on {', '.join(answered)}"
    reason = "; ".join(f"{shown}: {result.reason}" for shown, result in failed)
    if answered:
        reason += f" (answers on {', '.join(answered)})"
    return False, reason


# --- Certificate --------------------------------------------------------------------------------


def _normal(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _wildcard_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4.3 as browsers apply it: "*" only as the whole left-most label, standing
    for exactly one label, and never over a bare public-suffix-like "*.com"."""
    base = presented[2:]
    if not presented.startswith("*.") or "." not in base or "*" in base:
        return False
    head, _, tail = reference.partition(".")
    return bool(head) and tail == base


def certificate_identifiers(sans: Iterable[str], common_name: str) -> list[str]:
    """The DNS names a client compares with (RFC 6125 §6.4.4): the SANs' DNS names, or the
    Common Name only when the certificate has no DNS name among its SANs."""
    names = [name for name in sans if not _is_ip(name)]
    if names:
        return names
    return [common_name] if common_name and not _is_ip(common_name) else []


def certificate_name_covering(fqdn: str, identifiers: Iterable[str]) -> str | None:
    """The certificate name that covers ``fqdn`` (exactly or by a wildcard), or None."""
    reference = _normal(fqdn)
    for identifier in identifiers:
        presented = _normal(identifier)
        if presented == reference or _wildcard_matches(presented, reference):
            return identifier
    return None


def _shown_names(names: list[str]) -> str:
    if not names:
        return "no DNS name at all"
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f" … and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


def _pool_names(answers: LyncAnswers) -> list[tuple[str, str]]:
    names: list[tuple[str, str]] = []
    if answers.front_end is not None:
        names += [(fqdn, "Front End pool") for fqdn in answers.front_end.fqdns]
    if answers.director is not None:
        names += [(fqdn, "Director pool") for fqdn in answers.director.fqdns]
    return names


def certificate_lines(
    answers: LyncAnswers,
    now: datetime,
    *,
    pool_certificates: Mapping[str, str | None] | None = None,
) -> list[CheckLine]:
    """Only on the cookie path (the appliance decrypts 4443 with the certificate) and only
    when pool FQDNs were given: one line for each certificate, then one per FQDN it must
    cover. ``pool_certificates``: the certificate each pool's termination uses now ("Front
    End pool" → label); a pool without one is checked against the answers' certificate.
    One query, however many certificates."""
    names = _pool_names(answers)
    if answers.web_persistence != "cookie" or not names:
        return []
    chosen = {
        pool: (pool_certificates or {}).get(pool) or answers.certificate_label for _, pool in names
    }
    labels = [label for label in dict.fromkeys(chosen.values()) if label]
    if not labels:
        return []
    found = {
        certificate.label: certificate
        for certificate in SslCertificate.objects.filter(label__in=labels).only(
            "label", "certificate_pem", "common_name", "sans", "not_before", "not_after"
        )
    }
    lines: list[CheckLine] = []
    for label in labels:
        covered = [(fqdn, pool) for fqdn, pool in names if chosen[pool] == label]
        lines += _certificate_lines(label, found.get(label), covered, now)
    return lines


def _certificate_lines(
    label: str,
    certificate: SslCertificate | None,
    names: list[tuple[str, str]],
    now: datetime,
) -> list[CheckLine]:
    subject = f"certificate {label}"
    if certificate is None:
        return [
            CheckLine(
                GROUP_CERTIFICATE, subject, False,
                "missing: no certificate has this label in Cluster Configuration > SSL "
                "Certificate; upload the Front End certificate (PFX with its private key)",
            )
        ]  # fmt: skip
    if certificate.pending_csr:
        return [
            CheckLine(
                GROUP_CERTIFICATE, subject, False,
                "its CSR is still waiting for the signed certificate: upload it in Cluster "
                "Configuration > SSL Certificate",
            )
        ]  # fmt: skip
    lines = [CheckLine(GROUP_CERTIFICATE, subject, *_validity(certificate, now))]
    identifiers = certificate_identifiers(certificate.sans or [], certificate.common_name)
    by_cn = not [name for name in certificate.sans or [] if not _is_ip(name)]
    for fqdn, pool in names:
        covering = certificate_name_covering(fqdn, identifiers)
        if covering is not None:
            how = (
                f"the Common Name {covering} (the certificate has no DNS names among its SANs)"
                if by_cn
                else f"the SAN {covering}"
            )
            reason = f"covered by {how}"
        else:
            reason = f"not covered: the certificate names {_shown_names(identifiers)}"
            if any(name.startswith("*.") for name in identifiers):
                reason += " (a wildcard stands for exactly one label)"
        lines.append(CheckLine(GROUP_CERTIFICATE, f"{fqdn} ({pool})", covering is not None, reason))
    return lines


def _validity(certificate: SslCertificate, now: datetime) -> tuple[bool, str]:
    not_before, not_after = certificate.not_before, certificate.not_after
    if not_after is None:
        return False, "its validity is unknown"
    if not_after <= now:
        return False, f"expired on {not_after:%Y-%m-%d}: clients refuse it; upload a renewed one"
    if not_before is not None and not_before > now:
        return False, f"not valid before {not_before:%Y-%m-%d %H:%M} UTC"
    days = (not_after - now).days
    return True, f"valid until {not_after:%Y-%m-%d} ({days} day{'s' if days != 1 else ''} left)"


# --- Edge routing -------------------------------------------------------------------------------


def _routes(addresses: Iterable[str]) -> dict[str, Route | str]:
    """Each address's route, or why there is none (ip's own words)."""
    found: dict[str, Route | str] = {}
    for address in dict.fromkeys(addresses):
        try:
            found[address] = route_to(address)
        except (NetinfoError, ValueError) as error:
            found[address] = f"no route: {error}"
    return found


def _internal_outcome(route: Route | str) -> tuple[bool, str]:
    if isinstance(route, str):
        return False, route
    if route.local:
        return False, f"{route.describe()}: the Edge server must be another host"
    if route.type != "unicast":
        return False, route.describe()
    if route.on_link:
        return True, f"{route.describe()}: reached directly"
    if route.via_default:
        return False, (
            f"would leave {route.describe()}: add the guide's static route to the Edge "
            f"servers' internal subnet, e.g. {GUIDE_STATIC_ROUTE}, in Local Configuration > "
            "Routing"
        )
    return True, f"{route.describe()}, not the default gateway"


def _external_outcome(route: Route | str) -> tuple[bool, str]:
    if isinstance(route, str):
        return False, route
    if route.local:
        return False, f"{route.describe()}: the Edge server must be another host"
    if route.on_link:
        return True, (
            f"{route.describe()}: the Edge servers can use this appliance as their default "
            "gateway, as Layer 4 NAT needs"
        )
    return False, (
        f"not on-link: {route.describe()}. The external Edge servers use the load balancer as "
        "their default gateway (Layer 4 NAT sends the replies back through it), so this "
        "appliance needs an address in their subnet (Local Configuration > Network Interface "
        "Configuration)"
    )


def edge_routing_lines(answers: LyncAnswers) -> list[CheckLine]:
    """One line per internal Edge server address (reached on-link or through a route of its
    own, not the default gateway) and per external Edge server address (on-link: the servers
    use this appliance as their default gateway), from the answers. Looks routes up; sends
    nothing."""
    targets: list[tuple[str, str, bool]] = []  # (subject, address, internal)
    if answers.internal_edge is not None:
        for server in answers.internal_edge.servers:
            targets.append((f"{server.label} {server.ip} (internal)", server.ip, True))
    if answers.external_edge is not None:
        for server in answers.external_edge.servers:
            vips = ("access_vip", "webconf_vip", "av_vip")
            addresses = [server.external_address(vip) for vip in vips]
            for address in dict.fromkeys(address for address in addresses if address):
                targets.append((f"{server.label} {address} (external)", address, False))
    return _routing_lines(targets)


def configured_edge_routing_lines(layer4: Iterable[dict[str, Any]]) -> list[CheckLine]:
    """The same lines for the Edge services' real servers as configured now (Layer 4 items
    of the export document; services the planner does not make are not Edge services):
    internal servers first, each server's addresses in the guide's order (Access, Web
    Conferencing, A/V)."""
    order = {label: n for n, (label, *_) in enumerate((*INTERNAL_EDGE, *EXTERNAL_EDGE))}
    internal = {label for label, *_ in INTERNAL_EDGE}
    found: dict[tuple[bool, str, str], None] = {}  # (internal, server label, address)
    for item in sorted((i for i in layer4 if i["label"] in order), key=lambda i: order[i["label"]]):
        for server in item["real_servers"]:
            found[(item["label"] in internal, server["label"], server["ip"])] = None
    targets = [
        (f"{label} {address} ({'internal' if inside else 'external'})", address, inside)
        for inside, label, address in sorted(found, key=lambda key: (not key[0], key[1]))
    ]
    return _routing_lines(targets)


def _routing_lines(targets: list[tuple[str, str, bool]]) -> list[CheckLine]:
    """(subject, address, internal) → a line each, from the route to the address."""
    routes = _routes(address for _, address, _ in targets)
    lines = []
    for subject, address, internal in targets:
        outcome = _internal_outcome if internal else _external_outcome
        lines.append(CheckLine(GROUP_ROUTING, subject, *outcome(routes[address])))
    return lines
