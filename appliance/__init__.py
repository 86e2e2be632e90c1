import os

# Every process of the appliance (manage.py and its serve command, gunicorn's workers, the
# Celery worker, and the daemons they start) creates its files for its own user only: var/
# holds session keys, password hashes and private keys. Set here because every entry point
# imports this package first.
os.umask(0o077)

# Load the Celery app whenever Django starts, so shared tasks bind to it.
from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
