"""Node-wide locks: exclusive across every process of this appliance (gunicorn workers,
Celery workers, management commands), held as flock()s on files in the run directory."""

from contextlib import AbstractContextManager

from lbadmin.engines.files import file_lock
from lbadmin.services.layout import runtime_layout


def node_lock(name: str, timeout: float = 300.0) -> AbstractContextManager[None]:
    """Raises a TimeoutError (ApplyLockTimeout) if not acquired within ``timeout`` seconds."""
    layout = runtime_layout()
    layout.ensure()
    return file_lock(layout.run_dir / f"{name}.lock", timeout)
