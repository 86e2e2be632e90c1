"""Real TCP and UDP traffic through a Layer 4 (IPVS, NAT) virtual service rendered by the
appliance, between network namespaces this test creates and removes:

    client (203.0.113.2) ── lbt-lb: VIP 203.0.113.10, keepalived + IPVS ──┬── rs1 198.51.100.2
                                                                         └── rs2 198.51.100.6

Checks NAT (the servers see the client's own address, replies come back from the VIP),
source-IP persistence, and health-check removal. It needs IPVS in the kernel; where there is
none (these CI machines: no /proc/net/ip_vs, no ip_vs module) the traffic test is skipped
with that reason, and only the network plumbing test runs.
"""

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import RuntimeLayout, ipvs_available
from lbadmin.engines.ipvs import parse_ip_vs
from lbadmin.render.keepalived import render_keepalived
from lbadmin.render.snapshot import (
    Forwarding,
    KeepalivedSnapshot,
    L4HealthCheck,
    L4Protocol,
    L4RealServer,
    L4VirtualService,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ip") is None, reason="iproute2 is not installed (apt-get install iproute2)"
)

PREFIX = "lbt"  # every namespace this module makes starts with it
CLIENT, VIP = "203.0.113.2", "203.0.113.10"
SERVERS = {"rs1": ("198.51.100.1", "198.51.100.2"), "rs2": ("198.51.100.5", "198.51.100.6")}
TCP_PORT, UDP_PORT = 5061, 3478

# A real server: answers each TCP connection and each UDP datagram with "<name> <peer ip>".
SERVER_PROGRAM = """
import socket, sys, threading
name, ip, tcp_port, udp_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, tcp_port)); s.listen(64)
    while True:
        c, peer = s.accept(); c.sendall(f"{name} {peer[0]}".encode()); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, udp_port))
    while True:
        data, peer = s.recvfrom(64); s.sendto(f"{name} {peer[0]}".encode(), peer)
threading.Thread(target=udp, daemon=True).start()
tcp()
"""

CLIENT_PROGRAM = """
import socket, sys
kind, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for _ in range(count):
    try:
        if kind == "tcp":
            with socket.create_connection((host, port), timeout=2) as s:
                print(s.recv(64).decode())
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2); s.sendto(b"hi", (host, port))
                data, peer = s.recvfrom(64)
                print(data.decode() + " from " + peer[0])
    except OSError as error:
        print("error " + type(error).__name__)
"""


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", f"{PREFIX}-{ns}", *argv]


def remove_namespaces() -> None:
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(f"{PREFIX}-"):
            subprocess.run(["ip", "netns", "pids", name], capture_output=True, check=False)
            for pid in run("ip", "netns", "pids", name).split():
                subprocess.run(["kill", "-9", pid], check=False)
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def network() -> Iterator[None]:
    """The namespaces, links and routes of the picture above; removed even on failure."""
    remove_namespaces()
    try:
        for ns in ("lb", "client", *SERVERS):
            run("ip", "netns", "add", f"{PREFIX}-{ns}")
            run(*in_ns(ns, "ip", "link", "set", "lo", "up"))
        run(*in_ns("lb", "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        # IPVS NAT: let the LB answer for the VIP on the client side.
        links = {"client": ("203.0.113.1/24", f"{CLIENT}/24"), **{
            ns: (f"{lb_ip}/30", f"{rs_ip}/30") for ns, (lb_ip, rs_ip) in SERVERS.items()
        }}  # fmt: skip
        for ns, (lb_address, peer_address) in links.items():
            lb_side, peer_side = f"{PREFIX}{ns}a", f"{PREFIX}{ns}b"
            run("ip", "link", "add", lb_side, "type", "veth", "peer", "name", peer_side)
            run("ip", "link", "set", lb_side, "netns", f"{PREFIX}-lb")
            run("ip", "link", "set", peer_side, "netns", f"{PREFIX}-{ns}")
            run(*in_ns("lb", "ip", "addr", "add", lb_address, "dev", lb_side))
            run(*in_ns("lb", "ip", "link", "set", lb_side, "up"))
            run(*in_ns(ns, "ip", "addr", "add", peer_address, "dev", peer_side))
            run(*in_ns(ns, "ip", "link", "set", peer_side, "up"))
            gateway = lb_address.split("/")[0]
            run(*in_ns(ns, "ip", "route", "add", "default", "via", gateway))
        run(*in_ns("lb", "ip", "addr", "add", f"{VIP}/32", "dev", f"{PREFIX}clienta"))
        yield
    finally:
        remove_namespaces()


@pytest.fixture
def real_servers(network: None) -> Iterator[dict[str, subprocess.Popen]]:
    processes = {
        ns: subprocess.Popen(
            in_ns(ns, sys.executable, "-c", SERVER_PROGRAM, ns, rs_ip, str(TCP_PORT), str(UDP_PORT))
        )
        for ns, (_lb_ip, rs_ip) in SERVERS.items()
    }
    try:
        for ns, (_lb_ip, rs_ip) in SERVERS.items():
            deadline = time.monotonic() + 10
            while f"{rs_ip}:{TCP_PORT}" not in run(*in_ns(ns, "ss", "-ltn")):
                assert time.monotonic() < deadline, f"the server in {ns} did not start"
                time.sleep(0.05)
        yield processes
    finally:
        for process in processes.values():
            process.kill()
            process.wait(timeout=5)


def client(kind: str, host: str, port: int, count: int) -> list[str]:
    argv = in_ns("client", sys.executable, "-c", CLIENT_PROGRAM, kind, host, str(port), str(count))
    return run(*argv).splitlines()


def test_the_test_network_routes_through_the_load_balancer(real_servers) -> None:
    """The plumbing the traffic test relies on (runs everywhere, IPVS or not): the client
    reaches each server only through the LB namespace, and the server sees the client."""
    for ns, (_lb_ip, rs_ip) in SERVERS.items():
        assert client("tcp", rs_ip, TCP_PORT, 1) == [f"{ns} {CLIENT}"]
        assert client("udp", rs_ip, UDP_PORT, 1) == [f"{ns} {CLIENT} from {rs_ip}"]


@pytest.mark.skipif(
    not ipvs_available(),
    reason="this kernel has no IPVS (no /proc/net/ip_vs, no ip_vs module): Layer 4 traffic "
    "cannot flow here; the Layer 4 configuration is still rendered, checked by keepalived -t "
    "and applied (tests/test_l4_apply.py, tests/render/test_keepalived_golden.py)",
)
def test_tcp_and_udp_through_an_ipvs_nat_service(real_servers, tmp_path: Path) -> None:
    servers = tuple(
        L4RealServer(ns.upper(), rs_ip, None) for ns, (_lb_ip, rs_ip) in SERVERS.items()
    )
    snapshot = KeepalivedSnapshot(
        services=(
            L4VirtualService(
                label="IntEdgeAccess5061", ip=VIP, ports=(TCP_PORT,), protocol=L4Protocol.TCP,
                forwarding=Forwarding.NAT, persistence=True, persistence_timeout_s=1800,
                health_check=L4HealthCheck.CONNECT, check_interval_s=1, check_timeout_s=1,
                real_servers=servers,
            ),
            L4VirtualService(
                label="IntEdgeAv3478", ip=VIP, ports=(UDP_PORT,), protocol=L4Protocol.UDP,
                forwarding=Forwarding.NAT, persistence=True, persistence_timeout_s=1800,
                health_check=L4HealthCheck.NONE, real_servers=servers,
            ),
        )
    )  # fmt: skip
    config = tmp_path / "keepalived.conf"
    config.write_text(render_keepalived(snapshot, RuntimeLayout.under(tmp_path)))
    keepalived = subprocess.Popen(
        in_ns(
            "lb", "keepalived", "--dont-fork", "--log-console", "--use-file", str(config),
            "--pid", str(tmp_path / "k.pid"), "--vrrp_pid", str(tmp_path / "v.pid"),
            "--checkers_pid", str(tmp_path / "c.pid"),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def servers_in(port: int) -> int:
            """Real servers IPVS has in the TCP service on port, in the LB's namespace."""
            table = parse_ip_vs(run(*in_ns("lb", "cat", "/proc/net/ip_vs")))
            return sum(
                len(service.real_servers)
                for service in table
                if (service.protocol, service.ip, service.port) == ("tcp", VIP, port)
            )

        deadline = time.monotonic() + 15
        while servers_in(TCP_PORT) < 2:
            assert time.monotonic() < deadline, "keepalived did not put both servers in service"
            time.sleep(0.2)

        # NAT: each server sees the client's own address; persistence: one server throughout.
        answers = client("tcp", VIP, TCP_PORT, 10)
        assert len(set(answers)) == 1, answers
        chosen, seen = answers[0].split()
        assert seen == CLIENT
        udp = client("udp", VIP, UDP_PORT, 5)
        assert len(set(udp)) == 1 and udp[0].endswith(f"{CLIENT} from {VIP}"), udp

        # Health-check removal: stop the chosen server; keepalived takes it out and new
        # connections go to the other one.
        real_servers[chosen].kill()
        deadline = time.monotonic() + 15
        while servers_in(TCP_PORT) > 1:
            assert time.monotonic() < deadline, "keepalived did not remove the dead server"
            time.sleep(0.2)
        other = next(ns for ns in SERVERS if ns != chosen)
        assert set(client("tcp", VIP, TCP_PORT, 5)) == {f"{other} {CLIENT}"}
    finally:
        keepalived.terminate()
        keepalived.wait(timeout=10)
