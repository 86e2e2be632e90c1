"""System Overview: the landing page, its live table, and the drain / halt / online buttons."""

import re
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from lbadmin.allowlists import clean_duration_ms
from lbadmin.models import L4RealServer, RealServer
from lbadmin.render.snapshot import AdminState
from lbadmin.services.audit import request_source_ip
from lbadmin.services.certificates import certificates_expiring
from lbadmin.services.ha import ha_pair_state
from lbadmin.services.network_state import network_problem
from lbadmin.services.overview import overview, realserver_drain_then_halt, realserver_set_state
from lbadmin.services.overview_l4 import StateRefused, l4server_set_state, layer4_overview

ACTIONS = {"drain": AdminState.DRAIN, "halt": AdminState.HALT, "online": AdminState.ONLINE}
DRAIN_TIMEOUTS = ("1m", "5m", "15m", "30m", "1h", "4h")


EXPANDED_RE = re.compile(r"[0-9]{1,10}(,[0-9]{1,10}){0,99}")


def _expanded(request: HttpRequest) -> frozenset[int]:
    """The services this browser shows expanded: "3,17,42" (anything else: none)."""
    value = request.POST.get("expanded") or request.GET.get("expanded") or ""
    return frozenset(map(int, value.split(","))) if EXPANDED_RE.fullmatch(value) else frozenset()


def _context(request: HttpRequest) -> dict:
    expanded = _expanded(request)
    return {
        "overview": overview(request.GET.get("page"), expanded),
        "layer4": layer4_overview(),
        "drain_timeouts": DRAIN_TIMEOUTS,
        "expanded_param": ",".join(map(str, sorted(expanded))),
    }


def _table(request: HttpRequest) -> HttpResponse:
    return render(request, "lbadmin/partials/overview_table.html", _context(request))


@require_GET
def page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "lbadmin/overview.html",
        {
            "now": timezone.now(),
            "expiring_certificates": certificates_expiring(),
            "pair": ha_pair_state(),  # both nodes' VRRP states: a dual master shows in red
            "network_problem": network_problem(),
            **_context(request),
        },
    )


@require_GET
def table(request: HttpRequest) -> HttpResponse:
    """The live table alone: what the page's htmx polling swaps in every few seconds."""
    return _table(request)


@require_POST
def server_state(request: HttpRequest, pk: int) -> HttpResponse:
    server = get_object_or_404(RealServer.objects.select_related("virtual_service"), pk=pk)
    action = request.POST.get("action", "")
    source_ip = request_source_ip(request)
    if action == "drain_then_halt":
        try:
            milliseconds = clean_duration_ms(
                request.POST.get("timeout", ""), minimum_ms=1000, maximum_ms=86_400_000
            )
        except ValidationError as error:
            messages.error(request, f"Drain, then halt: {' '.join(error.messages)}")
            return _answer(request)
        warning = realserver_drain_then_halt(
            actor=request.user,
            server=server,
            timeout=timedelta(milliseconds=milliseconds),
            source_ip=source_ip,
        )
    elif action in ACTIONS:
        warning = realserver_set_state(
            actor=request.user, server=server, state=ACTIONS[action], source_ip=source_ip
        )
    else:
        messages.error(request, "Unknown action.")
        return _answer(request)
    if warning:
        messages.warning(request, warning)
    return _answer(request)


@require_POST
def l4server_state(request: HttpRequest, pk: int) -> HttpResponse:
    """Drain / Halt / Online for a Layer 4 real server."""
    server = get_object_or_404(L4RealServer.objects.select_related("virtual_service"), pk=pk)
    state = ACTIONS.get(request.POST.get("action", ""))
    if state is None:
        messages.error(request, "Unknown action.")
        return _answer(request)
    try:
        warning = l4server_set_state(
            actor=request.user, server=server, state=state, source_ip=request_source_ip(request)
        )
    except StateRefused as error:
        messages.error(request, str(error))
        return _answer(request)
    if warning:
        messages.warning(request, warning)
    return _answer(request)


def _answer(request: HttpRequest) -> HttpResponse:
    if request.htmx:
        return _table(request)
    return redirect("lbadmin:overview")


@require_POST
def dismiss_wizard(request: HttpRequest) -> HttpResponse:
    request.user.setup_wizard_dismissed = True
    request.user.save(update_fields=["setup_wizard_dismissed"])
    return redirect("lbadmin:overview")
