"""Applying the configuration, View Configuration and Maintenance > Restart Services."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from lbadmin.models import AuditEntry, ConfigRevision, ConfigState
from lbadmin.services import jobs
from lbadmin.services.audit import audit_record
from lbadmin.services.config import (
    config_apply_request,
    config_rollback,
    haproxy_running_text,
    interrupt_orphaned_applies,
    keepalived_running_text,
    pending_diff,
    stunnel_running_text,
)
from lbadmin.services.daemons import layer4_unavailable_reason


def _pending_box(request: HttpRequest, revision: ConfigRevision | None) -> HttpResponse:
    return render(
        request,
        "lbadmin/partials/pending.html",
        {"config_state": ConfigState.load(), "apply_revision": revision},
    )


@require_POST
def apply(request: HttpRequest) -> HttpResponse:
    """The blue box's "Reload HAProxy": queue an apply; the box then follows its progress."""
    revision = config_apply_request(actor=request.user)
    if request.htmx:
        return _pending_box(request, revision)
    messages.info(request, f"Applying the configuration (revision {revision.pk}).")
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=True):
        return redirect(next_url)
    return redirect("lbadmin:view_revisions")


@require_GET
def apply_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Polled by the blue box (htmx) until the apply has finished."""
    revision = get_object_or_404(ConfigRevision, pk=pk)
    if revision.status == ConfigRevision.Status.RUNNING and interrupt_orphaned_applies():
        revision.refresh_from_db()  # its worker died: show it, and offer Reload again
    return _pending_box(request, revision)


@require_GET
def view_haproxy(request: HttpRequest) -> HttpResponse:
    """View Configuration > Layer 7: the haproxy.cfg HAProxy is running."""
    return render(request, "lbadmin/config/haproxy.html", {"text": haproxy_running_text()})


@require_GET
def view_stunnel(request: HttpRequest) -> HttpResponse:
    """View Configuration > SSL Termination: the stunnel files running, one per termination."""
    return render(request, "lbadmin/config/stunnel.html", {"text": stunnel_running_text()})


@require_GET
def view_keepalived(request: HttpRequest) -> HttpResponse:
    """View Configuration > Layer 4: the keepalived.conf keepalived is running."""
    return render(
        request,
        "lbadmin/config/keepalived.html",
        {"text": keepalived_running_text(), "layer4_unavailable": layer4_unavailable_reason()},
    )


@require_GET
def view_pending(request: HttpRequest) -> HttpResponse:
    """View Configuration > Pending Changes: what Apply would change."""
    return render(request, "lbadmin/config/pending.html", {"diff": pending_diff()})


@require_GET
def revisions(request: HttpRequest) -> HttpResponse:
    page = Paginator(
        ConfigRevision.objects.select_related("actor").defer(
            "text", "stunnel_text", "diff", "document"
        ),
        25,
    ).get_page(request.GET.get("page"))
    return render(request, "lbadmin/config/revisions.html", {"page": page})


@require_GET
def revision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    revision = get_object_or_404(ConfigRevision.objects.select_related("actor"), pk=pk)
    return render(request, "lbadmin/config/revision.html", {"revision": revision})


@require_POST
def revision_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    revision = get_object_or_404(ConfigRevision, pk=pk)
    try:
        queued = config_rollback(actor=request.user, revision=revision)
    except ValueError as error:  # ImportRejected too: e.g. a document of an older version
        messages.error(request, f"Revision {revision.pk} cannot be restored: {error}")
        return redirect("lbadmin:view_revisions")
    messages.info(
        request,
        f"Configuration restored to revision {revision.pk}; applying it as revision {queued.pk}.",
    )
    return redirect("lbadmin:view_revisions")


@require_GET
def restart_services(request: HttpRequest) -> HttpResponse:
    return render(request, "lbadmin/config/restart_services.html")


_RESTARTABLE = {"haproxy": "HAProxy", "stunnel": "Stunnel"}


@require_POST
def restart_daemon(request: HttpRequest, name: str) -> HttpResponse:
    """Restart HAProxy or stunnel: stop (dropping every connection), then start again."""
    shown = _RESTARTABLE[name]  # the URLconf passes only these names
    if ConfigState.load().pending:
        # As on the appliance, a restart runs the saved configuration: apply it first. The
        # node's worker takes tasks one at a time, in order, so the restart follows the apply.
        config_apply_request(actor=request.user)
    error = jobs.enqueue("daemon_restart_task", name).get(timeout=120)
    audit_record(
        action=AuditEntry.Action.SERVICE_RESTARTED,
        actor=request.user,
        target=name,
        detail={"error": error} if error else {},
    )
    if error:
        messages.error(request, f"{shown} did not restart: {error}")
    else:
        messages.success(request, f"{shown} restarted.")
    return redirect("lbadmin:restart_services")
