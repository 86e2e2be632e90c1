"""Cluster Configuration > High-Availability Configuration."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from lbadmin.forms.ha import HaSettingsForm, PairForm
from lbadmin.models import HaNode, HaSettings
from lbadmin.services import ha, ha_node
from lbadmin.services.audit import request_source_ip
from lbadmin.services.config import config_export


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
        data = form.cleaned_data
        try:
            if not data["peer_fingerprint"]:
                # Step one: show the peer's certificate to compare with its own HA page
                # before its password goes to whatever answers at that address.
                confirm = ha.peer_fingerprint(data["peer_ip"])
                form = PairForm(
                    initial={
                        "local_ip": data["local_ip"],
                        "peer_ip": data["peer_ip"],
                        "peer_fingerprint": confirm,
                    }
                )
            else:
                steps = ha.ha_pair(
                    actor=request.user,
                    local_ip=data["local_ip"],
                    peer_ip=data["peer_ip"],
                    password=data["password"],
                    source_ip=request_source_ip(request),
                    fingerprint=data["peer_fingerprint"],
                )
        except ha.PeerError as error:
            form.add_error(None, f"Pairing failed: {error}")
        else:
            if steps:
                for step in steps:
                    messages.info(request, step)
                return redirect("lbadmin:ha")
    node.refresh_from_db()
    local = ha.ha_status_local()
    peer = _peer_status(node) if node.paired else None
    current = HaSettings.load()
    settings_form = HaSettingsForm(
        initial={"advert_interval": str(current.advert_interval_ms), "preempt": current.preempt}
    )
    context = {
        "confirm_fingerprint": form["peer_fingerprint"].value() if not node.paired else "",
        "own_fingerprint": ha.webui_fingerprint(),
        "node": node,
        "settings_form": settings_form,
        "form": form,
        "local": local,
        "peer": peer,
        "pair": ha.pair_state(
            node, local_state=local["vrrp_state"], local_hash=local["config_hash"], answer=peer
        )
        if node.paired
        else None,
        "not_floating": ha_node.floating_problems(config_export()) if node.paired else [],
    }
    return render(request, "lbadmin/ha/page.html", context)


@require_POST
def action(request: HttpRequest, name: str) -> HttpResponse:
    """The HA page's buttons: Sync now, Restart heartbeat, Take over, Hand back, Break."""
    node = HaNode.load()
    source_ip = request_source_ip(request)
    if name == "settings":
        if node.role == HaNode.Role.SLAVE:
            messages.error(request, f"HA settings are made on the master {node.peer_ip}.")
            return redirect("lbadmin:ha")
        form = HaSettingsForm(request.POST)
        if form.is_valid():
            ha_node.ha_settings_update(actor=request.user, values=form.values())
            messages.success(request, "HA settings saved: they take effect with the next apply.")
        else:
            for field, errors in form.errors.items():
                messages.error(request, f"{form.fields[field].label}: {' '.join(errors)}")
    elif not node.paired:
        messages.error(request, "This appliance is not in a pair.")
    elif name == "sync":
        if node.role != HaNode.Role.MASTER:
            messages.error(request, "Only the master pushes its configuration.")
        else:
            ha_node.ha_sync_request()
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
