"""The HTTPS API the two nodes of an HA pair call on each other (not for browsers).

Pairing authenticates once with the peer's `loadbalancer` password; every other call must be
signed with the pair key (lbadmin.services.ha.verify_peer_call). JSON in, JSON out."""

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from lbadmin.forms.auth import LoginForm
from lbadmin.models import HaNode
from lbadmin.services import ha
from lbadmin.services.audit import request_source_ip
from lbadmin.services.daemons import daemon_restart

MAX_REQUEST_BYTES = ha.MAX_BODY


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    if len(request.body) > MAX_REQUEST_BYTES:
        return None
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    return data if isinstance(data, dict) else None


def peer_only(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Only this node's paired peer, proven by the pair key, may call the view."""

    @wraps(view)
    def checked(request: HttpRequest) -> JsonResponse:
        node = HaNode.load()
        try:
            ha.verify_peer_call(
                node, request.method, request.path, request.headers, lambda: request.body
            )
        except ha.PeerAuthError as error:
            return _error(str(error), 403)
        return view(request, node)

    return login_not_required(csrf_exempt(checked))


@login_not_required
@csrf_exempt
@require_POST
def pair(request: HttpRequest) -> JsonResponse:
    """A master asks this standalone appliance to become its slave."""
    payload = _json_body(request)
    if payload is None:
        return _error("the pairing request is malformed", 400)
    # The password goes through the WebUI's own login form: same throttle, same lockout,
    # same audit trail. It is checked, never stored.
    username = settings.LBADMIN_DEFAULT_USERNAME  # the guide pairs as `loadbalancer` only
    login = LoginForm(
        request, data={"username": username, "password": str(payload.get("password", ""))}
    )
    if not login.is_valid():
        if login.has_error("__all__", "locked_out"):
            return _error(" ".join(login.non_field_errors()), 429)
        return _error("wrong password for the loadbalancer user on the peer", 403)
    if login.get_user().must_change_password:
        # Anyone on the network knows the factory password: it must not hand this appliance
        # to whoever asks first.
        return _error(
            "the peer still has the factory password: change it on the peer (Maintenance > "
            "Passwords) before pairing",
            403,
        )
    try:
        node = ha.ha_accept_pairing(payload, source_ip=request_source_ip(request))
    except ha.PeerError as error:
        return _error(str(error), 409)
    return JsonResponse({"node_id": str(node.node_id), "role": node.role})


@peer_only
@require_POST
def sync(request: HttpRequest, node: HaNode) -> JsonResponse:
    if node.role != HaNode.Role.SLAVE:
        return _error("this appliance is not the slave of the pair", 409)
    payload = _json_body(request)
    if payload is None:
        return _error("the pushed configuration is malformed", 400)
    return JsonResponse(ha.ha_accept_sync(payload, source_ip=request_source_ip(request)))


@peer_only
@require_GET
def status(request: HttpRequest, node: HaNode) -> JsonResponse:
    return JsonResponse(ha.ha_status_local())


@peer_only
@require_POST
def unpair(request: HttpRequest, node: HaNode) -> JsonResponse:
    ha.ha_break(actor=None, source_ip=request_source_ip(request), tell_peer=False)
    return JsonResponse({"role": HaNode.Role.STANDALONE})


@peer_only
@require_POST
def restart_heartbeat(request: HttpRequest, node: HaNode) -> JsonResponse:
    """Restart keepalived here (the master restarts its own and asks the slave to)."""
    error = daemon_restart("keepalived")
    return JsonResponse({"ok": not error, "error": error})


@peer_only
@require_POST
def hand_over(request: HttpRequest, node: HaNode) -> JsonResponse:
    """The peer takes over the floating addresses: this node lets them go."""
    error = ha.ha_hand_over(actor=None, source_ip=request_source_ip(request))
    return JsonResponse({"ok": not error, "error": error})
