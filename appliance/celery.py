"""The Celery app: the worker on the load-balancer node renders and applies configuration."""

import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")

app = Celery("appliance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender: Celery, **kwargs: object) -> None:
    # The server-less filesystem broker and result store need their folders up front.
    options = sender.conf.broker_transport_options
    folders = [options.get(key) for key in ("data_folder_in", "data_folder_out", "control_folder")]
    backend = str(sender.conf.result_backend or "")
    if backend.startswith("file://"):
        folders.append(backend.removeprefix("file://"))
    for folder in filter(None, folders):
        Path(folder).mkdir(parents=True, exist_ok=True)


@worker_ready.connect
def _network_revert_when_due(**kwargs: object) -> None:
    # A worker that starts (after a crash, say) undoes an unconfirmed network change whose
    # time is up, whether or not the supervisor's timer got to it.
    # Imported here: this module loads before Django is set up (appliance/__init__.py).
    from django.db import connection

    from lbadmin.services.network_revert import network_revert_if_unconfirmed

    try:
        network_revert_if_unconfirmed()
    except Exception as error:  # the worker starts anyway; the timer tries again
        print(f"lbadmin: the network revert check failed at start: {error}")
    finally:
        connection.close()  # the main process serves no task: keep no idle connection
