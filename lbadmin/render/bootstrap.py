"""Minimal base configurations each daemon needs to start before any virtual service exists.

Pure functions: no I/O, no subprocess. Paths come from ``RuntimeLayout`` so the controllers in
``lbadmin.engines.daemons`` find the pid files and sockets where the configs put them.
Measured on HAProxy 2.6.12 and keepalived 2.2.7; tests run the real checkers.

stunnel needs none: it runs one process per SSL termination (``StunnelControl``), so with no
termination no stunnel runs at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lbadmin.render.haproxy import render_haproxy
from lbadmin.render.keepalived import render_keepalived
from lbadmin.render.snapshot import HaproxySnapshot, KeepalivedSnapshot

if TYPE_CHECKING:
    from lbadmin.engines.daemons import RuntimeLayout


def render_haproxy_bootstrap(layout: RuntimeLayout) -> str:
    """HAProxy global + defaults, no frontend: ``render_haproxy`` of an empty snapshot.

    HAProxy 2.6 refuses to start a plain (non master-worker) process with no listener at all
    ("No enabled listener found ... Exiting."), but the admin ``stats socket`` counts as a
    listener (and in master-worker mode so does the master's socketpair), so this config
    starts without opening any network port: the only listener is a unix socket in run_dir.
    """
    return render_haproxy(HaproxySnapshot(), layout)


def render_keepalived_bootstrap(layout: RuntimeLayout, *, router_id: str = "lbadmin") -> str:
    """keepalived ``global_defs`` only (``render_keepalived`` of an empty snapshot); valid for
    ``keepalived -t`` and runs with ``--vrrp``."""
    return render_keepalived(KeepalivedSnapshot(router_id=router_id), layout)
