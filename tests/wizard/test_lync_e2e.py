"""The Lync 2013 deployment end to end: `manage.py lync_wizard` → the Celery worker's apply →
real HAProxy (and keepalived) → traffic to every Layer 7 VIP and port, reaching the right
servers on the right ports; then a re-run without FE-2, then `--remove`.

The guide's test environment (docs/examples/lync-2013-guide.json) is mapped onto loopback,
which is all local on Linux, by keeping the address's last octets:

    192.168.a.b → 127.168.a.b      (FrontEndPool 192.168.10.30 → 127.168.10.30,
                                    FE-1 192.168.10.31 → 127.168.10.31, FE-2 → .32,
                                    FePoolExtWebSvcs 192.168.20.30 → 127.168.20.30,
                                    DirectorPool 192.168.10.20 → 127.168.10.20, DIR-1/2 → .21/.22,
                                    DirPoolExtWebSvcs 192.168.20.20 → 127.168.20.20,
                                    internal Edge 192.168.10.10 → 127.168.10.10,
                                    EDGE-1/2 192.168.100.10/11 → 127.168.100.10/11)
    10.a.b.c    → 127.a.b.c        (ReverseProxyFE 10.12.1.150 → 127.12.1.150,
                                    external Edge 10.25.1.10/11/12 → 127.25.1.10/11/12,
                                    EDGE-1/2 outside 10.20.1.10/11 → 127.20.1.10/11)

Clients connect from 127.200.0.x where a source address matters (source-IP persistence).
No traffic ever leaves 127.0.0.0/8: the mapped answers are checked before anything starts.

Backends answer with their own label and the port they were reached on ("FE-1:5061"): plain
TCP ones send it and close; those on 8080 speak HTTP, because ReverseProxyFE-http (HTTP mode)
sends to them as well as the TCP-mode FePoolExtWebSvcs8080.

Layer 4 (IPVS) cannot run on these kernels (keepalived runs for VRRP only): the Edge services
are checked in the keepalived.conf the apply wrote, not with traffic.
"""

import copy
import functools
import ipaddress
import json
import socket
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from lbadmin.models import ConfigRevision, LyncDeployment
from lbadmin.services.config import haproxy_running_text, keepalived_running_text
from lbadmin.services.daemons import daemon_controllers
from tests.conftest import wait_until
from tests.daemon_support import http_request, running_backends
from tests.wizard.test_lync_plan import EDGE_SERVERS, STEP4, STEP5, STEP5_2013_ONLY

pytestmark = [pytest.mark.daemons, pytest.mark.django_db(transaction=True)]

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "lync-2013-guide.json"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def loopback(ip: str) -> str:
    """The module docstring's mapping of one of the guide's addresses."""
    address = ipaddress.ip_address(ip)
    if address in ipaddress.ip_network("192.168.0.0/16"):
        return "127." + ip.split(".", 1)[1]
    if address in ipaddress.ip_network("10.0.0.0/8"):
        return "127." + ip.split(".", 1)[1]
    raise ValueError(f"{ip} is not one of the guide's addresses")


def mapped(value: Any) -> Any:
    """The answers with every address mapped (labels, versions and FQDNs stay)."""
    if isinstance(value, dict):
        return {key: mapped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mapped(item) for item in value]
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return value
        return loopback(value)
    return value


def addresses_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [ip for item in value.values() for ip in addresses_in(item)]
    if isinstance(value, list):
        return [ip for item in value for ip in addresses_in(item)]
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return []
        return [value]
    return []


ANSWERS = mapped(json.loads(EXAMPLE.read_text()))
assert ANSWERS["version"] == "2013" and ANSWERS["web_persistence"] == "none"
assert all(ipaddress.ip_address(ip) in LOOPBACK for ip in addresses_in(ANSWERS))

# The guide's servers and VIPs, mapped.
FE = {"FE-1": loopback("192.168.10.31"), "FE-2": loopback("192.168.10.32")}
DIR = {"DIR-1": loopback("192.168.10.21"), "DIR-2": loopback("192.168.10.22")}
FE_VIP, FE_WEB = loopback("192.168.10.30"), loopback("192.168.20.30")
DIR_VIP, DIR_WEB = loopback("192.168.10.20"), loopback("192.168.20.20")
RP_FE = loopback("10.12.1.150")
FRONT_END_PORTS = (135, 443, 444, 5061, 5065, 5069)

# The guide's Layer 7 VIPs (STEP 2, STEP 3, Appendix 2) for Lync 2013 without web-services
# persistence: label -> (VIP, ports, pool, server port (None: the port the client connected
# to), persistence).
LAYER7: dict[str, tuple[str, tuple[int, ...], dict[str, str], int | None, str]] = {
    "FrontEndPool": (FE_VIP, FRONT_END_PORTS, FE, None, "source_ip"),
    "FePoolExtWebSvcs8080": (FE_WEB, (8080,), FE, 8080, "none"),
    "FePoolExtWebSvcs4443": (FE_WEB, (4443,), FE, 4443, "none"),
    "DirectorPool": (DIR_VIP, (5061,), DIR, 5061, "source_ip"),
    "DirPoolExtWebSvcs8080": (DIR_WEB, (8080,), DIR, 8080, "none"),
    "DirPoolExtWebSvcs4443": (DIR_WEB, (4443,), DIR, 4443, "none"),
    "ReverseProxyFE-http": (RP_FE, (80,), FE, 8080, "http_cookie"),
    "ReverseProxyFE-https": (RP_FE, (443,), FE, 4443, "source_ip"),
}
# Every server address and port the pools send to.
BACKEND_PORTS = {
    **{ip: (*FRONT_END_PORTS, 8080, 4443) for ip in FE.values()},
    **{ip: (5061, 8080, 4443) for ip in DIR.values()},
}
HTTP_BACKEND_PORT = 8080
SOURCES = [f"127.200.0.{n}" for n in range(1, 9)]  # 8 clients


@pytest.fixture
def daemons_stopped_after():
    """The apply starts HAProxy, keepalived (and stunnel for terminations) in this run's var
    dir: stop them afterwards, pass or fail."""
    yield
    for name in ("keepalived", "haproxy", "stunnel"):
        daemon_controllers()[name].stop()


@pytest.fixture
def backends():
    """A backend on every server address and port of the deployment."""
    labels = {ip: label for pool in (FE, DIR) for label, ip in pool.items()}
    with running_backends() as running:
        for ip, ports in BACKEND_PORTS.items():
            for port in ports:
                name = f"{labels[ip]}:{port}"
                if port == HTTP_BACKEND_PORT:
                    running.http(name, ip, port)
                else:
                    running.tcp(labels[ip], ip, port)  # answers "<label>:<port>"
        yield running


def write(tmp_path: Path, document: dict[str, Any], name: str) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def wizard(*args: str) -> str:
    out = StringIO()
    call_command("lync_wizard", *args, "--wait", "--timeout", "90", stdout=out)
    return out.getvalue()


def answer(vip: str, port: int, source: str | None = None) -> str:
    """What one new connection to vip:port gets back: "<server label>:<server port>"."""
    assert ipaddress.ip_address(vip) in LOOPBACK
    if port in (80, 8080):  # an HTTP backend behind it (HTTP mode, or TCP mode passing HTTP)
        response, body = http_request(vip, port, source=source)
        assert response.status == 200, (vip, port, response.status)
        return body.decode()
    with socket.create_connection(
        (vip, port), timeout=3, source_address=(source, 0) if source else None
    ) as sock:
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode()


def refused(vip: str, port: int) -> bool:
    try:
        with socket.create_connection((vip, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def reachable(pool: dict[str, str], server_port: int | None, port: int) -> set[str]:
    """The answers a connection to a VIP's ``port`` may get: a server of the pool, on the
    server port (or on ``port`` itself when the server port is blank)."""
    return {f"{name}:{server_port or port}" for name in pool}


def assert_sticks_to_the_source(label: str, pool: dict[str, str], server_port: int | None):
    """Source-IP persistence: one client address sticks to one server, on every port of the
    VIP; different clients are spread over the pool (leastconn: each new client goes to the
    least busy server)."""
    vip, ports = LAYER7[label][:2]
    chosen = {}
    for source in SOURCES:
        answers = {answer(vip, port, source) for port in ports for _ in range(2)}
        servers = {reached.split(":")[0] for reached in answers}
        assert len(servers) == 1, (label, source, answers)
        chosen[source] = servers.pop()
        on_its_ports = {f"{chosen[source]}:{server_port or port}" for port in ports}
        assert answers == on_its_ports, (label, source, answers)
    assert set(chosen.values()) == set(pool), (label, chosen)


def assert_cookie_persistence(label: str, pool: dict[str, str], server_port: int | None):
    """HTTP cookie persistence: without the cookie requests are balanced and the response
    sets SERVERID to the server that answered; with it, every request goes to that server."""
    vip, (port,) = LAYER7[label][:2]
    counts: Counter[str] = Counter()
    for _ in range(8):
        response, body = http_request(vip, port)
        reached = body.decode()
        assert reached in reachable(pool, server_port, port), (label, reached)
        assert f"SERVERID={reached.split(':')[0]};" in response.headers["Set-Cookie"]
        counts[reached] += 1
    assert set(counts) == reachable(pool, server_port, port), (label, counts)
    for server in pool:
        for _ in range(3):
            _, body = http_request(vip, port, headers={"Cookie": f"SERVERID={server}"})
            assert body.decode() == f"{server}:{server_port}", (label, server)


def assert_served(front_end: dict[str, str]) -> None:
    """Every Layer 7 VIP and port reaches its pool's servers (``front_end``: the Front End
    servers deployed) on the right port, balanced as the guide's persistence allows."""
    for label, (vip, ports, pool, server_port, persistence) in LAYER7.items():
        servers = front_end if pool is FE else pool
        if persistence == "source_ip":
            assert_sticks_to_the_source(label, servers, server_port)
        elif persistence == "http_cookie":
            assert_cookie_persistence(label, servers, server_port)
        else:  # none: one client's connections are spread over the pool
            for port in ports:
                counts = Counter(answer(vip, port) for _ in range(8))
                assert set(counts) == reachable(servers, server_port, port), (label, counts)


def assert_edge_in_keepalived(text: str) -> None:
    """The guide's Edge tables (STEP 4 and 5, mapped) as keepalived virtual_servers."""
    for label, (ip, port, protocol, attribute) in {**STEP4, **STEP5, **STEP5_2013_ONLY}.items():
        header = f"# Virtual service {label}\nvirtual_server {loopback(ip)} {port} {{\n"
        assert header in text, label
        block = text.split(header, 1)[1].split("\n}\n", 1)[0]
        assert f"    protocol {protocol.upper()}\n" in block, label
        assert "    lb_kind NAT\n" in block and "    persistence_timeout 1800\n" in block, label
        for server in EDGE_SERVERS:  # by internal address inside, external outside
            server_ip = loopback(getattr(server, attribute))
            assert f"    real_server {server_ip} {port} {{\n" in block, (label, server_ip)


@pytest.mark.timeout(300)
def test_the_lync_2013_deployment_serves_its_vips_then_changes_and_goes(
    tmp_path, celery_worker_process, daemons_stopped_after, backends
) -> None:
    # Create and apply, as `manage.py lync_wizard --answers FILE --wait` does.
    output = wizard("--answers", write(tmp_path, ANSWERS, "lync-2013-loopback.json"))
    assert "Applied" in output, output
    revision = ConfigRevision.objects.order_by("-pk").first()
    assert revision.status == ConfigRevision.Status.APPLIED, revision.error

    running = haproxy_running_text()
    listens = [line.split()[1] for line in running.splitlines() if line.startswith("listen ")]
    assert sorted(listens) == sorted(LAYER7)
    assert "    timeout client 1800000ms\n" in running  # STEP 1
    assert_served(FE)
    assert_edge_in_keepalived(keepalived_running_text())

    # Re-run without FE-2: no new connection reaches it, on any VIP or port.
    without = copy.deepcopy(ANSWERS)
    without["front_end"]["servers"] = [
        server for server in without["front_end"]["servers"] if server["label"] != "FE-2"
    ]
    output = wizard("--answers", write(tmp_path, without, "without-fe-2.json"))
    assert "Applied" in output, output
    assert " FE-2 " not in haproxy_running_text()
    assert_served({"FE-1": FE["FE-1"]})
    assert_edge_in_keepalived(keepalived_running_text())  # the Edge pools did not change

    # Remove: every VIP port stops answering; the timeouts are the appliance's again.
    output = wizard("--remove")
    assert "Applied" in output, output
    assert not LyncDeployment.objects.exists()
    for label, (vip, ports, *_rest) in LAYER7.items():
        for port in ports:
            wait_until(functools.partial(refused, vip, port), 10, f"{label} :{port} to close")
    running = haproxy_running_text()
    assert "listen " not in running
    assert "    timeout client 43000ms\n" in running  # as before the wizard
    assert "virtual_server" not in keepalived_running_text()
