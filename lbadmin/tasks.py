"""Celery tasks: thin wrappers that take ids and call a service on the node's worker.

The services enqueue them by name (lbadmin.services.jobs), never importing this module: it
registers its tasks there when it is imported."""

import sys

from celery import shared_task

from lbadmin.services import jobs
from lbadmin.services.config import config_apply_run
from lbadmin.services.daemons import daemon_restart, daemons_status
from lbadmin.services.ha import PeerError, ha_sync_push
from lbadmin.services.network import network_edit_apply
from lbadmin.services.overview import admin_states_reassert, drain_then_halt_step


@shared_task
def daemons_status_report() -> dict[str, dict[str, object]]:
    """What the worker's node sees of its daemons (the worker owns them in production)."""
    return {
        name: {"running": status.running, "pid": status.pid, "detail": status.detail}
        for name, status in daemons_status().items()
    }


@shared_task
def config_apply_task(revision_id: int) -> str:
    return config_apply_run(revision_id).status


@shared_task
def daemon_restart_task(name: str) -> str:
    error = daemon_restart(name)
    if not error and name == "haproxy":
        admin_states_reassert()
    return error


@shared_task
def drain_then_halt_task(server_id: int) -> bool:
    """Checks a draining server every half second (a short task that re-queues itself, so a
    long drain never holds the node's worker away from applies)."""
    done = drain_then_halt_step(server_id)
    if not done:
        drain_then_halt_task.apply_async((server_id,), countdown=0.5)
    return done


@shared_task(bind=True, max_retries=None)
def ha_sync_task(self) -> bool:
    """Push the master's running configuration to the slave; while the slave is unreachable,
    retry with a growing pause (2 s, 4 s, … at most 5 min) until it comes back."""
    try:
        return ha_sync_push()
    except PeerError as error:
        if not error.unreachable:
            return False  # recorded on the HA page; the next apply or "Sync now" tries again
        raise self.retry(countdown=min(300, 2 ** min(self.request.retries + 1, 9))) from error


@shared_task
def network_apply_task(**change: object) -> dict:
    """Make one Local Configuration change on this node (services.network_edit.NetworkEdit)."""
    return network_edit_apply(**change)  # type: ignore[arg-type]


# What lbadmin.services.jobs enqueues: read from this module at each call.
jobs.register(
    sys.modules[__name__],
    "config_apply_task",
    "daemon_restart_task",
    "daemons_status_report",
    "drain_then_halt_task",
    "ha_sync_task",
    "network_apply_task",
)
