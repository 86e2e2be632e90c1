"""Apply stunnel instance configs: lock → write certificates → validate → bind → swap.

One stunnel process per SSL termination (see ``StunnelControl``). No Django here: the Celery
task's service renders each instance's text and calls ``apply_stunnel``.

Invariants:
- Applies on one node never overlap: an exclusive ``flock`` on ``<run_dir>/stunnel-apply.lock``
  (released by the kernel when a holder dies).
- Nothing live changes unless every new or changed instance has been proven by a throw-away
  stunnel running its text: "Configuration successful" in its log and a real TLS handshake
  (so the key matches the certificate and the ciphers can negotiate), and unless every new
  address could be bound.
- A changed config at the same address is a SIGHUP: the listening socket is ours (socket
  activation), so no connection is refused while stunnel re-reads its files. A new address
  is a fresh process on a socket bound before the swap.
- If a step of the swap fails, every instance already touched gets its previous file back and
  its previous process state (re-HUP, restart or stop), and instances started by this apply
  are stopped.
- An instance counts as serving its file only when no swap is unfinished: the flag file
  ``<run_dir>/stunnel-apply.pending`` exists from before a swap until it (or its roll-back)
  is through, so after an applier killed between writing a file and its SIGHUP, the next
  apply HUPs every running instance (lossless) instead of trusting the files.

Validation runs the instance's own text with only these lines rewritten: ``pid``/``output``
(temp paths), ``foreground = yes`` (so the check is our child and ends with it), and
``connect`` (a unix path where nothing listens), so the proving handshake never opens a
connection to the live HAProxy or its servers. That loses no check: stunnel 5.68 resolves
``connect`` per connection and loads a config whatever it says (``127.0.0.1:notaport``,
an over-long unix path, an empty value: all "Configuration successful"). A config that
requires client certificates would fail the handshake; the appliance renders none.

Measured on stunnel 5.68 / OpenSSL 3.0 (tests/engines/test_stunnel_apply.py): a throw-away
check (start, handshake, stop) takes 50-90 ms; a bad config's reasons are its ``[!]`` lines
on stderr (not in ``output``), e.g. ``SSL_CTX_use_PrivateKey_file: … key values mismatch``,
``SSL_CTX_set_cipher_list: … no cipher match`` or ``"frobnicate = yes": Specified option
name is not valid here``; ``ciphers = NULL-SHA`` loads fine and only the handshake fails
("no shared cipher").
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lbadmin.engines.daemons import (
    DaemonError,
    ListenError,
    StunnelControl,
    bind_listener,
    check_instance_name,
    format_address,
    parse_accept,
    spawn_with_listener,
    stunnel_instance_address,
    stunnel_options,
)
from lbadmin.engines.files import CONFIG_MODE, LockedApply, write_atomically

LOCK_FILE_NAME = "stunnel-apply.lock"
PENDING_FILE_NAME = "stunnel-apply.pending"
PHASES: tuple[str, ...] = ("lock", "write_files", "validate", "bind", "swap")
# Certificate bundles are named by a hash of their content (so same name = same bytes).
CERT_FILE_NAME = re.compile(r"[0-9a-f]{16,64}\.pem")

_CERT_MODE = 0o600  # private keys
_CERT_DIR_MODE = 0o700
_CHECK_TIMEOUT = 5.0  # a throw-away stunnel is configured in ~20 ms; this bounds a hang
_HANDSHAKE_TIMEOUT = 3.0
_DAEMON_TIMEOUT = 5.0  # each start, stop or reload of a live instance
_POLL = 0.005
# Rewritten in the throw-away copy (see the module docstring); stunnel names are
# case-insensitive.
_CHECK_REWRITES = re.compile(r"^[ \t]*(pid|output|foreground|connect)[ \t]*=.*$", re.I | re.M)


@dataclass(frozen=True)
class StunnelInstance:
    name: str  # ^ssl-[0-9a-f]{12}$
    # Full stunnel config, rendered elsewhere: exactly one service with one `accept` line,
    # `pid = <layout.stunnel_instance_pid(name)>`, `output = <layout.stunnel_instance_log(name)>`.
    config: str
    host: str  # IPv4/IPv6 literal to listen on (canonical text)
    port: int


@dataclass(frozen=True)
class StunnelApplyResult:
    ok: bool
    changed: bool  # False when everything already ran as desired (or was fully rolled back)
    error: str  # stunnel's own words on failure, naming the instance ('' on success)
    started: tuple[str, ...]
    reloaded: tuple[str, ...]
    stopped: tuple[str, ...]
    timings: dict[str, float]  # seconds per phase (PHASES) and "total"


def apply_stunnel(
    control: StunnelControl,
    instances: Sequence[StunnelInstance],
    files: Mapping[str, bytes],
    *,
    lock_timeout: float = 60.0,
) -> StunnelApplyResult:
    """Make ``instances`` the running stunnel instances, each serving its config, with the
    certificate ``files`` (name → PEM bundle) in ``layout.stunnel_cert_dir``; or change
    nothing live and say why.

    ValueError (before anything is written) for input the renderer should never produce: a bad
    instance or file name, a config without the required lines, an accept line that disagrees
    with host/port. Every refusal by stunnel or the system is a result with ok=False.
    """
    _check_inputs(control, instances, files)
    return _Apply(control, instances, files).run(lock_timeout)


def _check_inputs(
    control: StunnelControl, instances: Sequence[StunnelInstance], files: Mapping[str, bytes]
) -> None:
    names: set[str] = set()
    addresses: set[tuple[str, int]] = set()
    for instance in instances:
        check_instance_name(instance.name)
        if instance.name in names:
            raise ValueError(f"duplicate stunnel instance {instance.name}")
        names.add(instance.name)
        address = stunnel_instance_address(control.layout, instance.name, instance.config)
        try:
            wanted = (str(ipaddress.ip_address(instance.host)), instance.port)
        except ValueError:
            raise ValueError(f"{instance.name}: invalid host {instance.host!r}") from None
        if address != wanted:
            raise ValueError(
                f"{instance.name}: accept {format_address(*address)} in the config, "
                f"but host/port say {format_address(*wanted)}"
            )
        if address in addresses:
            raise ValueError(f"{instance.name}: {format_address(*address)} is used twice")
        addresses.add(address)
    for name, data in files.items():
        if not isinstance(name, str) or not CERT_FILE_NAME.fullmatch(name):
            raise ValueError(f"invalid certificate file name: {name!r}")
        if not isinstance(data, bytes):
            raise ValueError(f"certificate file {name}: bytes expected")


@dataclass
class _Change:
    """What the swap does to one instance, and what it takes to undo."""

    name: str
    new_text: str | None  # None: the instance is removed
    old_text: str | None  # its live file before this apply (None: there was none)
    old_pid: int | None  # its process before this apply
    action: str  # "start", "reload", "replace" (stop + start), "remove"
    listener: socket.socket | None = None
    touched: bool = False  # the swap changed its file or process (undo on failure)

    @property
    def address(self) -> tuple[str, int] | None:
        return _address_of(self.new_text)

    @property
    def old_address(self) -> tuple[str, int] | None:
        return _address_of(self.old_text)


def _address_of(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    for key, value in stunnel_options(text):
        if key == "accept":
            try:
                return parse_accept(value)
            except ValueError:
                return None
    return None


class _Apply(LockedApply[StunnelApplyResult]):
    """Applies on this node are serialised (LockedApply.run); then ``_locked``."""

    phases = PHASES
    lock_file_name = LOCK_FILE_NAME
    busy_message = "another stunnel apply is still running"
    failure_prefix = "cannot apply the stunnel configuration"

    def __init__(
        self,
        control: StunnelControl,
        instances: Sequence[StunnelInstance],
        files: Mapping[str, bytes],
    ) -> None:
        super().__init__(control.layout)
        self.control = control
        self.instances = list(instances)
        self.files = dict(files)
        self.started: list[str] = []
        self.reloaded: list[str] = []
        self.stopped: list[str] = []
        self.pending = self.layout.run_dir / PENDING_FILE_NAME

    def result(self, ok: bool, changed: bool, error: str = "") -> StunnelApplyResult:
        return StunnelApplyResult(
            ok,
            changed,
            error,
            tuple(self.started),
            tuple(self.reloaded),
            tuple(self.stopped),
            self._total(),
        )

    def _locked(self) -> StunnelApplyResult:
        # 1. Certificate files: new names only (a name is a hash of the content), never live.
        since = time.perf_counter()
        cert_dir = self.layout.stunnel_cert_dir
        cert_dir.mkdir(mode=_CERT_DIR_MODE, parents=True, exist_ok=True)
        cert_dir.chmod(_CERT_DIR_MODE)  # it holds private keys, whoever made it
        for name, data in sorted(self.files.items()):
            path = cert_dir / name
            if not path.exists():
                write_atomically(path, data, mode=_CERT_MODE)
        self._timed("write_files", since)

        changes = self._plan()
        if not changes:
            self._prune_certificates()
            return self.result(True, False)

        # 2. Prove every text that will be (re)loaded with a throw-away stunnel.
        since = time.perf_counter()
        try:
            for change in changes:
                if change.new_text is not None:
                    problem = validate_instance(self.control, change.name, change.new_text)
                    if problem:
                        return self.result(False, False, f"{problem}\nNothing was changed.")
        finally:
            self._timed("validate", since)

        # 3. Bind every new address now, so a taken one changes nothing.
        since = time.perf_counter()
        try:
            try:
                problem = self._bind(changes)
            finally:
                self._timed("bind", since)
            if problem:
                return self.result(False, False, f"{problem}\nNothing was changed.")

            # 4. Swap.
            since = time.perf_counter()
            self.pending.touch()
            try:
                error = self._swap(changes)
            finally:
                self._timed("swap", since)
        finally:
            for change in changes:
                if change.listener is not None:
                    change.listener.close()  # the started instance holds its own copy
        if error:
            undo_problems = self._undo(changes)
            if undo_problems:  # the pending flag stays: the next apply HUPs everything
                return self.result(
                    False, True, f"{error}\nRolling back failed too:\n{undo_problems}"
                )
            self.pending.unlink(missing_ok=True)
            self.started, self.reloaded, self.stopped = [], [], []
            return self.result(False, False, f"{error}\nThe previous configuration was restored.")
        self.pending.unlink(missing_ok=True)
        self._prune_certificates()
        self.layout.stunnel_started_marker.touch()  # instances run: the service is started
        return self.result(True, True)

    def _plan(self) -> list[_Change]:
        control = self.control
        live: dict[str, str | None] = {}
        for name in control.configured_instances():
            try:
                live[name] = self.layout.stunnel_instance_config(name).read_text()
            except OSError:
                live[name] = None
        running = control.running_instances()
        # An unfinished swap may have written a file without its SIGHUP.
        files_are_served = not self.pending.exists()
        changes = []
        wanted = {instance.name for instance in self.instances}
        for instance in self.instances:
            old_text, old_pid = live.get(instance.name), running.get(instance.name)
            if old_pid is not None and old_text == instance.config and files_are_served:
                continue  # serving exactly this already
            if old_pid is None:
                action = "start"
            elif _address_of(old_text) == _address_of(instance.config):
                action = "reload"
            else:
                action = "replace"  # a HUP cannot move it: the socket is ours
            changes.append(_Change(instance.name, instance.config, old_text, old_pid, action))
        for name in sorted((set(live) | set(running)) - wanted):
            changes.append(_Change(name, None, live.get(name), running.get(name), "remove"))
        return changes

    def _bind(self, changes: list[_Change]) -> str:
        """Listen on every address a start needs; '' or the reason it cannot."""
        # Ports that instances stopped by this apply hold now: a socket there can only be
        # bound after the stop (see _swap).
        released = {
            change.old_address[1]
            for change in changes
            if change.action in ("replace", "remove") and change.old_address and change.old_pid
        }
        for change in changes:
            if change.action not in ("start", "replace"):
                continue
            host, port = change.address or ("", 0)
            try:
                change.listener = bind_listener(host, port)
            except ListenError as exc:
                if exc.errno == errno.EADDRINUSE and port in released:
                    continue  # bound in _swap, once our own instance let go of it
                return f"{change.name}: {exc}"
        return ""

    def _swap(self, changes: list[_Change]) -> str:
        """Stops first (they free addresses), then starts, then reloads; '' or the error."""
        control = self.control
        order = {"remove": 0, "replace": 0, "start": 1, "reload": 2}
        for change in sorted(changes, key=lambda c: order[c.action]):
            name = change.name
            try:
                if change.action in ("remove", "replace") and change.old_pid is not None:
                    change.touched = True
                    control.stop_instance(name, _DAEMON_TIMEOUT)
                    self.stopped.append(name)
                if change.new_text is None:
                    continue
                change.touched = True
                write_atomically(
                    self.layout.stunnel_instance_config(name),
                    change.new_text.encode(),
                    mode=CONFIG_MODE,
                )
                if change.action == "reload":
                    control.reload_instance(name, _DAEMON_TIMEOUT)
                    self.reloaded.append(name)
                    continue
                if change.listener is None:
                    host, port = change.address or ("", 0)
                    change.listener = bind_listener(host, port)
                control.start_instance(name, change.listener, _DAEMON_TIMEOUT)
                self.started.append(name)
            except (DaemonError, OSError) as exc:
                return f"{name}: {exc}"
        # Removed instances' files go last: until here they are what an undo restarts.
        for change in changes:
            if change.action == "remove":
                self.layout.stunnel_instance_config(change.name).unlink(missing_ok=True)
        return ""

    def _undo(self, changes: list[_Change]) -> str:
        """Put every touched instance back as it was; '' or what could not be."""
        control = self.control
        problems = []
        for change in reversed(changes):
            if not change.touched:
                continue
            name = change.name
            path = self.layout.stunnel_instance_config(name)
            try:
                if change.old_text is None:
                    path.unlink(missing_ok=True)
                elif change.new_text is not None:
                    write_atomically(path, change.old_text.encode(), mode=CONFIG_MODE)
                if change.old_pid is None:
                    control.stop_instance(name, _DAEMON_TIMEOUT)
                elif control.instance_pid(name) == change.old_pid:
                    # Still the old process: a failed HUP left its old config running; a
                    # succeeded one is undone by another HUP of the old file.
                    control.reload_instance(name, _DAEMON_TIMEOUT)
                else:
                    control.stop_instance(name, _DAEMON_TIMEOUT)
                    if change.old_text is not None:
                        control.start_instance(name, timeout=_DAEMON_TIMEOUT)
            except (DaemonError, OSError) as exc:
                problems.append(f"{name}: {exc}")
        return "\n".join(problems)

    def _prune_certificates(self) -> None:
        """Delete certificate bundles no current instance config references."""
        referenced = {
            value for instance in self.instances for _key, value in stunnel_options(instance.config)
        }
        for path in self.layout.stunnel_cert_dir.iterdir():
            if CERT_FILE_NAME.fullmatch(path.name) and os.fspath(path) not in referenced:
                path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Validation with a throw-away stunnel


def validate_instance(
    control: StunnelControl, name: str, text: str, *, timeout: float = _CHECK_TIMEOUT
) -> str:
    """Run ``text`` in a throw-away stunnel and shake hands with it: '' if it serves TLS,
    else a message naming the instance (and its service) and quoting stunnel.

    The copy lives in a temp dir under run_dir (removed afterwards), listens on a fresh
    127.0.0.1 port passed by socket activation, and is stopped before returning.
    """
    who = _describe(name, text)
    try:
        binary = control.binary()
    except DaemonError as exc:
        return f"{who}: {exc}"
    # Short prefix: run_dir is sized for run_dir/<instance>.sock, and the connect path must
    # fit in sun_path too.
    workdir = Path(tempfile.mkdtemp(dir=control.layout.run_dir, prefix="stc-"))
    try:
        config, log = workdir / "check.conf", workdir / "check.log"
        config.write_text(_throwaway_config(text, workdir))
        output = workdir / "stderr"
        with bind_listener("127.0.0.1", 0) as listener, open(output, "wb") as out:
            proc = spawn_with_listener(binary, config, listener, out)
            try:
                return _prove(proc, listener.getsockname()[:2], log, output, who, timeout)
            finally:
                _end(proc)
    except (OSError, DaemonError) as exc:
        return f"{who}: cannot run a test stunnel: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _throwaway_config(text: str, workdir: Path) -> str:
    replacement = {
        "pid": f"pid = {workdir / 'check.pid'}",
        "output": f"output = {workdir / 'check.log'}",
        "foreground": "foreground = yes",
        "connect": f"connect = {workdir / 'void.sock'}",  # nothing listens there
    }
    rewritten = _CHECK_REWRITES.sub(lambda m: replacement[m.group(1).lower()], text)
    if not any(key == "foreground" for key, _ in stunnel_options(text)):
        rewritten = "foreground = yes\n" + rewritten  # the top is the global section
    return rewritten


def _prove(
    proc: subprocess.Popen[bytes],
    address: tuple[str, int],
    log: Path,
    output: Path,
    who: str,
    timeout: float,
) -> str:
    deadline = time.monotonic() + timeout
    while "Configuration successful" not in _text(log):
        if proc.poll() is not None or time.monotonic() >= deadline:
            # At start-up stunnel writes a bad config's "[!]" lines to stderr, not `output`.
            output_text = _text(output) + _text(log)
            reasons = [line for line in output_text.splitlines() if "[!]" in line]
            if proc.poll() is None:
                reasons.append(f"(no 'Configuration successful' within {timeout}s)")
            quoted = "\n".join(reasons) or output_text.strip()
            return f"{who}: stunnel refused the configuration:\n{quoted}"
        time.sleep(_POLL)
    try:
        _handshake(address)
    except (OSError, ssl.SSLError) as exc:
        time.sleep(0.05)  # let stunnel log its side of the failure
        errors = [
            line
            for line in _text(log).split("Configuration successful", 1)[-1].splitlines()
            if re.search(r"LOG[0-3]\[", line)
        ]
        quoted = "\n".join([str(exc), *errors])
        return f"{who}: no TLS handshake possible with this configuration:\n{quoted}"
    return ""


def _handshake(address: tuple[str, int]) -> None:
    """A TLS handshake as a most permissive client: the server's settings decide."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    with (
        socket.create_connection(address, timeout=_HANDSHAKE_TIMEOUT) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.getpeercert(binary_form=True)


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _describe(name: str, text: str) -> str:
    """``ssl-… [service]``: the instance and the service (termination label) it runs."""
    match = re.search(r"^[ \t]*\[([^\]\n]+)\]", text, re.M)
    return f"{name} [{match.group(1)}]" if match else name
