"""keepalived: ``KeepalivedControl`` (config test, start, reload confirmed from its own log,
stop, VRRP states).

Measured quirks this module works around (keepalived 2.2.7):
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
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

from lbadmin.engines.daemons.base import (
    RELOAD_POLL_INTERVAL,
    CheckResult,
    DaemonError,
    LoggedController,
    readable_file,
    run_check,
    send_signal,
)
from lbadmin.engines.daemons.keepalived_log import (
    KEEPALIVED_REFUSED,
    KeepalivedWatch,
    after_last,
    keepalived_children_done,
    keepalived_config_errors,
    keepalived_fatal,
    keepalived_has_configuration,
    keepalived_messages,
    vrrp_states_from_log,
)
from lbadmin.engines.daemons.layout import RuntimeLayout
from lbadmin.engines.daemons.proc import (
    cmdline,
    file_size,
    pid_alive,
    proc_stat,
    read_from,
    read_pid,
    read_tail,
    wait_gone,
)

# keepalived -t reads nothing yet exits 0 (without -e) when the file is missing, a directory
# or unreadable; only these lines say so.
_KEEPALIVED_NOT_READ = (
    "Config files missing",
    "Unable to read configuration file",
    "is a directory",
)
_KEEPALIVED_PROBE = "lbadmin_parse_probe_"
_VRRP_LOG_TAIL_BYTES = 256 * 1024  # state changes are rare; the log rotates at start-up


class KeepalivedControl(LoggedController):
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
        return vrrp_states_from_log(read_tail(self.log_path, _VRRP_LOG_TAIL_BYTES))

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
        problem = readable_file(path)
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
        result = run_check([binary, "-e", "-t", "-f", os.fspath(path)])
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
                result = run_check([binary, "-e", "-t", "-f", name])
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
        binary = self.binary()
        self._require_config()
        check = self.check_config()
        if not check.ok:
            raise DaemonError(f"keepalived config {self.config_path} is invalid:\n{check.output}")
        self.layout.ensure()
        self._remove_runtime_files()
        log_path = self.log_path
        proc, offset = self._launch(self._argv(binary), log_path)
        watch = KeepalivedWatch(log_path, proc.pid, offset)
        deadline = time.monotonic() + timeout
        while True:
            rc = self._exit_status(proc)
            lines = watch.lines()
            if rc is not None:
                raise DaemonError(
                    f"keepalived failed to start (exit {rc}):\n{keepalived_messages(watch.text)}"
                )
            if self.pid() == proc.pid and self._read_config_line() in lines:
                settled = watch.settled()
                if settled is not None and keepalived_children_done(settled, 0):
                    self._make_pid_files_private()
                    return
            if time.monotonic() >= deadline:
                break
            time.sleep(RELOAD_POLL_INTERVAL)
        self._abandon(proc)  # do not leave a half-started keepalived behind
        raise DaemonError(
            f"keepalived did not come up within {timeout}s:\n{keepalived_messages(watch.text)}"
        )

    def _logs_to_our_log(self, pid: int) -> bool:
        """Whether the running keepalived writes its console log to ``log_path`` (started by
        this class); one started otherwise (daemonized, syslog only) cannot confirm a reload."""
        try:
            stdout = os.readlink(f"/proc/{pid}/fd/1")
        except OSError:
            return False
        return stdout == os.fspath(self.log_path) and "--log-console" in cmdline(pid)

    def _children(self, pid: int) -> list[int]:
        """Live children of parent ``pid`` named by their pid files (VRRP, checkers, BFD)."""
        children = []
        for path in self._runtime_files()[1:]:
            child = read_pid(path)
            st = proc_stat(child) if child is not None else None
            if child is not None and st is not None and st[2] == pid and pid_alive(child):
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
        watch = KeepalivedWatch(self.log_path, pid, file_size(self.log_path))
        send_signal(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            lines = watch.lines()
            if not pid_alive(pid):
                raise DaemonError(
                    f"keepalived exited during the reload:\n{keepalived_messages(watch.text)}"
                )
            failed = [line for line in lines if line.startswith("New config failed validation")]
            if failed:  # reload_check_config in the file: keepalived's own test refused it
                raise DaemonError("\n".join(failed))
            section = after_last(lines, "Reloading ...")
            # A reload already in progress queues ours: wait for the "Reloading ..." after it.
            if section is not None and not any("request queued" in line for line in section):
                fatal, exiting = keepalived_fatal(section)
                if fatal:
                    if exiting:
                        # A child's fatal error takes the parent down too: let it finish
                        # going, so the caller finds keepalived stopped, not half-way.
                        wait_gone([pid], max(0.0, deadline - time.monotonic()))
                    what = "went down" if exiting else "lost a child process"
                    raise DaemonError(
                        f"keepalived {what} during the reload:\n"
                        + keepalived_messages(read_from(self.log_path, watch.offset))
                    )
                settled = watch.settled()
                section = after_last(settled or [], "Reloading ...") or []
                if settled is not None and not any("request queued" in line for line in section):
                    refused = [line for line in section if KEEPALIVED_REFUSED.match(line)]
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
                    if keepalived_children_done(section, running_children):
                        errors = keepalived_config_errors(section)
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
            time.sleep(RELOAD_POLL_INTERVAL)

    def _running_detail(self, pid: int) -> str:
        # From the live command line, not self.vrrp_only: report what actually runs.
        vrrp_only = "--vrrp" in cmdline(pid)
        parts = [super()._running_detail(pid), "VRRP only" if vrrp_only else "VRRP+IPVS"]
        for label, path in (
            ("vrrp", self.layout.keepalived_vrrp_pid_file),
            ("checkers", self.layout.keepalived_checkers_pid_file),
        ):
            child = read_pid(path)
            if child is not None and pid_alive(child):
                parts.append(f"{label} pid {child}")
        return ", ".join(parts)
