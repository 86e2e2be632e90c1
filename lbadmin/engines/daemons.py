"""Start, stop, reload, config-test and query HAProxy, stunnel and keepalived.

This is the only module that runs the daemons' binaries, signals them or talks to their
sockets. It never imports Django, so Celery tasks, management commands and tests can all use it.

Conventions:
- Every subprocess gets an argument list, never a shell string.
- Every wait is bounded; failures raise ``DaemonError`` carrying the daemon's own output.
- ``status()`` never raises and spawns no process: it reads a pid file, ``/proc`` and (for
  HAProxy) the admin socket, so a health endpoint can call it often.
- A pid only counts as "ours" when ``/proc/<pid>/cmdline`` names our pid file or config, so a
  host-wide haproxy/stunnel/keepalived is never mistaken for the appliance's one (or killed).

Measured quirks this module works around (HAProxy 2.6.12, stunnel 5.68, keepalived 2.2.7):
- HAProxy ``-D`` points stdio at /dev/null once up (``-q`` does not change that), so a failed
  reload would leave no message anywhere, and 2.6 has no master CLI ``show startup-logs``
  (a worker's ``show startup-logs`` holds its own start, not the failed reload). So the master
  runs without ``-D``, in its own session, with stdout/stderr appended to
  ``layout.haproxy_master_log``: a failed reload's own alerts (e.g. "cannot bind socket
  (Cannot assign requested address) for [192.0.2.10:80]", which ``haproxy -c`` never sees)
  land there and ``reload()`` quotes them; it falls back to ``haproxy -c`` otherwise.
- The server-state file's ``srv_port`` column (and the optional check/agent/ssl columns)
  override the config on reload (srv_addr does not); see ``save_server_state(transform=...)``.
- HAProxy's master CLI ``reload`` answers nothing in 2.6; ``show proc`` is the verdict.
- stunnel runs one process per SSL termination ("instance", see ``StunnelControl``). A plain
  SIGHUP closes and re-binds every listener: a loop of new TLS connections during 10 HUPs saw
  13 failures in ~860 (ECONNREFUSED, ECONNRESET). But stunnel supports systemd socket
  activation (main_init: ``sd_listen_fds``; LISTEN_FDS=N and LISTEN_PID = its own pid make
  fds 3.. the listeners of its first N ``accept`` services, whose address is then parsed but
  not bound) and never closes those fds on SIGHUP: 10 HUPs, 1303 requests, 0 failures. So we
  bind each instance's socket ourselves and hand it over as fd 3 (``spawn_with_listener``).
  A HUP therefore cannot move an instance to another address: that is a restart.
- stunnel has no config-test flag; a bad config on SIGHUP is only logged ("Configuration
  failed") and the old one keeps running, so ``reload_instance()`` reads the log to confirm.
  At start-up a bad config's ``[!]`` lines go to stderr, not to ``output``.
  (stunnel_apply validates new text with a throw-away stunnel instead.)
- stunnel's ``accept = host:port`` splits at the last colon: IPv6 is ``accept = ::1:4443``;
  ``[::1]:4443`` fails ("Error resolving "[::1]"").
- stunnel cannot start without a service (it falls into inetd mode), so with no SSL
  termination no stunnel process runs at all.
- keepalived forks before parsing its config and logs only to syslog (no /dev/log on these
  machines), so a bad config would die silently: ``start()`` runs ``keepalived -t`` first.
  Debian's 2.2.7 has no ``--log-file`` (a build option), and daemonized it points stdio at
  /dev/null even with ``-l``. So it runs with ``--dont-fork --log-console --log-detail`` in
  its own session, stdout/stderr appended to ``layout.keepalived_log`` (parent and children
  share it; their lines carry a timestamp, no pid).
- keepalived ``-t`` prints nothing and exits 0 for a good file AND for an empty one; 5 (with
  the reasons on stderr, once per process type) for a bad one; 0 for a missing file or a
  directory ("Config files missing …" / "… is a directory - skipping"), 4 with ``-e``; 4 for
  an unreadable one ("Unable to read configuration file"). ``check_config`` therefore checks
  the file itself, passes ``-e``, rejects those lines, and proves the parse: a copy with an
  unknown keyword appended must be reported at that last line (-t takes ~12 ms; both ~30 ms).
- A SIGHUP is handled by the parent from start to end before it waits again: it logs
  "Reloading ...", "Opening file …", "Configuration file <path>", then errors in the file
  (it does NOT refuse a bad file: it runs what it could parse) or "Cannot change instance
  name|network namespace|… at a reload - please restart keepalived" (then it keeps the old
  config and signals no child), then HUPs its children (each logs "Reloading") or starts
  one the new file needs ("Starting VRRP child process, pid=N"; its fatal config error ends
  keepalived: "pid N exited with permanent error CONFIG. Terminating"), and logs "Reload
  complete" ("Startup complete" the first time) once every child has read the file. With no
  child (no vrrp_instance under --vrrp) no line marks the parent's end, so ``reload()``
  waits for "Reloading ..." and then for the parent to sit in epoll_wait again
  (``/proc/<pid>/wchan`` = ``do_epoll_wait``). Child pids do not change on reload. A HUP
  during a reload is queued ("Reload already in progress, request queued").
  SIGHUP to confirmed (median of 20): ~13 ms with no child, ~23 ms with a VRRP child;
  reload() first re-checks the file (~30 ms).
- ``instance`` and ``net_namespace`` pass ``-t`` but cannot change at a reload (above);
  ``net_namespace <ns>`` makes keepalived (and ``-t``) enter that namespace itself.
- A vrrp_instance on a missing interface fails ``-t`` ("Non-existent interface"); if the
  interface vanishes later a reload only puts the instance in FAULT, but a VRRP child
  started by that reload exits with a config error and takes keepalived down.
- Processes re-parented to PID 1 can linger as zombies here; a zombie counts as stopped.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

# Durable writes were first written here; they live in lbadmin.engines.files now.
from lbadmin.engines.files import fsync_directory, write_atomically  # noqa: F401
from lbadmin.engines.processes import CommandError, run_command

# sun_path is 108 bytes including the terminating NUL.
MAX_UNIX_SOCKET_PATH = 107

# Non-root PATHs often lack sbin, where haproxy and keepalived live.
EXTRA_SEARCH_DIRS: tuple[str, ...] = ("/usr/local/sbin", "/usr/sbin", "/sbin")

# Daemon name -> binary names to try, in order.
BINARIES: dict[str, tuple[str, ...]] = {
    "haproxy": ("haproxy",),
    "stunnel": ("stunnel4", "stunnel"),
    "keepalived": ("keepalived",),
}

# Daemon name -> Debian package providing it (for "please install …" messages).
DEBIAN_PACKAGES: dict[str, str] = {
    "haproxy": "haproxy",
    "stunnel": "stunnel4",
    "keepalived": "keepalived",
}

_POLL_INTERVAL = 0.02
# The whole environment the daemons (and their config checks) get.
DAEMON_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_RELOAD_POLL_INTERVAL = 0.005
_CHECK_TIMEOUT = 30.0  # haproxy -c takes 20-130 ms; this only guards against a hang
_SOCKET_TIMEOUT = 3.0
_MAX_SOCKET_REPLY = 64 * 1024 * 1024
_MASTER_LOG_ROTATE_BYTES = 4 * 1024 * 1024  # checked at each start; one old generation kept
_LISTEN_BACKLOG = 1024

# stunnel instance names: "ssl-" + 12 hex digits (render.stunnel.termination_instance).
# fullmatch, never ^...$: "$" also matches before a trailing newline.
STUNNEL_INSTANCE_NAME = re.compile(r"ssl-[0-9a-f]{12}")
# Every instance name has this length, so one sample checks all socket path lengths.
_SAMPLE_INSTANCE = "ssl-" + "0" * 12


class DaemonError(Exception):
    """A daemon could not be started, stopped, reloaded or queried."""


class ListenError(DaemonError):
    """A listening socket could not be created; ``errno`` says why (EADDRINUSE…)."""

    def __init__(self, message: str, errno_value: int | None) -> None:
        super().__init__(message)
        self.errno = errno_value


def check_instance_name(name: str) -> str:
    """``name`` if it is a valid stunnel instance name (``ssl-`` + 12 hex), else ValueError."""
    if not isinstance(name, str) or not STUNNEL_INSTANCE_NAME.fullmatch(name):
        raise ValueError(f"invalid stunnel instance name: {name!r}")
    return name


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a configuration test; ``output`` keeps warnings for the UI."""

    ok: bool
    output: str

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(line for line in self.output.splitlines() if "WARNING" in line.upper())


@dataclass(frozen=True)
class DaemonStatus:
    name: str
    running: bool
    pid: int | None
    detail: str


@dataclass(frozen=True)
class HaproxyProcs:
    """Parsed master CLI ``show proc``."""

    master_pid: int
    reloads: int
    failed_reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


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


# ---------------------------------------------------------------------------------------------
# Binaries and kernel features


def find_binary(name: str) -> str | None:
    """Absolute path of a daemon ("stunnel") or binary ("stunnel4") name, or None."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *EXTRA_SEARCH_DIRS])
    for candidate in BINARIES.get(name, (name,)):
        found = shutil.which(candidate, path=search)
        if found:
            return os.path.abspath(found)
    return None


def binary_available(name: str) -> bool:
    return find_binary(name) is not None


def missing_binaries() -> dict[str, str]:
    """Daemons whose binary is missing, mapped to the Debian package that provides it."""
    return {name: DEBIAN_PACKAGES[name] for name in BINARIES if not binary_available(name)}


def ipvs_available() -> bool:
    """Whether keepalived can use IPVS (Layer 4 virtual servers) on this kernel.

    True when IPVS is loaded (/proc/net/ip_vs) or its module exists for the running kernel
    (keepalived loads it itself). The module may still fail to load without CAP_SYS_MODULE.
    """
    if Path("/proc/net/ip_vs").exists():
        return True
    ipvs_dir = Path("/lib/modules") / os.uname().release / "kernel/net/netfilter/ipvs"
    try:
        return any(ipvs_dir.glob("ip_vs.ko*"))
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# /proc helpers (no subprocess: status() must be cheap)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    if not text or not text[0].isdigit():
        return None
    pid = int(text[0])
    return pid if pid > 1 else None


def _proc_stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, ppid, starttime ticks) from /proc/<pid>/stat, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: it spans from the first "(" to the last ")".
    comm = raw[raw.find("(") + 1 : raw.rfind(")")]
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return comm, fields[0], int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    st = _proc_stat(pid)
    # Zombies (Z) and dead tasks (X) have exited; PID 1 here may reap them late.
    return st is not None and st[1] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]


def _child_pids(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None and st[2] == pid and st[1] not in ("Z", "X"):
                children.append(int(entry))
    return children


def _uptime_seconds(pid: int) -> float | None:
    st = _proc_stat(pid)
    try:
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if st is None:
        return None
    return max(0.0, since_boot - st[3] / os.sysconf("SC_CLK_TCK"))


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d{hours:02d}h{minutes:02d}m{secs:02d}s"


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(_pid_alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return  # already gone: exactly what a stop wanted
    except PermissionError as exc:
        raise DaemonError(f"not allowed to signal pid {pid}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Log files


def _read_from(path: Path, offset: int) -> str:
    """Text appended to ``path`` since ``offset`` ('' if missing; all of it if truncated)."""
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) < offset:
                offset = 0
            fh.seek(offset)
            return fh.read(_MAX_SOCKET_REPLY).decode(errors="replace")
    except OSError:
        return ""


def _read_tail(path: Path, size: int) -> str:
    """The last ``size`` bytes of ``path`` as text ('' if missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            return fh.read(size).decode(errors="replace")
    except OSError:
        return ""


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# HAProxy masters launched by this process, kept so they can be reaped once they exit (a
# dropped Popen of a live child warns, and an exited child stays a zombie until waited for).
_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}


def _reap_launched() -> None:
    for pid, proc in list(_LAUNCHED.items()):
        if proc.poll() is not None:
            del _LAUNCHED[pid]


# ---------------------------------------------------------------------------------------------
# Subprocess helpers


def _run_check(argv: list[str]) -> CheckResult:
    """A config test's verdict: ok when it exits 0; its output is stdout then stderr."""
    try:
        done = run_command(argv, timeout=_CHECK_TIMEOUT, env=DAEMON_ENVIRONMENT, check=False)
    except CommandError as exc:
        # Worded as the UI has always shown them, not as run_command words them.
        if isinstance(exc.__cause__, subprocess.TimeoutExpired):
            return CheckResult(ok=False, output=f"{argv[0]} timed out after {_CHECK_TIMEOUT}s")
        return CheckResult(ok=False, output=f"cannot run {argv[0]}: {exc.__cause__}")
    return CheckResult(ok=done.returncode == 0, output=done.output)


def _readable_file(path: Path) -> str | None:
    """Why ``path`` cannot be used as a config file, or None if it can."""
    if not path.is_file():
        return f"config file {path} does not exist or is not a regular file"
    if not os.access(path, os.R_OK):
        return f"config file {path} is not readable"
    return None


def _validate_cli_command(cmd: str) -> None:
    # One command per call: HAProxy's CLI treats ";" and newlines as separators, and later
    # callers (drain/halt/online) must never be able to chain a second command.
    if any(ch in cmd for ch in ("\n", "\r", ";", "\0")):
        raise ValueError(f"HAProxy CLI command must be a single command: {cmd!r}")


def _cli_exchange(path: Path, cmd: str, timeout: float) -> str:
    """Send one command to an HAProxy CLI socket and read the reply until EOF.

    Raises OSError (including TimeoutError) as is; callers decide what that means.
    """
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.sendall(cmd.encode() + b"\n")
        # Without the half-close HAProxy waits for more commands and the read hangs.
        sock.shutdown(socket.SHUT_WR)
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_SOCKET_REPLY:
                raise OSError(f"reply larger than {_MAX_SOCKET_REPLY} bytes")
    return b"".join(chunks).decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# Controllers


class Controller:
    """Common lifecycle of a forking daemon identified by a pid file.

    Subclasses set the class attributes and implement ``check_config``, ``start`` and
    ``reload``; ``stop``, ``pid`` and ``status`` are shared.
    """

    name: ClassVar[str]
    # First signal asks for a graceful stop; the rest escalate (SIGKILL comes last anyway).
    stop_signals: ClassVar[tuple[signal.Signals, ...]] = (signal.SIGTERM,)

    def __init__(self, layout: RuntimeLayout, *, binary: str | Path | None = None) -> None:
        self.layout = layout
        self._binary_override = os.fspath(binary) if binary is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.layout!r})"

    # -- paths ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        raise NotImplementedError

    @property
    def pid_path(self) -> Path:
        raise NotImplementedError

    @property
    def launch_log(self) -> Path:
        """Launcher output of the last start (daemon's own start-up errors)."""
        return self.layout.log_dir / f"{self.name}-start.log"

    @property
    def _ownership_marker(self) -> str:
        """Argument that appears in our daemon's command line and no other's."""
        return os.fspath(self.pid_path)

    def _runtime_files(self) -> tuple[Path, ...]:
        """Files to remove once the daemon is confirmed stopped."""
        return (self.pid_path,)

    # -- binary --------------------------------------------------------------------------------
    def binary(self) -> str:
        """Absolute path of the binary; DaemonError naming the package if it is missing."""
        found = find_binary(self._binary_override or self.name)
        if found is None:
            wanted = self._binary_override or "/".join(BINARIES[self.name])
            raise DaemonError(
                f"{wanted} not found (searched PATH and {', '.join(EXTRA_SEARCH_DIRS)}); "
                f"install the Debian package {DEBIAN_PACKAGES[self.name]!r}"
            )
        return found

    # -- process -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of our running daemon (HAProxy: the master), or None. Never raises."""
        pid = _read_pid(self.pid_path)
        if pid is None or not _pid_alive(pid):
            return None
        if self._ownership_marker not in _cmdline(pid):
            return None  # stale pid file and the pid now belongs to someone else
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def _wait_for_pid(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            pid = self.pid()
            if pid is not None or time.monotonic() >= deadline:
                return pid
            time.sleep(_POLL_INTERVAL)

    def _require_config(self) -> None:
        problem = _readable_file(self.config_path)
        if problem:
            raise DaemonError(f"{self.name}: {problem}")

    def _remove_runtime_files(self) -> None:
        for path in self._runtime_files():
            path.unlink(missing_ok=True)

    # -- lifecycle -----------------------------------------------------------------------------
    def check_config(self, path: Path | None = None) -> CheckResult:
        raise NotImplementedError

    def start(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def reload(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop within ``timeout``, then escalate, SIGKILL as a last resort.

        No-op if not running; stale pid files are removed either way.
        """
        pid = self.pid()
        if pid is None:
            self._remove_runtime_files()
            return
        # Collect children now: after a SIGKILL of the parent they could be orphaned.
        pids = [pid, *_child_pids(pid)]
        first, *escalation = self.stop_signals
        _signal(pid, first)
        if not _wait_gone(pids, timeout):
            for sig in escalation:
                _signal(pid, sig)
                if _wait_gone(pids, 1.0):
                    break
            else:
                for each in pids:
                    _signal(each, signal.SIGKILL)
                if not _wait_gone(pids, 1.0):
                    raise DaemonError(f"{self.name}: pids {pids} survived SIGKILL")
        self._remove_runtime_files()

    def restart(self, timeout: float = 5.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    # -- status --------------------------------------------------------------------------------
    def status(self) -> DaemonStatus:
        """Cheap, never raises: pid file, /proc and (HAProxy) one admin socket query."""
        try:
            pid = self.pid()
            if pid is None:
                return DaemonStatus(self.name, False, None, self._not_running_reason())
            return DaemonStatus(self.name, True, pid, self._running_detail(pid))
        except Exception as exc:  # a health endpoint must get an answer, not a traceback
            return DaemonStatus(self.name, False, None, f"status failed: {exc}")

    def _not_running_reason(self) -> str:
        if find_binary(self._binary_override or self.name) is None:
            return f"not running: binary not found (install {DEBIAN_PACKAGES[self.name]})"
        stale = _read_pid(self.pid_path)
        if stale is not None:
            return f"not running: stale pid file {self.pid_path} (pid {stale})"
        return "not running"

    def _running_detail(self, pid: int) -> str:
        return f"pid {pid}, up {_format_duration(_uptime_seconds(pid))}"


class HaproxyControl(Controller):
    """HAProxy in master-worker mode with a master CLI socket and an admin stats socket."""

    name = "haproxy"
    # SIGUSR1: soft stop (close listeners, finish sessions, bounded by hard-stop-after);
    # SIGTERM: hard stop.
    stop_signals = (signal.SIGUSR1, signal.SIGTERM)

    @property
    def config_path(self) -> Path:
        return self.layout.haproxy_config

    @property
    def pid_path(self) -> Path:
        return self.layout.haproxy_pid_file

    @property
    def master_socket(self) -> Path:
        return self.layout.haproxy_master_socket

    @property
    def admin_socket(self) -> Path:
        return self.layout.haproxy_admin_socket

    def check_config(self, path: Path | None = None, *, strict: bool = False) -> CheckResult:
        """``haproxy -c``: exit 0 even with warnings (kept in ``output``).

        ``strict`` adds ``-dW`` (zero-warning): any warning makes the check fail.
        Does not catch bind errors (address not local, port in use): those surface at
        start/reload only.
        """
        path = Path(path) if path is not None else self.config_path
        problem = _readable_file(path)
        if problem:
            return CheckResult(ok=False, output=problem)
        try:
            binary = self.binary()
        except DaemonError as exc:
            return CheckResult(ok=False, output=str(exc))
        argv = [binary, "-c", *(["-dW"] if strict else []), "-f", os.fspath(path)]
        return _run_check(argv)

    @property
    def master_log(self) -> Path:
        return self.layout.haproxy_master_log

    def _runtime_files(self) -> tuple[Path, ...]:
        # The server-state file only carries runtime changes from one worker to the next
        # across a reload. A fresh master must not re-apply an old dump (a server would come
        # back in MAINT long after it was made ready again), so it goes with the pid file.
        return (self.pid_path, self.layout.haproxy_state_file)

    def _reset_server_state(self) -> None:
        # An empty state file rather than none: 2.6 warns about a missing one ("Can't open
        # global server state file"), at start and in `haproxy -c`, where -dW makes it fatal.
        # "1\n" (the version line alone) is the smallest file it reads without a word.
        write_atomically(self.layout.haproxy_state_file, b"1\n", mode=0o600)

    def start(self, timeout: float = 5.0) -> None:
        if self.pid() is not None:
            return
        _reap_launched()
        binary = self.binary()
        self._require_config()
        self.layout.ensure()
        self._remove_runtime_files()
        self._reset_server_state()
        # No -D: a daemonized master points stdio at /dev/null, and then a failed reload's
        # alerts (bind errors above all) are lost. Instead the master runs in its own session
        # (no controlling terminal, immune to our process group's signals), cwd /, with its
        # output appended to the master log.
        argv = [
            binary,
            "-W",
            "-S",
            f"{self.master_socket},mode,600",
            "-p",
            os.fspath(self.pid_path),
            "-f",
            os.fspath(self.config_path),
        ]
        log_path = self.master_log
        if _file_size(log_path) > _MASTER_LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        with open(log_path, "ab") as out:
            offset = out.tell()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    start_new_session=True,
                    # Not the appliance's environment: "${DJANGO_SECRET_KEY}" in a config
                    # must expand to nothing.
                    env=DAEMON_ENVIRONMENT,
                )
            except OSError as exc:
                raise DaemonError(f"cannot run {binary}: {exc}") from exc
        _LAUNCHED[proc.pid] = proc
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            rc = proc.poll()
            if rc is not None:
                # Parse and bind errors make the master exit before it forks a worker.
                _LAUNCHED.pop(proc.pid, None)
                raise DaemonError(
                    f"haproxy failed to start (exit {rc}):\n{_read_from(log_path, offset)}"
                )
            if self.pid() is not None:
                try:
                    if self.show_proc(timeout=0.5).workers:
                        return
                except DaemonError as exc:
                    last_error = str(exc)
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_INTERVAL)
        self.stop(timeout=1.0)  # do not leave a half-started master behind
        if proc.poll() is None:
            proc.kill()  # no pid file yet, so stop() could not find it
        proc.wait(timeout=1.0)
        _LAUNCHED.pop(proc.pid, None)
        raise DaemonError(
            f"haproxy did not come up within {timeout}s ({last_error or 'no live master'}):\n"
            f"{_read_from(log_path, offset)}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        _reap_launched()

    def reload(self, timeout: float = 5.0) -> None:
        """Reload via the master CLI and confirm a new worker replaced the old one.

        On failure HAProxy keeps the old worker serving; DaemonError explains why.
        """
        if self.pid() is None:
            raise DaemonError("haproxy is not running")
        before = self.show_proc()
        log_offset = _file_size(self.master_log)
        try:
            _cli_exchange(self.master_socket, "reload", timeout)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the master re-execs itself; a dropped connection is normal
        except OSError as exc:
            raise DaemonError(f"haproxy master socket {self.master_socket}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                after: HaproxyProcs | None = self.show_proc(timeout=0.5)
            except DaemonError:
                after = None  # master busy re-executing
            # The master's reload counter counts attempts, failed or not.
            if after is not None and after.reloads > before.reloads:
                if set(after.workers) - set(before.workers):
                    return
                raise DaemonError(self._explain_failed_reload(after, log_offset))
            if time.monotonic() >= deadline:
                raise DaemonError(f"haproxy did not confirm the reload within {timeout}s")
            # A reload takes ~40 ms; `show proc` is a cheap local socket query, so poll finely.
            time.sleep(_RELOAD_POLL_INTERVAL)

    def _explain_failed_reload(self, procs: HaproxyProcs, log_offset: int) -> str:
        head = (
            f"haproxy reload failed (failed reloads: {procs.failed_reloads}); "
            f"the previous worker(s) {list(procs.workers)} keep serving the old config."
        )
        # The master's own alerts for this attempt (bind errors included), written before it
        # re-executed in wait mode, i.e. before show proc counted the reload.
        master_tag = f"({procs.master_pid})"
        alerts = [
            line
            for line in _read_from(self.master_log, log_offset).splitlines()
            if line.startswith("[ALERT]") and master_tag in line.split(":", 1)[0]
        ]
        if alerts:
            return head + "\n" + "\n".join(alerts)
        check = self.check_config()
        if not check.ok:
            return f"{head}\n{check.output}"
        return (
            f"{head}\nhaproxy -c accepts the config, so it failed at bind time "
            f"(address not on this host or port in use?)\n{check.output}"
        )

    def show_proc(self, timeout: float = _SOCKET_TIMEOUT) -> HaproxyProcs:
        return parse_show_proc(self.master_command("show proc", timeout=timeout))

    def save_server_state(
        self,
        *,
        transform: Callable[[str], str] | None = None,
        timeout: float = _SOCKET_TIMEOUT,
    ) -> str:
        """Dump ``show servers state`` into ``layout.haproxy_state_file`` atomically.

        HAProxy never writes that file itself; call this right before each reload so runtime
        changes (drain, maint, weights) reach the new worker. ``transform`` may rewrite the
        dump first (see haproxy_apply.server_state_for_config). Returns what was written.
        """
        dump = self.runtime_command("show servers state", timeout=timeout)
        # Version 1 is the only format 2.6 writes or reads; anything else is an error reply,
        # and writing it would make the next reload warn about a corrupted state file.
        if not dump.startswith("1\n"):
            raise DaemonError(f"unexpected 'show servers state' reply: {dump[:500]!r}")
        if transform is not None:
            dump = transform(dump)
        write_atomically(self.layout.haproxy_state_file, dump.encode(), mode=0o600)
        return dump

    def master_command(self, cmd: str, timeout: float = _SOCKET_TIMEOUT) -> str:
        """One command on the master CLI (``show proc``, ``@1 show info`` …)."""
        _validate_cli_command(cmd)
        try:
            return _cli_exchange(self.master_socket, cmd, timeout)
        except OSError as exc:
            raise DaemonError(f"haproxy master socket {self.master_socket}: {exc}") from exc

    def runtime_command(self, cmd: str, timeout: float = _SOCKET_TIMEOUT) -> str:
        """One command on the admin stats socket (runtime API: ``set server …``)."""
        return self.runtime_batch([cmd], timeout)

    def runtime_batch(self, cmds: Sequence[str], timeout: float = _SOCKET_TIMEOUT) -> str:
        """Several commands in ONE round trip on the admin socket. Each is checked on its own
        (no separator inside), then they are joined with the CLI's own ';'."""
        for cmd in cmds:
            _validate_cli_command(cmd)
        try:
            return _cli_exchange(self.admin_socket, "; ".join(cmds), timeout)
        except OSError as exc:
            raise DaemonError(f"haproxy admin socket {self.admin_socket}: {exc}") from exc

    def _running_detail(self, pid: int) -> str:
        try:
            info = parse_show_info(self.runtime_command("show info", timeout=1.0))
        except DaemonError as exc:
            return f"master pid {pid} alive but admin socket not answering: {exc}"
        return (
            f"HAProxy {info.get('Version', '?')}, master pid {pid}, "
            f"worker pid {info.get('Pid', '?')}, up {info.get('Uptime', '?')}"
        )


# ---------------------------------------------------------------------------------------------
# stunnel: listening sockets, socket activation, instance files


def format_address(host: str, port: int) -> str:
    """``host:port`` for messages; IPv6 in brackets (``[::1]:443``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_listener(host: str, port: int, *, backlog: int = _LISTEN_BACKLOG) -> socket.socket:
    """A TCP socket listening on ``host`` (an IP literal) and ``port`` (0: any free port).

    ListenError (a DaemonError with ``errno``) says why not, e.g. EADDRINUSE when another
    program holds the address or EADDRNOTAVAIL when this host has no such address.
    """
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        raise ListenError(f"not an IP address: {host!r}", None) from None
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted instance must not wait for the old one's TIME_WAIT connections; Linux
        # still refuses the bind while any other socket listens on the address.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # As HAProxy sets it: when an apply moves an address from an SSL termination to a
        # virtual service, HAProxy (reloaded first) can bind it while this stunnel still
        # holds it, until the same apply stops the termination a moment later.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # "::" means IPv6 only, as the address says; never the IPv4 wildcard too.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = format_address(host, port)
        if exc.errno == errno.EADDRINUSE:
            why = "address already in use (another program or service holds it)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = f"this host has no address {host} (Cannot assign requested address)"
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        else:
            why = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {where}: {why}", exc.errno) from exc
    return sock


# The child is `sh -c SCRIPT <stunnel binary> <config>`. Popen puts the listening socket on
# the child's stdin: that dup2 happens in C inside _posixsubprocess, between fork and exec,
# so it is safe in threaded callers (gunicorn, Celery), unlike a preexec_fn; close_fds still
# closes everything else (an inherited WebUI listener must never end up in stunnel). The
# constant script then moves the socket to fd 3, gives stdin /dev/null, sets LISTEN_PID to
# its own pid ($$, which exec keeps) and execs stunnel, which finds LISTEN_FDS=1 in its
# environment. Paths only ever travel as positional arguments, never inside the script.
# (os.posix_spawn could dup2 to fd 3 as well, but it cannot close the parent's other
# inheritable descriptors.)
_SOCKET_ACTIVATION_SCRIPT = (
    'exec 3<&0 0</dev/null; LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"'
)


def spawn_with_listener(
    binary: str, config: Path, listener: socket.socket, output: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Run ``binary config`` with ``listener`` as its socket-activated fd 3; stdout and
    stderr go to ``output`` (a file: a forking daemon could hold a pipe open for ever)."""
    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", _SOCKET_ACTIVATION_SCRIPT, binary, os.fspath(config)],
            stdin=listener.fileno(),
            stdout=output,
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,  # our terminal's Ctrl-C must not reach it
            cwd="/",
            env={**DAEMON_ENVIRONMENT, "LISTEN_FDS": "1"},
        )
    except OSError as exc:
        raise DaemonError(f"cannot run {binary}: {exc}") from exc


_OPTION_LINE = re.compile(r"^[ \t]*([A-Za-z][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[ \t]*$", re.MULTILINE)


def stunnel_options(text: str) -> list[tuple[str, str]]:
    """Every ``name = value`` line of a stunnel config (name lower-cased), in file order.

    stunnel option names are case-insensitive; comments start with ';' or '#'.
    """
    return [(m.group(1).lower(), m.group(2)) for m in _OPTION_LINE.finditer(text)]


def parse_accept(value: str) -> tuple[str, int]:
    """``host:port`` of an ``accept =`` line → (canonical IP text, port); ValueError else.

    stunnel splits at the last colon and does not understand brackets: IPv6 is written as
    ``::1:4443``. Brackets are accepted here only so that a bad file gets a clear message
    from stunnel rather than from us.
    """
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"accept = {value!r} is not host:port")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"accept = {value!r}: port out of range")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"accept = {value!r}: host is not an IP address") from None
    return str(address), port


def stunnel_instance_address(layout: RuntimeLayout, name: str, text: str) -> tuple[str, int]:
    """Check an instance's config against what the engine relies on; return its accept address.

    Exactly one ``accept`` (its socket is fd 3: with more, the others would bind themselves),
    ``pid = layout.stunnel_instance_pid(name)`` (how the process is found) and
    ``output = layout.stunnel_instance_log(name)`` (how reloads are confirmed).
    ValueError says what is wrong.
    """
    options = stunnel_options(text)
    accepts = [value for key, value in options if key == "accept"]
    if len(accepts) != 1:
        raise ValueError(f"{name}: the config needs exactly one accept line, has {len(accepts)}")
    for key, wanted in (
        ("pid", layout.stunnel_instance_pid(name)),
        ("output", layout.stunnel_instance_log(name)),
    ):
        values = [value for option, value in options if option == key]
        if values != [os.fspath(wanted)]:
            raise ValueError(f"{name}: the config must say '{key} = {wanted}', has {values}")
    return parse_accept(accepts[0])


# ---------------------------------------------------------------------------------------------
# stunnel controllers


class _StunnelProcess(Controller):
    """One stunnel process, found by its pid file and owned if its command line names its
    config (stunnel's command line is just ``<binary> <config>``). Used by StunnelControl for
    stop/pid with the base class's graceful → SIGKILL logic."""

    name = "stunnel"

    def __init__(
        self,
        layout: RuntimeLayout,
        *,
        config: Path,
        pid_file: Path,
        log: Path,
        binary: str | Path | None = None,
    ) -> None:
        super().__init__(layout, binary=binary)
        self._config, self._pid_file, self.log = config, pid_file, log

    @property
    def config_path(self) -> Path:
        return self._config

    @property
    def pid_path(self) -> Path:
        return self._pid_file

    @property
    def launch_log(self) -> Path:
        return self.log.with_name(self.log.stem + "-start.log")

    @property
    def _ownership_marker(self) -> str:
        return os.fspath(self._config)


class StunnelControl(Controller):
    """All stunnel processes of the appliance: one per SSL termination ("instance").

    To the rest of the appliance this is "the stunnel daemon" (``start``/``stop``/``reload``
    /``restart``/``status`` act on every instance); ``lbadmin.engines.stunnel_apply`` uses
    the per-instance methods. Instance ``<name>`` (``ssl-`` + 12 hex) has its config in
    ``layout.stunnel_instance_config(name)``, which must set ``foreground = no``,
    ``pid = layout.stunnel_instance_pid(name)``, ``output = layout.stunnel_instance_log(name)``
    and exactly one ``accept = host:port``. We bind that address ourselves and pass the socket
    by socket activation, so a SIGHUP never closes the listener (see the module docstring).

    Controller contract, adapted: ``config_path`` is the directory of instance files; there is
    no single pid file (``pid_path`` is not defined); ``pid()`` is the first running instance's
    pid (by name) or None; ``is_running()``/``status().running`` mean every configured
    instance is alive, and with none configured, that the service was started (no process
    then runs at all: stunnel cannot run without a service).
    """

    name = "stunnel"

    @property
    def config_path(self) -> Path:
        return self.layout.stunnel_dir

    # -- instances -----------------------------------------------------------------------------
    def _process(self, name: str) -> _StunnelProcess:
        return _StunnelProcess(
            self.layout,
            config=self.layout.stunnel_instance_config(name),
            pid_file=self.layout.stunnel_instance_pid(name),
            log=self.layout.stunnel_instance_log(name),
            binary=self._binary_override,
        )

    def _legacy_process(self) -> _StunnelProcess:
        # The single bootstrap stunnel of earlier versions; stopped on the next start/stop.
        return _StunnelProcess(
            self.layout,
            config=self.layout.conf_dir / "stunnel.conf",
            pid_file=self.layout.run_dir / "stunnel.pid",
            log=self.layout.log_dir / "stunnel.log",
            binary=self._binary_override,
        )

    def configured_instances(self) -> tuple[str, ...]:
        """Names of the instance files in ``stunnel_dir``, sorted. Never raises."""
        try:
            paths = list(self.layout.stunnel_dir.glob("*.conf"))
        except OSError:
            return ()
        return tuple(sorted(p.stem for p in paths if STUNNEL_INSTANCE_NAME.fullmatch(p.stem)))

    def running_instances(self) -> dict[str, int]:
        """Live instances, name → pid: the configured ones and any whose file is gone but
        whose pid file is still in run_dir (so stop() never leaves one behind)."""
        names = set(self.configured_instances())
        with contextlib.suppress(OSError):
            for path in self.layout.run_dir.glob("stunnel-ssl-*.pid"):
                name = path.stem.removeprefix("stunnel-")
                if STUNNEL_INSTANCE_NAME.fullmatch(name):
                    names.add(name)
        running = {}
        for name in sorted(names):
            pid = self._process(name).pid()
            if pid is not None:
                running[name] = pid
        return running

    def instance_pid(self, name: str) -> int | None:
        return self._process(name).pid()

    def start_instance(
        self, name: str, listener: socket.socket | None = None, timeout: float = 5.0
    ) -> int:
        """Start instance ``name`` from its file; its pid. A no-op if it is running.

        ``listener``: a socket already listening on the file's accept address (the caller
        keeps and closes it); without one it is bound here (ListenError if that fails).
        """
        process = self._process(name)
        pid = process.pid()
        if pid is not None:
            return pid
        binary = self.binary()
        config = process.config_path
        try:
            host, port = stunnel_instance_address(self.layout, name, config.read_text())
        except OSError as exc:
            raise DaemonError(f"stunnel {name}: cannot read {config}: {exc}") from exc
        except ValueError as exc:
            raise DaemonError(f"stunnel {name}: refusing to start: {exc}") from exc
        self.layout.ensure()
        process._remove_runtime_files()
        own_listener = listener is None
        sock = bind_listener(host, port) if listener is None else listener
        try:
            with open(process.launch_log, "w+b") as out:
                proc = spawn_with_listener(binary, config, sock, out)
                try:
                    rc = proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    rc = None
                out.seek(0)
                output = out.read().decode(errors="replace")
        finally:
            if own_listener:
                sock.close()  # the daemon holds its own copy
        if rc is None:
            raise DaemonError(f"stunnel {name} did not return within {timeout}s:\n{output}")
        if rc != 0:
            # A bad config's "[!]" lines go to stderr before `output =` takes over.
            raise DaemonError(f"stunnel {name} failed to start (exit {rc}):\n{output}")
        pid = process._wait_for_pid(timeout)
        if pid is None:
            raise DaemonError(
                f"stunnel {name} did not write a live pid to {process.pid_path} within "
                f"{timeout}s:\n{output}{_tail(process.log)}"
            )
        return pid

    def stop_instance(self, name: str, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; a no-op if it is not running."""
        self._process(name).stop(timeout)

    def reload_instance(self, name: str, timeout: float = 5.0) -> None:
        """SIGHUP (re-reads config and certificates; the listener stays open), then confirm
        from the instance's log: "Configuration successful", or DaemonError with stunnel's
        words while the old config keeps running."""
        process = self._process(name)
        pid = process.pid()
        if pid is None:
            raise DaemonError(f"stunnel {name} is not running")
        offset = _file_size(process.log)
        _signal(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            new = _read_from(process.log, offset)
            if "Configuration failed" in new or "Failed to reload" in new:
                raise DaemonError(
                    f"stunnel {name} rejected the new config; the old one keeps running:\n{new}"
                )
            if "Configuration successful" in new:
                return
            if process.pid() is None:
                raise DaemonError(f"stunnel {name} exited after SIGHUP:\n{new}")
            if time.monotonic() >= deadline:
                raise DaemonError(
                    f"stunnel {name} did not confirm the reload in {process.log} "
                    f"within {timeout}s:\n{new}"
                )
            time.sleep(_RELOAD_POLL_INTERVAL)  # a reload takes ~7 ms: poll finely

    # -- the daemon as a whole -----------------------------------------------------------------
    def pid(self) -> int | None:
        """The first running instance's pid (by name), or None. Never raises."""
        running = self.running_instances()
        return next(iter(running.values()), None)

    def is_running(self) -> bool:
        return self.status().running

    def check_config(self, path: Path | None = None) -> CheckResult:
        """Only checks that the instance file(s) exist and are readable.

        ``path``: one instance file, or the directory of them (the default). stunnel 5.68 has
        no config-test flag; ``stunnel_apply`` validates new text with a throw-away stunnel,
        and ``reload_instance()`` confirms a reload from the log.
        """
        path = Path(path) if path is not None else self.config_path
        files = sorted(path.glob("*.conf")) if path.is_dir() else [path]
        problems = [problem for problem in map(_readable_file, files) if problem]
        if problems:
            return CheckResult(ok=False, output="\n".join(problems))
        return CheckResult(
            ok=True,
            output=f"{len(files)} file(s) readable; stunnel has no config-test flag, "
            "so they were not parsed",
        )

    def start(self, timeout: float = 5.0) -> None:
        """Start every configured instance not running; none configured: nothing to run."""
        self._legacy_process().stop(timeout)
        self.layout.ensure()
        self.layout.stunnel_started_marker.touch()
        errors = []
        for name in self.configured_instances():
            try:
                self.start_instance(name, timeout=timeout)
            except DaemonError as exc:
                errors.append(str(exc))  # the other terminations still start
        if errors:
            raise DaemonError("\n".join(errors))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every instance (graceful, then SIGKILL); a no-op if none runs."""
        self.layout.stunnel_started_marker.unlink(missing_ok=True)
        errors = []
        for process in [self._legacy_process(), *map(self._process, self.running_instances())]:
            try:
                process.stop(timeout)
            except DaemonError as exc:
                errors.append(str(exc))
        if errors:
            raise DaemonError("\n".join(errors))

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP every configured instance, each confirmed from its log. It does not move
        an instance to a new accept address (the socket is ours): stunnel_apply restarts for
        that. DaemonError lists every instance that failed or is not running."""
        errors = []
        for name in self.configured_instances():
            try:
                self.reload_instance(name, timeout)
            except DaemonError as exc:
                errors.append(str(exc))
        if errors:
            raise DaemonError("\n".join(errors))

    def status(self) -> DaemonStatus:
        """Cheap, never raises, spawns nothing: instance files, pid files and /proc."""
        try:
            configured = self.configured_instances()
            running = self.running_instances()
            if not configured:
                if not self.layout.stunnel_started_marker.exists():
                    return DaemonStatus(self.name, False, None, "not running")
                return DaemonStatus(self.name, True, None, "no SSL terminations configured")
            down = [name for name in configured if name not in running]
            pid = next((running[name] for name in configured if name in running), None)
            if down:
                if find_binary(self._binary_override or self.name) is None:
                    why = f"binary not found (install {DEBIAN_PACKAGES[self.name]})"
                else:
                    why = f"{len(down)} of {len(configured)} instances down: {_few(down)}"
                return DaemonStatus(self.name, False, pid, f"not running: {why}")
            pids = [f"{name} pid {running[name]}" for name in configured]
            return DaemonStatus(
                self.name, True, pid, f"{len(configured)} instance(s): {_few(pids)}"
            )
        except Exception as exc:  # a health endpoint must get an answer, not a traceback
            return DaemonStatus(self.name, False, None, f"status failed: {exc}")


def _few(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, … ({len(items) - limit} more)"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# keepalived's console log, read to confirm starts and reloads (see KeepalivedControl)

# "Fri Nov 27 04:16:17 2026: " starts every line keepalived writes with --log-console.
_KEEPALIVED_TIMESTAMP = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}: ")
# A complaint about a config line: "(Line 4) …" (parent) or "(/etc/k.conf: Line 4) …".
_KEEPALIVED_LINE_REF = re.compile(r"^\((?:(?P<file>.*): )?(?P<rest>Line \d+\) .*)$")
_KEEPALIVED_CHILD_STARTED = re.compile(r"^Starting \w+ child process, pid=\d+$")
_KEEPALIVED_REFUSED = re.compile(r"^Cannot change .* at a reload")
# keepalived -t reads nothing yet exits 0 (without -e) when the file is missing, a directory
# or unreadable; only these lines say so.
_KEEPALIVED_NOT_READ = (
    "Config files missing",
    "Unable to read configuration file",
    "is a directory",
)
# Errors keepalived reports while reading a config that do not name a line.
_KEEPALIVED_ERROR_MARKERS = (
    "missing '}'s or extra '{'s",
    "Config files missing",
    "Unable to read configuration file",
    "Non-existent interface",
    "Unknown interface",
)
_KEEPALIVED_QUIET = 0.1  # log silence taken as "idle" where /proc/<pid>/wchan says nothing
_KEEPALIVED_PROBE = "lbadmin_parse_probe_"


def keepalived_log_lines(text: str) -> list[str]:
    """The lines of keepalived console output, without timestamps or blank lines."""
    return [
        _KEEPALIVED_TIMESTAMP.sub("", line).rstrip() for line in text.splitlines() if line.strip()
    ]


def keepalived_messages(
    output: str, *, staged: Path | None = None, live: Path | None = None
) -> str:
    """keepalived output (``-t`` or the log) fit for a user: each line once, no timestamps.

    ``-t`` reports every problem once per process type (parent, VRRP, checker, BFD), the
    parent's copy without the file name: those duplicates go. ``staged`` is shown as ``live``
    (the file the text would have become; the line numbers are the same).
    """
    if staged is not None and live is not None:
        output = output.replace(os.fspath(staged), os.fspath(live))
    lines = keepalived_log_lines(output)
    named = set()
    for line in lines:
        match = _KEEPALIVED_LINE_REF.match(line)
        if match and match.group("file"):
            named.add(match.group("rest"))
    # Each line where it last appears: the last copy is a child's, whose lines all name the file.
    shown: list[str] = []
    for line in reversed(lines):
        match = _KEEPALIVED_LINE_REF.match(line)
        if match and not match.group("file") and match.group("rest") in named:
            continue
        if line not in shown:
            shown.append(line)
    return "\n".join(reversed(shown))


def keepalived_has_configuration(text: str) -> bool:
    """Whether ``text`` has a line other than blanks and comments (``#`` or ``!``).

    keepalived -t accepts an empty file silently (exit 0), and keepalived then runs nothing.
    """
    return any(line.strip() and line.strip()[0] not in "#!" for line in text.splitlines())


def _keepalived_config_errors(lines: Sequence[str]) -> list[str]:
    """Lines of keepalived's log that report an error in its configuration (not warnings)."""
    errors = []
    for line in lines:
        match = _KEEPALIVED_LINE_REF.match(line)
        if match:
            is_error = not match.group("rest").split(") ", 1)[1].startswith("WARNING")
        else:
            is_error = any(marker in line for marker in _KEEPALIVED_ERROR_MARKERS)
        if is_error:
            errors.append(line)
    return errors


def _keepalived_fatal(lines: Sequence[str]) -> tuple[list[str], bool]:
    """Lines saying a keepalived child died or keepalived is going down, and whether the
    parent is exiting ("… exited with permanent error CONFIG. Terminating", "… died:
    Exiting") rather than respawning the child ("… died: Respawning")."""
    fatal = [
        line
        for line in lines
        if "exited with permanent error" in line
        or "died: " in line
        or line.startswith("Stopped Keepalived")
    ]
    exiting = any(
        line.endswith(("Terminating", "Exiting")) or line.startswith("Stopped Keepalived")
        for line in fatal
    )
    return fatal, exiting


def _keepalived_children_done(lines: Sequence[str], running_before: int) -> bool:
    """Whether every child has read the new file: keepalived's parent counts the children it
    HUPs or starts and logs "Reload complete" ("Startup complete" the first time) once all
    of them have told it so (core/config_notify.c). With no child there is no such line."""
    if not running_before and not any(_KEEPALIVED_CHILD_STARTED.match(line) for line in lines):
        return True
    return any(
        line in ("Reload complete", "Startup complete") or line.startswith("Delaying startup for")
        for line in lines
    )


def _after_last(lines: Sequence[str], marker: str) -> list[str] | None:
    """The lines after the last one equal to ``marker``; None if there is none."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == marker:
            return list(lines[index + 1 :])
    return None


# keepalived's own report of a VRRP state change ("(VI_eth1) Entering MASTER STATE", also
# "... BACKUP STATE (init)"), and the first line of each start.
_VRRP_STATE_LINE = re.compile(
    r"\((?P<instance>[A-Za-z0-9_.-]+)\) Entering (?P<state>MASTER|BACKUP|FAULT) STATE"
)
_KEEPALIVED_START_LINE = "Starting Keepalived"
_VRRP_LOG_TAIL_BYTES = 256 * 1024  # state changes are rare; the log rotates at start-up


def vrrp_states_from_log(text: str) -> dict[str, str]:
    """instance -> the state keepalived last logged for it since its last start."""
    start = text.rfind(_KEEPALIVED_START_LINE)
    return {m["instance"]: m["state"] for m in _VRRP_STATE_LINE.finditer(text[max(start, 0) :])}


class _KeepalivedWatch:
    """What keepalived logged since ``offset``, and whether its parent has settled.

    Idle means back in its event loop (``/proc/<pid>/wchan`` is ``do_epoll_wait``): keepalived
    handles a signal from start to end before it waits again, so once "Reloading ..." is in
    the log and the parent is idle, the parent's part of that reload is over (including any
    "Cannot change … at a reload" refusal). Where wchan is unavailable, 0.1 s without new log
    lines stands in for it. ``settled()`` asks for idle on two polls in a row with nothing
    logged in between, and reads the log after seeing it idle: a log read before the idle
    sample can miss the parent's last lines.
    """

    def __init__(self, log: Path, pid: int, offset: int) -> None:
        self.log, self.pid, self.offset = log, pid, offset
        self.text = ""
        self.changed_at = time.monotonic()
        self._idle_text: str | None = None

    def lines(self) -> list[str]:
        text = _read_from(self.log, self.offset)
        if text != self.text:
            self.text, self.changed_at = text, time.monotonic()
        return keepalived_log_lines(text)

    def parent_idle(self) -> bool:
        st = _proc_stat(self.pid)
        if st is None or st[1] not in ("S", "I"):
            return False
        try:
            wchan = Path(f"/proc/{self.pid}/wchan").read_text().strip()
        except OSError:
            wchan = ""
        if wchan and wchan != "0":
            return "epoll_wait" in wchan or wchan == "ep_poll"
        return time.monotonic() - self.changed_at >= _KEEPALIVED_QUIET

    def settled(self) -> list[str] | None:
        """All the lines logged since ``offset`` if the parent has settled, else None."""
        idle = self.parent_idle()
        lines = self.lines()  # after the idle sample
        stable = idle and self._idle_text == self.text
        self._idle_text = self.text if idle else None
        return lines if stable else None


class KeepalivedControl(Controller):
    """keepalived with its own pid files under run_dir, so it never collides with a host one.

    ``vrrp_only=True`` runs ``--vrrp`` (no IPVS checker process); use it when
    ``ipvs_available()`` is False, as on these machines.

    keepalived runs in the foreground (``--dont-fork``) in its own session, cwd /, logging to
    the console (``--log-console --log-detail``) with stdout/stderr appended to
    ``layout.keepalived_log``: that log, its parent and its children's, is how ``start()``
    and ``reload()`` learn what keepalived made of its file (see the module docstring).
    """

    name = "keepalived"

    def __init__(
        self,
        layout: RuntimeLayout,
        *,
        vrrp_only: bool = False,
        binary: str | Path | None = None,
    ) -> None:
        super().__init__(layout, binary=binary)
        self.vrrp_only = vrrp_only

    @property
    def config_path(self) -> Path:
        return self.layout.keepalived_config

    @property
    def pid_path(self) -> Path:
        return self.layout.keepalived_pid_file

    @property
    def log_path(self) -> Path:
        return self.layout.keepalived_log

    def vrrp_states(self) -> dict[str, str]:
        """Each VRRP instance's state as keepalived itself last logged it since it started
        ("MASTER", "BACKUP" or "FAULT"): its own word, not a guess from interface addresses.
        Empty when keepalived is not running or runs no instance."""
        if self.pid() is None:
            return {}
        return vrrp_states_from_log(_read_tail(self.log_path, _VRRP_LOG_TAIL_BYTES))

    def _runtime_files(self) -> tuple[Path, ...]:
        return (
            self.layout.keepalived_pid_file,
            self.layout.keepalived_vrrp_pid_file,
            self.layout.keepalived_checkers_pid_file,
            self.layout.keepalived_bfd_pid_file,
        )

    # -- configuration test --------------------------------------------------------------------
    def check_config(self, path: Path | None = None) -> CheckResult:
        """``keepalived -e -t``, made trustworthy; ``output`` keeps its warnings.

        Measured on 2.2.7, ``-t`` exits 0 (silently) for an empty file and, without ``-e``,
        for a missing file or a directory (only a "Config files missing" / "is a directory"
        line says so). So: the file must be a readable regular file with a configuration line
        and no NUL byte; ``-e -t`` must exit 0 without such a line; and a second ``-t`` of a
        copy with a probe line appended must report that probe as an unknown keyword at the
        copy's last line, which proves keepalived parsed the text to its end.
        """
        path = Path(path) if path is not None else self.config_path
        problem = _readable_file(path)
        if problem:
            return CheckResult(ok=False, output=problem)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return CheckResult(ok=False, output=f"config file {path} cannot be read: {exc}")
        if b"\0" in data:
            return CheckResult(ok=False, output=f"config file {path} contains a NUL byte")
        if not keepalived_has_configuration(data.decode(errors="replace")):
            return CheckResult(
                ok=False,
                output=f"config file {path} holds no configuration (empty or only comments); "
                "keepalived would run nothing",
            )
        try:
            binary = self.binary()
        except DaemonError as exc:
            return CheckResult(ok=False, output=str(exc))
        # -e: a missing file (this one or an include) exits 4 instead of 0.
        result = _run_check([binary, "-e", "-t", "-f", os.fspath(path)])
        if not result.ok:
            return result
        if any(marker in result.output for marker in _KEEPALIVED_NOT_READ):
            return CheckResult(ok=False, output=result.output)
        problem = self._parse_probe(binary, path, data)
        if problem:
            return CheckResult(ok=False, output=result.output + problem)
        return result

    def _parse_probe(self, binary: str, path: Path, data: bytes) -> str | None:
        """None if ``keepalived -t`` reads a copy of ``data`` to its end, else why not.

        The copy sits next to ``path`` (relative includes resolve the same way) and ends with
        a line keepalived cannot know; -t must name that keyword, in the copy, at its line.
        """
        probe = _KEEPALIVED_PROBE + os.urandom(6).hex()
        body = data if not data or data.endswith(b"\n") else data + b"\n"
        line = body.count(b"\n") + 1
        try:
            try:
                fd, name = tempfile.mkstemp(
                    dir=path.parent, prefix=f".{path.name}.check-", suffix=".tmp"
                )
            except OSError:  # a read-only directory: includes may then resolve differently
                fd, name = tempfile.mkstemp(prefix="lbadmin-keepalived-check-", suffix=".conf")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(body + probe.encode() + b"\n")
                result = _run_check([binary, "-e", "-t", "-f", name])
            finally:
                Path(name).unlink(missing_ok=True)
        except OSError as exc:
            return f"cannot write a copy of {path} to prove that keepalived parses it: {exc}"
        if f"{name}: Line {line}) Unknown keyword '{probe}'" in result.output:
            return None
        return (
            f"keepalived -t did not parse {path} to its end: a probe line appended to a copy "
            f"as line {line} was not reported. keepalived said:\n"
            + keepalived_messages(result.output.replace(name, f"{path} (copy)"))
        )

    # -- start, reload, stop -------------------------------------------------------------------
    def _argv(self, binary: str) -> list[str]:
        argv = [
            binary,
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "-e",
            "-f",
            os.fspath(self.config_path),
            "-p",
            os.fspath(self.layout.keepalived_pid_file),
            "-r",
            os.fspath(self.layout.keepalived_vrrp_pid_file),
            "-c",
            os.fspath(self.layout.keepalived_checkers_pid_file),
            "-b",
            os.fspath(self.layout.keepalived_bfd_pid_file),
            # keepalived sets its own umask (022) rather than inheriting ours.
            "--umask=077",
        ]
        if self.vrrp_only:
            argv.append("--vrrp")
        return argv

    def _make_pid_files_private(self) -> None:
        # keepalived creates its pid files 0644 whatever the umask: nothing under var/ may be
        # readable by other users.
        for path in self._runtime_files():  # its four pid files
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o600)

    def _read_config_line(self) -> str:
        # Logged (with --log-detail) each time the parent has opened and read its file.
        return f"Configuration file {self.config_path}"

    def start(self, timeout: float = 5.0) -> None:
        """Start keepalived on ``config_path`` and wait until it has read the file, is idle
        and, if it started children, logged "Startup complete". A no-op if it runs.

        The file is tested first (``check_config``). DaemonError quotes keepalived's log if it
        exits or does not come up within ``timeout``.
        """
        if self.pid() is not None:
            return
        _reap_launched()
        binary = self.binary()
        self._require_config()
        check = self.check_config()
        if not check.ok:
            raise DaemonError(f"keepalived config {self.config_path} is invalid:\n{check.output}")
        self.layout.ensure()
        self._remove_runtime_files()
        log_path = self.log_path
        if _file_size(log_path) > _MASTER_LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        with open(log_path, "ab") as out:
            offset = out.tell()
            try:
                proc = subprocess.Popen(
                    self._argv(binary),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    start_new_session=True,  # our terminal's Ctrl-C must not reach it
                    env=DAEMON_ENVIRONMENT,
                )
            except OSError as exc:
                raise DaemonError(f"cannot run {binary}: {exc}") from exc
        _LAUNCHED[proc.pid] = proc
        watch = _KeepalivedWatch(log_path, proc.pid, offset)
        deadline = time.monotonic() + timeout
        while True:
            rc = proc.poll()
            lines = watch.lines()
            if rc is not None:
                _LAUNCHED.pop(proc.pid, None)
                raise DaemonError(
                    f"keepalived failed to start (exit {rc}):\n{keepalived_messages(watch.text)}"
                )
            if self.pid() == proc.pid and self._read_config_line() in lines:
                settled = watch.settled()
                if settled is not None and _keepalived_children_done(settled, 0):
                    self._make_pid_files_private()
                    return
            if time.monotonic() >= deadline:
                break
            time.sleep(_RELOAD_POLL_INTERVAL)
        self.stop(timeout=1.0)  # do not leave a half-started keepalived behind
        if proc.poll() is None:
            proc.kill()  # no pid file yet, so stop() could not find it
        proc.wait(timeout=1.0)
        _LAUNCHED.pop(proc.pid, None)
        raise DaemonError(
            f"keepalived did not come up within {timeout}s:\n{keepalived_messages(watch.text)}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        _reap_launched()

    def _logs_to_our_log(self, pid: int) -> bool:
        """Whether the running keepalived writes its console log to ``log_path`` (started by
        this class); one started otherwise (daemonized, syslog only) cannot confirm a reload."""
        try:
            stdout = os.readlink(f"/proc/{pid}/fd/1")
        except OSError:
            return False
        return stdout == os.fspath(self.log_path) and "--log-console" in _cmdline(pid)

    def _children(self, pid: int) -> list[int]:
        """Live children of parent ``pid`` named by their pid files (VRRP, checkers, BFD)."""
        children = []
        for path in self._runtime_files()[1:]:
            child = _read_pid(path)
            st = _proc_stat(child) if child is not None else None
            if child is not None and st is not None and st[2] == pid and _pid_alive(child):
                children.append(child)
        return children

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP, confirmed from keepalived's log; DaemonError with keepalived's words if not.

        The file is tested first: a file that fails ``check_config`` is not reloaded.
        Confirmed means the parent logged "Reloading ..." and "Configuration file <config>",
        is idle again without refusing the change ("Cannot change … at a reload - please
        restart", after which it keeps running the previous config) or reporting errors in
        the file (after which it runs what it could parse), and, if any child runs or was
        started, logged "Reload complete" (or "Startup complete"): every child has read it.
        A keepalived not started by this class writes no log here, so a reload of it could
        not be confirmed: it is restarted instead.
        """
        pid = self.pid()
        if pid is None:
            raise DaemonError("keepalived is not running")
        check = self.check_config()
        if not check.ok:
            raise DaemonError(
                f"keepalived config {self.config_path} is invalid; not reloaded:\n{check.output}"
            )
        if not self._logs_to_our_log(pid):
            self.restart(timeout)
            return
        running_children = len(self._children(pid))
        watch = _KeepalivedWatch(self.log_path, pid, _file_size(self.log_path))
        _signal(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            lines = watch.lines()
            if not _pid_alive(pid):
                raise DaemonError(
                    f"keepalived exited during the reload:\n{keepalived_messages(watch.text)}"
                )
            failed = [line for line in lines if line.startswith("New config failed validation")]
            if failed:  # reload_check_config in the file: keepalived's own test refused it
                raise DaemonError("\n".join(failed))
            section = _after_last(lines, "Reloading ...")
            # A reload already in progress queues ours: wait for the "Reloading ..." after it.
            if section is not None and not any("request queued" in line for line in section):
                fatal, exiting = _keepalived_fatal(section)
                if fatal:
                    if exiting:
                        # A child's fatal error takes the parent down too: let it finish
                        # going, so the caller finds keepalived stopped, not half-way.
                        _wait_gone([pid], max(0.0, deadline - time.monotonic()))
                    what = "went down" if exiting else "lost a child process"
                    raise DaemonError(
                        f"keepalived {what} during the reload:\n"
                        + keepalived_messages(_read_from(self.log_path, watch.offset))
                    )
                settled = watch.settled()
                section = _after_last(settled or [], "Reloading ...") or []
                if settled is not None and not any("request queued" in line for line in section):
                    refused = [line for line in section if _KEEPALIVED_REFUSED.match(line)]
                    if refused:
                        raise DaemonError(
                            "keepalived refused to reload and keeps running its previous "
                            "configuration:\n" + "\n".join(refused)
                        )
                    if self._read_config_line() not in section:
                        raise DaemonError(
                            f"keepalived reloaded without reading {self.config_path}:\n"
                            + keepalived_messages("\n".join(section))
                        )
                    # Judged only once every child has read the file (or there is none): a
                    # child's error may be the start of its fatal exit.
                    if _keepalived_children_done(section, running_children):
                        errors = _keepalived_config_errors(section)
                        if errors:
                            raise DaemonError(
                                "keepalived reported errors while re-reading its configuration "
                                "(it now runs what it could parse):\n"
                                + keepalived_messages("\n".join(errors))
                            )
                        return
            if time.monotonic() >= deadline:
                raise DaemonError(
                    f"keepalived did not confirm the reload within {timeout}s:\n"
                    + keepalived_messages(watch.text)
                )
            time.sleep(_RELOAD_POLL_INTERVAL)

    def _running_detail(self, pid: int) -> str:
        # From the live command line, not self.vrrp_only: report what actually runs.
        vrrp_only = "--vrrp" in _cmdline(pid)
        parts = [super()._running_detail(pid), "VRRP only" if vrrp_only else "VRRP+IPVS"]
        for label, path in (
            ("vrrp", self.layout.keepalived_vrrp_pid_file),
            ("checkers", self.layout.keepalived_checkers_pid_file),
        ):
            child = _read_pid(path)
            if child is not None and _pid_alive(child):
                parts.append(f"{label} pid {child}")
        return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Parsers of HAProxy CLI output


_MASTER_LINE = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]")


def parse_show_proc(text: str) -> HaproxyProcs:
    """Parse master CLI ``show proc`` (HAProxy 2.6 layout)."""
    master: tuple[int, int, int] | None = None
    workers: list[int] = []
    old_workers: list[int] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            continue
        match = _MASTER_LINE.match(line)
        if match:
            master = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
            continue
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and fields[1] == "worker":
            (old_workers if section == "old workers" else workers).append(int(fields[0]))
    if master is None:
        raise DaemonError(f"unexpected 'show proc' output: {text!r}")
    return HaproxyProcs(
        master_pid=master[0],
        reloads=master[1],
        failed_reloads=master[2],
        workers=tuple(workers),
        old_workers=tuple(old_workers),
    )


def parse_show_info(text: str) -> dict[str, str]:
    """``show info`` "Key: value" lines as a dict."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


# ---------------------------------------------------------------------------------------------
# Module-level helpers


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
