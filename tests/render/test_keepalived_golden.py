"""render_keepalived: golden files, `keepalived -t` on each, determinism, hostile values.

The golden files are the review surface: read them when they change. To rewrite them after an
intended change of the renderer:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_keepalived_golden.py

Without UPDATE_GOLDEN nothing is written; a mismatch fails with a diff.

This kernel has no IPVS, so keepalived cannot run these virtual servers here; `keepalived -t`
still parses and validates them fully (measured below: it exits 5 on any config error).

VRRP: `keepalived -t` refuses a vrrp_instance whose interface does not exist on the host
("Non-existent interface specified in configuration", exit 5). The golden files name the
interfaces of an appliance (eth1, eth2, eth3), and every file with a vrrp_instance is checked
unchanged inside a network namespace this module makes with those interfaces (veth pairs,
both ends inside it), so the file checked is byte for byte the golden one; the namespace is
removed afterwards, pass or fail.
"""

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import RuntimeLayout, find_binary
from lbadmin.render.bootstrap import render_keepalived_bootstrap
from lbadmin.render.keepalived import render_keepalived
from lbadmin.render.snapshot import (
    AdminState,
    Forwarding,
    KeepalivedSnapshot,
    L4HealthCheck,
    L4Protocol,
    L4RealServer,
    L4VirtualService,
    Scheduler,
    VrrpInstance,
)
from tests.render.golden import assert_golden

GOLDEN_DIR = Path(__file__).parent / "golden_keepalived"
ROOT = Path(__file__).resolve().parents[2]
LAYOUT = RuntimeLayout.under(Path("/var/lib/lbadmin"))
# What keepalived 2.2.7 exits with for a config error (measured; also its docs' KEEPALIVED_
# EXIT_CONFIG).
KEEPALIVED_CONFIG_ERROR = 5


def edge(vip: str, label: str, port: int, servers: tuple[str, str], **changes: object):
    """One Edge pool VIP as the guide builds it: NAT, source-IP persistence, EDGE-1 and EDGE-2
    on the VIP's port, weight 100, minimum/maximum connections 0."""
    return L4VirtualService(
        label=label,
        ip=vip,
        ports=(port,),
        forwarding=Forwarding.NAT,
        persistence=True,
        real_servers=(
            L4RealServer("EDGE-1", servers[0], port),
            L4RealServer("EDGE-2", servers[1], port),
        ),
        **changes,
    )


INTERNAL_SERVERS = ("192.168.100.10", "192.168.100.11")
EXTERNAL_SERVERS = ("10.20.1.10", "10.20.1.11")

# The guide, STEP 4: the internal Edge pool, all on 192.168.10.10, persistence timeout 1800.
INTERNAL_EDGE = tuple(
    edge(
        "192.168.10.10",
        label,
        port,
        INTERNAL_SERVERS,
        protocol=protocol,
        persistence_timeout_s=1800,
    )
    for label, port, protocol in (
        ("IntEdgeAccess5061", 5061, L4Protocol.TCP),
        ("IntEdgeWebConf8057", 8057, L4Protocol.TCP),
        ("IntEdgeAv443", 443, L4Protocol.TCP),
        ("IntEdgeAv3478", 3478, L4Protocol.UDP),
        ("IntEdgeAv5062", 5062, L4Protocol.TCP),
    )
)
# STEP 5: the external Edge pool on three addresses. The guide's steps for it set no
# persistence timeout, so the appliance's default (300 s) applies.
EXTERNAL_EDGE = tuple(
    edge(vip, label, port, EXTERNAL_SERVERS, protocol=protocol)
    for label, vip, port, protocol in (
        ("ExtEdgeAccess443", "10.25.1.10", 443, L4Protocol.TCP),
        ("ExtEdgeAccess5061", "10.25.1.10", 5061, L4Protocol.TCP),
        ("ExtEdgeAccess5269", "10.25.1.10", 5269, L4Protocol.TCP),  # Lync 2013 only
        ("ExtEdgeWeb443", "10.25.1.11", 443, L4Protocol.TCP),
        ("ExtEdgeAv443", "10.25.1.12", 443, L4Protocol.TCP),
        ("ExtEdgeAv3478", "10.25.1.12", 3478, L4Protocol.UDP),
    )
)

WEB = L4VirtualService(
    label="web",
    ip="192.0.2.10",
    ports=(80,),
    real_servers=(
        L4RealServer("web1", "192.0.2.11", 80),
        L4RealServer("web2", "192.0.2.12", 80, weight=50),
    ),
)


def web(label: str, last_octet: int, **changes: object) -> L4VirtualService:
    values: dict = {"label": label, "ip": f"192.0.2.{last_octet}", **changes}
    return dataclasses.replace(WEB, **values)


# The guide's internal VIPs (Front End pool 192.168.10.30, Director pool 192.168.10.20,
# internal Edge 192.168.10.10) floating on eth1 between the master (192.168.10.1, priority 150)
# and the slave (192.168.10.2, priority 100).
GUIDE_VIPS = ("192.168.10.10", "192.168.10.20", "192.168.10.30")
MASTER_ETH1 = VrrpInstance(
    name="VI_eth1",
    interface="eth1",
    virtual_router_id=51,
    priority=150,
    local_ip="192.168.10.1",
    peer_ip="192.168.10.2",
    addresses=GUIDE_VIPS,
)
SLAVE_ETH1 = dataclasses.replace(
    MASTER_ETH1, priority=100, local_ip="192.168.10.2", peer_ip="192.168.10.1"
)
IPV6_ETH1 = VrrpInstance(
    name="VI6_eth1",
    interface="eth1",
    virtual_router_id=52,
    priority=150,
    local_ip="2001:db8:10::1",
    peer_ip="2001:db8:10::2",
    addresses=("2001:db8:10::10", "2001:db8:10::20"),
)
# The whole guide on the master: the reverse-proxy VIPs on eth2, the external Edge VIPs on
# eth3 (the external Edge pool's gateway side, 10.25.1.1, is the firewall's).
LYNC_VRRP = (
    MASTER_ETH1,
    VrrpInstance(
        name="VI_eth2",
        interface="eth2",
        virtual_router_id=52,
        priority=150,
        local_ip="192.168.20.11",
        peer_ip="192.168.20.12",
        addresses=("192.168.20.20", "192.168.20.30"),
    ),
    VrrpInstance(
        name="VI_eth3",
        interface="eth3",
        virtual_router_id=53,
        priority=150,
        local_ip="10.25.1.2",
        peer_ip="10.25.1.3",
        addresses=("10.25.1.10", "10.25.1.11", "10.25.1.12"),
    ),
)
VRRP_INTERFACES = ("eth1", "eth2", "eth3")


CASES: dict[str, KeepalivedSnapshot] = {
    "empty": KeepalivedSnapshot(),
    # STEP 4 and STEP 5 together, sorted by label as the snapshot builder does.
    "lync_edge": KeepalivedSnapshot(
        services=tuple(sorted(INTERNAL_EDGE + EXTERNAL_EDGE, key=lambda s: s.label))
    ),
    "router_id": KeepalivedSnapshot(router_id="lb-01.example_net", services=(WEB,)),
    "schedulers": KeepalivedSnapshot(
        services=tuple(
            web(scheduler.value, 20 + i, scheduler=scheduler)
            for i, scheduler in enumerate(Scheduler)
        )
    ),
    "forwarding": KeepalivedSnapshot(
        services=(
            web("nat", 30, forwarding=Forwarding.NAT),
            # DR and TUN keep the port: port-less servers take the block's.
            web(
                "dr",
                31,
                forwarding=Forwarding.DR,
                ports=(80, 443),
                real_servers=(
                    L4RealServer("dr1", "192.0.2.11", None),
                    L4RealServer("dr2", "192.0.2.12", None),
                ),
            ),
            web("tun", 32, forwarding=Forwarding.TUNNEL),
            # IPVS tunnels IPv6 to IPv4 real servers (keepalived accepts it for TUN only).
            web(
                "tun-6to4",
                0,
                ip="2001:db8::32",
                forwarding=Forwarding.TUNNEL,
            ),
        )
    ),
    "persistence_off": KeepalivedSnapshot(
        services=(web("no-persistence", 40, persistence=False, persistence_timeout_s=1800),)
    ),
    "persistence_bounds": KeepalivedSnapshot(
        services=(
            web("one-second", 41, persistence_timeout_s=1),
            web("thirty-one-days", 42, persistence_timeout_s=86400 * 31),
        )
    ),
    "tcp_udp": KeepalivedSnapshot(
        services=(
            web("dns", 50, ports=(53,), protocol=L4Protocol.TCP_UDP, real_servers=()),
            web(
                "sip",
                51,
                ports=(5060, 5061),
                protocol=L4Protocol.TCP_UDP,
                real_servers=(
                    L4RealServer("sip1", "192.0.2.52", None),
                    L4RealServer("sip2", "192.0.2.53", 15060),
                ),
            ),
        )
    ),
    "port_list": KeepalivedSnapshot(
        services=(
            web(
                "multi-port",
                60,
                ports=(5061, 135, 443),  # rendered in port order
                check_port=5061,
                real_servers=(
                    L4RealServer("fe1", "192.0.2.61", None),
                    L4RealServer("fe2", "192.0.2.62", None),
                ),
            ),
        )
    ),
    "check_connect_port": KeepalivedSnapshot(
        services=(
            web("tcp-check-port", 70, check_port=8080, check_interval_s=3, check_timeout_s=2),
            web(
                "udp-check-port",
                71,
                ports=(3478,),
                protocol=L4Protocol.UDP,
                check_port=3479,
                real_servers=(L4RealServer("av1", "192.0.2.72", 3478),),
            ),
        )
    ),
    "check_http": KeepalivedSnapshot(
        services=(
            web(
                "http-check",
                80,
                health_check=L4HealthCheck.HTTP,
                check_path="/health/status.html?probe=lbadmin&x=%2F~a,b:c@d+e-f_g",
                check_status=204,
            ),
            # HTTP check of a UDP service: keepalived connects over TCP to the check port.
            web(
                "http-check-udp",
                81,
                protocol=L4Protocol.UDP,
                health_check=L4HealthCheck.HTTP,
                check_port=8080,
            ),
        )
    ),
    "check_https": KeepalivedSnapshot(
        services=(
            web(
                "https-check",
                90,
                ports=(443,),
                health_check=L4HealthCheck.HTTPS,
                check_path="/" + "a" * 254,
                check_status=301,
                check_timeout_s=3600,
                check_interval_s=3600,
                real_servers=(L4RealServer("s1", "192.0.2.91", 4443),),
            ),
        )
    ),
    "check_none": KeepalivedSnapshot(
        services=(
            # Leftover check settings of another kind are ignored.
            web("no-check", 100, health_check=L4HealthCheck.NONE, check_port=8080),
        )
    ),
    "thresholds": KeepalivedSnapshot(
        services=(
            web(
                "thresholds",
                110,
                real_servers=(
                    L4RealServer(
                        "both", "192.0.2.111", 80, min_connections=10, max_connections=100
                    ),
                    L4RealServer("upper-only", "192.0.2.112", 80, max_connections=500),
                    L4RealServer("lower-only", "192.0.2.113", 80, min_connections=5),
                    L4RealServer("equal", "192.0.2.114", 80, min_connections=7, max_connections=7),
                    L4RealServer("none", "192.0.2.115", 80),
                    L4RealServer(
                        "extremes", "192.0.2.116", 80, weight=65535, max_connections=2**32 - 1
                    ),
                ),
            ),
        )
    ),
    # System Overview's drain and halt, as they must survive a restart.
    "admin_states": KeepalivedSnapshot(
        services=(
            web(
                "states",
                120,
                real_servers=(
                    L4RealServer("rip1", "192.0.2.121", 80, state=AdminState.DRAIN),
                    L4RealServer("rip2", "192.0.2.122", 80, state=AdminState.HALT),
                    L4RealServer("rip3", "192.0.2.123", 80),
                    L4RealServer("rip4", "192.0.2.124", 80, weight=0),
                ),
            ),
            # Every server halted: keepalived would ignore the virtual server (and -t fails).
            web(
                "all-halted",
                125,
                real_servers=(
                    L4RealServer("h1", "192.0.2.126", 80, state=AdminState.HALT),
                    L4RealServer("h2", "192.0.2.127", 80, state=AdminState.HALT),
                ),
            ),
            web("no-servers", 128, real_servers=()),
        )
    ),
    "ipv6": KeepalivedSnapshot(
        services=(
            L4VirtualService(
                label="v6-edge",
                ip="2001:db8::10",
                ports=(443, 3478),
                protocol=L4Protocol.TCP_UDP,
                persistence_timeout_s=1800,
                real_servers=(
                    L4RealServer("v6-1", "2001:db8:100::10", None),
                    L4RealServer("v6-2", "2001:db8:100::11", None, weight=50),
                ),
            ),
            L4VirtualService(
                label="v6-http",
                ip="2001:db8::20",
                ports=(80,),
                forwarding=Forwarding.DR,
                scheduler=Scheduler.SH,
                health_check=L4HealthCheck.HTTP,
                check_path="/",
                real_servers=(L4RealServer("v6-3", "::1", 80),),
            ),
        )
    ),
    # HA pair: the floating addresses (VRRPv3).
    "vrrp_master": KeepalivedSnapshot(vrrp=(MASTER_ETH1,)),
    "vrrp_slave": KeepalivedSnapshot(router_id="lbslave", vrrp=(SLAVE_ETH1,)),
    "vrrp_preempt": KeepalivedSnapshot(
        vrrp=(dataclasses.replace(MASTER_ETH1, preempt=True, advert_interval_ms=1250),)
    ),
    "vrrp_ipv6": KeepalivedSnapshot(vrrp=(IPV6_ETH1,)),
    # A broken pair's addresses kept by the node that held them, without VRRP.
    "standalone_kept_addresses": KeepalivedSnapshot(
        services=(WEB,),
        static_addresses=(("192.168.10.10", "eth1"), ("2001:db8:10::10", "eth1")),
    ),
    # One instance per address family; a VRID is per family, so both may use 51.
    "vrrp_dual_stack": KeepalivedSnapshot(
        vrrp=(MASTER_ETH1, dataclasses.replace(IPV6_ETH1, virtual_router_id=51))
    ),
    "vrrp_bounds": KeepalivedSnapshot(
        vrrp=(
            dataclasses.replace(
                MASTER_ETH1,
                name="x" * 32,
                virtual_router_id=1,
                priority=1,
                advert_interval_ms=10,
                addresses=("192.168.10.10",),
            ),
            dataclasses.replace(
                MASTER_ETH1,
                name="VI-2",
                virtual_router_id=255,
                priority=254,
                advert_interval_ms=40950,
                addresses=("192.168.10.20",),
            ),
        )
    ),
    "lync_ha": KeepalivedSnapshot(
        services=tuple(sorted(INTERNAL_EDGE + EXTERNAL_EDGE, key=lambda s: s.label)),
        vrrp=LYNC_VRRP,
    ),
}


def keepalived_check(
    config: str, tmp_path: Path, netns: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`keepalived -e -t -f` (as lbadmin.engines.daemons runs it) on a file that exists, in
    the network namespace ``netns`` if given (``ip netns exec``)."""
    binary = find_binary("keepalived")
    if binary is None:
        pytest.fail("keepalived is not installed (apt-get install keepalived)")
    path = tmp_path / "keepalived.conf"
    path.write_text(config)
    assert path.is_file()  # -t without -e exits 0 for a missing file
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(
        [*prefix, binary, "-e", "-t", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert_golden(render_keepalived(CASES[case], LAYOUT), GOLDEN_DIR / f"{case}.conf")


def test_no_stale_golden_files() -> None:
    assert {path.stem for path in GOLDEN_DIR.glob("*.conf")} == set(CASES)


@pytest.fixture(scope="module")
def vrrp_netns() -> Iterator[str]:
    """A network namespace with the golden files' interfaces (eth1..eth3, up), or a skip."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("checking vrrp_instance blocks needs root and iproute2 (a namespace)")
    name = f"kgt{os.getpid()}"

    def ip(*argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)

    with contextlib.suppress(subprocess.CalledProcessError):
        ip("netns", "del", name)
    try:
        ip("netns", "add", name)
        for interface in VRRP_INTERFACES:
            peer = f"{interface}p"
            ip("-n", name, "link", "add", interface, "type", "veth", "peer", "name", peer)
            ip("-n", name, "link", "set", interface, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keepalived_accepts_silently(case: str, tmp_path: Path, request) -> None:
    # eth1 exists in the namespace the VRRP fixture makes.
    uses_eth1 = CASES[case].vrrp or CASES[case].static_addresses
    netns = request.getfixturevalue("vrrp_netns") if uses_eth1 else None
    result = keepalived_check(render_keepalived(CASES[case], LAYOUT), tmp_path, netns)
    assert result.returncode == 0, result.stdout + result.stderr
    # keepalived reports its "warnings" (config it corrects) the same way as errors.
    assert result.stdout + result.stderr == ""


# ---------------------------------------------------------------------------------------------
# keepalived -t really parses: what it does with broken files (measured on 2.2.7). These also
# pin the keepalived behaviour the renderer's refusals rest on: if a later keepalived accepts
# one of them, the matching refusal can be relaxed.

SERVER = "real_server 192.0.2.11 80 {\n weight 1\n}\n"
REFUSED_BY_KEEPALIVED = {
    "unknown scheduler": f"virtual_server 1.2.3.4 80 {{\n lb_algo nonsense\n protocol TCP\n"
    f"{SERVER}}}\n",
    "one-line block with unknown scheduler": "virtual_server 1.2.3.4 80 { lb_algo nonsense }\n",
    "unknown keyword": f"virtual_server 192.0.2.10 80 {{\n protocol TCP\n lb_kind NAT\n"
    f" lb_algo wlc\n bogus_keyword 3\n{SERVER}}}\n",
    "no real server": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n lb_kind NAT\n"
    " protocol TCP\n}\n",
    "total weight 0": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n lb_kind NAT\n"
    " protocol TCP\n real_server 192.0.2.11 80 {\n weight 0\n }\n}\n",
    "DR to another port": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n lb_kind DR\n"
    " protocol TCP\n real_server 192.0.2.11 8080 {\n weight 1\n }\n}\n",
    "IPv6 server behind NAT of an IPv4 VIP": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n"
    " lb_kind NAT\n protocol TCP\n real_server 2001:db8::11 80 {\n weight 1\n }\n}\n",
    "duplicate real server": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n lb_kind NAT\n"
    f" protocol TCP\n{SERVER}{SERVER}}}\n",
    "persistence over 31 days": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n lb_kind NAT\n"
    f" persistence_timeout 2678401\n protocol TCP\n{SERVER}}}\n",
    "status code 600": "virtual_server 192.0.2.10 80 {\n lb_algo wlc\n lb_kind NAT\n"
    " protocol TCP\n real_server 192.0.2.11 80 {\n weight 1\n HTTP_GET {\n url {\n path /\n"
    " status_code 600\n }\n }\n }\n}\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED_BY_KEEPALIVED))
def test_keepalived_refuses_broken_files(name: str, tmp_path: Path) -> None:
    result = keepalived_check(REFUSED_BY_KEEPALIVED[name], tmp_path)
    assert result.returncode == KEEPALIVED_CONFIG_ERROR, result.stderr


def vrrp_text(global_defs: str = "vrrp_version 3", **changes: str) -> str:
    """A vrrp_instance shaped like the renderer's, with some lines changed or added."""
    lines = {
        "state": "BACKUP",
        "interface": "eth1",
        "virtual_router_id": "51",
        "priority": "150",
        "advert_int": "0.1",
        "nopreempt": "",
        "unicast_src_ip": "192.168.10.1",
        "unicast_peer": "{\n  192.168.10.2\n }",
        "virtual_ipaddress": "{\n  192.168.10.10/32 dev eth1\n }",
        **changes,
    }
    text = "\n".join(f" {key} {value}".rstrip() for key, value in lines.items())
    return f"global_defs {{\n {global_defs}\n}}\nvrrp_instance VI_1 {{\n{text}\n}}\n"


def second_instance(name: str = "VI_2", **changes: str) -> str:
    """vrrp_text's instance block alone, named ``name``, floating 192.168.10.11."""
    block = vrrp_text(virtual_ipaddress="{\n  192.168.10.11/32 dev eth1\n }", **changes).split(
        "\n}\n", 1
    )[1]
    return block.replace("VI_1", name)


VRRP_ACCEPTED_BY_KEEPALIVED = {
    "the renderer's shape": vrrp_text(),
    "per instance version 3": vrrp_text("router_id x", version="3"),
    "advert 0.01 s": vrrp_text(advert_int="0.01"),
    "advert 40.95 s": vrrp_text(advert_int="40.95"),
    # keepalived -t does not check that the source address is on the interface.
    "source address of another subnet": vrrp_text(unicast_src_ip="10.9.9.9"),
    "check_unicast_src": vrrp_text(check_unicast_src=""),
    # Accepted by keepalived, refused by the renderer (defence in depth).
    "peer is this node": vrrp_text(unicast_peer="{\n  192.168.10.1\n }"),
    "floating address is the node's own": vrrp_text(
        virtual_ipaddress="{\n  192.168.10.1/32 dev eth1\n }"
    ),
}
# name: (file, what keepalived 2.2.7 says about it)
VRRP_REFUSED_BY_KEEPALIVED = {
    # VRRPv2 (the default) counts whole seconds.
    "sub-second advert without VRRPv3": (
        vrrp_text("router_id x"),
        "VRRPv2 advertisement interval 0.100000s must be an integer",
    ),
    "missing interface": (vrrp_text(interface="eth9"), "Non-existent interface"),
    # VRRPv3 carries the interval in 12 bits of centiseconds.
    "advert over 40.95 s": (vrrp_text(advert_int="41"), "Must be less than 40.96s"),
    "advert 255 s": (vrrp_text(advert_int="255"), "Must be less than 40.96s"),
    "advert not in 10 ms units": (vrrp_text(advert_int="0.015"), "must be in units of 10ms"),
    "advert under 10 ms": (vrrp_text(advert_int="0.005"), "outside range [0.010000"),
    "priority 0": (vrrp_text(priority="0"), "Priority not valid"),
    # 255 is the address owner's priority.
    "priority 255 with nopreempt": (
        vrrp_text(priority="255"),
        "nopreempt is incompatible with priority 255",
    ),
    "nopreempt with state MASTER": (
        vrrp_text(state="MASTER"),
        "nopreempt will not work with initial state MASTER",
    ),
    "IPv6 floating address in an IPv4 instance": (
        vrrp_text(
            virtual_ipaddress="{\n  192.168.10.10/32 dev eth1\n  2001:db8::10/128 dev eth1\n }"
        ),
        "address family must match VRRP instance",
    ),
    "IPv4 peer of an IPv6 instance": (
        vrrp_text(
            unicast_src_ip="2001:db8::1", virtual_ipaddress="{\n  2001:db8::10/128 dev eth1\n }"
        ),
        "MUST be of the same family",
    ),
    "VRID twice on one interface and family": (
        vrrp_text() + second_instance(),
        "duplicate VRID conflict",
    ),
    "instance name twice": (
        vrrp_text() + second_instance(name="VI_1", virtual_router_id="52"),
        "vrrp instance VI_1 already defined",
    ),
}


@pytest.mark.parametrize("name", sorted(VRRP_ACCEPTED_BY_KEEPALIVED))
def test_keepalived_accepts_these_vrrp_files(name: str, tmp_path: Path, vrrp_netns: str) -> None:
    result = keepalived_check(VRRP_ACCEPTED_BY_KEEPALIVED[name], tmp_path, vrrp_netns)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(VRRP_REFUSED_BY_KEEPALIVED))
def test_keepalived_refuses_broken_vrrp_files(name: str, tmp_path: Path, vrrp_netns: str) -> None:
    text, message = VRRP_REFUSED_BY_KEEPALIVED[name]
    result = keepalived_check(text, tmp_path, vrrp_netns)
    assert result.returncode == KEEPALIVED_CONFIG_ERROR, result.stderr
    assert message in result.stderr


def test_vrrp_instances_need_their_interface(tmp_path: Path) -> None:
    """Why the VRRP golden files are checked in a namespace: outside it, no eth1."""
    text = render_keepalived(CASES["vrrp_master"], LAYOUT)
    interfaces = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    if ": eth1:" in interfaces or ": eth1@" in interfaces:
        pytest.skip("this host has an eth1")
    result = keepalived_check(text, tmp_path)
    assert result.returncode == KEEPALIVED_CONFIG_ERROR
    assert "Non-existent interface" in result.stderr


def test_keepalived_test_mode_and_missing_files(tmp_path: Path) -> None:
    binary = find_binary("keepalived")
    assert binary is not None
    missing = tmp_path / "missing.conf"
    run = {"capture_output": True, "text": True, "timeout": 30, "check": False}
    # Plain -t passes a missing file; -e (what the engine adds) makes it an error.
    assert subprocess.run([binary, "-t", "-f", str(missing)], **run).returncode == 0
    assert subprocess.run([binary, "-e", "-t", "-f", str(missing)], **run).returncode != 0


def test_comment_characters_cut_words(tmp_path: Path) -> None:
    """Why check paths refuse '#' and '!': keepalived drops the rest of the line even
    mid-word, so `delay_loop 1#0` reads as `delay_loop 1` (a bad number would fail)."""
    for text in ("1#0", "1!0"):
        config = (
            f"virtual_server 192.0.2.10 80 {{\n delay_loop {text}\n lb_algo wlc\n"
            f" lb_kind NAT\n protocol TCP\n{SERVER}}}\n"
        )
        assert keepalived_check(config, tmp_path).returncode == 0
    config = f"virtual_server 192.0.2.10 80 {{\n delay_loop 1;0\n protocol TCP\n{SERVER}}}\n"
    assert keepalived_check(config, tmp_path).returncode == KEEPALIVED_CONFIG_ERROR


# ---------------------------------------------------------------------------------------------
# Content


def test_the_bootstrap_is_the_empty_snapshot() -> None:
    assert render_keepalived_bootstrap(LAYOUT) == render_keepalived(KeepalivedSnapshot(), LAYOUT)
    assert render_keepalived_bootstrap(LAYOUT, router_id="node-b") == render_keepalived(
        KeepalivedSnapshot(router_id="node-b"), LAYOUT
    )


def blocks(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("virtual_server ")]


def test_lync_edge_key_lines() -> None:
    text = render_keepalived(CASES["lync_edge"], LAYOUT)
    assert len(blocks(text)) == 11
    section = text[text.index("# Virtual service IntEdgeAv3478\n") :]
    section = section[: section.index("\n}\n")]
    assert section.splitlines() == [
        "# Virtual service IntEdgeAv3478",
        "virtual_server 192.168.10.10 3478 {",
        "    delay_loop 10",
        "    lb_algo wlc",
        "    lb_kind NAT",
        "    persistence_timeout 1800",
        "    protocol UDP",
        "    retry 2",
        "    delay_before_retry 2",
        "    # EDGE-1",
        "    real_server 192.168.100.10 3478 {",
        "        weight 100",
        "        UDP_CHECK {",
        "            connect_port 3478",
        "            connect_timeout 5",
        "        }",
        "    }",
        "    # EDGE-2",
        "    real_server 192.168.100.11 3478 {",
        "        weight 100",
        "        UDP_CHECK {",
        "            connect_port 3478",
        "            connect_timeout 5",
        "        }",
        "    }",
    ]
    assert "virtual_server 10.25.1.12 3478 {" in blocks(text)
    assert text.count("TCP_CHECK {") == 18 and text.count("UDP_CHECK {") == 4
    assert text.count("persistence_timeout 1800") == 5
    assert text.count("persistence_timeout 300") == 6
    assert "threshold" not in text


def test_block_order_is_service_then_port_then_tcp_before_udp() -> None:
    text = render_keepalived(CASES["tcp_udp"], LAYOUT)
    protocols = [line.strip() for line in text.splitlines() if line.strip().startswith("protocol")]
    # dns has no real server: left out, with a comment saying so.
    assert blocks(text) == [
        "virtual_server 192.0.2.51 5060 {",
        "virtual_server 192.0.2.51 5060 {",
        "virtual_server 192.0.2.51 5061 {",
        "virtual_server 192.0.2.51 5061 {",
    ]
    assert protocols == ["protocol TCP", "protocol UDP"] * 2
    assert "# Virtual service dns: no real server in service" in text
    ports = render_keepalived(CASES["port_list"], LAYOUT)
    assert blocks(ports) == [f"virtual_server 192.0.2.60 {p} {{" for p in (135, 443, 5061)]
    assert ports.count("connect_port 5061") == 6


def test_admin_states() -> None:
    text = render_keepalived(CASES["admin_states"], LAYOUT)
    assert "real_server 192.0.2.122" not in text
    assert "    # rip2: halted, left out\n" in text
    assert "    # rip1: drained\n    real_server 192.0.2.121 80 {\n        weight 0\n" in text
    assert "    real_server 192.0.2.123 80 {\n        weight 100\n" in text
    assert blocks(text) == ["virtual_server 192.0.2.120 80 {"]
    assert "# Virtual service all-halted: no real server in service" in text


def test_rendering_is_deterministic() -> None:
    for snapshot in CASES.values():
        assert render_keepalived(snapshot, LAYOUT) == render_keepalived(snapshot, LAYOUT)
    rebuilt = KeepalivedSnapshot(
        services=tuple(dataclasses.replace(s) for s in CASES["lync_edge"].services)
    )
    expected = render_keepalived(CASES["lync_edge"], LAYOUT)
    assert render_keepalived(rebuilt, LAYOUT) == expected
    # Other hash seeds (set iteration) give the same bytes.
    script = (
        "import sys; from pathlib import Path\n"
        "from lbadmin.engines.daemons import RuntimeLayout\n"
        "from lbadmin.render.keepalived import render_keepalived\n"
        "from tests.render.test_keepalived_golden import CASES\n"
        "sys.stdout.write(render_keepalived(CASES['lync_edge'], "
        "RuntimeLayout.under(Path('/var/lib/lbadmin'))))\n"
    )
    for seed in ("1", "2"):
        output = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert output == expected


def vrrp_blocks(text: str) -> list[str]:
    """Each vrrp_instance block's lines, indentation removed."""
    found = []
    for chunk in text.split("\n\n"):
        lines = [line for line in chunk.splitlines() if not line.lstrip().startswith("#")]
        if lines and lines[0].startswith("vrrp_instance "):
            found.append([line.strip() for line in lines])
    return found


def test_vrrp_master_key_lines() -> None:
    text = render_keepalived(CASES["vrrp_master"], LAYOUT)
    assert vrrp_blocks(text) == [
        [
            "vrrp_instance VI_eth1 {",
            "state BACKUP",
            "interface eth1",
            "virtual_router_id 51",
            "priority 150",
            "advert_int 0.1",
            "nopreempt",
            "unicast_src_ip 192.168.10.1",
            "unicast_peer {",
            "192.168.10.2",
            "}",
            "check_unicast_src",
            # One constant, link-local address in the adverts; the services' unadvertised.
            "virtual_ipaddress {",
            "169.254.0.51/32 dev eth1",
            "}",
            "virtual_ipaddress_excluded {",
            "192.168.10.10/32 dev eth1",
            "192.168.10.20/32 dev eth1",
            "192.168.10.30/32 dev eth1",
            "}",
            "}",
        ]
    ]
    assert "    vrrp_version 3\n}\n" in text
    assert "vrrp_sync_group" not in text  # keepalived refuses a group of one
    slave = vrrp_blocks(render_keepalived(CASES["vrrp_slave"], LAYOUT))[0]
    assert "priority 100" in slave and "unicast_src_ip 192.168.10.2" in slave
    assert slave[slave.index("unicast_peer {") + 1] == "192.168.10.1"


def test_vrrp_version_only_with_vrrp() -> None:
    for name, snapshot in CASES.items():
        text = render_keepalived(snapshot, LAYOUT)
        assert ("vrrp_version 3" in text) == bool(snapshot.vrrp), name


def test_preempt_and_ipv6() -> None:
    preempt = vrrp_blocks(render_keepalived(CASES["vrrp_preempt"], LAYOUT))[0]
    assert "nopreempt" not in preempt and "advert_int 1.25" in preempt
    ipv6 = vrrp_blocks(render_keepalived(CASES["vrrp_ipv6"], LAYOUT))[0]
    assert "unicast_src_ip 2001:db8:10::1" in ipv6
    assert "2001:db8:10::10/128 dev eth1" in ipv6


@pytest.mark.parametrize(
    ("ms", "text"),
    [(10, "0.01"), (100, "0.1"), (250, "0.25"), (1000, "1"), (1250, "1.25"), (3000, "3"),
     (10010, "10.01"), (40950, "40.95")],
)  # fmt: skip
def test_advert_int_text(ms: int, text: str) -> None:
    snapshot = KeepalivedSnapshot(vrrp=(dataclasses.replace(MASTER_ETH1, advert_interval_ms=ms),))
    assert f"advert_int {text}" in vrrp_blocks(render_keepalived(snapshot, LAYOUT))[0]


def test_lync_ha_order_and_sync_group() -> None:
    """global_defs, the instances, their sync group, then the virtual servers."""
    text = render_keepalived(CASES["lync_ha"], LAYOUT)
    heads = [
        line.split(" {")[0]
        for line in text.splitlines()
        if line and not line[0].isspace() and line.endswith("{")
    ]
    assert heads[:5] == [
        "global_defs",
        "vrrp_instance VI_eth1",
        "vrrp_instance VI_eth2",
        "vrrp_instance VI_eth3",
        "vrrp_sync_group VG_lbadmin",
    ]
    assert len(heads) == 5 + 11 and all(h.startswith("virtual_server ") for h in heads[5:])
    group = text[text.index("vrrp_sync_group") :]
    assert group.split("}")[0].split() == [
        "vrrp_sync_group", "VG_lbadmin", "{", "group", "{", "VI_eth1", "VI_eth2", "VI_eth3",
    ]  # fmt: skip
    # Every Layer 4 VIP floats.
    floating = {line.split("/")[0].strip() for line in text.splitlines() if "/32 dev" in line}
    assert {s.ip for s in CASES["lync_ha"].services} <= floating
    # The Layer 4 part is the lync_edge file's.
    edge = render_keepalived(CASES["lync_edge"], LAYOUT)
    assert text.endswith(edge[edge.index("# Virtual service") :])


# ---------------------------------------------------------------------------------------------
# Hostile values: each one raises ValueError before anything is rendered.


def one_service(**changes: object) -> KeepalivedSnapshot:
    return KeepalivedSnapshot(services=(dataclasses.replace(WEB, **changes),))


def one_server(**changes: object) -> KeepalivedSnapshot:
    server = dataclasses.replace(WEB.real_servers[0], **changes)
    return one_service(real_servers=(server, WEB.real_servers[1]))


def http_check(path: str) -> KeepalivedSnapshot:
    return one_service(health_check=L4HealthCheck.HTTP, check_path=path)


HOSTILE_LABELS = [
    'web\n    notify_master "/bin/sh -c id"',
    'web\nnotify_up "/bin/sh -c id"',
    "web\n",
    "web#x",
    "web!x",
    "web x",
    "web{",
    'web"',
    "web$x",
    "",
    "x" * 65,
    "wéb",
    None,
]
HOSTILE_IPS = [
    "192.0.2.10 80",
    "192.0.2.10\n",
    " 192.0.2.10",
    "192.0.2.10:80",
    "[2001:db8::1]",
    "2001:DB8::1",  # not canonical
    "2001:db8:0::1",  # not canonical
    "fe80::1%eth0",
    "010.0.0.10",
    "192.0.2.10#",
    "localhost",
    "",
    None,
]
HOSTILE_PATHS = [
    "/a b",
    "/a\tb",
    "/a#b",
    "/a!b",
    "/a{b",
    "/a}b",
    "/a$b",
    "/${HOME}",
    "/a\nb",
    '/a"b',
    "/a'b",
    "/a\\b",
    "/a;b",
    "/a\x00b",
    "/a\x7fb",
    "/é",
    "health",
    "",
    "/" + "a" * 255,  # 256 characters
    None,
]


def one_vrrp(**changes: object) -> KeepalivedSnapshot:
    return KeepalivedSnapshot(vrrp=(dataclasses.replace(MASTER_ETH1, **changes),))


def two_vrrp(**changes: object) -> KeepalivedSnapshot:
    """MASTER_ETH1 and a second instance (VI_2, VRID 52, 192.168.10.40) with changes."""
    second = dataclasses.replace(
        MASTER_ETH1, name="VI_2", virtual_router_id=52, addresses=("192.168.10.40",)
    )
    return KeepalivedSnapshot(vrrp=(MASTER_ETH1, dataclasses.replace(second, **changes)))


HOSTILE_VRRP_NAMES = [
    'VI_1\n    notify_master "/bin/sh -c id"',
    'VI_1\n}\nvrrp_script x {\n script "/bin/sh"',
    "VI_1\n",
    "VI 1",
    "VI_1#x",
    "VI_1!x",
    "VI.1",  # the allowlist: A-Z a-z 0-9 _ -
    "VI:1",
    "VI_1{",
    "VI$1",
    '"VI_1"',
    "",
    "x" * 33,
    "VIé",
    None,
    51,
]
HOSTILE_INTERFACES = [
    'eth1\n    notify_master "/bin/sh"',
    "eth1\n",
    "eth1 ",
    "eth 1",
    "eth1#",
    "eth1!x",
    "eth1{",
    "eth1/0",
    "eth1:0",
    "$IF",
    ".",
    "..",
    "",
    "x" * 16,
    "éth1",
    None,
]

VS = "virtual service web"
VI = "vrrp_instance VI_eth1"
NOT_CANONICAL = "IP address (not canonical IPv4/IPv6)"
CHECK_PATH = (
    f"{VS} check path must start with / and hold only A-Z a-z 0-9 . _ ~ % / ? & = + , : @ - "
    "(at most 255 characters)"
)
QUORUM = (
    f"{VS} (TCP 80): every real server in service has weight 0 or is drained, which "
    "keepalived 2.2.7 refuses (its quorum needs a total weight of at least 1); halt a server "
    "instead of draining the last one"
)
OTHER_FAMILY = (
    "is not of the virtual service's address family; only TUN forwarding can mix IPv4 and IPv6"
)
ONE_FAMILY = "make one instance per address family"


def integer(what: str, low: int, high: int) -> str:
    return f"{what} must be an integer from {low} to {high}"


# Each hostile snapshot and the message that refuses it (field, value and reason).
HOSTILE_SNAPSHOTS: dict[str, tuple[KeepalivedSnapshot, str]] = {
    **{
        f"service label {v!r}": (one_service(label=v), f"invalid virtual service label: {v!r}")
        for v in HOSTILE_LABELS
    },
    **{
        f"server label {v!r}": (one_server(label=v), f"invalid {VS} real server label: {v!r}")
        for v in HOSTILE_LABELS
    },
    **{
        f"vip {v!r}": (one_service(ip=v), f"invalid {VS} {NOT_CANONICAL}: {v!r}")
        for v in HOSTILE_IPS
    },
    **{
        f"server ip {v!r}": (
            one_server(ip=v),
            f"invalid {VS} real server web1 {NOT_CANONICAL}: {v!r}",
        )
        for v in HOSTILE_IPS
    },
    **{
        f"vip port {v!r}": (one_service(ports=(v,)), f"{integer(f'{VS} port', 1, 65535)}: {v!r}")
        for v in (0, 65536, -1, "80", True, 80.0)
    },
    "no vip port": (one_service(ports=()), f"{VS} has no port"),
    "vip port twice": (one_service(ports=(80, 80)), f"{VS} lists a port twice"),
    "ports as a bare string": (one_service(ports="80"), f"{VS} ports must be a tuple: '80'"),
    "ports as a list": (one_service(ports=[80]), f"{VS} ports must be a tuple: [80]"),
    "real servers as a bare string": (
        one_service(real_servers="web1"),
        f"{VS} real servers must be a tuple: 'web1'",
    ),
    "services as a bare string": (
        KeepalivedSnapshot(services="web"),
        "services must be a tuple: 'web'",
    ),
    **{
        f"server port {v!r}": (
            one_server(port=v),
            f"{integer(f'{VS} real server web1 port', 1, 65535)}: {v!r}",
        )
        for v in (0, 65536, "80", True)
    },
    **{
        f"check port {v!r}": (
            one_service(check_port=v),
            f"{integer(f'{VS} check port', 1, 65535)}: {v!r}",
        )
        for v in (0, 65536, "80", True)
    },
    **{
        f"weight {v!r}": (
            one_server(weight=v),
            f"{integer(f'{VS} real server web1 weight', 0, 65535)}: {v!r}",
        )
        for v in (-1, 65536, 1.5, "100", True)
    },
    **{
        f"min connections {v!r}": (
            one_server(min_connections=v),
            f"{integer(f'{VS} real server web1 minimum connections', 0, 2**32 - 1)}: {v!r}",
        )
        for v in (-1, 2**32, "0", False, 0.0)
    },
    **{
        f"max connections {v!r}": (
            one_server(max_connections=v),
            f"{integer(f'{VS} real server web1 maximum connections', 0, 2**32 - 1)}: {v!r}",
        )
        for v in (-1, 2**32, "0", False, 0.0)
    },
    "min connections over max": (
        one_server(min_connections=11, max_connections=10),
        f"{VS} real server web1: minimum connections 11 exceed maximum 10",
    ),
    **{
        f"persistence timeout {v!r}": (
            one_service(persistence_timeout_s=v),
            f"{integer(f'{VS} persistence timeout', 1, 86400 * 31)}: {v!r}",
        )
        for v in (0, -1, 86400 * 31 + 1, "1800", True)
    },
    "persistence not a bool": (
        one_service(persistence="yes"),
        f"{VS}: persistence must be True or False",
    ),
    **{
        f"check interval {v!r}": (
            one_service(check_interval_s=v),
            f"{integer(f'{VS} check interval', 1, 3600)}: {v!r}",
        )
        for v in (0, 3601, "10", True)
    },
    **{
        f"check timeout {v!r}": (
            one_service(check_timeout_s=v),
            f"{integer(f'{VS} check timeout', 1, 3600)}: {v!r}",
        )
        for v in (0, 3601, "5", 1.0)
    },
    **{f"check path {v!r}": (http_check(v), f"{CHECK_PATH}: {v!r}") for v in HOSTILE_PATHS},
    "https check path": (
        one_service(health_check=L4HealthCheck.HTTPS, check_path="/a#b"),
        f"{CHECK_PATH}: '/a#b'",
    ),
    **{
        f"check status {v!r}": (
            one_service(health_check=L4HealthCheck.HTTP, check_status=v),
            f"{integer(f'{VS} check status', 100, 599)}: {v!r}",
        )
        for v in (99, 600, 0, "200", True)
    },
    "unknown protocol": (one_service(protocol="sctp"), "'sctp' is not a valid L4Protocol"),
    "unknown forwarding": (one_service(forwarding="masq"), "'masq' is not a valid Forwarding"),
    "unknown scheduler": (one_service(scheduler="lc"), "'lc' is not a valid Scheduler"),
    "unknown health check": (
        one_service(health_check="ping"),
        "'ping' is not a valid L4HealthCheck",
    ),
    "unknown admin state": (one_server(state="maint"), "'maint' is not a valid AdminState"),
    **{
        f"router_id {v!r}": (KeepalivedSnapshot(router_id=v), f"unsafe router_id: {v!r}")
        for v in (
            "lb\n}\nvrrp_script x {",
            "lb 01",
            "lb#01",
            "lb:01",
            "lb$x",
            "",
            "x" * 65,
            None,
        )
    },
    # Combinations keepalived refuses (see REFUSED_BY_KEEPALIVED).
    "duplicate service label": (
        KeepalivedSnapshot(services=(WEB, dataclasses.replace(WEB, ip="192.0.2.99"))),
        "duplicate virtual service label 'web'",
    ),
    "same ip, port and protocol twice": (
        KeepalivedSnapshot(services=(WEB, dataclasses.replace(WEB, label="web-2"))),
        "virtual service web-2: 192.0.2.10 TCP port 80 is already used by another virtual service",
    ),
    "same ip and port, TCP_UDP over UDP": (
        KeepalivedSnapshot(
            services=(
                dataclasses.replace(WEB, protocol=L4Protocol.UDP),
                dataclasses.replace(
                    WEB, label="web-2", ports=(80, 443), protocol=L4Protocol.TCP_UDP
                ),
            )
        ),
        "virtual service web-2: 192.0.2.10 UDP port 80 is already used by another virtual service",
    ),
    "duplicate server label": (
        one_service(
            real_servers=(
                WEB.real_servers[0],
                dataclasses.replace(WEB.real_servers[1], label="web1"),
            )
        ),
        f"{VS}: duplicate real server label 'web1'",
    ),
    "duplicate server address": (
        one_service(
            real_servers=(WEB.real_servers[0], dataclasses.replace(WEB.real_servers[0], label="x"))
        ),
        f"{VS}: real server 192.0.2.11 port 80 is listed twice",
    ),
    "port-less server duplicating a server on the block port": (
        one_service(
            real_servers=(
                WEB.real_servers[0],
                dataclasses.replace(WEB.real_servers[0], label="x", port=None),
            )
        ),
        f"{VS}: real server 192.0.2.11 port 80 is listed twice",
    ),
    "DR to another port": (
        one_service(
            forwarding=Forwarding.DR, real_servers=(L4RealServer("a", "192.0.2.11", 8080),)
        ),
        f"{VS}: real server a port 8080 differs from the service port 80; DR forwarding keeps "
        "the port (leave the real server port blank)",
    ),
    "TUN to another port": (
        one_service(
            forwarding=Forwarding.TUNNEL,
            ports=(80, 443),
            real_servers=(L4RealServer("a", "192.0.2.11", 80),),
        ),
        f"{VS}: real server a port 80 differs from the service port 443; TUN forwarding keeps "
        "the port (leave the real server port blank)",
    ),
    "IPv6 server behind NAT of an IPv4 VIP": (
        one_server(ip="2001:db8::11"),
        f"{VS}: real server web1 (2001:db8::11) {OTHER_FAMILY}",
    ),
    "IPv4 server behind DR of an IPv6 VIP": (
        one_service(ip="2001:db8::10", forwarding=Forwarding.DR),
        f"{VS}: real server web1 (192.0.2.11) {OTHER_FAMILY}",
    ),
    "every server drained": (
        one_service(
            real_servers=tuple(
                dataclasses.replace(s, state=AdminState.DRAIN) for s in WEB.real_servers
            )
        ),
        QUORUM,
    ),
    "every server in service at weight 0": (
        one_service(
            real_servers=(
                dataclasses.replace(WEB.real_servers[0], weight=0),
                dataclasses.replace(WEB.real_servers[1], state=AdminState.HALT),
            )
        ),
        QUORUM,
    ),
    # VRRP
    **{
        f"vrrp name {v!r}": (
            one_vrrp(name=v),
            f"invalid vrrp_instance name (A-Z a-z 0-9 _ -, 1 to 32): {v!r}",
        )
        for v in HOSTILE_VRRP_NAMES
    },
    **{
        f"vrrp interface {v!r}": (one_vrrp(interface=v), f"invalid {VI} interface name: {v!r}")
        for v in HOSTILE_INTERFACES
    },
    **{
        f"vrid {v!r}": (
            one_vrrp(virtual_router_id=v),
            f"{integer(f'{VI} virtual_router_id', 1, 255)}: {v!r}",
        )
        for v in (0, 256, -1, "51", True, 51.0, None)
    },
    **{
        f"priority {v!r}": (one_vrrp(priority=v), f"{integer(f'{VI} priority', 1, 254)}: {v!r}")
        for v in (0, 255, -1, "150", True, 150.0)
    },
    **{
        f"local ip {v!r}": (one_vrrp(local_ip=v), f"invalid {VI} local {NOT_CANONICAL}: {v!r}")
        for v in HOSTILE_IPS
    },
    **{
        f"peer ip {v!r}": (one_vrrp(peer_ip=v), f"invalid {VI} peer {NOT_CANONICAL}: {v!r}")
        for v in HOSTILE_IPS
    },
    **{
        f"floating ip {v!r}": (
            one_vrrp(addresses=(v,)),
            f"invalid {VI} floating {NOT_CANONICAL}: {v!r}",
        )
        for v in HOSTILE_IPS
    },
    **{
        f"advert interval {v!r}": (
            one_vrrp(advert_interval_ms=v),
            f"{integer(f'{VI} advert interval', 10, 40950)}: {v!r}",
        )
        for v in (0, 5, 9, 40951, 40960, 25500 * 2, -100, "100", True, 100.0, None)
    },
    **{
        f"advert interval {v!r}": (
            one_vrrp(advert_interval_ms=v),
            f"{VI}: advert interval must be a multiple of 10 ms: {v!r}",
        )
        for v in (15, 101)
    },
    **{
        f"preempt {v!r}": (one_vrrp(preempt=v), f"{VI}: preempt must be True or False")
        for v in ("yes", 1, 0, None)
    },
    "peer is this node": (
        one_vrrp(peer_ip="192.168.10.1"),
        f"{VI}: the peer address is this node's own (192.168.10.1)",
    ),
    "no floating address": (one_vrrp(addresses=()), f"{VI} has no floating address"),
    "addresses as a bare string": (
        one_vrrp(addresses="192.168.10.10"),
        f"{VI} addresses must be a tuple: '192.168.10.10'",
    ),
    "addresses as a list": (
        one_vrrp(addresses=["192.168.10.10"]),
        f"{VI} addresses must be a tuple: ['192.168.10.10']",
    ),
    "floating address twice": (
        one_vrrp(addresses=("192.168.10.10", "192.168.10.10")),
        f"{VI} lists a floating address twice",
    ),
    "floating address is the local one": (
        one_vrrp(addresses=("192.168.10.1",)),
        f"{VI}: 192.168.10.1 is a node address, it cannot float",
    ),
    "floating address is the peer's": (
        one_vrrp(addresses=("192.168.10.10", "192.168.10.2")),
        f"{VI}: 192.168.10.2 is a node address, it cannot float",
    ),
    # one_vrrp's VRID is 51: its adverts carry 169.254.0.51.
    "floating address is the advertised one": (
        one_vrrp(addresses=("169.254.0.51",)),
        f"{VI}: 169.254.0.51 is the address its adverts carry",
    ),
    # The message does not say that 169.254.0.51 is the adverts' address: nothing floats it.
    "node address is the advertised one": (
        one_vrrp(local_ip="169.254.0.51"),
        f"{VI}: 169.254.0.51 is a node address, it cannot float",
    ),
    "IPv6 floating address in an IPv4 instance": (
        one_vrrp(addresses=("192.168.10.10", "2001:db8::10")),
        f"{VI}: 2001:db8::10 is not of the instance's address family (IPv4, from the local "
        f"address 192.168.10.1); {ONE_FAMILY}",
    ),
    "IPv6 peer of an IPv4 instance": (
        one_vrrp(peer_ip="2001:db8::2"),
        f"{VI}: 2001:db8::2 is not of the instance's address family (IPv4, from the local "
        f"address 192.168.10.1); {ONE_FAMILY}",
    ),
    "IPv4 floating address in an IPv6 instance": (
        KeepalivedSnapshot(vrrp=(dataclasses.replace(IPV6_ETH1, addresses=("192.168.10.10",)),)),
        "vrrp_instance VI6_eth1: 192.168.10.10 is not of the instance's address family (IPv6, "
        f"from the local address 2001:db8:10::1); {ONE_FAMILY}",
    ),
    "vrrp as a bare instance": (
        KeepalivedSnapshot(vrrp=MASTER_ETH1),
        f"vrrp instances must be a tuple: {MASTER_ETH1!r}",
    ),
    "vrrp as a list": (
        KeepalivedSnapshot(vrrp=[MASTER_ETH1]),
        f"vrrp instances must be a tuple: {[MASTER_ETH1]!r}",
    ),
    "vrrp holding a service": (
        KeepalivedSnapshot(vrrp=(WEB,)),
        f"not a VrrpInstance: {WEB!r}",
    ),
    "vrrp holding a dict": (
        KeepalivedSnapshot(vrrp=(dataclasses.asdict(MASTER_ETH1),)),
        f"not a VrrpInstance: {dataclasses.asdict(MASTER_ETH1)!r}",
    ),
    "instance name twice": (two_vrrp(name="VI_eth1"), "duplicate vrrp_instance name 'VI_eth1'"),
    "preempt differs within the sync group": (
        two_vrrp(preempt=True),
        "vrrp instances: preempt must be the same for all of them (they move together)",
    ),
    "VRID twice on one interface": (
        two_vrrp(virtual_router_id=51),
        "vrrp_instance VI_2: virtual_router_id 51 is already used on eth1 for IPv4",
    ),
    "floating address in two instances": (
        two_vrrp(addresses=("192.168.10.30",)),
        "vrrp_instance VI_2: floating address 192.168.10.30 is already in vrrp_instance VI_eth1",
    ),
    "floating address is another instance's node address": (
        two_vrrp(interface="eth2", local_ip="192.168.20.11", peer_ip="192.168.10.20"),
        f"{VI}: 192.168.10.20 is a node address of vrrp_instance VI_2, it cannot float",
    ),
    "static addresses beside VRRP": (
        dataclasses.replace(one_vrrp(), static_addresses=(("192.168.10.11", "eth1"),)),
        "static addresses and VRRP instances exclude each other",
    ),
    **{
        f"static address {v!r}": (KeepalivedSnapshot(static_addresses=(v,)), refusal)
        for v, refusal in (
            (
                ("192.168.10.10\n", "eth1"),
                f"invalid static address {NOT_CANONICAL}: '192.168.10.10\\n'",
            ),
            (
                ("192.168.10.10", "eth1\nnotify x"),
                "invalid static address 192.168.10.10 interface name: 'eth1\\nnotify x'",
            ),
            (
                ("192.168.10.10/24", "eth1"),
                f"invalid static address {NOT_CANONICAL}: '192.168.10.10/24'",
            ),
            (
                ("192.168.10.10",),
                "a static address is (address, device), not ('192.168.10.10',)",
            ),
            ("192.168.10.10", "a static address is (address, device), not '192.168.10.10'"),
            (
                ("192.168.10.10", "../../etc"),
                "invalid static address 192.168.10.10 interface name: '../../etc'",
            ),
        )
    },
    "static address twice": (
        KeepalivedSnapshot(static_addresses=(("192.168.10.10", "eth1"), ("192.168.10.10", "eth1"))),
        "static address 192.168.10.10 twice",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SNAPSHOTS))
def test_hostile_values_raise(name: str) -> None:
    snapshot, refusal = HOSTILE_SNAPSHOTS[name]
    with pytest.raises(ValueError) as refused:
        render_keepalived(snapshot, LAYOUT)
    assert str(refused.value) == refusal


def test_not_a_snapshot_raises() -> None:
    with pytest.raises(ValueError) as refused:
        render_keepalived(WEB, LAYOUT)  # type: ignore[arg-type]
    assert str(refused.value) == f"not a KeepalivedSnapshot: {WEB!r}"


def test_unused_fields_do_not_block_an_apply() -> None:
    """Settings of another health check are not rendered, so they are not refused either."""
    snapshot = one_service(
        health_check=L4HealthCheck.NONE, check_path="leftover", check_status=0, check_timeout_s=0
    )
    assert "CHECK" not in render_keepalived(snapshot, LAYOUT)
    snapshot = one_service(persistence=False, persistence_timeout_s=0)
    assert "persistence_timeout" not in render_keepalived(snapshot, LAYOUT)
