"""Cluster Configuration > Layer 4: virtual services and real servers (keepalived + IPVS)."""

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lbadmin.forms.l4 import L4RealServerForm, L4VirtualServiceForm
from lbadmin.models import L4RealServer, L4VirtualService
from lbadmin.services import l4
from lbadmin.services.daemons import layer4_unavailable_reason
from lbadmin.views.saving import save_or_report


def _page(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    return render(request, template, {"layer4_unavailable": layer4_unavailable_reason(), **context})


@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    services = L4VirtualService.objects.annotate(server_count=Count("real_servers"))
    return _page(request, "lbadmin/l4/service_list.html", {"services": services})


@require_http_methods(["GET", "POST"])
def service_add(request: HttpRequest) -> HttpResponse:
    form = L4VirtualServiceForm(request.POST or None, add=True)
    if request.method == "POST" and form.is_valid():
        created = save_or_report(
            form, lambda: l4.l4service_create(actor=request.user, values=form.values())
        )
        if created is not None:
            messages.success(request, f"Layer 4 virtual service {created.label} added.")
            return redirect("lbadmin:l4_services")
    return _page(
        request,
        "lbadmin/l4/service_form.html",
        {"form": form, "title": "Layer 4 – Add a new Virtual Service"},
    )


@require_http_methods(["GET", "POST"])
def service_modify(request: HttpRequest, pk: int) -> HttpResponse:
    service = get_object_or_404(L4VirtualService, pk=pk)
    form = L4VirtualServiceForm(request.POST or None, instance=service)
    if (
        request.method == "POST"
        and form.is_valid()
        and save_or_report(
            form,
            lambda: l4.l4service_update(actor=request.user, service=service, values=form.values()),
        )
    ):
        messages.success(request, f"Layer 4 virtual service {service.label} updated.")
        return redirect("lbadmin:l4_services")
    return _page(
        request,
        "lbadmin/l4/service_form.html",
        {"form": form, "title": f"Layer 4 – Modify Virtual Service {service.label}"},
    )


@require_POST
def service_delete(request: HttpRequest, pk: int) -> HttpResponse:
    service = get_object_or_404(L4VirtualService, pk=pk)
    l4.l4service_delete(actor=request.user, service=service)
    messages.success(request, f"Layer 4 virtual service {service.label} deleted.")
    return redirect("lbadmin:l4_services")


@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    services = L4VirtualService.objects.prefetch_related(
        Prefetch("real_servers", queryset=L4RealServer.objects.order_by("label"))
    )
    return _page(request, "lbadmin/l4/server_list.html", {"services": services})


@require_http_methods(["GET", "POST"])
def server_add(request: HttpRequest, service_pk: int) -> HttpResponse:
    service = get_object_or_404(L4VirtualService, pk=service_pk)
    form = L4RealServerForm(request.POST or None, virtual_service=service)
    if request.method == "POST" and form.is_valid():
        server = l4.l4server_create(actor=request.user, service=service, values=form.values())
        messages.success(request, f"Real server {server.label} added to {service.label}.")
        return redirect("lbadmin:l4_servers")
    return _page(
        request,
        "lbadmin/l4/server_form.html",
        {"form": form, "title": f"Layer 4 – Add a new Real Server to {service.label}"},
    )


@require_http_methods(["GET", "POST"])
def server_modify(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(L4RealServer.objects.select_related("virtual_service"), pk=pk)
    form = L4RealServerForm(
        request.POST or None, virtual_service=server.virtual_service, instance=server
    )
    if request.method == "POST" and form.is_valid():
        l4.l4server_update(actor=request.user, server=server, values=form.values())
        messages.success(request, f"Real server {server.label} updated.")
        return redirect("lbadmin:l4_servers")
    title = f"Layer 4 – Modify Real Server {server.label} of {server.virtual_service.label}"
    return _page(request, "lbadmin/l4/server_form.html", {"form": form, "title": title})


@require_POST
def server_delete(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(L4RealServer.objects.select_related("virtual_service"), pk=pk)
    l4.l4server_delete(actor=request.user, server=server)
    messages.success(request, f"Real server {server.label} deleted.")
    return redirect("lbadmin:l4_servers")
