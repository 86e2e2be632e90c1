"""Files that survive a crash, for every engine: the one atomic write (temp file, fsync,
rename, directory fsync); and what the apply engines (haproxy_apply, keepalived_apply,
stunnel_apply) share: the node-wide apply lock, the frame of an apply (timed phases, a result
whatever happens), and the handling of a daemon's live configuration file: stage a new file
next to the live one, keep the last good one as a hard link, swap by rename, put the last good
one back. No Django.

Every temporary file is hidden (``.<name>.…tmp``) in the directory of the file it becomes, so
the rename never crosses a filesystem and a writer killed midway leaves only that temp file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

CONFIG_MODE = 0o640  # may hold passwords: root and its group only
GOOD_SUFFIX = ".good"
_LOCK_POLL = 0.02


# --- The apply lock and the frame of an apply --------------------------------------------------


class ApplyLockTimeout(TimeoutError):
    """Another holder kept the lock for longer than the caller was willing to wait."""


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive node-wide lock on ``path``; ApplyLockTimeout after ``timeout`` seconds.

    flock (not a pid file): the kernel drops it when the holder exits or is killed, and it
    works across gunicorn/Celery processes. O_CLOEXEC keeps it out of daemon children (a
    master started during an apply would otherwise hold it for ever).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ApplyLockTimeout(f"{path} is held") from None
                time.sleep(min(_LOCK_POLL, remaining))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _Layout(Protocol):
    run_dir: Path

    def ensure(self) -> None: ...


ResultT = TypeVar("ResultT")


class LockedApply(Generic[ResultT]):
    """The frame every apply engine shares: its phases timed, applies on the node serialised
    by one lock, and a result whatever happens (the lock not coming, the system refusing). A
    subclass names its phases, lock and messages, and writes ``result`` and ``_locked``."""

    phases: ClassVar[tuple[str, ...]]
    lock_file_name: ClassVar[str]
    busy_message: ClassVar[str]  # the error when another apply keeps the lock
    failure_prefix: ClassVar[str]  # before an OSError's text: "cannot apply the … configuration"

    def __init__(self, layout: _Layout) -> None:
        self.layout = layout
        self.timings = dict.fromkeys(self.phases, 0.0)
        self._began = time.perf_counter()

    def result(self, ok: bool, changed: bool, error: str = "") -> ResultT:
        raise NotImplementedError

    def _locked(self) -> ResultT:
        raise NotImplementedError

    def _lock(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.layout.run_dir / self.lock_file_name, timeout)

    def _timed(self, phase: str, since: float) -> None:
        self.timings[phase] += time.perf_counter() - since

    def _total(self) -> dict[str, float]:
        """The timings, with the whole apply's as "total" (for the result)."""
        self.timings["total"] = time.perf_counter() - self._began
        return self.timings

    def run(self, lock_timeout: float) -> ResultT:
        since = time.perf_counter()
        try:
            self.layout.ensure()
            with self._lock(lock_timeout):
                self._timed("lock", since)
                return self._locked()
        except ApplyLockTimeout:
            self._timed("lock", since)
            return self.result(False, False, self.busy_message)
        except OSError as exc:  # disk full, permissions…; live files are only ever renamed in
            return self.result(False, False, f"{self.failure_prefix}: {exc}")


# --- Durable writes ---------------------------------------------------------------------------


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (the entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare(path: Path, data: bytes, *, mode: int, prefix: str | None = None) -> Path:
    """``data`` in a new fsynced file next to ``path``, not yet in its place.

    The file is ``<prefix><random>.tmp`` (by default ``.<name>.<random>.tmp``) in ``path``'s
    directory, with ``mode``; the caller renames it over ``path`` or unlinks it.
    """
    if prefix is None:
        prefix = f".{path.name}."
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
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


def write_all_atomically(contents: Mapping[Path, bytes], *, mode: int) -> None:
    """Replace several files, each atomically: every one is prepared (written and fsynced)
    before any is replaced, then each is renamed into place, then each directory is fsynced.

    A failure while preparing replaces nothing; no temp file stays behind either way.
    """
    prepared: dict[Path, Path] = {}
    try:
        for path, data in contents.items():
            prepared[path] = prepare(path, data, mode=mode)
        for path in list(prepared):
            os.replace(prepared[path], path)
            del prepared[path]
        for directory in dict.fromkeys(path.parent for path in contents):
            fsync_directory(directory)
    finally:
        for temporary in prepared.values():  # those a failure left unrenamed
            temporary.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Readers see the old file or the new one, never a mix: temp + fsync + rename + dir fsync."""
    write_all_atomically({path: data}, mode=mode)


def replace_durably(source: Path, target: Path) -> None:
    """Rename ``source`` over ``target`` (same directory) and make the rename durable."""
    os.replace(source, target)
    fsync_directory(target.parent)


# --- Live configuration files ------------------------------------------------------------------


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


def remove_stale(directory: Path, pattern: str, older_than: float) -> None:
    """Files matching ``pattern`` not modified for ``older_than`` seconds: temp files of
    writers that died (a live writer's file is younger)."""
    now = time.time()
    for path in directory.glob(pattern):
        try:
            if now - path.stat().st_mtime > older_than:
                path.unlink()
        except FileNotFoundError:
            pass


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def stage(live: Path, data: bytes, *, mode: int = CONFIG_MODE) -> Path:
    """``data`` in a new fsynced file next to ``live``, under the apply's staging prefix."""
    return prepare(live, data, mode=mode, prefix=stage_prefix(live))


def link_over(source: Path, target: Path, *, live: Path) -> None:
    """Atomically make ``target`` another name of ``source``'s inode (link temp + rename)."""
    tmp = target.parent / f"{stage_prefix(live)}{os.getpid()}.link.tmp"
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, target)
    # rename() between two links of one inode succeeds without doing anything (POSIX).
    tmp.unlink(missing_ok=True)


# --- The last good file ------------------------------------------------------------------------


def keep_good(live: Path) -> None:
    """Make ``live`` the last known good file (``<config>.good``), durably.

    A hard link, not a copy: the live file is never written in place (only renamed over), so
    its inode is an immutable snapshot; linking costs nothing for a large config and needs no
    data fsync (the data was fsynced when it was staged). link() cannot replace: link a temp
    name, rename it.
    """
    link_over(live, good_path(live), live=live)
    fsync_directory(live.parent)


def restore_good(live: Path, previous: bytes | None) -> str:
    """Put the last good file back over ``live``; what was done, as a phrase for the user.

    The ``.good`` file if there is one, else ``previous`` (the live text before the apply),
    else no file at all. OSError if that fails (``live`` then still holds the refused text).
    """
    good = good_path(live)
    if good.exists():
        link_over(good, live, live=live)
        restored = f"{live.name} was restored from {good.name}"
    elif previous is not None:
        os.replace(stage(live, previous), live)  # a staging name: cleaned up if killed
        restored = f"{live.name} was restored to its previous text"
    else:
        live.unlink(missing_ok=True)
        restored = f"there was no previous {live.name}; the new one was removed"
    fsync_directory(live.parent)
    return restored
