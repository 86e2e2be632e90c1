"""The HAProxy apply pipeline (lbadmin.engines.haproxy_apply) against a real HAProxy 2.6.

Configs are hand-written here (not rendered), so these tests do not depend on the renderer.
Listeners bind random 127.x.y.z addresses on loopback; backends are Python http.server threads
on 127.0.0.1; the only non-local address used is 192.0.2.10 (TEST-NET-1), to make a bind fail:
nothing is ever sent to it. Sockets live in a short /tmp/lb* directory (sun_path limit).
Every HAProxy started here is stopped by a fixture, and the layout fixture
(tests/engines/conftest.py) SIGKILLs and reports anything left (including orphaned
`haproxy -c` of killed appliers).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lbadmin.engines.daemons import HaproxyControl, RuntimeLayout
from lbadmin.engines.haproxy_apply import (
    GOOD_SUFFIX,
    LOCK_FILE_NAME,
    PHASES,
    apply_haproxy_config,
    bind_problems,
    config_server_ports,
    haproxy_messages,
    server_state_for_config,
)
from tests.daemon_support import (
    Backends,
    free_listen_address,
    free_port_range,
    http_get,
    processes_mentioning,
    wait_until,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_VIP = "192.0.2.10"  # TEST-NET-1: not on this host, so binding it fails


# ---------------------------------------------------------------------------------------------
# Helpers


def base_config(layout: RuntimeLayout, *, timeout_client: str = "10s") -> str:
    """global + defaults as the renderer writes them, server-state lines included."""
    return textwrap.dedent(f"""\
        global
            master-worker
            stats socket {layout.haproxy_admin_socket} mode 600 level admin
            stats timeout 30s
            hard-stop-after 5s
            server-state-file {layout.haproxy_state_file}

        defaults
            mode http
            timeout connect 2s
            timeout client {timeout_client}
            timeout server 10s
            option idle-close-on-response
            load-server-state-from-file global
        """)


def vip_config(
    layout: RuntimeLayout,
    host: str,
    port: int,
    servers: dict[str, int],
    *,
    timeout_client: str = "10s",
    extra: str = "",
) -> str:
    lines = [f"\nlisten vip\n    bind {host}:{port}\n    balance roundrobin\n"]
    lines += [f"    server {name} 127.0.0.1:{sport}\n" for name, sport in servers.items()]
    return base_config(layout, timeout_client=timeout_client) + "".join(lines) + extra


def big_config(layout: RuntimeLayout, host: str, base_port: int, backend: int, tag: str) -> str:
    sections = [f"# generation {tag}\n", base_config(layout)]
    for i in range(2000):
        sections.append(
            f"\nlisten vs{i:04d}\n    bind {host}:{base_port + i}\n"
            f"    server rs1 127.0.0.1:{backend}\n"
        )
    return "".join(sections)


def workers(control: HaproxyControl) -> tuple[int, ...]:
    return control.show_proc().workers


def staged_leftovers(layout: RuntimeLayout) -> list[Path]:
    return sorted(layout.conf_dir.glob(".haproxy.cfg.apply-*"))


def admin_states(control: HaproxyControl, backend: str) -> dict[str, int]:
    """server name → srv_admin_state from ``show servers state``."""
    states = {}
    for line in control.runtime_command(f"show servers state {backend}").splitlines():
        fields = line.split()
        if len(fields) > 6 and not line.startswith("#"):
            states[fields[3]] = int(fields[6])
    return states


def python_child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )


def layout_args(layout: RuntimeLayout) -> list[str]:
    return [str(layout.conf_dir), str(layout.run_dir), str(layout.log_dir)]


# Child process: apply the config files named on the command line, in order, and print one
# JSON line per apply with the interval during which it held the apply lock.
APPLY_CHILD = """
import json, sys, time
from contextlib import contextmanager
from pathlib import Path
from lbadmin.engines import haproxy_apply
from lbadmin.engines.daemons import HaproxyControl, RuntimeLayout

conf, run, log, start_at, *files = sys.argv[1:]
layout = RuntimeLayout(conf_dir=Path(conf), run_dir=Path(run), log_dir=Path(log))
held = []
original = haproxy_apply.apply_lock

@contextmanager
def recording_lock(run_dir, timeout):
    with original(run_dir, timeout):
        begin = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
        try:
            yield
        finally:
            held.append((begin, time.monotonic()))

haproxy_apply.apply_lock = recording_lock
texts = [Path(name).read_text() for name in files]
print("ready", flush=True)
time.sleep(max(0.0, float(start_at) - time.monotonic()))
for text in texts:
    result = haproxy_apply.apply_haproxy_config(HaproxyControl(layout), text)
    print(json.dumps({"ok": result.ok, "error": result.error, "held": held[-1]}), flush=True)
"""

LOCK_HOLDER = """
import fcntl, sys, time
with open(sys.argv[1], "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(30)
"""


# ---------------------------------------------------------------------------------------------
# Fixtures (layout, haproxy and backends: tests/engines/conftest.py)


@pytest.fixture
def backends(backends: Backends) -> dict[str, int]:
    """Overrides conftest's: two real servers on 127.0.0.1, body b"backend-1" / b"backend-2";
    name → port."""
    return {
        name: backends.http(name, "127.0.0.1").server_address[1]
        for name in ("backend-1", "backend-2")
    }


# ---------------------------------------------------------------------------------------------
# Pure functions


def test_server_state_is_cut_to_runtime_state_with_the_new_ports() -> None:
    config = textwrap.dedent("""\
        global
            server-state-file /run/x.state
        frontend fe
            bind 127.0.0.1:80
        backend pool  # comment
            server a 10.0.0.1:8081 check
            server b 10.0.0.2
            server c ipv6@::1:80
        listen vip 10.0.0.9:443
            server a web.example:9000
        """)
    assert config_server_ports(config) == {
        ("pool", "a"): "8081",
        ("pool", "b"): "0",
        ("vip", "a"): "9000",
    }
    header = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state …"
    dump = (
        "1\n"
        f"{header}\n"
        "3 pool 1 a 10.0.0.1 2 1 1 1 6 1 0 4 0 0 0 0 - 8080 - 0 0 - - 0\n"
        "3 pool 2 b 10.0.0.2 2 8 1 1 6 1 0 4 0 0 0 0 - 0 - 1 7000 10.9.9.9 - 0\n"
        "3 pool 3 c ::1 2 0 1 1 6 1 0 4 0 0 0 0 - 80 - 0 0 - - 0\n"
        "3 pool 4 gone 10.0.0.4 2 1 1 1 6 1 0 4 0 0 0 0 - 80 - 0 0 - - 0\n"
        "\n"
    )
    assert server_state_for_config(dump, config).splitlines() == [
        "1",
        header,
        "3 pool 1 a 10.0.0.1 2 1 1 1 6 1 0 4 0 0 0 0 - 8081 -",
        "3 pool 2 b 10.0.0.2 2 8 1 1 6 1 0 4 0 0 0 0 - 0 -",
        "",
    ]


def test_haproxy_messages_keeps_the_explaining_lines() -> None:
    output = (
        "[NOTICE]   (31374) : haproxy version is 2.6.12-1+deb12u4\n"
        "[ALERT]    (31374) : config : parsing [/e/.haproxy.cfg.apply-x.tmp:10] : unknown "
        "keyword 'frobnicate' in 'listen' section\n"
        "[ALERT]    (31374) : config : Error(s) found in configuration file : "
        "/e/.haproxy.cfg.apply-x.tmp\n"
        "[ALERT]    (31374) : config : Fatal errors found in configuration.\n"
    )
    assert haproxy_messages(
        output, staged=Path("/e/.haproxy.cfg.apply-x.tmp"), live=Path("/e/haproxy.cfg")
    ) == (
        "[ALERT] config : parsing [/e/haproxy.cfg:10] : unknown keyword 'frobnicate' in "
        "'listen' section"
    )
    only_generic = "[ALERT]    (1) : config : Fatal errors found in configuration.\n"
    assert haproxy_messages(only_generic) == "[ALERT] config : Fatal errors found in configuration."


def test_bind_problems_probes_only_what_it_understands() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free_host, free_port = free_listen_address()
        config = textwrap.dedent(f"""\
            global
                stats socket /run/nowhere.sock
            frontend ok
                bind {free_host}:{free_port},ipv4@{free_host}:{free_port + 1}
            frontend missing
                bind {UNREACHABLE_VIP}:8080 ssl crt /x.pem  # comment
                bind {UNREACHABLE_VIP}:9000-9009
            listen busy
                bind 127.0.0.1:{busy}
            listen skipped
                bind {UNREACHABLE_VIP}:8081 transparent
                bind unix@/run/x.sock
                bind /run/y.sock
                bind fd@3
                bind example.invalid:80
            backend nobind
                server s1 {UNREACHABLE_VIP}:80
            """)
        problems = bind_problems(config)
        assert problems == [
            f"cannot bind {UNREACHABLE_VIP}:8080 for frontend 'missing' (line 6): "
            "Cannot assign requested address (this host has no such address)",
            f"cannot bind {UNREACHABLE_VIP}:9000 for frontend 'missing' (line 7): "
            "Cannot assign requested address (this host has no such address)",
            f"cannot bind 127.0.0.1:{busy} for listen 'busy' (line 9): "
            "Address already in use (another program holds that port)",
        ]
        assert len(bind_problems(config, check_in_use=False)) == 2


# ---------------------------------------------------------------------------------------------
# Against a real HAProxy


@pytest.mark.daemons
def test_apply_switches_traffic_and_keeps_the_last_good(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    # Same backend and server names; only the port changes. The state file dumped before the
    # reload would pin the old port if it were loaded as HAProxy wrote it.
    config_a = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    config_b = vip_config(layout, host, port, {"rs1": backends["backend-2"]})

    first = apply_haproxy_config(haproxy, config_a)  # not running yet: starts HAProxy
    assert first.ok and first.changed, first.error
    assert http_get(host, port) == b"backend-1"

    before = workers(haproxy)
    second = apply_haproxy_config(haproxy, config_b)
    assert second.ok and second.changed, second.error
    assert second.error == ""
    assert set(workers(haproxy)).isdisjoint(before)
    assert {http_get(host, port) for _ in range(4)} == {b"backend-2"}
    assert layout.haproxy_config.read_text() == config_b
    good = layout.haproxy_config.with_name("haproxy.cfg" + GOOD_SUFFIX)
    assert good.read_text() == config_a
    assert set(PHASES) <= set(second.timings)
    assert all(second.timings[phase] > 0 for phase in PHASES), second.timings
    assert second.timings["total"] >= sum(second.timings[phase] for phase in PHASES)
    assert staged_leftovers(layout) == []


@pytest.mark.daemons
def test_same_text_again_changes_nothing(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    config = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    assert apply_haproxy_config(haproxy, config).ok
    served_by = workers(haproxy)
    reloads = haproxy.show_proc().reloads

    again = apply_haproxy_config(haproxy, config)
    assert again.ok and not again.changed, again.error
    assert workers(haproxy) == served_by
    assert haproxy.show_proc().reloads == reloads
    assert again.timings["reload"] == 0.0


@pytest.mark.daemons
def test_syntax_error_is_rejected_before_the_swap(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    config = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    assert apply_haproxy_config(haproxy, config).ok
    served_by = workers(haproxy)

    broken = config + "    frobnicate now\n"
    result = apply_haproxy_config(haproxy, broken)
    assert not result.ok and not result.changed
    assert "unknown keyword 'frobnicate'" in result.error
    assert "haproxy.cfg:" in result.error  # the line number, named after the live file
    assert ".apply-" not in result.error  # not the staging file's name
    assert layout.haproxy_config.read_bytes() == config.encode()
    assert workers(haproxy) == served_by
    assert http_get(host, port) == b"backend-1"
    assert staged_leftovers(layout) == []
    assert result.timings["reload"] == 0.0


@pytest.mark.daemons
def test_warnings_are_fatal(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    config = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    assert apply_haproxy_config(haproxy, config).ok
    served_by = workers(haproxy)

    tcp_host, tcp_port = free_listen_address()
    warns = config + (
        f"\nlisten tcpvip\n    mode tcp\n    bind {tcp_host}:{tcp_port}\n"
        "    option forwardfor\n"  # an HTTP-only option in a TCP proxy: a warning, no error
        f"    server rs1 127.0.0.1:{backends['backend-1']}\n"
    )
    probe = layout.conf_dir / "warns.cfg"
    probe.write_text(warns)
    plain = haproxy.check_config(probe)
    assert plain.ok and plain.warnings  # plain `haproxy -c` would let it through

    result = apply_haproxy_config(haproxy, warns)
    assert not result.ok
    assert "forwardfor" in result.error and "requires HTTP mode" in result.error
    assert "[WARNING]" in result.check_output
    assert layout.haproxy_config.read_bytes() == config.encode()
    assert workers(haproxy) == served_by


@pytest.mark.daemons
def test_unbindable_address_is_refused_before_any_reload(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    config = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    assert apply_haproxy_config(haproxy, config).ok
    procs = haproxy.show_proc()

    unbindable = config + (
        f"\nlisten elsewhere\n    bind {UNREACHABLE_VIP}:{port}\n"
        f"    server rs1 127.0.0.1:{backends['backend-2']}\n"
        # A port the Python backend listens on: taken by another program.
        f"\nlisten taken\n    bind 127.0.0.1:{backends['backend-2']}\n"
        f"    server rs1 127.0.0.1:{backends['backend-2']}\n"
    )
    probe = layout.conf_dir / "unbindable.cfg"
    probe.write_text(unbindable)
    assert haproxy.check_config(probe, strict=True).ok  # haproxy -c never binds

    # Traffic during the apply: no reload is attempted, so nothing is ever refused.
    failures: list[str] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            try:
                http_get(host, port)
            except OSError as exc:
                failures.append(repr(exc))

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(0.05)
        result = apply_haproxy_config(haproxy, unbindable)
        time.sleep(0.05)
    finally:
        done.set()
        loader.join(timeout=5)
    assert not result.ok and not result.changed
    assert f"cannot bind {UNREACHABLE_VIP}:{port} for listen 'elsewhere'" in result.error
    assert "Cannot assign requested address" in result.error
    assert f"cannot bind 127.0.0.1:{backends['backend-2']} for listen 'taken'" in result.error
    assert "HAProxy was not reloaded" in result.error
    assert haproxy.show_proc() == procs  # same workers, no reload attempted
    assert layout.haproxy_config.read_bytes() == config.encode()
    assert failures == []
    assert result.timings["reload"] == 0.0


@pytest.mark.daemons
def test_bind_failure_at_reload_rolls_back(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    """The backstop when the probe is off (or misses a form): HAProxy's own message."""
    host, port = free_listen_address()
    config = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    assert apply_haproxy_config(haproxy, config).ok
    served_by = workers(haproxy)

    unbindable = config + (
        f"\nlisten elsewhere\n    bind {UNREACHABLE_VIP}:{port}\n"
        f"    server rs1 127.0.0.1:{backends['backend-2']}\n"
    )
    result = apply_haproxy_config(haproxy, unbindable, check_binds=False)
    assert not result.ok and not result.changed
    # From the master's log: the reload's own alert, with the live file's line number.
    line = len(config.splitlines()) + 3
    assert (
        f"[ALERT] Binding [{layout.haproxy_config}:{line}] for proxy elsewhere: cannot bind "
        f"socket (Cannot assign requested address) for [{UNREACHABLE_VIP}:{port}]"
    ) in result.error, result.error
    assert "restored from haproxy.cfg.good" in result.error
    assert layout.haproxy_config.read_bytes() == config.encode()
    assert workers(haproxy) == served_by  # the old worker was kept…
    assert {http_get(host, port) for _ in range(3)} == {b"backend-1"}  # …and still serves
    assert result.timings["reload"] > 0

    # The next good apply goes through normally (HAProxy's failed counter is not in the way).
    fixed = vip_config(layout, host, port, {"rs1": backends["backend-2"]})
    assert apply_haproxy_config(haproxy, fixed).ok
    assert http_get(host, port) == b"backend-2"


@pytest.mark.daemons
def test_bind_failure_at_first_start_leaves_nothing_running(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    config = vip_config(layout, UNREACHABLE_VIP, 8080, {"rs1": backends["backend-1"]})
    probed = apply_haproxy_config(haproxy, config)
    assert not probed.ok and f"cannot bind {UNREACHABLE_VIP}:8080" in probed.error

    started = apply_haproxy_config(haproxy, config, check_binds=False)
    assert not started.ok
    assert "could not be started" in started.error
    assert f"cannot bind socket (Cannot assign requested address) for [{UNREACHABLE_VIP}:8080]" in (
        started.error
    )
    assert not haproxy.is_running()
    assert not layout.haproxy_config.exists()  # there was no previous file


@pytest.mark.daemons
def test_server_state_survives_an_apply(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    servers = {"rs1": backends["backend-1"], "rs2": backends["backend-2"]}
    assert apply_haproxy_config(haproxy, vip_config(layout, host, port, servers)).ok
    haproxy.runtime_command("set server vip/rs2 state maint")
    assert admin_states(haproxy, "vip")["rs2"] & 0x01  # SRV_ADMF_FMAINT

    changed = vip_config(layout, host, port, servers, timeout_client="11s")
    before = workers(haproxy)
    result = apply_haproxy_config(haproxy, changed)
    assert result.ok and result.changed, result.error
    assert set(workers(haproxy)).isdisjoint(before)  # a new worker…
    states = admin_states(haproxy, "vip")
    assert states["rs2"] & 0x01, states  # …that still has rs2 in maintenance
    assert states["rs1"] == 0
    assert {http_get(host, port) for _ in range(6)} == {b"backend-1"}


@pytest.mark.daemons
def test_a_server_that_is_down_does_not_block_applies(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    dead = free_port_range(1)[1]  # nothing listens there: its health check fails
    servers = {"rs1": backends["backend-1"], "rs2": dead}
    checked = vip_config(layout, host, port, servers).replace(
        f"127.0.0.1:{dead}\n", f"127.0.0.1:{dead} check inter 100ms fall 1\n"
    )
    assert apply_haproxy_config(haproxy, checked).ok
    wait_until(
        lambda: any(
            line.startswith("vip,rs2,") and ",DOWN," in line
            for line in haproxy.runtime_command("show stat").splitlines()
        ),
        5,
        "rs2 to go DOWN",
    )
    # Each apply dumps the state before reloading: after this one the state file says rs2 is
    # DOWN, and validation of every later apply must not turn that into a refusal.
    for timeout in ("11s", "12s"):
        result = apply_haproxy_config(
            haproxy, checked.replace("timeout client 10s", f"timeout client {timeout}")
        )
        assert result.ok and result.changed, result.error
    assert {http_get(host, port) for _ in range(4)} == {b"backend-1"}


@pytest.mark.daemons
def test_concurrent_applies_never_overlap(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int], tmp_path: Path
) -> None:
    host, port = free_listen_address()
    assert apply_haproxy_config(haproxy, vip_config(layout, host, port, {"rs1": 1})).ok
    files: list[list[str]] = [[], []]
    for child in (0, 1):
        for round_ in range(3):
            text = (
                vip_config(layout, host, port, {"rs1": backends[f"backend-{child + 1}"]})
                + f"# child {child} round {round_}\n"
            )
            path = tmp_path / f"child{child}-{round_}.cfg"
            path.write_text(text)
            files[child].append(str(path))

    start_at = time.monotonic() + 1.0  # both children wait for the same instant
    children = [
        python_child(APPLY_CHILD, *layout_args(layout), str(start_at), *names) for names in files
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        outputs.append([json.loads(line) for line in out.splitlines() if line.startswith("{")])

    reports = [report for output in outputs for report in output]
    assert len(reports) == 6
    assert all(report["ok"] for report in reports), reports
    intervals = sorted(tuple(report["held"]) for report in reports)
    for (_, end), (begin, _) in itertools.pairwise(intervals):
        assert end <= begin, f"lock-held intervals overlap: {intervals}"
    # They really ran at the same time: the second child waited for the first.
    assert intervals[0][0] < start_at + 0.5 and intervals[1][0] < intervals[-1][0]


@pytest.mark.daemons
def test_killed_mid_apply_leaves_old_or_new_text(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int], tmp_path: Path
) -> None:
    host, base_port = free_port_range(2000)
    texts = [
        big_config(layout, host, base_port, backends["backend-1"], "one"),
        big_config(layout, host, base_port, backends["backend-2"], "two"),
    ]
    paths = []
    for index, text in enumerate(texts):
        paths.append(tmp_path / f"big{index}.cfg")
        paths[-1].write_text(text)
    first = apply_haproxy_config(haproxy, texts[0])
    assert first.ok, first.error
    duration = first.timings["total"]
    valid = {text.encode() for text in texts}

    outcomes = {"old": 0, "new": 0, "finished before the kill": 0}
    current = 0
    for _ in range(20):
        target = 1 - current
        child = python_child(APPLY_CHILD, *layout_args(layout), "0", str(paths[target]))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(0.0, duration))  # anywhere from staging to the reload
        child.send_signal(signal.SIGKILL)
        out, _err = child.communicate(timeout=10)
        if child.returncode == 0:
            outcomes["finished before the kill"] += 1
            report = json.loads(out.splitlines()[-1])
            assert report["ok"], report["error"]
        live = layout.haproxy_config.read_bytes()
        assert live in valid, f"live file is neither text ({len(live)} bytes)"
        if live == texts[target].encode():
            outcomes["new"] += 1
            current = target
        else:
            outcomes["old"] += 1

    # The next apply cleans up after the killed ones and gets HAProxy to serve its text.
    final = apply_haproxy_config(haproxy, texts[0])
    assert final.ok, final.error
    assert layout.haproxy_config.read_bytes() == texts[0].encode()
    assert staged_leftovers(layout) == []
    # A worker of the previous text may still accept a connection for a moment after the
    # reload hands the listeners over (seen once in a full run here): the new one must answer soon.
    wait_until(
        lambda: http_get(host, base_port + 1999) == b"backend-1", timeout=5,
        what="the final apply's worker to answer",
    )  # fmt: skip
    # Orphaned `haproxy -c` runs of killed children finish on their own.
    staging = f"{layout.conf_dir}/.haproxy.cfg.apply-"
    wait_until(lambda: not processes_mentioning([staging]), timeout=10, what="orphaned haproxy -c")
    print(f"kill outcomes: {outcomes}")


@pytest.mark.daemons
def test_lock_timeout_is_prompt(
    layout: RuntimeLayout, haproxy: HaproxyControl, backends: dict[str, int]
) -> None:
    host, port = free_listen_address()
    config = vip_config(layout, host, port, {"rs1": backends["backend-1"]})
    holder = python_child(LOCK_HOLDER, str(layout.run_dir / LOCK_FILE_NAME))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = apply_haproxy_config(haproxy, config, lock_timeout=0.2)
        elapsed = time.monotonic() - started
        assert not result.ok
        assert result.error == "another apply is still running"
        assert 0.2 <= elapsed < 1.0
        assert not haproxy.is_running() and not layout.haproxy_config.exists()
    finally:
        holder.kill()
        holder.communicate(timeout=5)
    # A killed holder's lock is released by the kernel: the next apply goes through.
    assert apply_haproxy_config(haproxy, config, lock_timeout=2.0).ok


def test_haproxy_never_quotes_another_file_back(haproxy: HaproxyControl, tmp_path: Path) -> None:
    """Defence in depth behind the manual-lines allowlist: a configuration that makes HAProxy
    read another file (here through `-f`, as the security review proved) fails, and the
    message for the UI and the HA peer keeps HAProxy's words about its own file only."""
    secret = tmp_path / "certificates.key"
    secret.write_text("gAAAAA-this-is-the-fernet-key-and-must-never-be-shown\n")
    layout = haproxy.layout
    host, port = free_listen_address()
    text = vip_config(layout, host, port, {"a": 1}) + f"    acl leak src -f {secret}\n"

    result = apply_haproxy_config(haproxy, text)

    assert not result.ok
    assert "must-never-be-shown" not in result.error + result.check_output
    assert "names a file other than its configuration and is not shown" in result.error
    assert str(secret) not in result.error


def test_haproxy_messages_keep_their_own_file_and_a_bounded_length() -> None:
    live = Path("/var/lib/lbadmin/etc/haproxy.cfg")
    output = (
        f"[ALERT]    (1) : parsing [{live}:12] : unknown keyword 'frobnicate' in 'listen' section\n"
        "[ALERT]    (1) : parsing [/etc/shadow:1] : 'root:$y$j9T$secret' is not a valid address\n"
        "[ALERT]    (1) : parsing [/etc/shadow:2] : 'daemon:*:19000' is not a valid address\n"
        f"[ALERT]    (1) : parsing [{live}:13] : {'x' * 5000}\n"
        "[WARNING]  (1) : parsing [x:14] : 'option httpchk GET /no/such/uri' ignored\n"
        "[ALERT]    (1) : Fatal errors found in configuration.\n"
    )
    shown = haproxy_messages(output, live=live).splitlines()
    assert (
        shown[0]
        == f"[ALERT] parsing [{live}:12] : unknown keyword 'frobnicate' in 'listen' section"
    )
    assert shown[1] == (
        "[ALERT] HAProxy's message names a file other than its configuration and is not shown"
    )
    assert len(shown) == 4 and len(shown[2]) < 500 and shown[2].endswith("…")
    assert shown[3] == "[WARNING] parsing [x:14] : 'option httpchk GET /no/such/uri' ignored"
    assert "secret" not in "\n".join(shown) and "daemon" not in "\n".join(shown)
