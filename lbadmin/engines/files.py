"""Crash-safe handling of a daemon's live configuration file, shared by the apply engines
(haproxy_apply, keepalived_apply): stage a new file next to the live one, keep the last good
one as a hard link, swap by rename. No Django."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CONFIG_MODE = 0o640  # may hold passwords: root and its group only
GOOD_SUFFIX = ".good"


def good_path(live: Path) -> Path:
    """``<config>.good``: the last file the daemon was known to run."""
    return live.with_name(live.name + GOOD_SUFFIX)


def stage_prefix(live: Path) -> str:
    # Hidden, and distinct from any other writer's temp names in the directory.
    return f".{live.name}.apply-"


def remove_staged(live: Path) -> None:
    """Staged files and link temps of applies killed midway (call with the apply lock held,
    so none of them is in use)."""
    for path in live.parent.glob(stage_prefix(live) + "*"):
        path.unlink(missing_ok=True)


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def stage(live: Path, data: bytes, *, mode: int = CONFIG_MODE) -> Path:
    """``data`` in a new fsynced file next to ``live``."""
    fd, name = tempfile.mkstemp(dir=live.parent, prefix=stage_prefix(live), suffix=".tmp")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        os.fsync(fd)  # the rename must never expose a file whose data is not on disk
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise
    os.close(fd)
    return Path(name)


def link_over(source: Path, target: Path, *, live: Path) -> None:
    """Atomically make ``target`` another name of ``source``'s inode (link temp + rename)."""
    tmp = target.parent / f"{stage_prefix(live)}{os.getpid()}.link.tmp"
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, target)
    # rename() between two links of one inode succeeds without doing anything (POSIX).
    tmp.unlink(missing_ok=True)
