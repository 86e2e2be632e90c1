"""The node's load-balancer daemons, as the rest of the appliance sees them.

lbadmin.engines.daemons knows how to drive each daemon; this module knows what to start them
with, in this appliance's layout (lbadmin.services.layout).
"""

import os
from pathlib import Path

from lbadmin.engines.daemons import (
    Controller,
    DaemonError,
    DaemonStatus,
    controllers,
    ipvs_available,
)
from lbadmin.render.bootstrap import render_haproxy_bootstrap, render_keepalived_bootstrap
from lbadmin.services.ha_node import floating_binds_allow
from lbadmin.services.layout import runtime_layout
from lbadmin.services.locks import node_lock

# stunnel has none: one process per SSL termination, none at all before the first one.
_BOOTSTRAP = {
    "haproxy": render_haproxy_bootstrap,
    "keepalived": render_keepalived_bootstrap,
}


def daemon_controllers() -> dict[str, Controller]:
    # Without kernel IPVS keepalived's checker exits, so it runs for VRRP only (DESIGN.md).
    return controllers(runtime_layout(), keepalived_vrrp_only=not ipvs_available())


def layer4_unavailable_reason() -> str:
    """Why Layer 4 services cannot run on this host ('' when they can): shown on System
    Overview and the Layer 4 pages."""
    if ipvs_available():
        return ""
    return (
        f"this kernel ({os.uname().release}) has no IPVS: /proc/net/ip_vs does not exist and "
        "there is no ip_vs module to load (a container, or a kernel built without it)."
    )


def daemons_status() -> dict[str, DaemonStatus]:
    return {name: control.status() for name, control in daemon_controllers().items()}


def daemons_start() -> None:
    """Start every daemon from its live configuration; on first start that is the bootstrap
    configuration, written here (stunnel: every SSL termination's instance, if any).
    Daemons already running are left alone."""
    layout = runtime_layout()
    layout.ensure()
    floating_binds_allow()
    for name, control in daemon_controllers().items():
        bootstrap = _BOOTSTRAP.get(name)
        if bootstrap is not None and not control.config_path.exists():
            _write_atomically(control.config_path, bootstrap(layout))
        control.start()


def daemon_restart(name: str) -> str:
    """Full restart of one daemon (drops its connections): stop, then start from the live
    configuration. Returns '' on success, else the daemon's error."""
    control = daemon_controllers()[name]
    try:
        with node_lock("config-apply"):  # never in the middle of an apply
            control.restart()
    except DaemonError as error:
        return str(error)
    return ""


def daemon_revive(name: str) -> str | None:
    """Start ``name`` again from its live configuration if it is not running (it died: nothing
    else restarts a daemon). None when it runs (or was never set up), else what happened, for
    the log. Skipped while an apply holds the node's lock: the apply starts it itself."""
    control = daemon_controllers()[name]
    if control.pid() is not None or not control.config_path.exists():
        return None
    try:
        with node_lock("config-apply", timeout=0.5):
            if control.pid() is not None:
                return None
            control.start()
    except TimeoutError:
        return None
    except DaemonError as error:
        return f"{name} was not running and could not be started again: {error}"
    return f"{name} was not running: started it again"


def daemons_stop() -> None:
    for control in daemon_controllers().values():
        control.stop()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
