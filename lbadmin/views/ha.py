"""Cluster Configuration > High-Availability Configuration."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from lbadmin.forms.ha import PairForm
from lbadmin.models import HaNode
from lbadmin.services import ha
from lbadmin.services.audit import request_source_ip


def _peer_status(node: HaNode) -> dict | None:
    """What the peer says of itself (None when it does not answer)."""
    try:
        return ha.call_peer(node, "status/", timeout=2)
    except ha.PeerError:
        return None


@require_http_methods(["GET", "POST"])
def page(request: HttpRequest) -> HttpResponse:
    node = HaNode.load()
    form = PairForm(request.POST or None, initial={"local_ip": node.local_ip or ""})
    steps: list[str] = []
    if request.method == "POST" and node.paired:
        messages.error(
            request,
            f"This appliance is already the {node.role} of a pair with {node.peer_ip}: "
            "break the pair first.",
        )
    elif request.method == "POST" and form.is_valid():
        try:
            steps = ha.ha_pair(
                actor=request.user,
                local_ip=form.cleaned_data["local_ip"],
                peer_ip=form.cleaned_data["peer_ip"],
                password=form.cleaned_data["password"],
                source_ip=request_source_ip(request),
            )
        except ha.PeerError as error:
            form.add_error(None, f"Pairing failed: {error}")
        else:
            for step in steps:
                messages.info(request, step)
            return redirect("lbadmin:ha")
    node.refresh_from_db()
    local = ha.ha_status_local()
    context = {
        "node": node,
        "form": form,
        "local": local,
        "peer": _peer_status(node) if node.paired else None,
    }
    return render(request, "lbadmin/ha/page.html", context)


@require_POST
def action(request: HttpRequest, name: str) -> HttpResponse:
    """The HA page's buttons: Sync now, Restart heartbeat, Take over, Hand back, Break."""
    node = HaNode.load()
    source_ip = request_source_ip(request)
    if not node.paired:
        messages.error(request, "This appliance is not in a pair.")
    elif name == "sync":
        if node.role != HaNode.Role.MASTER:
            messages.error(request, "Only the master pushes its configuration.")
        else:
            ha.ha_sync_request()
            messages.info(request, f"Pushing the configuration to {node.peer_ip}.")
    elif name == "restart-heartbeat":
        problems = ha.ha_restart_heartbeat(actor=request.user, source_ip=source_ip)
        if problems:
            messages.error(request, "Heartbeat restart: " + "; ".join(problems))
        else:
            messages.success(request, "Heartbeat (keepalived) restarted.")
    elif name == "take-over":
        error = ha.ha_take_over(actor=request.user, source_ip=source_ip)
        if error:
            messages.error(request, f"Take over: {error}")
        else:
            messages.success(request, "Taking over the floating IPs.")
    elif name == "hand-back":
        error = ha.ha_hand_over(actor=request.user, source_ip=source_ip)
        if error:
            messages.error(request, f"Hand back: {error}")
        else:
            messages.success(request, f"Handing the floating IPs to {node.peer_ip}.")
    elif name == "break":
        warning = ha.ha_break(actor=request.user, source_ip=source_ip)
        if warning:
            messages.warning(request, warning)
        messages.success(request, "The clustered pair is broken: this appliance is standalone.")
    return redirect("lbadmin:ha")
