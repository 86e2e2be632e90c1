"""The Setup Wizard for Lync's post-apply checklist: after Create and apply, probe from the
appliance that the deployment, as it is configured now, answers as the guide needs, one green
or red line each.

GET runs the checks (they change nothing); "Run the checks again" asks htmx for the table
alone, or, without JavaScript, simply loads the page again.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from lbadmin.services.lync_checks import deployment_checks


@require_GET
def checks(request: HttpRequest) -> HttpResponse:
    context = {"checks": deployment_checks()}
    if getattr(request, "htmx", False):
        response = render(request, "lbadmin/wizard/checks_table.html", context)
    else:
        response = render(request, "lbadmin/wizard/checks.html", context)
    patch_vary_headers(response, ["HX-Request"])  # the same URL answers with two bodies
    return response
