"""The Lync Setup Wizard's post-apply checklist (lbadmin.services.lync_checks) and its page.

The deployment is the guide's shape on loopback addresses (127.N.x.y, N in 200..250), with
real listeners, a listener that never completes a handshake and STUN responders for some
VIPs and servers and nothing for others; the checklist's lines are compared whole. Routes are
looked up in a network namespace routed like the guide's load balancer (a lookup sends
nothing); certificates are real, made and uploaded as the appliance does. Deployments are
made by the wizard itself (``wizard_apply``: the apply it queues is not run, the listeners
stand in for the daemons) and edited by hand through the ORM, as a page's save would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import timedelta
from functools import partial

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from lbadmin.engines import probes
from lbadmin.engines.certificates import make_self_signed, stunnel_pem
from lbadmin.models import (
    L4RealServer,
    LyncDeployment,
    RealServer,
    SslCertificate,
    SslTermination,
    VirtualService,
)
from lbadmin.services import lync_checks
from lbadmin.services.certificates import certificate_csr_create, certificate_upload
from lbadmin.services.changes import HAPROXY, KEEPALIVED, STUNNEL, config_changed
from lbadmin.services.daemons import layer4_unavailable_reason
from lbadmin.services.lync_checks import (
    CheckLine,
    certificate_identifiers,
    certificate_lines,
    certificate_name_covering,
    deployment_checks,
    edge_routing_lines,
    lync_checklist,
)
from lbadmin.services.wizard import deployment_current, wizard_apply
from lbadmin.wizard.lync import (
    EdgePart,
    ExternalEdgePart,
    FrontEndPart,
    LyncAnswers,
    Server,
)
from tests.certificate_support import self_signed_pem
from tests.probe_support import (
    StunResponder,
    guide_namespace,
    listen_tcp,
    loopback_base,
    needs_netns,
    needs_root,
    stuck_listener,
)

TIMEOUT = 0.3
LISTENING, SERVERS = "Virtual services listening", "Real servers answering"
CERTIFICATE, ROUTING = "Certificate", "Edge routing (two-arm)"
FQDNS = ("pool1.robtest.com", "lyncweb.robtest.com", "dialin.ext.robtest.com", "robtest.com")


def normal(lines: list[CheckLine]) -> list[tuple[str, str, bool, str]]:
    """The lines with the figures that vary between runs replaced: 'N ms', port 'P'."""
    shown = []
    for line in lines:
        reason = re.sub(r"(under 1|\d+) ms", "N ms", line.reason)
        reason = re.sub(r"(mapped address 127\.0\.0\.1):\d+", r"\1:P", reason)
        shown.append((line.group, line.subject, line.ok, reason))
    return shown


class Guide:
    """The guide's addresses moved to one random loopback block."""

    def __init__(self) -> None:
        base = loopback_base()
        self.fe_vip, self.fe_web = f"{base}10.30", f"{base}20.30"
        self.fe1, self.fe2 = f"{base}11.31", f"{base}11.32"
        self.edge_vip = f"{base}10.10"
        self.access, self.webconf, self.av = f"{base}25.10", f"{base}25.11", f"{base}25.12"
        self.edge1, self.edge2 = f"{base}100.10", f"{base}100.11"
        self.edge1_ext, self.edge2_ext = f"{base}201.10", f"{base}201.11"

    def answers(self, **changes: object) -> LyncAnswers:
        edges = (
            Server("EDGE-1", self.edge1, external_ip=self.edge1_ext),
            Server("EDGE-2", self.edge2, external_ip=self.edge2_ext),
        )
        answers = LyncAnswers(
            version="2010",
            front_end=FrontEndPart(
                self.fe_vip,
                self.fe_web,
                (Server("FE-1", self.fe1), Server("FE-2", self.fe2)),
                fqdns=FQDNS,
            ),
            director=None,
            internal_edge=EdgePart(self.edge_vip, edges),
            external_edge=ExternalEdgePart(self.access, self.webconf, self.av, edges),
            reverse_proxy=None,
            web_persistence="cookie",
            certificate_label="FE-cert",
        )
        return replace(answers, **changes)


@pytest.fixture
def guide() -> Guide:
    return Guide()


def upload(label: str = "FE-cert", *, common_name: str = "pool1.robtest.com", sans=()):
    bundle = stunnel_pem(make_self_signed(common_name, sans=list(sans)))
    return certificate_upload(actor=None, label=label, data=bundle, password=None)


# --- The whole checklist ------------------------------------------------------------------------


@needs_root
@pytest.mark.django_db
def test_the_guides_deployment_checked_line_by_line(guide: Guide) -> None:
    no_ipvs = layer4_unavailable_reason()
    if not no_ipvs:
        pytest.skip("this host has IPVS (the Layer 4 lines are probed: see the next test)")
    certificate = upload(sans=["*.robtest.com"])
    g = guide
    with ExitStack() as stack:

        def tcp(ip: str, *ports: int) -> None:
            for port in ports:
                stack.enter_context(listen_tcp(ip, port))

        tcp(g.fe_vip, 135, 443, 444, 5061, 5065)  # not 5069
        tcp(g.fe_web, 8080)  # not 8081; 4443 never answers:
        stack.enter_context(stuck_listener(g.fe_web, 4443))
        tcp(g.fe1, 135, 443, 444, 5061, 5065, 5069, 8080, 4443)
        tcp(g.fe2, 135, 443, 444, 5061, 8080)  # not 5065 or 4443; 5069 never answers:
        stack.enter_context(stuck_listener(g.fe2, 5069))
        tcp(g.edge1, 5061, 8057, 443, 5062)
        stack.enter_context(StunResponder(g.edge1, 3478))
        # EDGE-2's internal address: nothing at all.
        tcp(g.edge1_ext, 443, 5061)
        stack.enter_context(StunResponder(g.edge1_ext, 3478))
        tcp(g.edge2_ext, 443)  # not 5061; its STUN answers another transaction:
        stack.enter_context(StunResponder(g.edge2_ext, 3478, mode="wrong_id"))

        now = timezone.now()
        lines = lync_checklist(g.answers(), timeout_s=TIMEOUT, now=now)

    connected = "connected in N ms"
    stun_ok = "STUN Binding Success Response in N ms (mapped address 127.0.0.1:P)"
    ipvs = f"Layer 4 services run in IPVS, which this host does not have ({no_ipvs.rstrip('.')})"
    layer4 = [
        ("ExtEdgeAccess443", g.access, 443, "TCP"),
        ("ExtEdgeAccess5061", g.access, 5061, "TCP"),
        ("ExtEdgeAv3478", g.av, 3478, "UDP"),
        ("ExtEdgeAv443", g.av, 443, "TCP"),
        ("ExtEdgeWeb443", g.webconf, 443, "TCP"),
        ("IntEdgeAccess5061", g.edge_vip, 5061, "TCP"),
        ("IntEdgeAv3478", g.edge_vip, 3478, "UDP"),
        ("IntEdgeAv443", g.edge_vip, 443, "TCP"),
        ("IntEdgeAv5062", g.edge_vip, 5062, "TCP"),
        ("IntEdgeWebConf8057", g.edge_vip, 8057, "TCP"),
    ]
    ext_ok = {443: True, 5061: True, 3478: True}
    ext2 = {
        443: (True, f"answers on 443: {connected}"),
        5061: (False, "5061: connection refused"),
        3478: (
            False,
            "3478/UDP: no STUN answer within 0.3 s (1 other datagram ignored: not a Binding "
            "response to this request's transaction id)",
        ),
    }
    expected = [
        (LISTENING, f"FePoolExtWebSvcs8080 {g.fe_web}:8080", True, connected),
        (LISTENING, f"FePoolExtWebSvcs8081 {g.fe_web}:8081", False, "connection refused"),
        *((LISTENING, f"FrontEndPool {g.fe_vip}:{port}", True, connected)
          for port in (135, 443, 444, 5061, 5065)),
        (LISTENING, f"FrontEndPool {g.fe_vip}:5069", False, "connection refused"),
        (LISTENING, f"SSL-FePoolExtWebSvcs4443 {g.fe_web}:4443", False,
         "no answer within 0.3 s"),
        *((LISTENING, f"{label} {ip}:{port}/{protocol}", False, ipvs)
          for label, ip, port, protocol in layer4),
        (SERVERS, f"FePoolExtWebSvcs8080 → FE-1 {g.fe1}", True, f"answers on 8080: {connected}"),
        (SERVERS, f"FePoolExtWebSvcs8080 → FE-2 {g.fe2}", True, f"answers on 8080: {connected}"),
        (SERVERS, f"FePoolExtWebSvcs8081 → FE-1 {g.fe1}", True, f"answers on 4443: {connected}"),
        (SERVERS, f"FePoolExtWebSvcs8081 → FE-2 {g.fe2}", False, "4443: connection refused"),
        (SERVERS, f"FrontEndPool → FE-1 {g.fe1}", True,
         "answers on 135, 443, 444, 5061, 5065, 5069"),
        (SERVERS, f"FrontEndPool → FE-2 {g.fe2}", False,
         "5065: connection refused; 5069: no answer within 0.3 s "
         "(answers on 135, 443, 444, 5061)"),
    ]  # fmt: skip
    for label, _, port, protocol in layer4:
        shown = f"{port}/UDP" if protocol == "UDP" else str(port)
        answered = stun_ok if protocol == "UDP" else connected
        if label.startswith("Ext"):
            assert ext_ok[port]
            expected.append(
                (
                    SERVERS,
                    f"{label} → EDGE-1 {g.edge1_ext}",
                    True,
                    f"answers on {shown}: {answered}",
                )
            )
            expected.append((SERVERS, f"{label} → EDGE-2 {g.edge2_ext}", *ext2[port]))
        else:
            refused = "connection refused" + (" (ICMP port unreachable)" if port == 3478 else "")
            expected.append(
                (SERVERS, f"{label} → EDGE-1 {g.edge1}", True, f"answers on {shown}: {answered}")
            )
            expected.append((SERVERS, f"{label} → EDGE-2 {g.edge2}", False, f"{shown}: {refused}"))
    days = (certificate.not_after - now).days
    wildcard_names = (
        "not covered: the certificate names pool1.robtest.com, *.robtest.com (a wildcard "
        "stands for exactly one label)"
    )
    expected += [
        (CERTIFICATE, "certificate FE-cert", True,
         f"valid until {certificate.not_after:%Y-%m-%d} ({days} days left)"),
        (CERTIFICATE, "pool1.robtest.com (Front End pool)", True,
         "covered by the SAN pool1.robtest.com"),
        (CERTIFICATE, "lyncweb.robtest.com (Front End pool)", True,
         "covered by the SAN *.robtest.com"),
        (CERTIFICATE, "dialin.ext.robtest.com (Front End pool)", False, wildcard_names),
        (CERTIFICATE, "robtest.com (Front End pool)", False, wildcard_names),
    ]  # fmt: skip
    local = "an address of this appliance on lo: the Edge server must be another host"
    expected += [
        (ROUTING, f"EDGE-1 {g.edge1} (internal)", False, local),
        (ROUTING, f"EDGE-2 {g.edge2} (internal)", False, local),
        (ROUTING, f"EDGE-1 {g.edge1_ext} (external)", False, local),
        (ROUTING, f"EDGE-2 {g.edge2_ext} (external)", False, local),
    ]
    assert normal(lines) == expected


@needs_root
def test_layer4_vips_are_probed_where_ipvs_runs(guide: Guide, monkeypatch) -> None:
    """With IPVS, each Layer 4 VIP port is probed like the others, UDP 3478 with STUN."""
    monkeypatch.setattr(lync_checks, "layer4_unavailable_reason", lambda: "")
    g = guide
    answers = g.answers(
        version="2013", web_persistence="none", front_end=None, external_edge=None,
        certificate_label=None,
    )  # fmt: skip
    with ExitStack() as stack:
        for port in (5061, 443):
            stack.enter_context(listen_tcp(g.edge_vip, port))
        stack.enter_context(StunResponder(g.edge_vip, 3478))
        lines = lync_checklist(answers, timeout_s=TIMEOUT)
    assert [line for line in normal(lines) if line[0] == LISTENING] == [
        (LISTENING, f"IntEdgeAccess5061 {g.edge_vip}:5061/TCP", True, "connected in N ms"),
        (LISTENING, f"IntEdgeAv3478 {g.edge_vip}:3478/UDP", True,
         "STUN Binding Success Response in N ms (mapped address 127.0.0.1:P)"),
        (LISTENING, f"IntEdgeAv443 {g.edge_vip}:443/TCP", True, "connected in N ms"),
        (LISTENING, f"IntEdgeAv5062 {g.edge_vip}:5062/TCP", False, "connection refused"),
        (LISTENING, f"IntEdgeWebConf8057 {g.edge_vip}:8057/TCP", False, "connection refused"),
    ]  # fmt: skip
    assert [line.group for line in lines] == [LISTENING] * 5 + [SERVERS] * 10 + [ROUTING] * 2


# --- Edge routing -------------------------------------------------------------------------------


@pytest.fixture
def namespace() -> Iterator[str]:
    with guide_namespace(f"lyc{os.getpid()}") as name:
        yield name


@needs_netns
def test_edge_routing_as_the_guide_needs_it(namespace: str, monkeypatch) -> None:
    """Routes looked up in a namespace routed like the guide's load balancer (no probe:
    these addresses are not loopback and nothing may be sent to them)."""
    monkeypatch.setattr(lync_checks, "route_to", partial(probes.route_to, netns=namespace))
    answers = LyncAnswers(
        version="2013",
        front_end=None,
        director=None,
        internal_edge=EdgePart(
            "192.168.10.10",
            (
                Server("EDGE-1", "192.168.100.10"),
                Server("EDGE-2", "172.16.5.5"),
                Server("EDGE-3", "203.0.113.9"),
            ),
        ),
        external_edge=ExternalEdgePart(
            "10.25.1.10",
            "10.25.1.11",
            "10.25.1.12",
            (
                Server("EDGE-1", "192.168.100.10", external_ip="10.20.1.10"),
                Server(
                    "EDGE-2", "172.16.5.5", external_ip="198.51.100.7", external_av_ip="10.20.1.12"
                ),
                Server("EDGE-3", "203.0.113.9", external_ip="203.0.113.9"),
            ),
        ),
        reverse_proxy=None,
        web_persistence="none",
    )
    lines = edge_routing_lines(answers)
    nat = "the Edge servers can use this appliance as their default gateway, as Layer 4 NAT needs"
    assert [(line.subject, line.ok, line.reason) for line in lines[:2]] == [
        ("EDGE-1 192.168.100.10 (internal)", True,
         "via 192.168.20.2 on d0 (route 192.168.100.0/24), not the default gateway"),
        ("EDGE-2 172.16.5.5 (internal)", False,
         "would leave via the default gateway 192.168.20.254 on d0: add the guide's static "
         "route to the Edge servers' internal subnet, e.g. 192.168.100.0/24 via 192.168.20.2, "
         "in Local Configuration > Routing"),
    ]  # fmt: skip
    assert lines[2].subject == "EDGE-3 203.0.113.9 (internal)" and not lines[2].ok
    assert lines[2].reason.startswith("no route: ") and "No route to host" in lines[2].reason
    assert [(line.subject, line.ok, line.reason) for line in lines[3:6]] == [
        ("EDGE-1 10.20.1.10 (external)", True, f"on-link on d1 (10.20.0.0/16): {nat}"),
        ("EDGE-2 198.51.100.7 (external)", False,
         "not on-link: via the default gateway 192.168.20.254 on d0. The external Edge servers "
         "use the load balancer as their default gateway (Layer 4 NAT sends the replies back "
         "through it), so this appliance needs an address in their subnet (Local "
         "Configuration > Network Interface Configuration)"),
        ("EDGE-2 10.20.1.12 (external)", True, f"on-link on d1 (10.20.0.0/16): {nat}"),
    ]  # fmt: skip
    assert lines[6].subject == "EDGE-3 203.0.113.9 (external)" and not lines[6].ok
    assert len(lines) == 7 and {line.group for line in lines} == {ROUTING}


# --- Certificate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fqdn", "names", "covering"),
    [
        ("pool1.robtest.com", ["pool1.robtest.com"], "pool1.robtest.com"),
        ("POOL1.robtest.com.", ["pool1.RobTest.com"], "pool1.RobTest.com"),
        ("lyncweb.robtest.com", ["*.robtest.com"], "*.robtest.com"),
        ("a.b.robtest.com", ["*.robtest.com"], None),  # one label only
        ("robtest.com", ["*.robtest.com"], None),  # not the bare domain
        ("robtest.com", ["*.com"], None),  # never a whole top-level domain
        ("lyncweb.robtest.com", ["lync*.robtest.com"], None),  # no partial wildcards
        ("lyncweb.robtest.com", ["*.*.com"], None),
        ("pool1.robtest.com", ["pool2.robtest.com", "*.robtest.com"], "*.robtest.com"),
    ],
)
def test_names_are_matched_as_rfc_6125_says(fqdn: str, names: list[str], covering) -> None:
    assert certificate_name_covering(fqdn, names) == covering


def test_the_common_name_counts_only_without_dns_sans() -> None:
    assert certificate_identifiers(["a.robtest.com", "192.0.2.1"], "cn.robtest.com") == [
        "a.robtest.com"
    ]
    assert certificate_identifiers(["192.0.2.1"], "cn.robtest.com") == ["cn.robtest.com"]
    assert certificate_identifiers([], "Lync Front End") == ["Lync Front End"]
    assert certificate_identifiers([], "192.0.2.1") == []


def _cn_only_certificate(common_name: str) -> bytes:
    """A certificate without the SAN extension (old CAs still issue them)."""
    return self_signed_pem(common_name)


@pytest.mark.django_db
def test_certificate_lines_missing_pending_expired_and_common_name(guide: Guide) -> None:
    answers = guide.answers(front_end=replace(guide.answers().front_end, fqdns=FQDNS[:2]))
    now = timezone.now()
    missing = certificate_lines(answers, now)
    assert [(line.subject, line.ok) for line in missing] == [("certificate FE-cert", False)]
    assert missing[0].reason.startswith("missing: no certificate has this label")

    pending = certificate_csr_create(
        actor=None, label="FE-cert", common_name="pool1.robtest.com", sans=[]
    )
    (line,) = certificate_lines(answers, now)
    assert not line.ok and "waiting for the signed certificate" in line.reason
    pending.delete()

    uploaded = upload(sans=["lyncweb.robtest.com"])
    later = uploaded.not_after + timedelta(days=1)
    assert [(line.subject, line.ok, line.reason) for line in certificate_lines(answers, later)] == [
        ("certificate FE-cert", False,
         f"expired on {uploaded.not_after:%Y-%m-%d}: clients refuse it; upload a renewed one"),
        ("pool1.robtest.com (Front End pool)", True, "covered by the SAN pool1.robtest.com"),
        ("lyncweb.robtest.com (Front End pool)", True, "covered by the SAN lyncweb.robtest.com"),
    ]  # fmt: skip
    uploaded.delete()

    certificate_upload(
        actor=None, label="FE-cert", data=_cn_only_certificate("pool1.robtest.com"), password=None
    )
    assert SslCertificate.objects.get(label="FE-cert").sans == []
    assert [(line.ok, line.reason) for line in certificate_lines(answers, now)[1:]] == [
        (True, "covered by the Common Name pool1.robtest.com (the certificate has no DNS "
               "names among its SANs)"),
        (False, "not covered: the certificate names pool1.robtest.com"),
    ]  # fmt: skip

    # No group without the cookie path (nothing decrypted here) or without FQDNs.
    assert certificate_lines(replace(answers, web_persistence="none"), now) == []
    no_names = replace(answers.front_end, fqdns=())
    assert certificate_lines(replace(answers, front_end=no_names), now) == []


# --- The page -----------------------------------------------------------------------------------

# What any signed-in page costs once the singletons exist (measured on the Layer 7 list):
# session, user, HA role, apply in progress, configuration state, and the session's update
# (a savepoint, the UPDATE, its release).
BASE_QUERIES = 8


def small_answers(guide: Guide) -> LyncAnswers:
    """Lync 2013, the Front End pool only: 8 VIP ports and FE-1 on 3 services."""
    return guide.answers(
        version="2013", web_persistence="none", certificate_label=None, internal_edge=None,
        external_edge=None,
        front_end=FrontEndPart(guide.fe_vip, guide.fe_web, (Server("FE-1", guide.fe1),)),
    )  # fmt: skip


def deploy(answers: LyncAnswers) -> LyncDeployment:
    """Create and apply, as the wizard's last step does (the queued apply is not run)."""
    wizard_apply(actor=None, answers=answers)
    deployment = deployment_current()
    assert deployment is not None
    return deployment


def small_deployment(guide: Guide) -> LyncDeployment:
    return deploy(small_answers(guide))


@pytest.mark.django_db
def test_the_page_lists_every_line_and_reruns_with_htmx(admin, guide: Guide) -> None:
    url = reverse("lbadmin:wizard_lync_checks")
    assert url == "/lbadmin/wizard/lync/checks/"
    small_deployment(guide)
    with ExitStack() as stack:
        stack.enter_context(listen_tcp(guide.fe_web, 8080))
        for port in (8080, 4443):
            stack.enter_context(listen_tcp(guide.fe1, port))
        page = admin.get(url).content.decode()
        partial_page = admin.get(url, HTTP_HX_REQUEST="true")

    assert "3 of 11 checks passed" in page
    rows = re.findall(
        r'<tr class="(st-up|st-down)">\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*'
        r'<td class="status-cell">(OK|FAILED)</td>\s*<td>(.*?)</td>',
        page,
    )
    assert len(rows) == 11
    assert rows[0] == (
        "st-down", LISTENING, f"FePoolExtWebSvcs4443 {guide.fe_web}:4443", "FAILED",
        "connection refused",
    )  # fmt: skip
    assert rows[1][:4] == ("st-up", LISTENING, f"FePoolExtWebSvcs8080 {guide.fe_web}:8080", "OK")
    assert re.fullmatch(r"connected in (under 1|\d+) ms", rows[1][4])
    assert rows[8][:4] == ("st-up", SERVERS, f"FePoolExtWebSvcs4443 → FE-1 {guide.fe1}", "OK")
    assert re.fullmatch(r"answers on 4443: connected in (under 1|\d+) ms", rows[8][4])
    assert rows[10][:4] == ("st-down", SERVERS, f"FrontEndPool → FE-1 {guide.fe1}", "FAILED")
    assert rows[10][4] == (
        "135: connection refused; 443: connection refused; 444: connection refused; 5061: "
        "connection refused; 5065: connection refused; 5069: connection refused"
    )
    assert [row[0] for row in rows].count("st-up") == 3
    assert 'id="checks-rerun"' in page and f'hx-get="{url}"' in page

    body = partial_page.content.decode()
    assert partial_page["Vary"].count("HX-Request") == 1
    assert body.lstrip().startswith('<section id="lync-checks">') and "<html" not in body
    assert "3 of 11 checks passed" in body and body.count('class="status-cell"') == 11


@pytest.mark.django_db
def test_the_page_costs_a_fixed_number_of_queries(
    admin, guide: Guide, django_assert_max_num_queries
) -> None:
    """Never a query per line (the guide's whole shape here: 54 lines): the deployment, the
    configuration as it is now (config_export: 8 queries whatever its size — the Layer 7
    settings, servers and services, the certificates, the terminations, the Layer 4 servers
    and services, the HA settings) and the certificate on the cookie path; the rest is what
    every page costs."""
    upload(sans=["*.robtest.com"])
    deploy(guide.answers())
    url = reverse("lbadmin:wizard_lync_checks")
    admin.get(url)  # the first request creates the singletons (HA role, configuration state)
    with django_assert_max_num_queries(BASE_QUERIES + 1 + 8 + 1):
        page = admin.get(url).content.decode()
    assert page.count('class="status-cell"') == 54


@pytest.mark.django_db
def test_the_page_without_a_deployment_points_to_the_wizard(admin) -> None:
    page = admin.get(reverse("lbadmin:wizard_lync_checks")).content.decode()
    assert 'id="checks-no-deployment"' in page
    assert f'href="{reverse("lbadmin:wizard_lync")}"' in page
    assert "checks passed" not in page


@pytest.mark.django_db
def test_the_page_says_when_the_recorded_answers_cannot_be_checked(admin) -> None:
    LyncDeployment.objects.create(
        answers={"version": "2013", "bogus": 1},
        created_items={},
        layer7_settings={},
        layer7_settings_before={},
    )
    page = admin.get(reverse("lbadmin:wizard_lync_checks")).content.decode()
    assert 'id="checks-problem"' in page and "bogus: unknown key." in page


# --- The configuration as it is now -------------------------------------------------------------


def mentions(lines: Iterable[CheckLine], ip: str) -> list[CheckLine]:
    pattern = re.compile(re.escape(ip) + r"(?![\d])")
    return [line for line in lines if pattern.search(line.subject) or pattern.search(line.reason)]


@pytest.mark.django_db
def test_the_checks_probe_what_is_configured_after_a_hand_edit(guide: Guide) -> None:
    """FE-1 and EDGE-2's external address moved by hand after Create: the checks probe (and
    look the route up for) the new addresses and send nothing to the old ones."""
    g = guide
    edges = (
        Server("EDGE-1", g.edge1, external_ip=g.edge1_ext),
        Server("EDGE-2", g.edge2, external_ip=g.edge2_ext),
    )
    answers = replace(
        small_answers(g), external_edge=ExternalEdgePart(g.access, g.webconf, g.av, edges)
    )
    deploy(answers)
    fe1_moved, edge2_moved = g.fe1.replace(".11.31", ".11.41"), g.edge2_ext.replace(".11", ".41")
    with transaction.atomic():  # as the Real Server pages save, in every service
        assert RealServer.objects.filter(label="FE-1", ip=g.fe1).update(ip=fe1_moved) == 3
        moved = L4RealServer.objects.filter(label="EDGE-2", ip=g.edge2_ext).update(ip=edge2_moved)
        assert moved == 6
        config_changed((HAPROXY, KEEPALIVED))

    with ExitStack() as stack:
        for port in (8080, 4443):
            stack.enter_context(listen_tcp(fe1_moved, port))
        old = stack.enter_context(listen_tcp(g.fe1, 8080))
        old_stun = stack.enter_context(StunResponder(g.edge2_ext, 3478))
        stack.enter_context(StunResponder(edge2_moved, 3478))
        checks = deployment_checks(timeout_s=TIMEOUT)
        old.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing connected to the old address
            old.accept()
        assert old_stun.requests == []

    assert checks is not None and checks.problem == ""
    lines = list(checks.lines)
    assert mentions(lines, g.fe1) == [] and mentions(lines, g.edge2_ext) == []
    shown = normal(lines)
    for service, port in (("FePoolExtWebSvcs8080", 8080), ("FePoolExtWebSvcs4443", 4443)):
        assert (SERVERS, f"{service} → FE-1 {fe1_moved}", True, f"answers on {port}: "
                "connected in N ms") in shown  # fmt: skip
    pool = [line for line in shown if line[1] == f"FrontEndPool → FE-1 {fe1_moved}"]
    assert len(pool) == 1 and not pool[0][2]  # probed there (nothing listens on 135 …)
    stun = "STUN Binding Success Response in N ms (mapped address 127.0.0.1:P)"
    assert (SERVERS, f"ExtEdgeAv3478 → EDGE-2 {edge2_moved}", True,
            f"answers on 3478/UDP: {stun}") in shown  # fmt: skip
    local = "an address of this appliance on lo: the Edge server must be another host"
    assert [line for line in shown if line[0] == ROUTING] == [
        (ROUTING, f"EDGE-1 {g.edge1_ext} (external)", False, local),
        (ROUTING, f"EDGE-2 {edge2_moved} (external)", False, local),
    ]
    assert not [line for line in lines if "deleted by hand" in line.reason]


@pytest.mark.django_db
def test_a_service_deleted_by_hand_is_a_red_line_not_probed(guide: Guide) -> None:
    deploy(small_answers(guide))
    with transaction.atomic():
        VirtualService.objects.filter(label="FePoolExtWebSvcs8080").delete()
        config_changed((HAPROXY,))
    with listen_tcp(guide.fe_web, 8080):
        checks = deployment_checks(timeout_s=TIMEOUT)
    assert checks is not None
    lines = normal(list(checks.lines))
    assert lines[0] == (
        LISTENING, "FePoolExtWebSvcs8080", False,
        "this virtual service was deleted by hand since the wizard made it: run the wizard to "
        "re-create it",
    )  # fmt: skip
    assert not [line for line in lines[1:] if line[1].startswith("FePoolExtWebSvcs8080")]
    assert [line[1] for line in lines[1:]] == [
        f"FePoolExtWebSvcs4443 {guide.fe_web}:4443",
        *(f"FrontEndPool {guide.fe_vip}:{port}" for port in (135, 443, 444, 5061, 5065, 5069)),
        f"FePoolExtWebSvcs4443 → FE-1 {guide.fe1}",
        f"FrontEndPool → FE-1 {guide.fe1}",
    ]


@pytest.mark.django_db
def test_the_certificate_checked_is_the_one_the_termination_uses_now(guide: Guide) -> None:
    """The termination moved by hand to another certificate: that one is checked. Once it
    is deleted by hand, the answers' certificate (what the wizard would make it with)."""
    upload(sans=["lyncweb.robtest.com"])
    upload("Other-cert", common_name="other.robtest.com", sans=["*.robtest.com"])
    answers = replace(
        small_answers(guide),
        web_persistence="cookie",
        certificate_label="FE-cert",
        front_end=replace(small_answers(guide).front_end, fqdns=FQDNS[:2]),
    )
    deploy(answers)
    other = SslCertificate.objects.get(label="Other-cert")  # the import made it again
    with transaction.atomic():
        SslTermination.objects.filter(label="SSL-FePoolExtWebSvcs4443").update(certificate=other)
        config_changed((STUNNEL,))

    def certificate(checks) -> list[tuple[str, bool, str]]:
        return [(line.subject, line.ok, line.reason) for line in checks.lines
                if line.group == CERTIFICATE][1:]  # fmt: skip

    checks = deployment_checks(timeout_s=TIMEOUT)
    assert next(line.subject for line in checks.lines if line.group == CERTIFICATE) == (
        "certificate Other-cert"
    )
    assert certificate(checks) == [
        ("pool1.robtest.com (Front End pool)", True, "covered by the SAN *.robtest.com"),
        ("lyncweb.robtest.com (Front End pool)", True, "covered by the SAN *.robtest.com"),
    ]

    with transaction.atomic():
        SslTermination.objects.filter(label="SSL-FePoolExtWebSvcs4443").delete()
        config_changed((STUNNEL,))
    checks = deployment_checks(timeout_s=TIMEOUT)
    assert checks.lines[0] == CheckLine(
        LISTENING, "SSL-FePoolExtWebSvcs4443", False,
        "this SSL termination was deleted by hand since the wizard made it: run the wizard "
        "to re-create it",
    )  # fmt: skip
    assert next(line.subject for line in checks.lines if line.group == CERTIFICATE) == (
        "certificate FE-cert"
    )
    assert certificate(checks) == [
        ("pool1.robtest.com (Front End pool)", True, "covered by the SAN pool1.robtest.com"),
        ("lyncweb.robtest.com (Front End pool)", True, "covered by the SAN lyncweb.robtest.com"),
    ]
