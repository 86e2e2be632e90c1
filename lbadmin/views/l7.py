"""Cluster Configuration > Layer 7: virtual services, real servers, advanced configuration."""

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lbadmin.forms.l7 import L7SettingsForm, RealServerForm, VirtualServiceForm
from lbadmin.models import L7Settings, RealServer, VirtualService
from lbadmin.services import l7
from lbadmin.views.saving import save_or_report


@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    services = VirtualService.objects.annotate(server_count=Count("real_servers")).order_by("label")
    return render(request, "lbadmin/l7/service_list.html", {"services": services})


@require_http_methods(["GET", "POST"])
def service_add(request: HttpRequest) -> HttpResponse:
    form = VirtualServiceForm(request.POST or None, add=True)
    if request.method == "POST" and form.is_valid():
        created = save_or_report(
            form, lambda: l7.virtualservice_create(actor=request.user, values=form.values())
        )
        if created is not None and created.manual_config:  # lines go on the full form
            messages.info(request, f"Enter the manual HAProxy lines of {created.label}.")
            return redirect("lbadmin:l7_service_modify", pk=created.pk)
        if created is not None:
            messages.success(request, f"Virtual service {created.label} added.")
            return redirect("lbadmin:l7_services")
    return render(
        request,
        "lbadmin/l7/service_form.html",
        {"form": form, "title": "Add a new Virtual Service"},
    )


@require_http_methods(["GET", "POST"])
def service_modify(request: HttpRequest, pk: int) -> HttpResponse:
    service = get_object_or_404(VirtualService, pk=pk)
    form = VirtualServiceForm(request.POST or None, instance=service)
    if (
        request.method == "POST"
        and form.is_valid()
        and save_or_report(
            form,
            lambda: l7.virtualservice_update(
                actor=request.user, service=service, values=form.values()
            ),
        )
    ):
        messages.success(request, f"Virtual service {service.label} updated.")
        return redirect("lbadmin:l7_services")
    return render(
        request,
        "lbadmin/l7/service_form.html",
        {"form": form, "title": f"Modify Virtual Service {service.label}", "service": service},
    )


@require_POST
def service_delete(request: HttpRequest, pk: int) -> HttpResponse:
    service = get_object_or_404(VirtualService, pk=pk)
    try:
        l7.virtualservice_delete(actor=request.user, service=service)
    except l7.ServiceInUse as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Virtual service {service.label} deleted.")
    return redirect("lbadmin:l7_services")


@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    """Every virtual service with its real servers, as on the appliance's Real Servers page."""
    services = VirtualService.objects.order_by("label").prefetch_related(
        Prefetch("real_servers", queryset=RealServer.objects.order_by("label"))
    )
    return render(request, "lbadmin/l7/server_list.html", {"services": services})


@require_http_methods(["GET", "POST"])
def server_add(request: HttpRequest, service_pk: int) -> HttpResponse:
    service = get_object_or_404(VirtualService, pk=service_pk)
    form = RealServerForm(request.POST or None, virtual_service=service)
    if request.method == "POST" and form.is_valid():
        server = l7.realserver_create(actor=request.user, service=service, values=form.values())
        messages.success(request, f"Real server {server.label} added to {service.label}.")
        return redirect("lbadmin:l7_servers")
    return render(
        request,
        "lbadmin/l7/server_form.html",
        {"form": form, "title": f"Add a new Real Server to {service.label}", "service": service},
    )


@require_http_methods(["GET", "POST"])
def server_modify(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(RealServer.objects.select_related("virtual_service"), pk=pk)
    form = RealServerForm(
        request.POST or None, virtual_service=server.virtual_service, instance=server
    )
    if request.method == "POST" and form.is_valid():
        l7.realserver_update(actor=request.user, server=server, values=form.values())
        messages.success(request, f"Real server {server.label} updated.")
        return redirect("lbadmin:l7_servers")
    return render(
        request,
        "lbadmin/l7/server_form.html",
        {
            "form": form,
            "title": f"Modify Real Server {server.label} of {server.virtual_service.label}",
            "service": server.virtual_service,
        },
    )


@require_POST
def server_delete(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(RealServer.objects.select_related("virtual_service"), pk=pk)
    l7.realserver_delete(actor=request.user, server=server)
    messages.success(request, f"Real server {server.label} deleted.")
    return redirect("lbadmin:l7_servers")


@require_http_methods(["GET", "POST"])
def advanced(request: HttpRequest) -> HttpResponse:
    form = L7SettingsForm(request.POST or None, instance=L7Settings.load())
    if request.method == "POST" and form.is_valid():
        l7.l7settings_update(actor=request.user, values=form.values())
        messages.success(request, "Layer 7 advanced configuration updated.")
        return redirect("lbadmin:l7_advanced")
    return render(request, "lbadmin/l7/advanced.html", {"form": form})
