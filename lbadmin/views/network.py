"""Local Configuration: Network Interface Configuration, Routing, Hostname & DNS."""

from django.conf import settings
from django.contrib import messages
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from lbadmin.engines import netconfig
from lbadmin.forms.network import AddressForm, IdentityForm, InterfaceForm, RouteForm
from lbadmin.models import HostSettings, NetworkAddress, StaticRoute
from lbadmin.services import network, network_state
from lbadmin.services.audit import request_source_ip
from lbadmin.services.network_edit import NetworkEdit
from lbadmin.services.network_state import NetworkRefused


def _host_address(request: HttpRequest) -> str:
    """The address (or name) this browser asked for in its Host header."""
    host = request.get_host()
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _context(request: HttpRequest, **extra: object) -> dict:
    live, interfaces, error = network_state.live_network()
    state = HostSettings.load()
    waiting = state.confirm_until and state.confirm_until > timezone.now()
    return {
        "off_reason": network_state.management_off_reason(),
        "network_problem": state.network_problem,
        "live": live,
        "live_interfaces": interfaces,
        "live_error": error,
        "live_names": [i.name for i in interfaces if i.name != "lo"],
        "configured": network_state.configured_network(),
        "confirm_seconds": int((state.confirm_until - timezone.now()).total_seconds())
        if waiting
        else None,
        **extra,
    }


def _change(request: HttpRequest, edit: NetworkEdit, form: Form | None = None) -> bool:
    """Have the node make ``edit``; problems go to ``form``'s fields where they belong."""
    try:
        confirm = network.network_change(
            actor=request.user,
            edit=edit,
            client_address=request_source_ip(request),
            host_address=_host_address(request),
            source_ip=request_source_ip(request),
        )
    except NetworkRefused as refused:
        for problem, field in zip(refused.problems, refused.fields, strict=True):
            if form is not None and field in form.fields:
                form.add_error(field, problem.split(": ", 1)[-1])
            else:
                messages.error(request, f"Nothing was changed: {problem}")
        if form is not None and form.errors:
            messages.error(request, "Nothing was changed: see the form below.")
        return False
    if confirm:
        messages.warning(
            request,
            "This change touches your own connection: confirm it within "
            f"{settings.LBADMIN_NETWORK_CONFIRM_SECONDS} s from the new settings, "
            "or the previous ones come back.",
        )
    else:
        messages.success(request, f"Applied: {edit.describe()}.")
    return True


@require_http_methods(["GET", "POST"])
def interfaces(request: HttpRequest) -> HttpResponse:
    context = _context(request)
    names = context["live_names"]
    address_form = AddressForm(
        request.POST if request.POST.get("form") == "address" else None, live_names=names
    )
    interface_form = InterfaceForm(
        request.POST if request.POST.get("form") == "interface" else None, live_names=names
    )
    if request.method == "POST":
        if request.POST.get("form") == "address" and address_form.is_valid():
            data = address_form.cleaned_data
            edit = NetworkEdit("address-add", interface=data["interface"], address=data["address"])
            if _change(request, edit, address_form):
                return redirect("lbadmin:network_interfaces")
        elif request.POST.get("form") == "interface" and interface_form.is_valid():
            data = interface_form.cleaned_data
            edit = NetworkEdit(
                "interface-set", interface=data["interface"], up=data["up"], mtu=data["mtu"]
            )
            if _change(request, edit, interface_form):
                return redirect("lbadmin:network_interfaces")
    context |= {
        "address_form": address_form,
        "interface_form": interface_form,
        "address_rows": NetworkAddress.objects.select_related("interface"),
    }
    return render(request, "lbadmin/network/interfaces.html", context)


@require_POST
def address_delete(request: HttpRequest, pk: int) -> HttpResponse:
    address = NetworkAddress.objects.filter(pk=pk).select_related("interface").first()
    if address is not None:
        edit = NetworkEdit(
            "address-remove", interface=address.interface.name, address=address.address
        )
        _change(request, edit)
    return redirect("lbadmin:network_interfaces")


@require_http_methods(["GET", "POST"])
def routing(request: HttpRequest) -> HttpResponse:
    context = _context(request)
    form = RouteForm(request.POST or None, live_names=context["live_names"])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        edit = NetworkEdit(
            "route-add",
            destination=data["destination"],
            gateway=data["gateway"],
            interface=data["interface"] or "",
            metric=data["metric"],
        )
        if _change(request, edit, form):
            return redirect("lbadmin:network_routing")
    context["form"] = form
    context["routes"] = StaticRoute.objects.all()
    return render(request, "lbadmin/network/routing.html", context)


@require_POST
def route_delete(request: HttpRequest, pk: int) -> HttpResponse:
    route = StaticRoute.objects.filter(pk=pk).first()
    if route is not None:
        _change(request, NetworkEdit("route-remove", destination=route.destination))
    return redirect("lbadmin:network_routing")


@require_POST
def confirm(request: HttpRequest) -> HttpResponse:
    if network.network_confirm(actor=request.user, source_ip=request_source_ip(request)):
        messages.success(request, "The new network settings are kept.")
    else:
        messages.error(request, "Too late: the previous settings were restored.")
    return redirect(request.POST.get("next") or "lbadmin:network_interfaces")


@require_http_methods(["GET", "POST"])
def identity(request: HttpRequest) -> HttpResponse:
    state = HostSettings.load()
    live = netconfig.read_identity(etc_dir=settings.LBADMIN_ETC_DIR)
    form = IdentityForm(
        request.POST or None,
        initial={
            "hostname": state.hostname or live.hostname,
            "dns_servers": ", ".join(state.dns_servers or live.dns_servers),
            "search": ", ".join(state.search or live.search),
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            network.identity_update(
                actor=request.user,
                source_ip=request_source_ip(request),
                **form.cleaned_data,
            )
        except NetworkRefused as refused:
            for problem in refused.problems:
                field, _, message = problem.partition(": ")
                name = field.split("[")[0]
                form.add_error(name if name in form.fields else None, message or problem)
        else:
            messages.success(request, "Hostname and DNS saved.")
            return redirect("lbadmin:network_identity")
    return render(
        request,
        "lbadmin/network/identity.html",
        {
            "form": form,
            "live": live,
            "off_reason": network_state.management_off_reason(),
            "network_problem": state.network_problem,
        },
    )
