"""Apply a rendered haproxy.cfg: lock → compare → stage → validate → keep good → save server
states → swap → reload → verify, rolling the file back if HAProxy refuses the new config.

No Django here: the Celery task's service calls ``apply_haproxy_config`` with the rendered text.

Invariants:
- The live file is only ever replaced by ``rename`` from a fully written, fsynced file in the
  same directory, so a reader (or HAProxy reloading) sees the old text or the new text, never a
  mix and never an empty file, even if the applying process is SIGKILLed at any point.
- Applies on one node never overlap: an exclusive ``flock`` on ``<run_dir>/haproxy-apply.lock``
  (released by the kernel when a holder dies, so a killed apply never wedges the next one).
- A config HAProxy refuses never stays live: ``haproxy -c -dW`` rejects syntax errors and
  warnings before the swap, and ``bind_problems`` binds every address first (``-c`` never
  binds, and a reload that fails to bind refuses all connections for ~2 s). If the reload
  fails anyway, the last known good file is put back while the old worker keeps serving.

Which file is HAProxy serving? The live file, unless an apply swapped it in and did not see the
reload through (it was killed, or the reload failed): the flag file
``<run_dir>/haproxy-apply.pending`` is created before each swap and removed once the reload is
confirmed. HAProxy's own ``[failed: N]`` counter (reset by a successful reload) covers reloads
done by others. Only a file known to be served is kept as ``<config>.good``.

Measured on HAProxy 2.6.12 (tests/engines/test_haproxy_apply.py):
- The master CLI ``reload`` answers nothing and 2.6 has no master ``show startup-logs``; the
  bind error of a failed reload is only on the master's stderr, which HaproxyControl.start()
  sends to ``layout.haproxy_master_log``; HaproxyControl.reload() quotes it, e.g.
  ``[ALERT] (123) : Binding [/…/haproxy.cfg:21] for proxy vip: cannot bind socket (Cannot
  assign requested address) for [192.0.2.10:8080]``.
- A reload that fails to bind (an address this host does not have, a port another program
  holds) pauses the old worker's listeners while HAProxy retries binding (200 times, 10 ms
  apart): every VIP refuses connections for ~2.1 s, then the old worker resumes. Hence the
  bind probe.
- The server-state file's srv_port column wins over the new config's port (the address does
  not), and the optional ssl/check/agent columns override the config too; the dump is
  rewritten by ``server_state_for_config`` so the new config decides those, and only runtime
  state (admin/operational state, weights) is carried over.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lbadmin.engines import files
from lbadmin.engines.daemons import DaemonError, HaproxyControl, HaproxyProcs
from lbadmin.engines.files import file_lock, write_atomically

LOCK_FILE_NAME = "haproxy-apply.lock"
PENDING_FILE_NAME = "haproxy-apply.pending"
GOOD_SUFFIX = files.GOOD_SUFFIX
PHASES: tuple[str, ...] = ("lock", "check", "write", "save_state", "reload")

_ANSWER_POLL = 0.02  # between attempts to reach a master that does not answer yet
_STALE_STATE_TMP_AGE = 60.0  # a state temp file older than this belongs to a dead writer


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    changed: bool  # False when the text equals the live file and HAProxy is serving it
    error: str  # HAProxy's own message on failure ('' on success), fit to show a user
    check_output: str  # output of `haproxy -c` (warnings etc.)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (+ "total")


# ---------------------------------------------------------------------------------------------
# Lock


def apply_lock(run_dir: Path, timeout: float) -> contextlib.AbstractContextManager[None]:
    """The HAProxy apply lock (see file_lock)."""
    return file_lock(run_dir / LOCK_FILE_NAME, timeout)


# ---------------------------------------------------------------------------------------------
# Messages


_PID_COLUMN = re.compile(r"^\[(ALERT|WARNING)\]\s+\(\d+\)\s+:\s+")
# HAProxy's closing summaries: they add nothing to the lines that explain the problem.
_GENERIC_LINES = (
    "Fatal errors found in configuration.",
    "Error(s) found in configuration file",
    "Some protocols failed to start their listeners! Exiting.",
    "Loading failure!",
)


# A message about another file may carry that file's content: a pattern file read through the
# configuration is quoted line by line in the parse error ("'<line>' is not a valid IPv4 or IPv6
# address at line 1 of file '<path>'"). A message naming any existing file other than the
# configuration is withheld whole (a path that exists nowhere, such as a URI, is harmless).
_PATH = re.compile(r"/[^\s'\"\[\]:,()]+")
_MAX_MESSAGES = 20
_MAX_MESSAGE_LENGTH = 400
_FOREIGN_FILE_MESSAGE = (
    "HAProxy's message names a file other than its configuration and is not shown"
)


def _shown(message: str, config_files: tuple[str, ...]) -> str:
    """One HAProxy message as the UI and the HA peer may see it: only about our own file."""
    for path in _PATH.findall(message):
        if path not in config_files and os.path.lexists(path):
            return _FOREIGN_FILE_MESSAGE
    if len(message) > _MAX_MESSAGE_LENGTH:
        return message[:_MAX_MESSAGE_LENGTH] + "…"
    return message


def _limited(lines: list[str]) -> list[str]:
    unique = list(dict.fromkeys(lines))  # one foreign-file notice, not one per line
    if len(unique) > _MAX_MESSAGES:
        unique = [*unique[:_MAX_MESSAGES], f"… and {len(unique) - _MAX_MESSAGES} more"]
    return unique


def haproxy_messages(output: str, *, staged: Path | None = None, live: Path | None = None) -> str:
    """The [ALERT]/[WARNING] lines of HAProxy output, without pid columns or generic summaries.

    The staged file's name is replaced by the live one: that is the file the user's config
    would have become, and the line numbers are the same. A message about any other file is
    withheld (see _FILE_REFERENCE), and each is cut to a bounded length.
    """
    if staged is not None and live is not None:
        output = output.replace(os.fspath(staged), os.fspath(live))
    config_files = () if live is None else (os.fspath(live),)
    lines = []
    for line in output.splitlines():
        match = _PID_COLUMN.match(line)
        if match:
            message = _shown(line[match.end() :].strip(), config_files)
            lines.append(f"[{match.group(1)}] {message}")
    specific = [line for line in lines if not any(g in line for g in _GENERIC_LINES)]
    return "\n".join(_limited(specific or lines))


def _check_output(output: str, *, staged: Path, live: Path) -> str:
    """``haproxy -c`` output for the UI: NOTICE lines (version banner) dropped, and like
    haproxy_messages nothing about another file."""
    output = output.replace(os.fspath(staged), os.fspath(live))
    config_files = (os.fspath(live),)
    return "\n".join(
        _limited(
            [
                _shown(line, config_files)
                for line in output.splitlines()
                if line.strip() and not line.startswith("[NOTICE]")
            ]
        )
    )


# ---------------------------------------------------------------------------------------------
# Server state


_SECTION_KEYWORDS = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "peers",
        "resolvers",
        "userlist",
        "cache",
        "program",
        "http-errors",
        "ring",
        "mailers",
    }
)
_PORT_SUFFIX = re.compile(r":(\d{1,5})$")
_STATE_V1_FIELDS = 20  # be_id … srvrecord: the mandatory columns of version 1
_STATE_PORT_COLUMN = 18  # srv_port
_HOST_LIKE = re.compile(r"[A-Za-z0-9.-]+")  # IPv4 or a host name: not IPv6, unix@, ${VAR}


def _config_lines(config_text: str) -> Iterator[tuple[int, str, str, list[str]]]:
    """(line number, section keyword, section name, words) for each line inside a section.

    Comments are dropped; the renderer never quotes or escapes, so splitting on whitespace is
    enough for what is read here (server and bind lines).
    """
    keyword, name = "", ""
    for number, raw in enumerate(config_text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in _SECTION_KEYWORDS:
            keyword, name = words[0], (words[1] if len(words) > 1 else "")
            continue
        if keyword:
            yield number, keyword, name, words


def config_server_ports(config_text: str) -> dict[tuple[str, str], str]:
    """(backend, server) → the port HAProxy will use for that server, as state-file text.

    Only the shapes the renderer writes are understood: ``server <name> <ipv4|host>[:<port>]``
    inside ``backend``/``listen``; without a port HAProxy uses 0 (the client's destination
    port). Anything else (IPv6, unix@, port offsets, variables) is left out, and its state line
    is then dropped rather than risk restoring a wrong port.
    """
    ports: dict[tuple[str, str], str] = {}
    for _number, keyword, section, words in _config_lines(config_text):
        if keyword not in ("backend", "listen") or words[0] != "server" or len(words) < 3:
            continue
        address = words[2]
        match = _PORT_SUFFIX.search(address)
        host = address[: match.start()] if match else address
        if not _HOST_LIKE.fullmatch(host):
            continue  # IPv6, unix@, ${VAR}, …
        if match:
            port = int(match.group(1))
            if 0 < port <= 65535:
                ports[(section, words[1])] = str(port)
        else:
            ports[(section, words[1])] = "0"
    return ports


def server_state_for_config(dump: str, config_text: str) -> str:
    """Rewrite a ``show servers state`` dump so loading it under ``config_text`` only carries
    runtime state over.

    Measured in 2.6: on load, srv_port from the file replaces the configured port, and the
    optional columns (srv_use_ssl, check/agent address and port) replace the configured ones,
    so a port changed in the UI would silently not take effect. Each server line is cut to the
    20 mandatory columns and its srv_port is set to the new config's; lines for servers the
    new config lacks or whose port cannot be read are dropped.
    """
    ports = config_server_ports(config_text)
    out = []
    for line in dump.splitlines():
        fields = line.split()
        if not fields or line.startswith("#") or len(fields) < _STATE_V1_FIELDS:
            out.append(line)  # version line, header, blank
            continue
        port = ports.get((fields[1], fields[3]))
        if port is None:
            continue
        fields = fields[:_STATE_V1_FIELDS]
        fields[_STATE_PORT_COLUMN] = port
        out.append(" ".join(fields))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Bind check


# Errors a reload would hit on these binds. EACCES is left to HAProxy: a probe running
# without CAP_NET_BIND_SERVICE says nothing about the daemon.
_BIND_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE})
_MAX_RANGE_PROBES = 1024


def _bind_targets(spec: str) -> list[tuple[socket.AddressFamily, str, int]] | None:
    """Addresses of one ``bind`` item (``ip:port``, ``:port``, ``ipv6@…``, ``ip:a-b``), or
    None for what this check does not handle (unix sockets, fd@, QUIC, names, variables)."""
    family = None
    if spec.startswith(("ipv4@", "ipv6@")):
        family = socket.AF_INET if spec.startswith("ipv4@") else socket.AF_INET6
        spec = spec[5:]
    elif "@" in spec or spec.startswith("/") or "$" in spec:
        return None
    host, sep, ports = spec.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    first, _, last = ports.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    low, high = int(first), int(last or first)
    if not 0 < low <= high <= 65535 or high - low >= _MAX_RANGE_PROBES:
        return None
    if host in ("", "*"):
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"  # noqa: S104 (HAProxy's "any")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: HAProxy resolves it at start; not guessed here
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return [(family, str(address), port) for port in range(low, high + 1)]


def bound_specs(config_text: str) -> frozenset[str]:
    """The address specs of every ``bind`` line (``127.0.0.1:80``, ``[::1]:443`` …)."""
    return frozenset(
        spec
        for _number, keyword, _section, words in _config_lines(config_text)
        if keyword in ("frontend", "listen") and words[0] == "bind" and len(words) > 1
        for spec in words[1].split(",")
    )


def bind_problems(
    config_text: str, *, check_in_use: bool = True, already_bound: frozenset[str] = frozenset()
) -> list[str]:
    """Why some ``bind`` of the config would fail on this host, found by binding it.

    ``haproxy -c`` never binds, and a reload that fails to bind is not harmless: measured on
    2.6.12, the new process pauses the old worker's listeners (SIGTTOU) and retries for ~2 s,
    and every new connection to every VIP is refused meanwhile. So each address is bound here
    first: a plain bind() with SO_REUSEADDR and SO_REUSEPORT, as HAProxy sets them, and no
    listen(), so the probe never receives a connection. HAProxy's own listeners (same user,
    SO_REUSEPORT) do not conflict; a foreign listener or an address this host does not have
    does, with the same errno HAProxy would get. Binds marked ``transparent``/``freebind`` or
    in another ``namespace`` are skipped (they may bind what the host lacks), as are forms
    ``_bind_targets`` does not parse. ``check_in_use=False`` ignores EADDRINUSE (for
    ``noreuseport`` configs, where HAProxy's own listeners would trip it). Specs in
    ``already_bound`` (held by the serving worker, handed over on reload) are not probed.
    """
    problems = []
    for number, keyword, section, words in _config_lines(config_text):
        if keyword not in ("frontend", "listen") or words[0] != "bind" or len(words) < 2:
            continue
        if {"transparent", "freebind", "namespace"} & set(words[2:]):
            continue
        for spec in words[1].split(","):
            if spec in already_bound:
                continue
            for family, host, port in _bind_targets(spec) or []:
                error = _probe_bind(family, host, port)
                if error is None or (error.errno == errno.EADDRINUSE and not check_in_use):
                    continue
                shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
                problems.append(
                    f"cannot bind {shown} for {keyword} '{section}' (line {number}): "
                    f"{error.strerror}"
                    + (
                        " (this host has no such address)"
                        if error.errno == errno.EADDRNOTAVAIL
                        else " (another program holds that port)"
                    )
                )
                break  # one message per bind item, not per port of a range
    return problems


def _probe_bind(family: socket.AddressFamily, host: str, port: int) -> OSError | None:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in _BIND_ERRORS:
                return exc
    return None


# ---------------------------------------------------------------------------------------------
# Files


def _remove_leftovers(control: HaproxyControl) -> None:
    """Temp files of applies that were killed midway. Called with the lock held, so none of
    them belongs to a running apply."""
    files.remove_staged(control.config_path)
    # The state file is also written outside the apply lock (HaproxyControl.start): only an
    # old temp file belongs to a writer that died.
    state = control.layout.haproxy_state_file
    files.remove_stale(state.parent, f".{state.name}.*.tmp", _STALE_STATE_TMP_AGE)


def _ensure_state_file(control: HaproxyControl) -> None:
    """An empty (version-only) server-state file where none exists.

    ``haproxy -c`` loads the server-state file too, and 2.6 warns when it is missing, which
    -dW makes fatal. HaproxyControl.start() writes the same placeholder and stop() removes the
    file; this covers an apply while HAProxy is stopped. The real dump replaces it right
    before a reload.
    """
    state = control.layout.haproxy_state_file
    if not state.exists():
        write_atomically(state, b"1\n", mode=0o600)


_STATE_FILE_LINE = re.compile(r"(?m)^(\s*server-state-file\s+)\S+")


def _without_runtime_state(text: str, control: HaproxyControl) -> str:
    """The text to validate: the same configuration, its server-state file swapped for an
    empty one. The check judges the configuration, not the moment: with the live state file,
    every server that is DOWN right now makes `haproxy -c` warn ("changed from server-state
    after a reload"), and -dW would then refuse every apply while any server is down."""
    empty = control.layout.run_dir / "haproxy-check.state"
    if not empty.exists():
        write_atomically(empty, b"1\n", mode=0o600)
    return _STATE_FILE_LINE.sub(lambda match: match.group(1) + str(empty), text)


def _in_use_means_foreign(control: HaproxyControl, text: str) -> bool:
    """Whether EADDRINUSE in the bind probe can only come from another program.

    HAProxy's listeners use SO_REUSEPORT, which lets a socket of the same user bind beside
    them; that fails under another user, or when a config turns it off (noreuseport).
    """
    try:
        live = control.config_path.read_text(errors="replace")
    except OSError:
        live = ""
    if "noreuseport" in live or "noreuseport" in text:
        return False
    pid = control.pid()
    if pid is None:
        return True
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.geteuid()
    except OSError:
        return False


def _running_procs(control: HaproxyControl, timeout: float) -> HaproxyProcs | None:
    """``show proc`` of our HAProxy, None if it is not running.

    The master CLI refuses connections while the master re-executes for a reload (one started
    by someone else, or by an apply that was killed), so it is asked again until ``timeout``.
    DaemonError if it still does not answer: then neither reload nor start can work.
    """
    deadline = time.monotonic() + timeout
    while True:
        pid = control.pid()
        if pid is None:
            return None
        try:
            return control.show_proc(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except DaemonError as exc:
            if time.monotonic() >= deadline:
                raise DaemonError(f"HAProxy (master pid {pid}) does not answer: {exc}") from exc
        time.sleep(_ANSWER_POLL)


# ---------------------------------------------------------------------------------------------
# The pipeline


def apply_haproxy_config(
    control: HaproxyControl,
    text: str,
    *,
    lock_timeout: float = 120.0,
    reload_timeout: float = 30.0,
    check_binds: bool = True,
) -> ApplyResult:
    """Make ``text`` the live haproxy.cfg and have HAProxy serve it, or change nothing.

    Never raises for HAProxy's or the system's refusal: every failure is an ApplyResult with
    ok=False and a message for the user. ``reload_timeout`` bounds the wait for the new worker
    (and for a start when HAProxy is not running). ``check_binds=False`` skips the bind probe
    (``bind_problems``) and leaves bind errors to the reload; tests use it to exercise the
    roll-back.
    """
    return _Apply(control, text, reload_timeout, check_binds).run(lock_timeout)


class _Apply(files.LockedApply[ApplyResult]):
    """1. Applies on this node are serialised (files.LockedApply.run); then ``_locked``."""

    phases = PHASES
    lock_file_name = LOCK_FILE_NAME
    busy_message = "another apply is still running"
    failure_prefix = "cannot apply the HAProxy configuration"

    def __init__(
        self, control: HaproxyControl, text: str, reload_timeout: float, check_binds: bool
    ) -> None:
        super().__init__(control.layout)
        self.control = control
        self.text = text
        self.reload_timeout = reload_timeout
        self.check_binds = check_binds
        self.check_output = ""
        self.live = control.config_path
        self.pending = control.layout.run_dir / PENDING_FILE_NAME

    def result(self, ok: bool, changed: bool, error: str = "") -> ApplyResult:
        return ApplyResult(ok, changed, error, self.check_output, self._total())

    def _lock(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        return apply_lock(self.layout.run_dir, timeout)  # looked up here: tests record it

    def _locked(self) -> ApplyResult:
        control, live, data = self.control, self.live, self.text.encode()
        _remove_leftovers(control)

        # 2. Nothing to do when HAProxy already serves exactly this text.
        previous = files.read_bytes(live)
        try:
            procs = _running_procs(control, self.reload_timeout)
        except DaemonError as exc:
            return self.result(False, False, f"{exc}; nothing was changed")
        # The live file is what the workers run unless an apply swapped it in without seeing
        # the reload through (pending), or the last reload, by anyone, failed.
        live_is_served = (
            procs is not None
            and bool(procs.workers)
            and previous is not None
            and not self.pending.exists()
            and procs.failed_reloads == 0
        )
        if live_is_served and previous == data:
            return self.result(True, False)

        # 3. Stage next to the live file (same filesystem: the swap is a rename).
        phase = time.perf_counter()
        staged = files.stage(live, data)
        self._timed("write", phase)
        try:
            # 4. Validate; warnings count as errors.
            phase = time.perf_counter()
            _ensure_state_file(control)
            checked = files.stage(live, _without_runtime_state(self.text, control).encode())
            try:
                check = control.check_config(checked, strict=True)
            finally:
                checked.unlink(missing_ok=True)
            self._timed("check", phase)
            self.check_output = _check_output(check.output, staged=checked, live=live)
            if not check.ok:
                error = haproxy_messages(check.output, staged=checked, live=live)
                return self.result(False, False, error or self.check_output)
            if self.check_binds:
                phase = time.perf_counter()
                in_use = _in_use_means_foreign(control, self.text)
                # Binds the serving worker already holds cannot fail: probe only new ones.
                held = (
                    bound_specs(previous.decode(errors="replace"))
                    if live_is_served
                    else frozenset()
                )
                problems = bind_problems(self.text, check_in_use=in_use, already_bound=held)
                self._timed("check", phase)
                if problems:
                    return self.result(
                        False,
                        False,
                        "HAProxy was not reloaded: the new configuration binds addresses that "
                        "are not available here (a reload would fail, and while failing it "
                        "pauses every listener for ~2 s):\n" + "\n".join(problems),
                    )

            # 5. Keep the last known good (a hard link of the live file: files.keep_good).
            phase = time.perf_counter()
            if live_is_served:
                files.keep_good(live)
            self._timed("write", phase)

            # 6. Carry runtime state (drain/maint/weights) over the reload (the workers
            # answer the runtime API; a master without workers has no state to carry).
            if procs is not None and procs.workers:
                phase = time.perf_counter()
                try:
                    control.save_server_state(
                        transform=lambda dump: server_state_for_config(dump, self.text)
                    )
                except DaemonError as exc:
                    # Reloading anyway would silently undo drains and halts: refuse instead.
                    return self.result(
                        False,
                        False,
                        f"could not save the servers' runtime state before the reload: {exc}",
                    )
                finally:
                    self._timed("save_state", phase)

            # 7. Swap. From here the live file is the new text until the reload is confirmed.
            phase = time.perf_counter()
            self.pending.touch()
            files.replace_durably(staged, live)
            self._timed("write", phase)
        finally:
            staged.unlink(missing_ok=True)

        # 8. Reload (or start) and confirm that a new worker serves the new text.
        phase = time.perf_counter()
        try:
            if procs is not None:
                control.reload(timeout=self.reload_timeout)
            else:
                control.start(timeout=self.reload_timeout)
        except DaemonError as exc:
            self._timed("reload", phase)
            # 9. Roll the file back; the old worker (if any) still runs the old config.
            error = _roll_back(control, previous, procs, live_is_served, str(exc))
            return self.result(False, False, error)
        self._timed("reload", phase)
        self.pending.unlink(missing_ok=True)
        return self.result(True, True)


def _roll_back(
    control: HaproxyControl,
    previous: bytes | None,
    procs_before: HaproxyProcs | None,
    previous_was_served: bool,
    failure: str,
) -> str:
    """Put the last known good file back over the live one; return the message for the user."""
    live = control.config_path
    good = files.good_path(live)
    pending = control.layout.run_dir / PENDING_FILE_NAME
    action = "HAProxy refused the new configuration"
    if procs_before is None:
        action = "HAProxy could not be started with the new configuration"
    try:
        restored = files.restore_good(live, previous)
    except OSError as exc:
        restored = f"restoring {live.name} FAILED ({exc}); it still holds the refused text"
    try:
        after = _running_procs(control, 5.0)
    except DaemonError:
        after = None
    if procs_before is not None:
        if after is not None and after.workers and set(after.workers) == set(procs_before.workers):
            serving = f"the previous worker(s) {list(after.workers)} keep serving"
            # The restored file is what they run if they were serving it before.
            if previous_was_served and good.exists():
                pending.unlink(missing_ok=True)
            # The dump was cut to the refused config's servers: redo it for the restored one,
            # in case something reloads before the next apply.
            with contextlib.suppress(DaemonError, OSError):
                restored_text = live.read_text()
                control.save_server_state(
                    transform=lambda dump: server_state_for_config(dump, restored_text)
                )
        elif after is not None:
            serving = f"worker(s) {list(after.workers)} are serving; their config is uncertain"
        else:
            serving = "HAProxy is NOT serving"
    else:
        serving = "HAProxy is not running"
    messages = haproxy_messages(failure, live=live) or failure
    return f"{action} ({serving}; {restored}):\n{messages}"
