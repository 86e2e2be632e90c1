import socket
from functools import cache

from django.conf import settings
from django.http import HttpRequest

from lbadmin.menu import MENU


@cache
def _hostname() -> str:
    return socket.gethostname()


def appliance(request: HttpRequest) -> dict:
    match = request.resolver_match
    user = getattr(request, "user", None)
    return {
        "appliance_name": settings.LBADMIN_APPLIANCE_NAME,
        "appliance_hostname": _hostname(),
        "menu": MENU,
        "current_url_name": f"{match.namespace}:{match.url_name}" if match else "",
        "default_password_in_use": bool(
            user and user.is_authenticated and user.must_change_password
        ),
        # Filled by later features: services whose configuration changed and needs applying.
        "pending_changes": (),
    }
