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
- stunnel has no config-test flag; a bad config on SIGHUP is only logged ("Configuration
  failed") and the old one keeps running, so ``reload()`` reads the log to confirm.
- stunnel does not unlink its unix accept sockets when SIGKILLed and then refuses to bind them
  ("Address already in use"), so ``start()`` removes stale ones in run_dir first.
- keepalived forks before parsing its config and logs only to syslog (no /dev/log on these
  machines), so a bad config would die silently: ``start()`` runs ``keepalived -t`` first.
- keepalived ``-t`` exits 0 for a missing file: ``check_config`` checks the file itself.
- Processes re-parented to PID 1 can linger as zombies here; a zombie counts as stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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


class DaemonError(Exception):
    """A daemon could not be started, stopped, reloaded or queried."""


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


@dataclass(frozen=True)
class RuntimeLayout:
    """Where the appliance keeps the daemons' config and runtime files.

    All paths of every daemon are derived here, so the renderers and the controllers agree.
    """

    conf_dir: Path  # rendered configs: haproxy.cfg, stunnel.conf, keepalived.conf
    run_dir: Path  # pid files, sockets
    log_dir: Path

    def __post_init__(self) -> None:
        # Absolute paths: haproxy -D chdirs to / and re-execs itself with the same arguments.
        for name in ("conf_dir", "run_dir", "log_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)).absolute())

    @classmethod
    def under(cls, var_dir: Path) -> RuntimeLayout:
        var_dir = Path(var_dir)
        return cls(conf_dir=var_dir / "etc", run_dir=var_dir / "run", log_dir=var_dir / "log")

    def ensure(self) -> None:
        """mkdir -p all three directories, mode 0750; refuse over-long socket paths.

        Only directories created here are chmod-ed: an existing one (say a shared /run
        given by mistake) keeps its permissions.
        """
        for directory in (self.conf_dir, self.run_dir, self.log_dir):
            try:
                directory.mkdir(mode=0o750, parents=True)
            except FileExistsError:
                continue
            directory.chmod(0o750)  # mkdir's mode is masked by umask
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
            self.stunnel_idle_socket,
            self.stunnel_idle_target,
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
    def haproxy_state_file(self) -> Path:
        """`show servers state` is dumped here before every reload (HAProxy never writes it)."""
        return self.run_dir / "haproxy-servers.state"

    @property
    def haproxy_master_log(self) -> Path:
        """The HAProxy master's stdout/stderr: its start-up and every reload's messages."""
        return self.log_dir / "haproxy-master.log"

    # stunnel
    @property
    def stunnel_config(self) -> Path:
        return self.conf_dir / "stunnel.conf"

    @property
    def stunnel_pid_file(self) -> Path:
        return self.run_dir / "stunnel.pid"

    @property
    def stunnel_log(self) -> Path:
        return self.log_dir / "stunnel.log"

    @property
    def stunnel_idle_socket(self) -> Path:
        """Accept socket of the bootstrap's placeholder service (see render.bootstrap)."""
        return self.run_dir / "stunnel-idle.sock"

    @property
    def stunnel_idle_target(self) -> Path:
        """Connect target of the placeholder service; nothing ever listens there."""
        return self.run_dir / "stunnel-idle-void.sock"

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


def _unlink_if_socket(path: Path) -> None:
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------
# Durable files


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (the entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Readers see the old file or the new one, never a mix: temp + fsync + rename + dir fsync.

    The temp file is hidden (``.<name>.<random>.tmp``) in the same directory, so the rename
    never crosses a filesystem; a writer killed midway leaves only that temp file behind.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


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


def _run_launcher(argv: list[str], log_path: Path, timeout: float) -> tuple[int, str]:
    """Run a daemon's launcher (it forks the daemon and exits) and return (rc, output).

    Output goes to a file, not a pipe: the forked daemon may inherit the descriptors and keep
    a pipe open forever, which would hang a reader waiting for EOF.
    """
    with open(log_path, "w+b") as out:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=DAEMON_ENVIRONMENT,
            )
        except OSError as exc:
            raise DaemonError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out.seek(0)
            raise DaemonError(
                f"{argv[0]} did not return within {timeout}s:\n"
                + out.read().decode(errors="replace")
            ) from None
        out.seek(0)
        return rc, out.read().decode(errors="replace")


def _run_check(argv: list[str]) -> CheckResult:
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_CHECK_TIMEOUT,
            check=False,
            env=DAEMON_ENVIRONMENT,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(ok=False, output=f"{argv[0]} timed out after {_CHECK_TIMEOUT}s")
    except OSError as exc:
        return CheckResult(ok=False, output=f"cannot run {argv[0]}: {exc}")
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    return CheckResult(ok=proc.returncode == 0, output=output)


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


class StunnelControl(Controller):
    """stunnel as a forking daemon (``foreground = no``; ``pid`` under run_dir).

    The config must set ``pid = <layout.stunnel_pid_file>`` and
    ``output = <layout.stunnel_log>``; the renderers always do.
    """

    name = "stunnel"

    @property
    def config_path(self) -> Path:
        return self.layout.stunnel_config

    @property
    def pid_path(self) -> Path:
        return self.layout.stunnel_pid_file

    @property
    def _ownership_marker(self) -> str:
        # stunnel's command line is just "<binary> <config>".
        return os.fspath(self.config_path)

    def check_config(self, path: Path | None = None) -> CheckResult:
        """Only checks that the file exists and is readable.

        stunnel 5.68 has no config-test flag: it parses the file only when it starts or on
        SIGHUP (where a bad config is logged and the old one keeps running). A real check
        (for example a throw-away instance with the services rebound to unix sockets) can
        come later; until then ``reload()`` confirms the result from the log.
        """
        path = Path(path) if path is not None else self.config_path
        problem = _readable_file(path)
        if problem:
            return CheckResult(ok=False, output=problem)
        return CheckResult(
            ok=True,
            output="file is readable; stunnel has no config-test flag, so it was not parsed",
        )

    def start(self, timeout: float = 5.0) -> None:
        if self.pid() is not None:
            return
        binary = self.binary()
        self._require_config()
        self.layout.ensure()
        self._remove_runtime_files()
        self._remove_stale_accept_sockets()
        rc, output = _run_launcher([binary, os.fspath(self.config_path)], self.launch_log, timeout)
        if rc != 0:
            raise DaemonError(f"stunnel failed to start (exit {rc}):\n{output}")
        if self._wait_for_pid(timeout) is None:
            raise DaemonError(
                f"stunnel did not write a live pid to {self.pid_path} within {timeout}s "
                f"(does the config set pid = {self.pid_path} and foreground = no?):\n"
                f"{output}{self._log_tail()}"
            )

    def _remove_stale_accept_sockets(self) -> None:
        # stunnel leaves unix accept sockets behind after SIGKILL and then cannot bind them.
        # Only called while stunnel is not running, and only touches sockets in run_dir.
        try:
            text = self.config_path.read_text(errors="replace")
        except OSError:
            return
        for match in re.finditer(r"^\s*accept\s*=\s*(/\S+)\s*$", text, re.MULTILINE):
            path = Path(match.group(1))
            if path.parent == self.layout.run_dir:
                _unlink_if_socket(path)

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP (re-reads config and certificates without dropping connections), then
        confirm from the log: stunnel reports "Configuration successful" or "failed"."""
        pid = self.pid()
        if pid is None:
            raise DaemonError("stunnel is not running")
        log = self.layout.stunnel_log
        offset = log.stat().st_size if log.exists() else 0
        _signal(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            new = self._read_log_from(offset)
            if "Configuration failed" in new or "Failed to reload" in new:
                raise DaemonError(
                    f"stunnel rejected the new config; the old one keeps running:\n{new}"
                )
            if "Configuration successful" in new:
                return
            if self.pid() is None:
                raise DaemonError(f"stunnel exited after SIGHUP:\n{new}")
            if time.monotonic() >= deadline:
                raise DaemonError(
                    f"stunnel did not confirm the reload in {log} within {timeout}s:\n{new}"
                )
            time.sleep(_POLL_INTERVAL)

    def _read_log_from(self, offset: int) -> str:
        try:
            with open(self.layout.stunnel_log, "rb") as fh:
                if fh.seek(0, os.SEEK_END) < offset:
                    offset = 0  # log was truncated or rotated
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.layout.stunnel_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class KeepalivedControl(Controller):
    """keepalived with its own pid files under run_dir, so it never collides with a host one.

    ``vrrp_only=True`` runs ``--vrrp`` (no IPVS checker process); use it when
    ``ipvs_available()`` is False, as on these machines.
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

    def _runtime_files(self) -> tuple[Path, ...]:
        return (
            self.layout.keepalived_pid_file,
            self.layout.keepalived_vrrp_pid_file,
            self.layout.keepalived_checkers_pid_file,
            self.layout.keepalived_bfd_pid_file,
        )

    def check_config(self, path: Path | None = None) -> CheckResult:
        """``keepalived -t``; a missing or unreadable file is not ok (keepalived says 0)."""
        path = Path(path) if path is not None else self.config_path
        problem = _readable_file(path)
        if problem:
            return CheckResult(ok=False, output=problem)
        try:
            binary = self.binary()
        except DaemonError as exc:
            return CheckResult(ok=False, output=str(exc))
        # -e: a missing include file is an error too.
        return _run_check([binary, "-e", "-t", "-f", os.fspath(path)])

    def start(self, timeout: float = 5.0) -> None:
        if self.pid() is not None:
            return
        binary = self.binary()
        self._require_config()
        # keepalived forks before it parses and logs only to syslog: test first or a bad
        # config would fail silently.
        check = self.check_config()
        if not check.ok:
            raise DaemonError(f"keepalived config {self.config_path} is invalid:\n{check.output}")
        self.layout.ensure()
        self._remove_runtime_files()
        argv = [
            binary,
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
        ]
        if self.vrrp_only:
            argv.append("--vrrp")
        rc, output = _run_launcher(argv, self.launch_log, timeout)
        if rc != 0:
            raise DaemonError(f"keepalived failed to start (exit {rc}):\n{output}")
        if self._wait_for_pid(timeout) is None:
            raise DaemonError(
                f"keepalived did not write a live pid to {self.pid_path} within {timeout}s "
                f"(it logs to syslog only):\n{output}"
            )

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP to the parent, which re-reads the config and reloads its children.

        The config is tested first: keepalived gives no feedback on a bad reload.
        """
        pid = self.pid()
        if pid is None:
            raise DaemonError("keepalived is not running")
        check = self.check_config()
        if not check.ok:
            raise DaemonError(
                f"keepalived config {self.config_path} is invalid; not reloaded:\n{check.output}"
            )
        _signal(pid, signal.SIGHUP)
        if self.pid() is None:
            raise DaemonError("keepalived exited after SIGHUP")

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
