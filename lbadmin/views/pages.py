from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from lbadmin.models import AuditEntry
from lbadmin.services.daemons import daemons_status


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Logs > Audit Log, newest first."""
    entries = AuditEntry.objects.select_related("actor").all()
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "lbadmin/audit_log.html", {"page": page})


@require_GET
def service_status(request: HttpRequest) -> HttpResponse:
    """Reports > Service Status: is each load-balancer daemon running?"""
    return render(request, "lbadmin/service_status.html", {"daemons": daemons_status()})
