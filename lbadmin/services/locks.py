"""Node-wide locks: exclusive across every process of this appliance (gunicorn workers,
Celery workers, management commands), held as flock()s on files in the run directory."""

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lbadmin.services.daemons import runtime_layout


@contextmanager
def node_lock(name: str, timeout: float = 300.0) -> Iterator[None]:
    layout = runtime_layout()
    layout.ensure()
    with open(layout.run_dir / f"{name}.lock", "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} is held by another process") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
