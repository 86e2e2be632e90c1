"""Gunicorn serves the WebUI over HTTPS only, on LBADMIN_HTTPS_BIND:LBADMIN_HTTPS_PORT (9443).

A plain-HTTP request to the port fails the TLS handshake: there is no clear-text listener.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")

from appliance import settings

wsgi_app = "appliance.wsgi:application"
bind = [f"{settings.LBADMIN_HTTPS_BIND}:{settings.LBADMIN_HTTPS_PORT}"]
certfile = str(settings.LBADMIN_TLS_CERT)
keyfile = str(settings.LBADMIN_TLS_KEY)
worker_class = "gthread"
workers = int(os.environ.get("LBADMIN_WEB_WORKERS", "2"))
threads = int(os.environ.get("LBADMIN_WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
proc_name = "lbadmin-web"
umask = 0o077  # as appliance/__init__.py: nothing gunicorn writes is for other users
# Gunicorn's control socket lives at one path per user; the appliance does not use it, and two
# instances (the WebUI and the test suite's) would contend for it.
control_socket_disable = True
