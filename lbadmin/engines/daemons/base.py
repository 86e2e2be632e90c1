"""What every daemon controller shares: finding the binaries, the error and result types, the
config-test runner, and the ``Controller`` base class (pid, stop, status) with
``LoggedController`` for the daemons this process runs in the foreground (HAProxy, keepalived).
No Django."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lbadmin.engines.daemons.layout import RuntimeLayout
from lbadmin.engines.daemons.proc import (
    POLL_INTERVAL,
    child_pids,
    cmdline,
    file_size,
    format_duration,
    pid_alive,
    read_pid,
    uptime_seconds,
    wait_gone,
)
from lbadmin.engines.processes import CommandError, run_command

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

# The whole environment the daemons (and their config checks) get.
DAEMON_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
RELOAD_POLL_INTERVAL = 0.005
_CHECK_TIMEOUT = 30.0  # haproxy -c takes 20-130 ms; this only guards against a hang
LOG_ROTATE_BYTES = 4 * 1024 * 1024  # checked at each start; one old generation kept


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


def send_signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return  # already gone: exactly what a stop wanted
    except PermissionError as exc:
        raise DaemonError(f"not allowed to signal pid {pid}: {exc}") from exc


# Daemons launched in the foreground by this process (HAProxy masters, keepalived), kept so
# they can be reaped once they exit (a dropped Popen of a live child warns, and an exited child
# stays a zombie until waited for).
_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}


def _reap_launched() -> None:
    for pid, proc in list(_LAUNCHED.items()):
        if proc.poll() is not None:
            del _LAUNCHED[pid]


# ---------------------------------------------------------------------------------------------
# Config tests


def run_check(argv: list[str]) -> CheckResult:
    """A config test's verdict: ok when it exits 0; its output is stdout then stderr."""
    try:
        done = run_command(argv, timeout=_CHECK_TIMEOUT, env=DAEMON_ENVIRONMENT, check=False)
    except CommandError as exc:
        # Worded as the UI has always shown them, not as run_command words them.
        if isinstance(exc.__cause__, subprocess.TimeoutExpired):
            return CheckResult(ok=False, output=f"{argv[0]} timed out after {_CHECK_TIMEOUT}s")
        return CheckResult(ok=False, output=f"cannot run {argv[0]}: {exc.__cause__}")
    return CheckResult(ok=done.returncode == 0, output=done.output)


def readable_file(path: Path) -> str | None:
    """Why ``path`` cannot be used as a config file, or None if it can."""
    if not path.is_file():
        return f"config file {path} does not exist or is not a regular file"
    if not os.access(path, os.R_OK):
        return f"config file {path} is not readable"
    return None


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
        pid = read_pid(self.pid_path)
        if pid is None or not pid_alive(pid):
            return None
        if self._ownership_marker not in cmdline(pid):
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
            time.sleep(POLL_INTERVAL)

    def _require_config(self) -> None:
        problem = readable_file(self.config_path)
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
        pids = [pid, *child_pids(pid)]
        first, *escalation = self.stop_signals
        send_signal(pid, first)
        if not wait_gone(pids, timeout):
            for sig in escalation:
                send_signal(pid, sig)
                if wait_gone(pids, 1.0):
                    break
            else:
                for each in pids:
                    send_signal(each, signal.SIGKILL)
                if not wait_gone(pids, 1.0):
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
        stale = read_pid(self.pid_path)
        if stale is not None:
            return f"not running: stale pid file {self.pid_path} (pid {stale})"
        return "not running"

    def _running_detail(self, pid: int) -> str:
        return f"pid {pid}, up {format_duration(uptime_seconds(pid))}"


class LoggedController(Controller):
    """A daemon this process runs in the foreground, in its own session (no controlling
    terminal, immune to our process group's signals), cwd /, with its stdout and stderr
    appended to its log: a foreground daemon's own words (start-up and reload errors) go
    nowhere else. Subclasses' ``start()`` use ``_launch``, ``_exit_status`` while they wait
    for it to come up, and ``_abandon`` if it does not."""

    def _launch(self, argv: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
        """Run ``argv`` with its output appended to ``log_path`` (first rotated if larger than
        LOG_ROTATE_BYTES); the process, and the log offset where its output starts."""
        _reap_launched()  # earlier starts whose daemon has exited since
        if file_size(log_path) > LOG_ROTATE_BYTES:
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
                    start_new_session=True,  # our terminal's Ctrl-C must not reach it
                    # Not the appliance's environment: "${DJANGO_SECRET_KEY}" in a config
                    # must expand to nothing.
                    env=DAEMON_ENVIRONMENT,
                )
            except OSError as exc:
                raise DaemonError(f"cannot run {argv[0]}: {exc}") from exc
        _LAUNCHED[proc.pid] = proc
        return proc, offset

    def _exit_status(self, proc: subprocess.Popen[bytes]) -> int | None:
        """``proc``'s exit status if it has exited (it is then forgotten), else None."""
        rc = proc.poll()
        if rc is not None:
            _LAUNCHED.pop(proc.pid, None)
        return rc

    def _abandon(self, proc: subprocess.Popen[bytes]) -> None:
        """End a start that did not come up: no half-started daemon is left behind."""
        self.stop(timeout=1.0)
        if proc.poll() is None:
            proc.kill()  # no pid file yet, so stop() could not find it
        proc.wait(timeout=1.0)
        _LAUNCHED.pop(proc.pid, None)

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        _reap_launched()
