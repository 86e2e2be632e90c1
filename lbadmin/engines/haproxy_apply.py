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

The bind probe and the server-state rewrite, and what was measured to need them, are in
``haproxy_config``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from lbadmin.engines import files
from lbadmin.engines.daemons import DaemonError, HaproxyControl, HaproxyProcs
from lbadmin.engines.files import file_lock, write_atomically

# What the apply reads in configs and in HAProxy's answers; the tests import it from here.
from lbadmin.engines.haproxy_config import (  # noqa: F401 (config_server_ports: re-exported)
    bind_problems,
    bound_specs,
    check_output,
    config_server_ports,
    haproxy_messages,
    server_state_for_config,
)

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
            self.check_output = check_output(check.output, staged=checked, live=live)
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
