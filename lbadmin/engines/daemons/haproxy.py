"""HAProxy in master-worker mode: ``HaproxyControl`` (start, reload, stop, the master CLI and
the admin socket) and the parsers of its CLI output.

Measured quirks this module works around (HAProxy 2.6.12):
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
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lbadmin.engines.daemons.base import (
    RELOAD_POLL_INTERVAL,
    CheckResult,
    DaemonError,
    LoggedController,
    readable_file,
    run_check,
)
from lbadmin.engines.daemons.proc import POLL_INTERVAL, file_size, read_from
from lbadmin.engines.files import write_atomically

_SOCKET_TIMEOUT = 3.0
_MAX_SOCKET_REPLY = 64 * 1024 * 1024


@dataclass(frozen=True)
class HaproxyProcs:
    """Parsed master CLI ``show proc``."""

    master_pid: int
    reloads: int
    failed_reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


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


class HaproxyControl(LoggedController):
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
        problem = readable_file(path)
        if problem:
            return CheckResult(ok=False, output=problem)
        try:
            binary = self.binary()
        except DaemonError as exc:
            return CheckResult(ok=False, output=str(exc))
        argv = [binary, "-c", *(["-dW"] if strict else []), "-f", os.fspath(path)]
        return run_check(argv)

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
        binary = self.binary()
        self._require_config()
        self.layout.ensure()
        self._remove_runtime_files()
        self._reset_server_state()
        # No -D: a daemonized master points stdio at /dev/null, and then a failed reload's
        # alerts (bind errors above all) are lost. Instead the master runs in the foreground
        # with its output appended to the master log (LoggedController).
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
        proc, offset = self._launch(argv, log_path)
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            rc = self._exit_status(proc)
            if rc is not None:
                # Parse and bind errors make the master exit before it forks a worker.
                raise DaemonError(
                    f"haproxy failed to start (exit {rc}):\n{read_from(log_path, offset)}"
                )
            if self.pid() is not None:
                try:
                    if self.show_proc(timeout=0.5).workers:
                        return
                except DaemonError as exc:
                    last_error = str(exc)
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        self._abandon(proc)  # do not leave a half-started master behind
        raise DaemonError(
            f"haproxy did not come up within {timeout}s ({last_error or 'no live master'}):\n"
            f"{read_from(log_path, offset)}"
        )

    def reload(self, timeout: float = 5.0) -> None:
        """Reload via the master CLI and confirm a new worker replaced the old one.

        On failure HAProxy keeps the old worker serving; DaemonError explains why.
        """
        if self.pid() is None:
            raise DaemonError("haproxy is not running")
        before = self.show_proc()
        log_offset = file_size(self.master_log)
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
            time.sleep(RELOAD_POLL_INTERVAL)

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
            for line in read_from(self.master_log, log_offset).splitlines()
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
