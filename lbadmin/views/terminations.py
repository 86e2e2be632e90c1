"""Cluster Configuration > SSL Termination."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lbadmin.forms.terminations import TerminationForm
from lbadmin.models import SslTermination
from lbadmin.services import terminations as service
from lbadmin.views.saving import save_or_report


@require_GET
def termination_list(request: HttpRequest) -> HttpResponse:
    terminations = SslTermination.objects.select_related("virtual_service", "certificate").only(
        "label", "port", "mode", "virtual_service__label", "virtual_service__ip",
        "virtual_service__ports", "certificate__label", "certificate__not_after",
    )  # fmt: skip
    return render(request, "lbadmin/terminations/list.html", {"terminations": terminations})


@require_http_methods(["GET", "POST"])
def termination_add(request: HttpRequest) -> HttpResponse:
    form = TerminationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        created = save_or_report(
            form, lambda: service.termination_create(actor=request.user, values=form.values())
        )
        if created is not None:
            messages.success(request, f"SSL termination {created.label} added.")
            return redirect("lbadmin:terminations")
    return render(
        request,
        "lbadmin/terminations/form.html",
        {"form": form, "title": "SSL Termination - Add a new Virtual Service"},
    )


@require_http_methods(["GET", "POST"])
def termination_modify(request: HttpRequest, pk: int) -> HttpResponse:
    termination = get_object_or_404(SslTermination, pk=pk)
    form = TerminationForm(request.POST or None, instance=termination)
    if (
        request.method == "POST"
        and form.is_valid()
        and save_or_report(
            form,
            lambda: service.termination_update(
                actor=request.user, termination=termination, values=form.values()
            ),
        )
    ):
        messages.success(request, f"SSL termination {termination.label} updated.")
        return redirect("lbadmin:terminations")
    return render(
        request,
        "lbadmin/terminations/form.html",
        {"form": form, "title": f"Modify SSL Termination {termination.label}"},
    )


@require_POST
def termination_delete(request: HttpRequest, pk: int) -> HttpResponse:
    termination = get_object_or_404(SslTermination, pk=pk)
    service.termination_delete(actor=request.user, termination=termination)
    messages.success(request, f"SSL termination {termination.label} deleted.")
    return redirect("lbadmin:terminations")
