"""All three daemons of the node at once: their controllers and their status."""

from __future__ import annotations

from lbadmin.engines.daemons.base import Controller, DaemonStatus, ipvs_available
from lbadmin.engines.daemons.haproxy import HaproxyControl
from lbadmin.engines.daemons.keepalived import KeepalivedControl
from lbadmin.engines.daemons.layout import RuntimeLayout
from lbadmin.engines.daemons.stunnel import StunnelControl


def controllers(layout: RuntimeLayout, *, keepalived_vrrp_only: bool) -> dict[str, Controller]:
    return {
        "haproxy": HaproxyControl(layout),
        "stunnel": StunnelControl(layout),
        "keepalived": KeepalivedControl(layout, vrrp_only=keepalived_vrrp_only),
    }


def status_all(
    layout: RuntimeLayout, *, keepalived_vrrp_only: bool | None = None
) -> dict[str, DaemonStatus]:
    """Status of all three daemons; cheap and never raises.

    ``keepalived_vrrp_only`` only changes the wording of keepalived's detail; by default it is
    derived from ``ipvs_available()``.
    """
    vrrp_only = (not ipvs_available()) if keepalived_vrrp_only is None else keepalived_vrrp_only
    return {
        name: ctl.status()
        for name, ctl in controllers(layout, keepalived_vrrp_only=vrrp_only).items()
    }
