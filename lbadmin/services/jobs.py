"""Work for the node's Celery workers, enqueued by the task's name.

The tasks (lbadmin.tasks) call the services, so the services never import them: they enqueue
here, and lbadmin.tasks registers its tasks when it is imported, which every process that
enqueues does (a worker through Celery's autodiscovery, every Django process in
LbadminConfig.ready()). Names and queues are Celery's own: settings.CELERY_TASK_ROUTES sends
ha_sync_task to settings.CELERY_HA_QUEUE, the others go to the default queue.
"""

from types import ModuleType
from typing import Any

from celery.result import AsyncResult
from django.db import transaction

_homes: dict[str, ModuleType] = {}  # task name -> the module that defines it


def register(module: ModuleType, *names: str) -> None:
    """Let the services enqueue the tasks ``names`` of ``module``. A task is read from its
    module at each call, never kept here, so one replaced there (a test routing it to a queue
    of its own) is the one sent."""
    for name in names:
        if not hasattr(module, name):
            raise LookupError(f"{module.__name__} has no task {name!r}")
        _homes[name] = module


def enqueue(
    name: str,
    *args: Any,
    countdown: float | None = None,
    expires: float | None = None,
    **kwargs: Any,
) -> AsyncResult:
    """Send the task ``name`` with ``args`` and ``kwargs`` now; its result, to wait on with
    ``.get(timeout=…)``. ``countdown``: seconds before a worker may start it; ``expires``:
    seconds after which a worker that has not started it drops it."""
    task = _task(name)
    options = {"countdown": countdown, "expires": expires}
    options = {option: value for option, value in options.items() if value is not None}
    if options:
        return task.apply_async(args=args, kwargs=kwargs, **options)
    return task.delay(*args, **kwargs)  # apply_async without options


def enqueue_on_commit(name: str, *args: Any, **kwargs: Any) -> None:
    """Send the task once the current transaction commits. A failure to send is logged, not
    raised: the write it follows is committed, and its caller sends again (see
    config_apply_request)."""
    _task(name)  # an unknown name fails here, in the caller's transaction
    transaction.on_commit(lambda: enqueue(name, *args, **kwargs), robust=True)


def _task(name: str) -> Any:
    home = _homes.get(name)
    if home is None:
        raise LookupError(f"no task {name!r} is registered: lbadmin.tasks is not imported here")
    return getattr(home, name)
