"""Start, stop, reload, config-test and query HAProxy, stunnel and keepalived.

This package is the only code that runs the daemons' binaries, signals them or talks to their
sockets. It never imports Django, so Celery tasks, management commands and tests can all use it.
Everything is imported from here; the modules are:

- ``layout``: where the daemons' files live (``RuntimeLayout``);
- ``base``: binaries, errors, the config-test runner and the ``Controller`` base classes;
- ``proc``: pid files, ``/proc`` and log files, read without spawning anything;
- ``haproxy``, ``stunnel``, ``keepalived`` (with ``keepalived_log``): one controller each,
  with the measured quirks of that daemon in its module docstring;
- ``node``: all three at once.

Conventions:
- Every subprocess gets an argument list, never a shell string.
- Every wait is bounded; failures raise ``DaemonError`` carrying the daemon's own output.
- ``status()`` never raises and spawns no process: it reads a pid file, ``/proc`` and (for
  HAProxy) the admin socket, so a health endpoint can call it often.
- A pid only counts as "ours" when ``/proc/<pid>/cmdline`` names our pid file or config, so a
  host-wide haproxy/stunnel/keepalived is never mistaken for the appliance's one (or killed).
"""

from lbadmin.engines.daemons.base import (
    BINARIES,
    DAEMON_ENVIRONMENT,
    DEBIAN_PACKAGES,
    EXTRA_SEARCH_DIRS,
    CheckResult,
    Controller,
    DaemonError,
    DaemonStatus,
    binary_available,
    find_binary,
    ipvs_available,
    missing_binaries,
)
from lbadmin.engines.daemons.haproxy import (
    HaproxyControl,
    HaproxyProcs,
    parse_show_info,
    parse_show_proc,
)
from lbadmin.engines.daemons.keepalived import KeepalivedControl
from lbadmin.engines.daemons.keepalived_log import (
    keepalived_has_configuration,
    keepalived_log_lines,
    keepalived_messages,
    vrrp_states_from_log,
)
from lbadmin.engines.daemons.layout import (
    HAPROXY_ACCOUNT,
    MAX_UNIX_SOCKET_PATH,
    STUNNEL_INSTANCE_NAME,
    RuntimeLayout,
    check_instance_name,
    haproxy_account,
)
from lbadmin.engines.daemons.node import controllers, status_all
from lbadmin.engines.daemons.stunnel import (
    ListenError,
    StunnelControl,
    bind_listener,
    format_address,
    parse_accept,
    spawn_with_listener,
    stunnel_instance_address,
    stunnel_options,
)

# Durable writes were first written here; they live in lbadmin.engines.files now.
from lbadmin.engines.files import fsync_directory, write_atomically

__all__ = [
    "BINARIES",
    "DAEMON_ENVIRONMENT",
    "DEBIAN_PACKAGES",
    "EXTRA_SEARCH_DIRS",
    "HAPROXY_ACCOUNT",
    "MAX_UNIX_SOCKET_PATH",
    "STUNNEL_INSTANCE_NAME",
    "CheckResult",
    "Controller",
    "DaemonError",
    "DaemonStatus",
    "HaproxyControl",
    "HaproxyProcs",
    "KeepalivedControl",
    "ListenError",
    "RuntimeLayout",
    "StunnelControl",
    "binary_available",
    "bind_listener",
    "check_instance_name",
    "controllers",
    "find_binary",
    "format_address",
    "fsync_directory",
    "haproxy_account",
    "ipvs_available",
    "keepalived_has_configuration",
    "keepalived_log_lines",
    "keepalived_messages",
    "missing_binaries",
    "parse_accept",
    "parse_show_info",
    "parse_show_proc",
    "spawn_with_listener",
    "status_all",
    "stunnel_instance_address",
    "stunnel_options",
    "vrrp_states_from_log",
    "write_atomically",
]
