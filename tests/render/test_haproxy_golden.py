"""render_haproxy: golden files, `haproxy -c -dW` on each, determinism, hostile values.

The golden files are the review surface: read them when they change. To rewrite them after an
intended change of the renderer:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_haproxy_golden.py

Without UPDATE_GOLDEN nothing is written; a mismatch fails with a diff.
"""

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lbadmin.engines.daemons import RuntimeLayout, find_binary
from lbadmin.render.haproxy import render_haproxy
from lbadmin.render.snapshot import (
    AdminState,
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
from tests.render.golden import assert_golden

GOLDEN_DIR = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[2]
# Golden files use the appliance's real paths; the -c check renders with a temp layout.
LAYOUT = RuntimeLayout.under(Path("/var/lib/lbadmin"))

LYNC_GLOBALS = L7Globals(client_timeout_ms=1_800_000, server_timeout_ms=1_800_000)


def fe_servers(port: int | None, *, reencrypt: bool = False) -> tuple[L7RealServer, ...]:
    return (
        L7RealServer("FE-1", "192.168.10.31", port, reencrypt=reencrypt),
        L7RealServer("FE-2", "192.168.10.32", port, reencrypt=reencrypt),
    )


# The guide, STEP 2: the Front End pool's Layer 7 virtual services.
FRONT_END_POOL = L7VirtualService(
    label="FrontEndPool",
    ip="192.168.10.30",
    ports=(135, 443, 444, 5061, 5065, 5069),
    protocol=L7Protocol.TCP,
    persistence=Persistence.SOURCE_IP,
    check_port=5061,
    real_servers=fe_servers(None),
)
EXT_WEB_8080 = L7VirtualService(
    label="FePoolExtWebSvcs8080",
    ip="192.168.20.30",
    ports=(8080,),
    protocol=L7Protocol.HTTP,
    persistence=Persistence.HTTP_COOKIE,
    cookie_name="SERVERID",
    real_servers=fe_servers(8080),
)
EXT_WEB_4443 = L7VirtualService(  # Lync 2013 variant: TCP mode, no persistence
    label="FePoolExtWebSvcs4443",
    ip="192.168.20.30",
    ports=(4443,),
    protocol=L7Protocol.TCP,
    real_servers=fe_servers(4443),
)
EXT_WEB_8081 = L7VirtualService(  # Lync 2010 variant: behind SSL termination, re-encrypted
    label="FePoolExtWebSvcs8081",
    ip="192.168.20.30",
    ports=(8081,),
    protocol=L7Protocol.HTTP,
    persistence=Persistence.HTTP_COOKIE,
    cookie_name="MS-WSMAN",
    real_servers=fe_servers(4443, reencrypt=True),
    # Its SSL termination (stunnel on 192.168.20.30:4443) hands connections over here.
    proxy_sockets=("/var/lib/lbadmin/run/ssl-0123456789ab.sock",),
)
# Appendix 2: reverse-proxy VIPs.
REVERSE_PROXY_HTTP = L7VirtualService(
    label="ReverseProxyFE-http", ip="10.12.1.150", ports=(80,), real_servers=fe_servers(8080)
)
REVERSE_PROXY_HTTPS = L7VirtualService(
    label="ReverseProxyFE-https",
    ip="10.12.1.150",
    ports=(443,),
    protocol=L7Protocol.TCP,
    real_servers=fe_servers(4443),
)

WEB = L7VirtualService(
    label="web",
    ip="10.0.0.10",
    ports=(80,),
    real_servers=(
        L7RealServer("web1", "10.0.0.11", 80),
        L7RealServer("web2", "10.0.0.12", 80, weight=50),
    ),
)
SMTP = L7VirtualService(
    label="smtp",
    ip="10.0.0.20",
    ports=(25,),
    protocol=L7Protocol.TCP,
    real_servers=(L7RealServer("mx1", "10.0.0.21", 25), L7RealServer("mx2", "10.0.0.22", 25)),
)

CASES: dict[str, HaproxySnapshot] = {
    "empty": HaproxySnapshot(),
    "front_end_pool": HaproxySnapshot(services=(FRONT_END_POOL,)),
    "fepool_ext_websvcs_8080": HaproxySnapshot(services=(EXT_WEB_8080,)),
    "fepool_ext_websvcs_8081": HaproxySnapshot(services=(EXT_WEB_8081,)),
    # STEP 1 (client/server timeouts 30 min) with every Layer 7 service of STEP 2 and
    # Appendix 2, sorted by label as the snapshot builder does.
    "lync_guide": HaproxySnapshot(
        globals=LYNC_GLOBALS,
        services=tuple(
            sorted(
                (
                    FRONT_END_POOL,
                    EXT_WEB_8080,
                    EXT_WEB_4443,
                    EXT_WEB_8081,
                    REVERSE_PROXY_HTTP,
                    REVERSE_PROXY_HTTPS,
                ),
                key=lambda service: service.label,
            )
        ),
    ),
    "logging": HaproxySnapshot(globals=L7Globals(logging=True), services=(SMTP, WEB)),
    "logging_errors_only": HaproxySnapshot(
        globals=L7Globals(logging=True, log_only_errors=True), services=(SMTP, WEB)
    ),
    "no_redispatch": HaproxySnapshot(globals=L7Globals(redispatch=False), services=(WEB,)),
    "balance": HaproxySnapshot(
        services=(
            dataclasses.replace(WEB, label="rr", balance=Balance.ROUNDROBIN),
            dataclasses.replace(SMTP, label="src", balance=Balance.SOURCE),
            # Source hash and source-IP persistence together, with a short expiry.
            dataclasses.replace(
                WEB,
                label="src-sticky",
                ip="10.0.0.30",
                balance=Balance.SOURCE,
                persistence=Persistence.SOURCE_IP,
                persistence_timeout_s=300,
            ),
        )
    ),
    "health_check": HaproxySnapshot(
        services=(
            dataclasses.replace(WEB, label="no-checks", health_check=HealthCheck.NONE),
            # Check port overrides the server port; NONE ignores a leftover check port.
            dataclasses.replace(SMTP, label="check-port", check_port=587, check_interval_ms=2000),
            dataclasses.replace(
                SMTP,
                label="none-with-port",
                ip="10.0.0.40",
                health_check=HealthCheck.NONE,
                check_port=587,
            ),
            dataclasses.replace(
                SMTP,
                label="portless",
                ip="10.0.0.50",
                ports=(25, 465, 587),
                real_servers=(
                    L7RealServer("mx1", "10.0.0.21", None),
                    L7RealServer("mx2", "10.0.0.22", None, weight=0),
                ),
            ),
        )
    ),
    "ipv6": HaproxySnapshot(
        services=(
            L7VirtualService(
                label="v6-http",
                ip="2001:db8::30",
                ports=(80, 8080),
                persistence=Persistence.HTTP_COOKIE,
                real_servers=(
                    L7RealServer("v6-1", "2001:db8::31", 80),
                    L7RealServer("v4-2", "192.0.2.32", 80),
                ),
            ),
            L7VirtualService(
                label="v6-tcp",
                ip="2001:db8::40",
                ports=(135, 5061),
                protocol=L7Protocol.TCP,
                persistence=Persistence.SOURCE_IP,
                real_servers=(
                    L7RealServer("v6-a", "2001:db8::41", None),
                    L7RealServer("v6-b", "2001:db8::42", None),
                ),
                fallback=L7Fallback("::1", None),
            ),
            L7VirtualService(
                label="v4-to-v6",
                ip="192.0.2.50",
                ports=(443,),
                protocol=L7Protocol.TCP,
                persistence=Persistence.SOURCE_IP,
                check_port=4443,
                real_servers=(L7RealServer("v6-c", "2001:db8::51", 443),),
            ),
        )
    ),
    "fallback": HaproxySnapshot(
        services=(
            dataclasses.replace(
                WEB, persistence=Persistence.HTTP_COOKIE, fallback=L7Fallback("127.0.0.1", 9081)
            ),
            dataclasses.replace(SMTP, fallback=L7Fallback("10.0.0.99", None)),
            dataclasses.replace(
                FRONT_END_POOL, label="v6-fallback", fallback=L7Fallback("2001:db8::99", 5061)
            ),
        )
    ),
    # System Overview's drain and halt, as they must survive a restart.
    "admin_states": HaproxySnapshot(
        services=(
            dataclasses.replace(
                WEB,
                real_servers=(
                    L7RealServer("web1", "10.0.0.11", 80, state=AdminState.DRAIN),
                    L7RealServer("web2", "10.0.0.12", 80, weight=50, state=AdminState.HALT),
                    L7RealServer("web3", "10.0.0.13", 80),
                ),
            ),
        )
    ),
    "manual": HaproxySnapshot(
        globals=L7Globals(logging=True),
        services=(
            L7VirtualService(
                label="manual-http",
                ip="10.0.0.60",
                ports=(80, 81),
                # Ignored: manual lines replace the generated body.
                persistence=Persistence.HTTP_COOKIE,
                real_servers=(L7RealServer("ignored", "10.0.0.61", 80),),
                manual_lines=(
                    "mode http",
                    "balance\troundrobin",
                    "option httpchk GET /health",
                    "http-request set-header X-Appliance lbadmin",
                    "server m1 10.0.0.61:80 check",
                    "server m2 10.0.0.62:80 check",
                ),
            ),
            L7VirtualService(
                label="manual-tcp",
                ip="2001:db8::60",
                ports=(5061,),
                manual_lines=(
                    "mode tcp",
                    "option tcplog",
                    "server t1 [2001:db8::61]:5061 check",
                ),
            ),
            WEB,
        ),
    ),
}


def haproxy_check(config: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c -dW` (warnings fatal) on the config as rendered for a temp layout."""
    binary = find_binary("haproxy")
    if binary is None:
        pytest.fail("haproxy is not installed (apt-get install haproxy)")
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    return subprocess.run(
        [binary, "-c", "-dW", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def temp_layout(tmp_path: Path) -> RuntimeLayout:
    layout = RuntimeLayout.under(tmp_path / "var")
    layout.ensure()
    # The engine keeps this file present (it dumps `show servers state` into it); a missing or
    # empty file is a warning, fatal under -dW. "1" is the dump's version line.
    layout.haproxy_state_file.write_text("1\n")
    return layout


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert_golden(render_haproxy(CASES[case], LAYOUT), GOLDEN_DIR / f"{case}.cfg")


def test_no_stale_golden_files() -> None:
    assert {path.stem for path in GOLDEN_DIR.glob("*.cfg")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_haproxy_accepts_without_warnings(case: str, tmp_path: Path) -> None:
    # No /dev/log on these machines: the logging cases also prove HAProxy does not need it.
    result = haproxy_check(render_haproxy(CASES[case], temp_layout(tmp_path)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_empty_snapshot_is_the_bootstrap() -> None:
    from lbadmin.render.bootstrap import render_haproxy_bootstrap

    assert render_haproxy_bootstrap(LAYOUT) == render_haproxy(HaproxySnapshot(), LAYOUT)


def test_front_end_pool_key_lines() -> None:
    lines = [line.strip() for line in render_haproxy(CASES["front_end_pool"], LAYOUT).splitlines()]
    section = lines[lines.index("listen FrontEndPool") :]
    binds = [line for line in section if line.startswith("bind ")]
    assert binds == [f"bind 192.168.10.30:{port}" for port in (135, 443, 444, 5061, 5065, 5069)]
    assert "mode tcp" in section
    assert "stick on src" in section
    assert "stick-table type ip size 1m expire 1800s" in section
    # Blank port: forwarded to the port the client used; checked on the check port.
    assert (
        "server FE-1 192.168.10.31 weight 100 check port 5061 inter 4000ms rise 2 fall 3" in section
    )
    assert not any("forwardfor" in line or "cookie" in line for line in section)


def test_settings_reach_the_file() -> None:
    text = render_haproxy(CASES["lync_guide"], LAYOUT)
    assert "    timeout client 1800000ms\n" in text
    assert "    timeout server 1800000ms\n" in text
    assert "    timeout connect 4000ms\n" in text
    assert text.startswith("# Generated by lbadmin")
    assert f"    stats socket {LAYOUT.haproxy_admin_socket} mode 600 level admin" in text
    assert f"    server-state-file {LAYOUT.haproxy_state_file}\n" in text
    assert "    load-server-state-from-file global\n" in text
    assert not any(word in text for word in ("/dev/log", "log global", "httplog", "tcplog"))
    assert "    cookie MS-WSMAN insert nocache indirect\n" in text
    assert "weight 100 cookie FE-1 check inter 4000ms rise 2 fall 3\n" in text


def test_rendering_is_deterministic() -> None:
    for snapshot in CASES.values():
        assert render_haproxy(snapshot, LAYOUT) == render_haproxy(snapshot, LAYOUT)
    # An equal snapshot built separately, and other hash seeds, give the same bytes.
    rebuilt = HaproxySnapshot(
        globals=dataclasses.replace(LYNC_GLOBALS),
        services=tuple(dataclasses.replace(s) for s in CASES["lync_guide"].services),
    )
    expected = render_haproxy(CASES["lync_guide"], LAYOUT)
    assert render_haproxy(rebuilt, LAYOUT) == expected
    script = (
        "import sys; from pathlib import Path\n"
        "from lbadmin.engines.daemons import RuntimeLayout\n"
        "from lbadmin.render.haproxy import render_haproxy\n"
        "from tests.render.test_haproxy_golden import CASES\n"
        "sys.stdout.write(render_haproxy(CASES['lync_guide'], "
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


# ---------------------------------------------------------------------------------------------
# Hostile values: each one raises ValueError before anything is rendered.


def one_service(**changes: object) -> HaproxySnapshot:
    return HaproxySnapshot(services=(dataclasses.replace(WEB, **changes),))


def one_server(**changes: object) -> HaproxySnapshot:
    server = dataclasses.replace(WEB.real_servers[0], **changes)
    return one_service(real_servers=(server,))


HOSTILE_LABELS = [
    "web\n    stats enable",
    "web\n",
    "web#x",
    "web x",
    'web"',
    "web'",
    "",
    "x" * 65,
    "wéb",
]
HOSTILE_IPS = [
    "10.0.0.10 backup",
    "10.0.0.10\n",
    " 10.0.0.10",
    "10.0.0.10:80",
    "[2001:db8::1]",
    "2001:DB8::1",  # not canonical
    "2001:db8:0::1",  # not canonical
    "fe80::1%eth0",
    "010.0.0.10",
    "localhost",
    "",
]

NOT_CANONICAL = "IP address (not canonical IPv4/IPv6)"
QUOTE = "contains a quote, a backslash, a backtick or $ (not allowed in manual lines)"
CONTROL = "contains a control character"
READS = "which reads files, opens sockets or runs programs"
FETCH = "which is not an allowed sample fetch or converter"
SECTION = "section: manual lines must stay inside this service"
HOSTILE_MANUAL_LINES = [
    ('"program" x', QUOTE),
    ("'global'", QUOTE),
    ("\\x6cisten evil", QUOTE),
    ('http-request set-header X "${DJANGO_SECRET_KEY}"', QUOTE),
    ("errorfile 503 /etc/shadow", f"uses “errorfile”, {READS}"),
    ("http-request return status 200 file /etc/shadow", f"uses “file”, {READS}"),
    ("mode http\nlisten evil", CONTROL),
    ("mode http\r", CONTROL),
    ("mode\x00http", CONTROL),
    ("mode\x1bhttp", CONTROL),
    ("mode\u2028http", CONTROL),
    ("mode\x85http", CONTROL),
    ("listen evil", f"starts a new “listen” {SECTION}"),
    ("BACKEND evil", f"starts a new “BACKEND” {SECTION}"),
    (".if defined(X)", f"uses “defined(…)”, {FETCH}"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("acl a src -f /var/lib/lbadmin/secrets/certificates.key", f"uses “-f”, {READS}"),
    ("http-request set-header X %[src,map_ip(/etc/shadow)]", f"uses “map_ip(…)”, {FETCH}"),
    ("filter spoe engine x config /etc/shadow", f"uses “filter”, {READS}"),
    (
        "bind unix@/etc/passwd mode 666",
        "uses “unix@/etc/passwd”: address prefixes such as unix@ or abns@ are not allowed",
    ),
]

# Each hostile snapshot and the message that refuses it (field, value and reason).
HOSTILE_SNAPSHOTS: dict[str, tuple[HaproxySnapshot, str]] = {
    **{
        f"service label {v!r}": (one_service(label=v), f"invalid virtual service label: {v!r}")
        for v in HOSTILE_LABELS
    },
    **{
        f"server label {v!r}": (one_server(label=v), f"invalid real server label: {v!r}")
        for v in HOSTILE_LABELS
    },
    **{
        f"vip {v!r}": (one_service(ip=v), f"invalid virtual service web {NOT_CANONICAL}: {v!r}")
        for v in HOSTILE_IPS
    },
    **{
        f"server ip {v!r}": (one_server(ip=v), f"invalid real server web1 {NOT_CANONICAL}: {v!r}")
        for v in HOSTILE_IPS
    },
    **{
        f"fallback ip {v!r}": (
            one_service(fallback=L7Fallback(v, None)),
            f"invalid web fallback {NOT_CANONICAL}: {v!r}",
        )
        for v in ("10.0.0.99 check", "10.0.0.99\n")
    },
    **{
        f"cookie {v!r}": (
            one_service(persistence=Persistence.HTTP_COOKIE, cookie_name=v),
            f"cookie name is not a safe RFC 6265 token: {v!r}",
        )
        for v in ("SERVERID;", "a b", "a\nb", "a#b", "a=b", "a'b", "${HOME}", "", "x" * 65)
    },
    **{
        f"vip port {v!r}": (
            one_service(ports=(v,)),
            f"virtual service web port must be an integer from 1 to 65535: {v!r}",
        )
        for v in (0, 65536, -1, True, "80")
    },
    "no vip port": (one_service(ports=()), "virtual service web has no port"),
    "vip port twice": (one_service(ports=(80, 80)), "virtual service web lists a port twice"),
    **{
        f"server port {v!r}": (
            one_server(port=v),
            f"real server web1 port must be an integer from 1 to 65535: {v!r}",
        )
        for v in (0, 65536, "80")
    },
    **{
        f"check port {v!r}": (
            one_service(check_port=v),
            f"virtual service web check port must be an integer from 1 to 65535: {v!r}",
        )
        for v in (0, 70000)
    },
    "fallback port": (
        one_service(fallback=L7Fallback("10.0.0.99", 0)),
        "web fallback port must be an integer from 1 to 65535: 0",
    ),
    **{
        f"weight {v!r}": (
            one_server(weight=v),
            f"real server web1 weight must be an integer from 0 to 256: {v!r}",
        )
        for v in (-1, 257, 1.5)
    },
    "timeout 0": (
        HaproxySnapshot(globals=L7Globals(client_timeout_ms=0)),
        "client timeout must be an integer from 1 to 2147483647: 0",
    ),
    # The hard stop (the longest of the client and server timeouts) is checked first: the
    # message names it, not the client timeout that was set.
    "timeout 2147483648": (
        HaproxySnapshot(globals=L7Globals(client_timeout_ms=2**31)),
        "hard stop must be an integer from 1 to 2147483647: 2147483648",
    ),
    "check interval": (
        one_service(check_interval_ms=0),
        "virtual service web check interval must be an integer from 1 to 2147483647: 0",
    ),
    "persistence timeout": (
        one_service(persistence=Persistence.SOURCE_IP, persistence_timeout_s=0),
        "persistence timeout must be an integer from 1 to 2147483: 0",
    ),
    **{
        f"manual {v!r}": (one_service(manual_lines=(v,)), f"web: manual line {reason}: {v!r}")
        for v, reason in HOSTILE_MANUAL_LINES
    },
    "manual lines as a bare string": (
        one_service(manual_lines="mode http"),
        "web: manual_lines must be a tuple of lines",
    ),
    "unknown protocol": (one_service(protocol="udp"), "'udp' is not a valid L7Protocol"),
    "unknown balance": (one_service(balance="random"), "'random' is not a valid Balance"),
    "unknown persistence": (
        one_service(persistence="ssl_id"),
        "'ssl_id' is not a valid Persistence",
    ),
    "unknown health check": (one_service(health_check="http"), "'http' is not a valid HealthCheck"),
    # The validators forbid it; HAProxy would reject `cookie` in a TCP-mode proxy.
    "cookie in tcp mode": (
        one_service(protocol=L7Protocol.TCP, persistence=Persistence.HTTP_COOKIE),
        "virtual service web: HTTP cookie persistence needs HTTP mode",
    ),
    "duplicate service": (
        HaproxySnapshot(services=(WEB, dataclasses.replace(WEB, ip="10.9.9.9"))),
        "duplicate virtual service label 'web'",
    ),
    "duplicate server": (
        one_service(real_servers=(WEB.real_servers[0], WEB.real_servers[0])),
        "virtual service web: duplicate server name 'web1'",
    ),
    "server named like the fallback": (
        one_service(
            real_servers=(L7RealServer("fallback", "10.0.0.11", 80),),
            fallback=L7Fallback("10.0.0.99", 80),
        ),
        "virtual service web: duplicate server name 'fallback'",
    ),
    "same ip:port twice": (
        HaproxySnapshot(services=(WEB, dataclasses.replace(WEB, label="web2"))),
        "web2: 10.0.0.10 port 80 is already bound",
    ),
    # The message names neither the field nor the service.
    **{
        f"termination socket {v!r}": (
            one_service(proxy_sockets=(v,)),
            f"unsafe path for a config file: {v!r}",
        )
        for v in (
            "/run/ssl.sock\n    stats enable",
            "/run/ssl x.sock",
            "run/ssl.sock",
            "/run/ssl.sock#",
            "",
        )
    },
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SNAPSHOTS))
def test_hostile_values_raise(name: str) -> None:
    snapshot, refusal = HOSTILE_SNAPSHOTS[name]
    with pytest.raises(ValueError) as refused:
        render_haproxy(snapshot, LAYOUT)
    assert str(refused.value) == refusal


def test_unsafe_layout_path_raises() -> None:
    unsafe = "unsafe path for a config file: '/var/lib/lb admin/run/haproxy.sock'"
    with pytest.raises(ValueError, match=re.escape(unsafe)):
        render_haproxy(HaproxySnapshot(), RuntimeLayout.under(Path("/var/lib/lb admin")))


def test_fallback_label_is_free_without_a_fallback() -> None:
    snapshot = one_service(real_servers=(L7RealServer("fallback", "10.0.0.11", 80),))
    assert "    server fallback 10.0.0.11:80 weight 100 check" in render_haproxy(snapshot, LAYOUT)
