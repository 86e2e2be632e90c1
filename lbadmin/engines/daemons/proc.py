"""What the kernel and the daemons leave behind, read without spawning anything (``status()``
must stay cheap): pid files, ``/proc/<pid>`` and the daemons' log files.

A zombie counts as stopped: processes re-parented to PID 1 can linger as zombies here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POLL_INTERVAL = 0.02
_MAX_READ = 64 * 1024 * 1024  # the most of a log read at once


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    if not text or not text[0].isdigit():
        return None
    pid = int(text[0])
    return pid if pid > 1 else None


def proc_stat(pid: int) -> tuple[str, str, int, int] | None:
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


def pid_alive(pid: int) -> bool:
    st = proc_stat(pid)
    # Zombies (Z) and dead tasks (X) have exited; PID 1 here may reap them late.
    return st is not None and st[1] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]


def child_pids(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[2] == pid and st[1] not in ("Z", "X"):
                children.append(int(entry))
    return children


def uptime_seconds(pid: int) -> float | None:
    st = proc_stat(pid)
    try:
        since_boot = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if st is None:
        return None
    return max(0.0, since_boot - st[3] / os.sysconf("SC_CLK_TCK"))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d{hours:02d}h{minutes:02d}m{secs:02d}s"


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(pid_alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def read_from(path: Path, offset: int) -> str:
    """Text appended to ``path`` since ``offset`` ('' if missing; all of it if truncated)."""
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) < offset:
                offset = 0
            fh.seek(offset)
            return fh.read(_MAX_READ).decode(errors="replace")
    except OSError:
        return ""


def read_tail(path: Path, size: int) -> str:
    """The last ``size`` bytes of ``path`` as text ('' if missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
            return fh.read(size).decode(errors="replace")
    except OSError:
        return ""


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
