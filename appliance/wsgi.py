"""WSGI entry point, served by gunicorn over HTTPS (see appliance/gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")

application = get_wsgi_application()
