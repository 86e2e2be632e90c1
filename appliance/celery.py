"""The Celery app: the worker on the load-balancer node renders and applies configuration."""

import os
from pathlib import Path

from celery import Celery

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
