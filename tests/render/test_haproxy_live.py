"""render_haproxy against a real HAProxy and real backends, all on loopback.

Each test picks its own random 127.x.y.0/24 block, mapped onto the guide's topology (VIP .30,
real servers .31 and .32), so nothing clashes with other tests running at the same time.
Backends are Python servers in threads answering with their own name. The config is rendered
with render_haproxy, written to the layout's config path and started with HaproxyControl; a
finalizer stops HAProxy and a safety net SIGKILLs (and reports) anything of ours left behind.
"""

import csv
import dataclasses
import itertools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import HaproxyControl, RuntimeLayout
from lbadmin.render.haproxy import render_haproxy
from lbadmin.render.snapshot import (
    Balance,
    HaproxySnapshot,
    HealthCheck,
    L7Fallback,
    L7Globals,
    L7Protocol,
    L7RealServer,
    L7VirtualService,
    Persistence,
)
from tests.daemon_support import (
    Backends,
    NamedHTTPServer,
    free_port,
    haproxy_control,
    http_get,
    http_request,
    random_block,
    running_backends,
    short_layout,
    wait_until,
)

pytestmark = pytest.mark.daemons

CHECK_INTERVAL_MS = 100  # fall 3 / rise 2: DOWN after ~0.3 s, UP after ~0.2 s
TIMEOUT = 3.0


# ---------------------------------------------------------------------------------------------
# Clients (addresses, backends and the layout: tests/daemon_support.py)


def served_by(
    host: str, port: int, *, headers: dict[str, str] | None = None, source: str | None = None
) -> str:
    """Name of the real server that answered a GET on a new connection."""
    return http_get(host, port, headers=headers, source=source).decode()


def tcp_read(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        chunks = []
        while chunk := sock.recv(1024):
            chunks.append(chunk)
    return b"".join(chunks).decode()


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def backends() -> Iterator[Backends]:
    with running_backends() as backends:
        yield backends


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[RuntimeLayout]:
    with short_layout(tmp_path) as layout:
        # What the engine keeps there: a `show servers state` dump (version line "1" when empty).
        layout.haproxy_state_file.write_text("1\n")
        yield layout


@pytest.fixture
def haproxy(layout: RuntimeLayout) -> Iterator[Callable[[HaproxySnapshot], HaproxyControl]]:
    """Render a snapshot, write it where HaproxyControl reads it, and start HAProxy."""
    with haproxy_control(layout) as control:

        def start(snapshot: HaproxySnapshot) -> HaproxyControl:
            layout.haproxy_config.write_text(render_haproxy(snapshot, layout))
            control.start()
            return control

        yield start


# ---------------------------------------------------------------------------------------------
# HAProxy


def server_status(control: HaproxyControl, proxy: str) -> dict[str, str]:
    """{server: "UP" | "DOWN" | ...} from the runtime API's `show stat` CSV."""
    text = control.runtime_command("show stat").lstrip("# ")
    rows = csv.DictReader(text.splitlines())
    return {
        row["svname"]: row["status"].split()[0]
        for row in rows
        if row["pxname"] == proxy and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def service(label: str, block: str, ports: tuple[int, ...], **kwargs: object) -> L7VirtualService:
    return dataclasses.replace(
        L7VirtualService(label, f"{block}30", ports, check_interval_ms=CHECK_INTERVAL_MS),
        **kwargs,
    )


def two_http_backends(backends: Backends, block: str) -> tuple[L7RealServer, ...]:
    servers = []
    for name, host in (("FE-1", f"{block}31"), ("FE-2", f"{block}32")):
        backend = backends.http(name, host)
        servers.append(L7RealServer(name, host, backend.server_address[1]))
    return tuple(servers)


# ---------------------------------------------------------------------------------------------
# Tests


def test_round_robin_alternates(haproxy, backends: Backends) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    snapshot = HaproxySnapshot(
        services=(
            service(
                "rr",
                block,
                (port,),
                balance=Balance.ROUNDROBIN,
                real_servers=two_http_backends(backends, block),
            ),
        )
    )
    control = haproxy(snapshot)
    answers = [served_by(vip, port) for _ in range(8)]
    assert set(answers) == {"FE-1", "FE-2"}
    assert all(a != b for a, b in itertools.pairwise(answers)), answers

    # A reload of the same config (expose-fd listeners, server state file) keeps serving.
    control.reload()
    answers = [served_by(vip, port) for _ in range(4)]
    assert set(answers) == {"FE-1", "FE-2"}


def test_source_ip_persistence(haproxy, backends: Backends) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    snapshot = HaproxySnapshot(
        services=(
            service(
                "sticky",
                block,
                (port,),
                # Round robin would alternate: every answer from one server is the stick table.
                balance=Balance.ROUNDROBIN,
                persistence=Persistence.SOURCE_IP,
                real_servers=two_http_backends(backends, block),
            ),
        )
    )
    haproxy(snapshot)
    first = {served_by(vip, port) for _ in range(10)}
    assert len(first) == 1, first

    # Other client addresses get their own entries; round robin hands a new one the other
    # server at the latest after a few, and each sticks to what it got.
    others: set[str] = set()
    for last_octet in range(77, 85):
        source = f"127.0.0.{last_octet}"
        answers = {served_by(vip, port, source=source) for _ in range(3)}
        assert len(answers) == 1, (source, answers)
        others |= answers
        if others - first:
            break
    assert others - first, f"no other client address reached the other server: {others}"
    # Meanwhile the first client has not moved.
    assert {served_by(vip, port) for _ in range(3)} == first


def test_http_cookie_persistence_ms_wsman(haproxy, backends: Backends) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    snapshot = HaproxySnapshot(
        services=(
            service(
                "FePoolExtWebSvcs8081",
                block,
                (port,),
                balance=Balance.ROUNDROBIN,
                persistence=Persistence.HTTP_COOKIE,
                cookie_name="MS-WSMAN",
                real_servers=two_http_backends(backends, block),
            ),
        )
    )
    haproxy(snapshot)
    response, body = http_request(vip, port)
    server = body.decode()
    set_cookie = response.getheader("Set-Cookie") or ""
    assert set_cookie.split(";")[0] == f"MS-WSMAN={server}", set_cookie

    with_cookie = {served_by(vip, port, headers={"Cookie": f"MS-WSMAN={server}"}) for _ in range(8)}
    assert with_cookie == {server}
    without = {served_by(vip, port) for _ in range(4)}
    assert without == {"FE-1", "FE-2"}


def test_health_check_takes_a_dead_server_out_and_back(haproxy, backends: Backends) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    fe1 = backends.http("FE-1", f"{block}31")
    fe2 = backends.http("FE-2", f"{block}32")
    fe1_port = fe1.server_address[1]
    servers = (
        L7RealServer("FE-1", f"{block}31", fe1_port),
        L7RealServer("FE-2", f"{block}32", fe2.server_address[1]),
    )
    control = haproxy(
        HaproxySnapshot(
            services=(
                service(
                    "checked", block, (port,), balance=Balance.ROUNDROBIN, real_servers=servers
                ),
            )
        )
    )
    wait_until(
        lambda: server_status(control, "checked") == {"FE-1": "UP", "FE-2": "UP"}, 5, "both UP"
    )

    backends.stop(fe1)
    wait_until(lambda: server_status(control, "checked")["FE-1"] == "DOWN", 5, "FE-1 DOWN")
    assert server_status(control, "checked")["FE-2"] == "UP"
    assert [served_by(vip, port) for _ in range(6)] == ["FE-2"] * 6

    backends.http("FE-1", f"{block}31", fe1_port)  # same address and port again
    wait_until(lambda: server_status(control, "checked")["FE-1"] == "UP", 5, "FE-1 UP again")
    assert {served_by(vip, port) for _ in range(4)} == {"FE-1", "FE-2"}


def test_multi_port_tcp_service_forwards_to_the_client_port(haproxy, backends: Backends) -> None:
    """The guide's FrontEndPool: one VIP, many ports, real servers with a blank port."""
    block = random_block()
    vip = f"{block}30"
    hosts = {"FE-1": f"{block}31", "FE-2": f"{block}32"}
    # Ports free on the VIP that both real servers can listen on too.
    ports: list[int] = []
    for _ in range(20):
        if len(ports) == 3:
            break
        candidate = free_port(vip)
        try:
            started = [backends.tcp(name, host, candidate) for name, host in hosts.items()]
        except OSError:
            continue  # taken on a real server's address (a wildcard listener): try another
        assert len(started) == 2
        ports.append(candidate)
    assert len(ports) == 3, "could not find three free ports"
    ports.sort()
    check_port = ports[1]
    snapshot = HaproxySnapshot(
        services=(
            service(
                "FrontEndPool",
                block,
                tuple(ports),
                protocol=L7Protocol.TCP,
                persistence=Persistence.SOURCE_IP,
                check_port=check_port,
                real_servers=tuple(L7RealServer(name, ip, None) for name, ip in hosts.items()),
            ),
        )
    )
    control = haproxy(snapshot)
    state = control.runtime_command("show servers state FrontEndPool").split("\n")
    header = state[1].lstrip("# ").split()
    for line in filter(None, state[2:]):
        row = dict(zip(header, line.split(), strict=False))
        assert row["srv_port"] == "0"  # no port: the client's
        assert row["srv_check_port"] == str(check_port)

    reached = {}
    for port in ports:
        answers = {tcp_read(vip, port) for _ in range(3)}
        assert len(answers) == 1, answers
        name, _, answered_port = answers.pop().partition(":")
        assert name in hosts
        assert answered_port == str(port)
        reached[port] = name
    # One stick table for all ports: a client stays on one server whichever port it uses.
    assert len(set(reached.values())) == 1, reached


def test_forwardfor_with_logging_and_no_dev_log(haproxy, backends: Backends) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    backend = backends.http("FE-1", f"{block}31")
    snapshot = HaproxySnapshot(
        # Logging on: HAProxy must start even where /dev/log does not exist (as here).
        globals=L7Globals(logging=True, log_only_errors=True),
        services=(
            service(
                "web",
                block,
                (port,),
                real_servers=(L7RealServer("FE-1", f"{block}31", backend.server_address[1]),),
            ),
        ),
    )
    haproxy(snapshot)
    assert served_by(vip, port, source="127.0.0.77") == "FE-1"
    assert backend.seen_xff == ["127.0.0.77"]


def test_drain_and_maint_survive_a_reload_through_the_state_file(
    haproxy, backends: Backends, layout: RuntimeLayout
) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    control = haproxy(
        HaproxySnapshot(
            services=(
                service(
                    "web",
                    block,
                    (port,),
                    balance=Balance.ROUNDROBIN,
                    health_check=HealthCheck.NONE,
                    real_servers=two_http_backends(backends, block),
                ),
            )
        )
    )
    control.runtime_command("set server web/FE-1 state maint")
    assert server_status(control, "web")["FE-1"] == "MAINT"
    # What the engine does before every reload (HAProxy never writes the file itself).
    layout.haproxy_state_file.write_text(control.runtime_command("show servers state"))
    control.reload()
    assert server_status(control, "web")["FE-1"] == "MAINT"
    assert {served_by(vip, port) for _ in range(4)} == {"FE-2"}


def test_ipv6_vip_and_servers(haproxy, backends: Backends) -> None:
    try:
        port = free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")

    class V6Server(NamedHTTPServer):
        address_family = socket.AF_INET6

    servers = []
    for name in ("v6-1", "v6-2"):
        backend = backends.start(V6Server(name, ("::1", 0)))
        servers.append(L7RealServer(name, "::1", backend.server_address[1]))
    snapshot = HaproxySnapshot(
        services=(
            L7VirtualService(
                label="v6",
                ip="::1",
                ports=(port,),
                balance=Balance.ROUNDROBIN,
                persistence=Persistence.SOURCE_IP,  # stick-table type ipv6
                check_interval_ms=CHECK_INTERVAL_MS,
                real_servers=tuple(servers),
            ),
        )
    )
    control = haproxy(snapshot)
    assert len({served_by("::1", port) for _ in range(4)}) == 1
    assert server_status(control, "v6") == {"v6-1": "UP", "v6-2": "UP"}


def test_fallback_serves_when_every_real_server_is_down(haproxy, backends: Backends) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    fallback = backends.http("fallback-page", f"{block}33")
    # Nothing listens on the real servers' ports: their checks fail.
    dead = tuple(
        L7RealServer(name, f"{block}{last}", free_port(f"{block}{last}"))
        for name, last in (("FE-1", 31), ("FE-2", 32))
    )
    control = haproxy(
        HaproxySnapshot(
            services=(
                service(
                    "web",
                    block,
                    (port,),
                    real_servers=dead,
                    fallback=L7Fallback(f"{block}33", fallback.server_address[1]),
                ),
            )
        )
    )
    wait_until(
        lambda: (
            server_status(control, "web") == {"FE-1": "DOWN", "FE-2": "DOWN", "fallback": "no"}
        ),  # "no check": always usable
        5,
        "both real servers DOWN",
    )
    assert {served_by(vip, port) for _ in range(3)} == {"fallback-page"}
