"""Real HAProxy, stunnel and keepalived, driven through lbadmin.engines.daemons.

Everything binds to loopback on free ports: the daemons' listeners on a random 127.x.y.z
address (so no client socket on 127.0.0.1 can already hold the port), the Python backend on
127.0.0.1. Configs and logs live in tmp_path, sockets in a short /tmp/lb* directory (sun_path
is limited to 108 bytes). Every daemon started here is stopped by a fixture finalizer, and the
layout fixture (tests/engines/conftest.py) SIGKILLs and reports anything left.
"""

import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import (
    DaemonError,
    HaproxyControl,
    KeepalivedControl,
    RuntimeLayout,
    StunnelControl,
    binary_available,
    controllers,
    ipvs_available,
    missing_binaries,
    parse_show_proc,
    status_all,
)
from lbadmin.render.bootstrap import render_haproxy_bootstrap, render_keepalived_bootstrap
from lbadmin.services.tls import webui_certificate_ensure
from tests.daemon_support import Backends, free_listen_address, http_get, https_get, wait_until

BACKEND_BODY = b"hello from the real server\n"


# ---------------------------------------------------------------------------------------------
# Helpers


def assert_port_closed(host: str, port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=1).close()


# ---------------------------------------------------------------------------------------------
# Fixtures (layout, haproxy, stunnel and backends: tests/engines/conftest.py)


@pytest.fixture
def keepalived(layout: RuntimeLayout) -> Iterator[KeepalivedControl]:
    control = KeepalivedControl(layout, vrrp_only=True)
    yield control
    control.stop(timeout=2.0)


@pytest.fixture
def backend_port(backends: Backends) -> int:
    """One real server on 127.0.0.1 answering BACKEND_BODY; its port."""
    return backends.http(BACKEND_BODY.decode(), "127.0.0.1").server_address[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("cert")
    cert, key = directory / "cert.pem", directory / "key.pem"
    webui_certificate_ensure(cert_path=cert, key_path=key, days=1)
    return cert, key


def haproxy_config(layout: RuntimeLayout, host: str, port: int, backend_port: int) -> str:
    return render_haproxy_bootstrap(layout) + (
        "\nfrontend web\n"
        f"    bind {host}:{port}\n"
        "    default_backend pool\n"
        "\nbackend pool\n"
        f"    server s1 127.0.0.1:{backend_port}\n"
    )


INSTANCE = "ssl-0123456789ab"


def stunnel_config(
    layout: RuntimeLayout,
    host: str,
    port: int,
    backend_port: int,
    cert: Path,
    key: Path,
    name: str = INSTANCE,
) -> str:
    return (
        f"pid = {layout.stunnel_instance_pid(name)}\n"
        "foreground = no\n"
        f"output = {layout.stunnel_instance_log(name)}\n"
        "syslog = no\n"
        "\n[https]\n"
        f"accept = {host}:{port}\n"
        f"connect = 127.0.0.1:{backend_port}\n"
        f"cert = {cert}\n"
        f"key = {key}\n"
    )


# ---------------------------------------------------------------------------------------------
# No daemon needed


def test_cli_commands_must_be_single_commands(layout: RuntimeLayout) -> None:
    control = HaproxyControl(layout)
    for bad in ("show proc\nreload", "show info; show stat", "show info\r", "reload\0"):
        refusal = re.escape(f"HAProxy CLI command must be a single command: {bad!r}")
        with pytest.raises(ValueError, match=refusal):
            control.master_command(bad)
        with pytest.raises(ValueError, match=refusal):
            control.runtime_command(bad)


def test_never_started_daemons_report_not_running(layout: RuntimeLayout) -> None:
    statuses = status_all(layout)
    assert set(statuses) == {"haproxy", "stunnel", "keepalived"}
    for name, status in statuses.items():
        assert status.name == name
        assert status.running is False
        assert status.pid is None
        assert status.detail.startswith("not running")
    # A stale pid file naming a live process that is not ours (this test) is not "running".
    layout.haproxy_pid_file.write_text(f"{os.getpid()}\n")
    layout.stunnel_instance_config(INSTANCE).write_text("; an SSL termination\n")
    layout.stunnel_instance_pid(INSTANCE).write_text(f"{os.getpid()}\n")
    assert not HaproxyControl(layout).status().running
    status = StunnelControl(layout).status()
    assert not status.running and status.detail.startswith("not running: 1 of 1")
    assert StunnelControl(layout).running_instances() == {}
    # Stopping what is not running is a no-op that clears stale pid files.
    HaproxyControl(layout).stop()
    assert not layout.haproxy_pid_file.exists()
    with pytest.raises(DaemonError, match="not running"):
        HaproxyControl(layout).reload()


def test_layout_under_and_ensure(tmp_path: Path) -> None:
    layout = RuntimeLayout.under(tmp_path / "var")
    assert layout.conf_dir == tmp_path / "var" / "etc"
    assert layout.run_dir == tmp_path / "var" / "run"
    assert layout.log_dir == tmp_path / "var" / "log"
    assert layout.haproxy_admin_socket == layout.run_dir / "haproxy.sock"
    assert layout.stunnel_dir == layout.conf_dir / "stunnel"
    assert layout.stunnel_cert_dir == layout.conf_dir / "certs"
    assert layout.termination_socket(INSTANCE) == layout.run_dir / f"{INSTANCE}.sock"
    layout.ensure()
    for directory in (layout.conf_dir, layout.run_dir, layout.log_dir, layout.stunnel_dir):
        assert directory.stat().st_mode & 0o777 == 0o750
    assert layout.stunnel_cert_dir.stat().st_mode & 0o777 == 0o700  # private keys
    with pytest.raises(ValueError, match=re.escape("invalid stunnel instance name: 'ssl-../../x'")):
        layout.stunnel_instance_pid("ssl-../../x")
    deep = RuntimeLayout.under(tmp_path / ("x" * 120))
    refusal = rf"^unix socket path too long \(\d+ bytes > \d+\): {re.escape(str(deep.run_dir))}/"
    with pytest.raises(ValueError, match=refusal):
        deep.ensure()


def test_missing_binaries_reports_packages() -> None:
    missing = missing_binaries()
    assert set(missing) <= {"haproxy", "stunnel", "keepalived"}
    assert binary_available("no-such-binary-lbadmin") is False
    assert isinstance(ipvs_available(), bool)


def test_parse_show_proc() -> None:
    text = (
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "8257            master          2 [failed: 1]   0d00h00m08s     2.6.12\n"
        "# workers\n"
        "8495            worker          1               0d00h00m01s     2.6.12\n"
        "# old workers\n"
        "8400            worker          2               0d00h00m05s     2.6.12\n"
        "# programs\n"
    )
    procs = parse_show_proc(text)
    assert (procs.master_pid, procs.reloads, procs.failed_reloads) == (8257, 2, 1)
    assert procs.workers == (8495,)
    assert procs.old_workers == (8400,)


def test_haproxy_check_config_catches_syntax_error(layout: RuntimeLayout) -> None:
    control = HaproxyControl(layout)
    bad = layout.conf_dir / "bad.cfg"
    bad.write_text(render_haproxy_bootstrap(layout) + "\nfrontend web\n    frobnicate now\n")
    result = control.check_config(bad)
    assert not result.ok
    assert "frobnicate" in result.output
    assert not control.check_config(layout.conf_dir / "missing.cfg").ok


# ---------------------------------------------------------------------------------------------
# HAProxy


@pytest.mark.daemons
def test_haproxy_lifecycle(
    layout: RuntimeLayout, haproxy: HaproxyControl, backend_port: int
) -> None:
    host, port = free_listen_address()
    good = haproxy_config(layout, host, port, backend_port)
    haproxy.config_path.write_text(good)
    assert haproxy.check_config(haproxy.config_path).ok

    haproxy.start()
    master = haproxy.pid()
    assert master is not None
    haproxy.start()  # already running: no-op
    assert haproxy.pid() == master

    status = haproxy.status()
    assert status.running and status.pid == master
    assert haproxy.show_proc().master_pid == master
    assert "2.6" in status.detail
    info = haproxy.runtime_command("show info")
    assert "Version:" in info and "2.6" in info
    assert http_get(host, port) == BACKEND_BODY

    # Reload: a new worker replaces the old one and traffic still flows.
    old_workers = haproxy.show_proc().workers
    haproxy.reload()
    new_workers = haproxy.show_proc().workers
    assert new_workers and set(new_workers).isdisjoint(old_workers)
    assert haproxy.pid() == master
    assert http_get(host, port) == BACKEND_BODY

    # A broken config: DaemonError, and the old worker keeps serving.
    haproxy.config_path.write_text(good + "\nfrontend broken\n    frobnicate now\n")
    with pytest.raises(DaemonError, match="reload failed") as failure:
        haproxy.reload()
    assert "frobnicate" in str(failure.value)
    assert haproxy.show_proc().workers == new_workers
    assert http_get(host, port) == BACKEND_BODY

    # Fixed again: the next reload succeeds.
    haproxy.config_path.write_text(good)
    haproxy.reload()
    assert set(haproxy.show_proc().workers).isdisjoint(new_workers)
    assert http_get(host, port) == BACKEND_BODY

    haproxy.stop()
    status = haproxy.status()
    assert not status.running and status.pid is None
    assert not layout.haproxy_pid_file.exists()
    assert_port_closed(host, port)
    haproxy.stop()  # not running: no-op


@pytest.mark.daemons
def test_haproxy_start_failure_reports_haproxy_error(
    layout: RuntimeLayout, haproxy: HaproxyControl, backend_port: int
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        haproxy.config_path.write_text(haproxy_config(layout, "127.0.0.1", port, backend_port))
        with pytest.raises(DaemonError, match="cannot bind"):
            haproxy.start()
    assert not haproxy.status().running


# ---------------------------------------------------------------------------------------------
# stunnel


@pytest.mark.daemons
def test_stunnel_lifecycle(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    certificate: tuple[Path, Path],
) -> None:
    host, port = free_listen_address()
    good = stunnel_config(layout, host, port, backend_port, *certificate)
    config = layout.stunnel_instance_config(INSTANCE)
    config.write_text(good)
    assert stunnel.check_config().ok

    stunnel.start()
    pid = stunnel.instance_pid(INSTANCE)
    assert pid is not None and stunnel.pid() == pid
    assert stunnel.running_instances() == {INSTANCE: pid}
    # The listener is the socket we bound, passed as fd 3 (socket activation).
    assert os.readlink(f"/proc/{pid}/fd/3").startswith("socket:")
    status = stunnel.status()
    assert status.running and status.pid == pid and INSTANCE in status.detail
    assert https_get(host, port) == BACKEND_BODY
    stunnel.start()  # already running: no-op
    assert stunnel.instance_pid(INSTANCE) == pid

    stunnel.reload()  # SIGHUP, confirmed from the log
    assert stunnel.instance_pid(INSTANCE) == pid
    assert https_get(host, port) == BACKEND_BODY

    config.write_text(good + "frobnicate = yes\n")
    with pytest.raises(DaemonError, match="rejected") as failure:
        stunnel.reload()
    assert "frobnicate" in str(failure.value) and INSTANCE in str(failure.value)
    assert stunnel.instance_pid(INSTANCE) == pid
    assert https_get(host, port) == BACKEND_BODY

    config.write_text(good)
    stunnel.stop()
    status = stunnel.status()
    assert not status.running and status.detail.startswith("not running")
    assert not layout.stunnel_instance_pid(INSTANCE).exists()
    assert_port_closed(host, port)
    stunnel.stop()  # not running: no-op


@pytest.mark.daemons
def test_stunnel_refuses_a_config_without_its_own_pid_file(
    layout: RuntimeLayout, stunnel: StunnelControl, certificate: tuple[Path, Path]
) -> None:
    host, port = free_listen_address()
    text = stunnel_config(layout, host, port, 9, *certificate)
    wrong = text.replace(str(layout.stunnel_instance_pid(INSTANCE)), str(layout.run_dir / "x"))
    layout.stunnel_instance_config(INSTANCE).write_text(wrong)
    with pytest.raises(DaemonError, match="pid ="):
        stunnel.start()
    assert not stunnel.status().running


@pytest.mark.daemons
def test_stunnel_start_reports_a_taken_address(
    layout: RuntimeLayout, stunnel: StunnelControl, certificate: tuple[Path, Path]
) -> None:
    with socket.socket() as taken:
        taken.bind(free_listen_address())
        taken.listen()
        host, port = taken.getsockname()
        config = stunnel_config(layout, host, port, 9, *certificate)
        layout.stunnel_instance_config(INSTANCE).write_text(config)
        with pytest.raises(DaemonError, match="address already in use"):
            stunnel.start()
    assert stunnel.running_instances() == {}


@pytest.mark.daemons
def test_stunnel_restarts_after_sigkill(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    certificate: tuple[Path, Path],
) -> None:
    host, port = free_listen_address()
    config = stunnel_config(layout, host, port, backend_port, *certificate)
    layout.stunnel_instance_config(INSTANCE).write_text(config)
    stunnel.start()
    pid = stunnel.instance_pid(INSTANCE)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: stunnel.instance_pid(INSTANCE) is None, 3, "the killed stunnel to be gone")
    assert not stunnel.status().running
    stunnel.start()
    assert stunnel.instance_pid(INSTANCE) not in (None, pid)
    assert https_get(host, port) == BACKEND_BODY


# ---------------------------------------------------------------------------------------------
# keepalived


def test_keepalived_check_config(layout: RuntimeLayout) -> None:
    control = KeepalivedControl(layout, vrrp_only=True)
    good = layout.conf_dir / "good.conf"
    good.write_text(render_keepalived_bootstrap(layout))
    assert control.check_config(good).ok
    garbage = layout.conf_dir / "garbage.conf"
    garbage.write_text("this is { not keepalived\n")
    result = control.check_config(garbage)
    assert not result.ok and "Unknown keyword" in result.output
    # keepalived -t itself exits 0 for a missing file; the controller must not.
    assert not control.check_config(layout.conf_dir / "missing.conf").ok


@pytest.mark.daemons
def test_keepalived_vrrp_only_lifecycle(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    good = render_keepalived_bootstrap(layout)
    keepalived.config_path.write_text(good)
    keepalived.start()
    pid = keepalived.pid()
    assert pid is not None
    assert "--vrrp" in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    status = keepalived.status()
    assert status.running and status.pid == pid and "VRRP only" in status.detail
    keepalived.start()  # no-op
    assert keepalived.pid() == pid

    keepalived.reload()
    assert keepalived.pid() == pid

    keepalived.config_path.write_text("this is { not keepalived\n")
    with pytest.raises(DaemonError, match="not reloaded"):
        keepalived.reload()
    assert keepalived.pid() == pid
    keepalived.config_path.write_text(good)

    keepalived.stop()
    assert not keepalived.status().running
    assert not layout.keepalived_pid_file.exists()


@pytest.mark.daemons
def test_keepalived_refuses_to_start_a_bad_config(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    keepalived.config_path.write_text("this is { not keepalived\n")
    with pytest.raises(DaemonError, match="Unknown keyword"):
        keepalived.start()
    assert not keepalived.status().running


# ---------------------------------------------------------------------------------------------
# All three from their bootstrap configs (stunnel: none)


@pytest.mark.daemons
def test_all_bootstrap_configs_start_with_no_network_listener(layout: RuntimeLayout) -> None:
    vrrp_only = not ipvs_available()
    controls = controllers(layout, keepalived_vrrp_only=vrrp_only)
    layout.haproxy_config.write_text(render_haproxy_bootstrap(layout))
    layout.keepalived_config.write_text(render_keepalived_bootstrap(layout))
    # stunnel has no bootstrap: with no SSL termination it runs no process at all.
    try:
        for control in controls.values():
            control.start()
        statuses = status_all(layout, keepalived_vrrp_only=vrrp_only)
        assert all(status.running for status in statuses.values()), statuses
        assert statuses["haproxy"].detail.startswith("HAProxy 2.")
        assert statuses["stunnel"].detail == "no SSL terminations configured"
        assert controls["haproxy"].master_command("show version").startswith("2.")
    finally:
        for control in controls.values():
            control.stop(timeout=2.0)
    assert not any(status.running for status in status_all(layout).values())
