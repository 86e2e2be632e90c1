"""Local Configuration: Network Interface Configuration, Routing, Hostname & DNS."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from lbadmin.engines import netconfig
from lbadmin.forms.network import AddressForm, IdentityForm, InterfaceForm, RouteForm
from lbadmin.models import HostSettings, NetworkAddress, NetworkInterface, StaticRoute
from lbadmin.services import network
from lbadmin.services.audit import request_source_ip


def _session_address(request: HttpRequest) -> str:
    """The address this browser reached the WebUI on (the Host it asked for)."""
    host = request.get_host()
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _context(request: HttpRequest, **extra: object) -> dict:
    live, interfaces, error = network.live_network()
    state = HostSettings.load()
    waiting = state.confirm_until and state.confirm_until > timezone.now()
    return {
        "off_reason": network.management_off_reason(),
        "live": live,
        "live_interfaces": interfaces,
        "live_error": error,
        "live_names": [i.name for i in interfaces if i.name != "lo"],
        "configured": network.configured_network(),
        "confirm_seconds": int((state.confirm_until - timezone.now()).total_seconds())
        if waiting
        else None,
        **extra,
    }


def _change(request: HttpRequest, change, what: str) -> bool:
    try:
        confirm = network.network_change(
            actor=request.user,
            change=change,
            what=what,
            session_address=_session_address(request),
            source_ip=request_source_ip(request),
        )
    except network.NetworkRefused as refused:
        for problem in refused.problems:
            messages.error(request, f"Nothing was changed: {problem}")
        return False
    if confirm:
        messages.warning(
            request,
            "This change touches your own connection: confirm it within "
            f"{network.settings.LBADMIN_NETWORK_CONFIRM_SECONDS} s from the new settings, "
            "or the previous ones come back.",
        )
    else:
        messages.success(request, f"Applied: {what}.")
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

            def add() -> None:
                interface, _ = NetworkInterface.objects.get_or_create(name=data["interface"])
                NetworkAddress.objects.create(interface=interface, address=data["address"])

            if NetworkAddress.objects.filter(address=data["address"]).exists():
                address_form.add_error("address", "This address is configured already.")
            elif _change(request, add, f"add {data['address']} on {data['interface']}"):
                return redirect("lbadmin:network_interfaces")
        elif request.POST.get("form") == "interface" and interface_form.is_valid():
            data = interface_form.cleaned_data

            def update() -> None:
                NetworkInterface.objects.update_or_create(
                    name=data["interface"], defaults={"mtu": data["mtu"], "up": data["up"]}
                )

            state = "up" if data["up"] else "down"
            what = f"{data['interface']} {state}, MTU {data['mtu'] or 'unchanged'}"
            if _change(request, update, what):
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
        _change(
            request,
            lambda: NetworkAddress.objects.filter(pk=pk).delete(),
            f"remove {address.address} from {address.interface.name}",
        )
    return redirect("lbadmin:network_interfaces")


@require_http_methods(["GET", "POST"])
def routing(request: HttpRequest) -> HttpResponse:
    context = _context(request)
    form = RouteForm(request.POST or None, live_names=context["live_names"])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data

        def add() -> None:
            StaticRoute.objects.create(
                destination=data["destination"],
                gateway=data["gateway"],
                interface=data["interface"] or "",
            )

        if StaticRoute.objects.filter(destination=data["destination"]).exists():
            form.add_error("destination", "A route to this destination exists: remove it first.")
        elif _change(
            request, add, f"route {data['destination']} via {data['gateway'] or data['interface']}"
        ):
            return redirect("lbadmin:network_routing")
    context["form"] = form
    context["routes"] = StaticRoute.objects.all()
    return render(request, "lbadmin/network/routing.html", context)


@require_POST
def route_delete(request: HttpRequest, pk: int) -> HttpResponse:
    route = StaticRoute.objects.filter(pk=pk).first()
    if route is not None:
        _change(
            request,
            lambda: StaticRoute.objects.filter(pk=pk).delete(),
            f"remove route {route.destination}",
        )
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
    live = netconfig.read_identity(etc_dir=network.settings.LBADMIN_ETC_DIR)
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
        except network.NetworkRefused as refused:
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
        {"form": form, "live": live, "off_reason": network.management_off_reason()},
    )
