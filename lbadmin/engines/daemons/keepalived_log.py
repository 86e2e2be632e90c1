"""keepalived's console log (``--log-console --log-detail``, see ``KeepalivedControl``), read
to confirm starts and reloads: its lines fit for a user, the errors and fatal lines in them,
whether every child has read a new file, each VRRP instance's last state, and
``KeepalivedWatch``, which tells when the parent has settled. Nothing here spawns a process."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from lbadmin.engines.daemons.proc import proc_stat, read_from

# "Fri Nov 27 04:16:17 2026: " starts every line keepalived writes with --log-console.
_KEEPALIVED_TIMESTAMP = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}: ")
# A complaint about a config line: "(Line 4) …" (parent) or "(/etc/k.conf: Line 4) …".
_KEEPALIVED_LINE_REF = re.compile(r"^\((?:(?P<file>.*): )?(?P<rest>Line \d+\) .*)$")
_KEEPALIVED_CHILD_STARTED = re.compile(r"^Starting \w+ child process, pid=\d+$")
KEEPALIVED_REFUSED = re.compile(r"^Cannot change .* at a reload")
# Errors keepalived reports while reading a config that do not name a line.
_KEEPALIVED_ERROR_MARKERS = (
    "missing '}'s or extra '{'s",
    "Config files missing",
    "Unable to read configuration file",
    "Non-existent interface",
    "Unknown interface",
)
_KEEPALIVED_QUIET = 0.1  # log silence taken as "idle" where /proc/<pid>/wchan says nothing


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


def keepalived_config_errors(lines: Sequence[str]) -> list[str]:
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


def keepalived_fatal(lines: Sequence[str]) -> tuple[list[str], bool]:
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


def keepalived_children_done(lines: Sequence[str], running_before: int) -> bool:
    """Whether every child has read the new file: keepalived's parent counts the children it
    HUPs or starts and logs "Reload complete" ("Startup complete" the first time) once all
    of them have told it so (core/config_notify.c). With no child there is no such line."""
    if not running_before and not any(_KEEPALIVED_CHILD_STARTED.match(line) for line in lines):
        return True
    return any(
        line in ("Reload complete", "Startup complete") or line.startswith("Delaying startup for")
        for line in lines
    )


def after_last(lines: Sequence[str], marker: str) -> list[str] | None:
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


def vrrp_states_from_log(text: str) -> dict[str, str]:
    """instance -> the state keepalived last logged for it since its last start."""
    start = text.rfind(_KEEPALIVED_START_LINE)
    return {m["instance"]: m["state"] for m in _VRRP_STATE_LINE.finditer(text[max(start, 0) :])}


class KeepalivedWatch:
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
        text = read_from(self.log, self.offset)
        if text != self.text:
            self.text, self.changed_at = text, time.monotonic()
        return keepalived_log_lines(text)

    def parent_idle(self) -> bool:
        st = proc_stat(self.pid)
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
