"""stunnel: one process per SSL termination ("instance", see ``StunnelControl``), each on a
listening socket the appliance binds itself and hands over by socket activation; and reading
the instance files.

Measured quirks this module works around (stunnel 5.68):
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
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from lbadmin.engines.daemons.base import (
    DAEMON_ENVIRONMENT,
    DEBIAN_PACKAGES,
    RELOAD_POLL_INTERVAL,
    CheckResult,
    Controller,
    DaemonError,
    DaemonStatus,
    find_binary,
    readable_file,
    send_signal,
)
from lbadmin.engines.daemons.layout import STUNNEL_INSTANCE_NAME, RuntimeLayout
from lbadmin.engines.daemons.proc import file_size, read_from

_LISTEN_BACKLOG = 1024


class ListenError(DaemonError):
    """A listening socket could not be created; ``errno`` says why (EADDRINUSE…)."""

    def __init__(self, message: str, errno_value: int | None) -> None:
        super().__init__(message)
        self.errno = errno_value


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
        offset = file_size(process.log)
        send_signal(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while True:
            new = read_from(process.log, offset)
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
            time.sleep(RELOAD_POLL_INTERVAL)  # a reload takes ~7 ms: poll finely

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
        problems = [problem for problem in map(readable_file, files) if problem]
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
