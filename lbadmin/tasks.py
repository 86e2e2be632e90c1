"""Celery tasks: thin wrappers that call a service on the node's worker."""

from celery import shared_task

from lbadmin.services.daemons import daemons_status


@shared_task
def daemons_status_report() -> dict[str, dict[str, object]]:
    """What the worker's node sees of its daemons (the worker owns them in production)."""
    return {
        name: {"running": status.running, "pid": status.pid, "detail": status.detail}
        for name, status in daemons_status().items()
    }
