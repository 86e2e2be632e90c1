"""Where the appliance keeps the daemons' configuration and runtime files (``RuntimeLayout``),
so the renderers and the controllers agree; stunnel instance names; the account HAProxy's
workers drop to. No subprocess, no Django."""

from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

# sun_path is 108 bytes including the terminating NUL.
MAX_UNIX_SOCKET_PATH = 107

# stunnel instance names: "ssl-" + 12 hex digits (render.stunnel.termination_instance).
# fullmatch, never ^...$: "$" also matches before a trailing newline.
STUNNEL_INSTANCE_NAME = re.compile(r"ssl-[0-9a-f]{12}")
# Every instance name has this length, so one sample checks all socket path lengths.
_SAMPLE_INSTANCE = "ssl-" + "0" * 12


def check_instance_name(name: str) -> str:
    """``name`` if it is a valid stunnel instance name (``ssl-`` + 12 hex), else ValueError."""
    if not isinstance(name, str) or not STUNNEL_INSTANCE_NAME.fullmatch(name):
        raise ValueError(f"invalid stunnel instance name: {name!r}")
    return name


HAPROXY_ACCOUNT = "haproxy"  # made by Debian's haproxy package


def haproxy_account() -> tuple[str, str] | None:
    """(user, group) for HAProxy's workers to drop to: only when we run as root (else HAProxy
    could not switch) and the account exists."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(HAPROXY_ACCOUNT)
        return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        return None


@dataclass(frozen=True)
class RuntimeLayout:
    """Where the appliance keeps the daemons' config and runtime files.

    All paths of every daemon are derived here, so the renderers and the controllers agree.
    """

    conf_dir: Path  # rendered configs: haproxy.cfg, stunnel/<instance>.conf, keepalived.conf
    run_dir: Path  # pid files, sockets
    log_dir: Path
    # The account HAProxy's workers drop to (user, group) after binding, chrooted to an empty
    # directory, so a gap in the manual-lines allowlist cannot read or replace root's files.
    # None where the appliance does not run as root (a developer's `make run`).
    haproxy_account: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        # Absolute paths: haproxy -D chdirs to / and re-execs itself with the same arguments.
        for name in ("conf_dir", "run_dir", "log_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)).absolute())

    @classmethod
    def under(cls, var_dir: Path) -> RuntimeLayout:
        var_dir = Path(var_dir)
        return cls(conf_dir=var_dir / "etc", run_dir=var_dir / "run", log_dir=var_dir / "log")

    def ensure(self) -> None:
        """mkdir -p all three directories and stunnel's two, mode 0750 (the certificate
        directory, which holds private keys, 0700); refuse over-long socket paths.

        Only directories created here are chmod-ed: an existing one (say a shared /run
        given by mistake) keeps its permissions.
        """
        for directory, mode in (
            (self.conf_dir, 0o750),
            (self.run_dir, 0o750),
            (self.log_dir, 0o750),
            (self.stunnel_dir, 0o750),
            (self.stunnel_cert_dir, 0o700),
            (self.haproxy_chroot, 0o700),
        ):
            try:
                directory.mkdir(mode=mode, parents=True)
            except FileExistsError:
                continue
            directory.chmod(mode)  # mkdir's mode is masked by umask
        self.check_socket_paths()

    def check_socket_paths(self) -> None:
        for sock in self.unix_sockets:
            if len(os.fsencode(sock)) > MAX_UNIX_SOCKET_PATH:
                raise ValueError(
                    f"unix socket path too long ({len(os.fsencode(sock))} bytes > "
                    f"{MAX_UNIX_SOCKET_PATH}): {sock}; use a shorter run_dir"
                )

    @property
    def unix_sockets(self) -> tuple[Path, ...]:
        return (
            self.haproxy_master_socket,
            self.haproxy_admin_socket,
            # All instance names have one length, so this stands for every termination socket.
            self.termination_socket(_SAMPLE_INSTANCE),
        )

    # HAProxy
    @property
    def haproxy_config(self) -> Path:
        return self.conf_dir / "haproxy.cfg"

    @property
    def haproxy_pid_file(self) -> Path:
        return self.run_dir / "haproxy.pid"

    @property
    def haproxy_master_socket(self) -> Path:
        return self.run_dir / "haproxy-master.sock"

    @property
    def haproxy_admin_socket(self) -> Path:
        return self.run_dir / "haproxy.sock"

    @property
    def haproxy_chroot(self) -> Path:
        """An empty directory owned by root: all HAProxy's workers can see of the disk."""
        return self.run_dir / "haproxy-empty"

    @property
    def haproxy_state_file(self) -> Path:
        """`show servers state` is dumped here before every reload (HAProxy never writes it)."""
        return self.run_dir / "haproxy-servers.state"

    @property
    def haproxy_master_log(self) -> Path:
        """The HAProxy master's stdout/stderr: its start-up and every reload's messages."""
        return self.log_dir / "haproxy-master.log"

    # stunnel: one process ("instance") per SSL termination, named ssl-<12 hex>
    @property
    def stunnel_dir(self) -> Path:
        """One ``<instance>.conf`` per SSL termination; nothing else."""
        return self.conf_dir / "stunnel"

    @property
    def stunnel_cert_dir(self) -> Path:
        """Certificate bundles (key + certificate + chain) the instances use; mode 0700."""
        return self.conf_dir / "certs"

    def stunnel_instance_config(self, name: str) -> Path:
        return self.stunnel_dir / f"{check_instance_name(name)}.conf"

    def stunnel_instance_pid(self, name: str) -> Path:
        return self.run_dir / f"stunnel-{check_instance_name(name)}.pid"

    def stunnel_instance_log(self, name: str) -> Path:
        """The instance's ``output =``: the engine reads it to confirm reloads."""
        return self.log_dir / f"stunnel-{check_instance_name(name)}.log"

    def termination_socket(self, name: str) -> Path:
        """HAProxy's unix bind (``accept-proxy``) that instance ``name`` connects to."""
        return self.run_dir / f"{check_instance_name(name)}.sock"

    @property
    def stunnel_started_marker(self) -> Path:
        """Exists between StunnelControl.start() and stop(): with no SSL termination there is
        no process to look at, and this is what tells "serving nothing" from "stopped"."""
        return self.run_dir / "stunnel.started"

    # keepalived
    @property
    def keepalived_config(self) -> Path:
        return self.conf_dir / "keepalived.conf"

    @property
    def keepalived_pid_file(self) -> Path:
        return self.run_dir / "keepalived.pid"

    @property
    def keepalived_vrrp_pid_file(self) -> Path:
        return self.run_dir / "keepalived-vrrp.pid"

    @property
    def keepalived_checkers_pid_file(self) -> Path:
        return self.run_dir / "keepalived-checkers.pid"

    @property
    def keepalived_bfd_pid_file(self) -> Path:
        return self.run_dir / "keepalived-bfd.pid"

    @property
    def keepalived_log(self) -> Path:
        """keepalived's own log (``--log-console`` output of the parent and its children):
        KeepalivedControl confirms starts and reloads from it."""
        return self.log_dir / "keepalived.log"
