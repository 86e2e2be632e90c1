import socket
from functools import cache

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from lbadmin.menu import MENU
from lbadmin.models import ConfigRevision, ConfigState, HaNode


@cache
def _hostname() -> str:
    return socket.gethostname()


def _active_revision() -> ConfigRevision | None:
    return (
        ConfigRevision.objects.filter(
            status__in=[ConfigRevision.Status.QUEUED, ConfigRevision.Status.RUNNING]
        )
        .only("id", "status")
        .first()
    )


def appliance(request: HttpRequest) -> dict:
    match = request.resolver_match
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    return {
        "appliance_name": settings.LBADMIN_APPLIANCE_NAME,
        "appliance_hostname": _hostname(),
        "menu": MENU,
        "current_url_name": f"{match.namespace}:{match.url_name}" if match else "",
        "default_password_in_use": signed_in and user.must_change_password,
        # The blue box: changes waiting for "Reload HAProxy", or an apply in progress. Lazy,
        # so only pages that show the box pay its query.
        "config_state": SimpleLazyObject(ConfigState.load) if signed_in else None,
        "apply_revision": SimpleLazyObject(_active_revision) if signed_in else None,
        # The HA pair role (slave banner, out-of-sync warning); lazy like the blue box.
        "ha_node": SimpleLazyObject(HaNode.load) if signed_in else None,
    }
