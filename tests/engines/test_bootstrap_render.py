"""Bootstrap configs: golden-ish key lines, and each one passes the real daemon's checker."""

import os
import re
from pathlib import Path

import pytest

from lbadmin.engines.daemons import (
    HaproxyControl,
    KeepalivedControl,
    RuntimeLayout,
    StunnelControl,
)
from lbadmin.render.bootstrap import render_haproxy_bootstrap, render_keepalived_bootstrap

LAYOUT = RuntimeLayout.under(Path("/var/lib/lbadmin"))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_haproxy_bootstrap_key_lines() -> None:
    lines = _lines(render_haproxy_bootstrap(LAYOUT))
    assert (
        "stats socket /var/lib/lbadmin/run/haproxy.sock mode 600 level admin expose-fd listeners"
        in lines
    )
    assert "master-worker" in lines
    assert "hard-stop-after 45000ms" in lines  # the longest idle timeout
    assert "server-state-file /var/lib/lbadmin/run/haproxy-servers.state" in lines
    assert "load-server-state-from-file global" in lines
    assert "timeout connect 4000ms" in lines
    assert "timeout client 43000ms" in lines
    assert "timeout server 45000ms" in lines
    assert "option redispatch" in lines
    assert "mode http" in lines
    # No network listener in the bootstrap: nothing reachable before a VIP exists.
    assert not any(line.startswith("bind") for line in lines)


def test_keepalived_bootstrap_key_lines() -> None:
    text = render_keepalived_bootstrap(LAYOUT)
    lines = _lines(text)
    assert "global_defs {" in lines
    assert "router_id lbadmin" in lines
    assert "enable_script_security" in lines
    assert "vrrp_instance" not in text
    assert "virtual_server" not in text


def test_renderers_reject_unsafe_paths() -> None:
    layout = RuntimeLayout.under(Path("/var/lib/lb admin"))
    unsafe = "unsafe path for a config file: '/var/lib/lb admin/run/haproxy.sock'"
    with pytest.raises(ValueError, match=re.escape(unsafe)):
        render_haproxy_bootstrap(layout)
    unsafe = "unsafe router_id: 'x\\n}\\nvrrp_script evil {'"
    with pytest.raises(ValueError, match=re.escape(unsafe)):
        render_keepalived_bootstrap(LAYOUT, router_id="x\n}\nvrrp_script evil {")


def test_haproxy_bootstrap_passes_haproxy_c(tmp_path: Path) -> None:
    layout = RuntimeLayout.under(tmp_path)
    layout.ensure()
    # HAProxy warns about a missing or empty server-state-file; the engine keeps one there
    # (a `show servers state` dump, whose first line is the format version "1").
    layout.haproxy_state_file.write_text("1\n")
    layout.haproxy_config.write_text(render_haproxy_bootstrap(layout))
    result = HaproxyControl(layout).check_config(layout.haproxy_config)
    assert result.ok, result.output
    assert result.warnings == (), result.output


def test_keepalived_bootstrap_passes_keepalived_t(tmp_path: Path) -> None:
    layout = RuntimeLayout.under(tmp_path)
    layout.ensure()
    layout.keepalived_config.write_text(render_keepalived_bootstrap(layout))
    result = KeepalivedControl(layout, vrrp_only=True).check_config(layout.keepalived_config)
    assert result.ok, result.output


def test_stunnel_needs_no_bootstrap_and_checks_only_readability(tmp_path: Path) -> None:
    # stunnel has no config-test flag; stunnel_apply proves new text with a throw-away
    # stunnel (tests/engines/test_stunnel_apply.py). With no SSL termination there are no
    # files, and that is a valid configuration.
    layout = RuntimeLayout.under(tmp_path)
    layout.ensure()
    control = StunnelControl(layout)
    assert control.config_path == layout.stunnel_dir
    assert control.check_config().ok
    instance = layout.stunnel_instance_config("ssl-0123456789ab")
    assert not control.check_config(instance).ok
    instance.write_text("; any text: not parsed\n")
    assert control.check_config(instance).ok
    assert control.check_config().ok
    instance.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        assert not control.check_config().ok
