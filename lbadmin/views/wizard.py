"""The Setup Wizard for Lync: 1 version and parts → 2 addresses and servers → 3 web services
persistence (and the Front End certificate) → 4 preview → Create, then the apply's progress
and the post-apply checks. The answers travel between the steps in the session; nothing is
changed before Create. With a deployment, the wizard starts from its answers and changes
what differs; the deployment page also removes it."""

import copy
import re
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from lbadmin.engines.certificates import CertificateError
from lbadmin.forms.wizard import GUIDE_DEFAULTS, AddressesForm, PartsForm, PersistenceForm
from lbadmin.models import ConfigRevision, ConfigState
from lbadmin.services.certificates import certificate_upload
from lbadmin.services.config import ImportRejected
from lbadmin.services.lync_checks import preflight_checks
from lbadmin.services.wizard import (
    Preview,
    WizardRefused,
    deployment_current,
    upload_record,
    wizard_apply,
    wizard_preview,
    wizard_remove,
)
from lbadmin.wizard.answers import answers_from_document
from lbadmin.wizard.lync import InvalidAnswers

SESSION_KEY = "lync_wizard"
STEP_TITLES = {
    1: "Version and parts",
    2: "Addresses and servers",
    3: "Web services persistence",
    4: "Preview",
}


# --- The answers between the steps --------------------------------------------------------------


def _state(request: HttpRequest) -> dict[str, Any]:
    """{"answers": document, "saved": parts switched off (to give back), "uploaded": the
    certificates step 3 uploaded (lbadmin.services.wizard.upload_record)}"""
    state = request.session.get(SESSION_KEY)
    if state is None:
        deployment = deployment_current()
        answers = deployment.answers if deployment else GUIDE_DEFAULTS
        state = {"answers": copy.deepcopy(answers), "saved": {}, "uploaded": []}
        request.session[SESSION_KEY] = state
    return state


def _save(request: HttpRequest, state: dict[str, Any]) -> None:
    request.session[SESSION_KEY] = state
    request.session.modified = True


def _steps(document: dict[str, Any]) -> list[int]:
    """Step 3 is only for the web services of the Front End and Director pools."""
    pools = document.get("front_end") is not None or document.get("director") is not None
    return [1, 2, 3, 4] if pools else [1, 2, 4]


def _neighbour(document: dict[str, Any], step: int, offset: int) -> int:
    steps = _steps(document)
    return steps[max(0, min(len(steps) - 1, steps.index(step) + offset))]


def _step_url(step: int) -> str:
    return reverse("lbadmin:wizard_lync_step", args=[step])


# --- Pages --------------------------------------------------------------------------------------


@require_GET
def lync(request: HttpRequest) -> HttpResponse:
    """The deployment (its objects, flagged when edited by hand since), or the first step."""
    deployment = deployment_current()
    if deployment is None:
        return lync_step(request, 1)  # the answers so far, or the guide's
    try:
        preview = wizard_preview(answers_from_document(deployment.answers))
    except InvalidAnswers as invalid:  # only if someone edited the row by hand
        preview = Preview(plan=None, problems=invalid.problems)
    return render(
        request,
        "lbadmin/wizard/deployment.html",
        {"deployment": deployment, "preview": preview},
    )


@require_GET
def lync_start(request: HttpRequest) -> HttpResponse:
    """Start over: from the deployment's answers, or from the guide's. Certificates step 3
    uploaded stay on record, so that the next Create makes them the deployment's (and its
    removal deletes them); never a write on a GET."""
    abandoned = request.session.pop(SESSION_KEY, None) or {}
    state = _state(request)
    state["uploaded"] = list(abandoned.get("uploaded") or [])
    _save(request, state)
    return redirect(_step_url(1))


@require_http_methods(["GET", "POST"])
def lync_step(request: HttpRequest, step: int) -> HttpResponse:
    state = _state(request)
    document = state["answers"]
    if step not in _steps(document):
        return redirect(_step_url(1))
    data = request.POST if request.method == "POST" else None
    if step == 1:
        form: Any = PartsForm(data, initial=PartsForm.initial_from(document))
        if form.is_valid():
            state["saved"].update({k: v for k, v in document.items() if isinstance(v, dict)})
            state["answers"] = form.update(document, state["saved"])
    elif step == 2:
        form = AddressesForm(data, document=document)
        if form.is_valid():
            state["answers"] = form.updated_document()
    elif step == 3:
        form = PersistenceForm(
            data,
            request.FILES if data is not None else None,
            version=document["version"],
            initial={
                "web_persistence": document.get("web_persistence", "none"),
                "certificate": document.get("certificate"),
            },
        )
        if form.is_valid():
            _persistence(request, form, state)
    else:
        return _preview_step(request, state)
    if request.method == "POST" and form.is_valid():
        _save(request, state)
        return redirect(_step_url(_neighbour(state["answers"], step, +1)))
    return render(
        request,
        "lbadmin/wizard/step.html",
        {
            "form": form,
            "step": step,
            "steps": [(n, STEP_TITLES[n]) for n in _steps(document)],
            "back": _step_url(_neighbour(document, step, -1)) if step > 1 else None,
            "multipart": step == 3,
            "deployment": deployment_current(),
        },
    )


def _persistence(request: HttpRequest, form: PersistenceForm, state: dict[str, Any]) -> None:
    """Step 3: the choice, and the Front End certificate uploaded through the SSL
    certificate code (the wizard removes it with the deployment if nothing else uses it)."""
    data = form.cleaned_data
    document = state["answers"]
    document["web_persistence"] = data["web_persistence"]
    if data["web_persistence"] != "cookie":
        document["certificate"] = None
        return
    if data.get("certificate_file"):
        try:
            certificate = certificate_upload(
                actor=request.user,
                label=data["certificate_label"],
                data=data["certificate_file"],
                password=data["certificate_password"],
            )
        except CertificateError as error:
            form.add_error("certificate_file", str(error))
            return
        document["certificate"] = certificate.label
        state["uploaded"] = [*state["uploaded"], upload_record(certificate)]
    else:
        document["certificate"] = data["certificate"].label


def _preview_step(request: HttpRequest, state: dict[str, Any]) -> HttpResponse:
    document = state["answers"]
    try:
        answers = answers_from_document(document)
    except InvalidAnswers as invalid:
        return _render_preview(request, state, Preview(plan=None, problems=invalid.problems))
    if request.method == "POST":
        try:
            revision = wizard_apply(
                actor=request.user,
                answers=answers,
                overwrite_hand_edits=request.POST.get("overwrite") == "on",
                expected_generation=_generation(request),
                expected_answers=request.POST.get("answers", ""),
                certificates_uploaded=state["uploaded"],
            )
        except (WizardRefused, ImportRejected) as refused:
            for problem in refused.problems:
                messages.error(request, f"Nothing was changed: {problem}")
        else:
            request.session.pop(SESSION_KEY, None)
            return redirect("lbadmin:wizard_lync_progress", pk=revision.pk)
    return _render_preview(request, state, wizard_preview(answers))


def _render_preview(request: HttpRequest, state: dict[str, Any], preview: Preview) -> HttpResponse:
    document = state["answers"]
    return render(
        request,
        "lbadmin/wizard/preview.html",
        {
            "preview": preview,
            "step": 4,
            "steps": [(n, STEP_TITLES[n]) for n in _steps(document)],
            "back": _step_url(_neighbour(document, 4, -1)),
            "deployment": deployment_current(),
        },
    )


def _generation(request: HttpRequest) -> int:
    """The configuration generation the confirmed preview was made from (-1: none given,
    which no configuration has)."""
    value = request.POST.get("generation", "")
    return int(value) if re.fullmatch(r"[0-9]{1,18}", value) else -1


@require_GET
def lync_preflight(request: HttpRequest) -> HttpResponse:
    """From the preview: the post-apply checks that make sense before Create. On request
    only: it sends probes to the servers the administrator typed."""
    try:
        answers = answers_from_document(_state(request)["answers"])
    except InvalidAnswers as invalid:
        checks = None
        problem = "; ".join(invalid.problems)
    else:
        checks = preflight_checks(answers)
        problem = ""
    template = "preflight.html" if request.htmx else "preflight_page.html"
    response = render(request, f"lbadmin/wizard/{template}", {"checks": checks, "problem": problem})
    patch_vary_headers(response, ["HX-Request"])  # the same URL answers with two bodies
    return response


@require_http_methods(["GET", "POST"])
def lync_remove(request: HttpRequest) -> HttpResponse:
    """What removing the deployment does; Remove does it (and applies)."""
    if deployment_current() is None:
        return redirect("lbadmin:wizard_lync")
    if request.method == "POST":
        try:
            revision = wizard_remove(
                actor=request.user,
                overwrite_hand_edits=request.POST.get("overwrite") == "on",
                expected_generation=_generation(request),
                expected_answers=request.POST.get("answers", ""),
            )
        except (WizardRefused, ImportRejected) as refused:
            for problem in refused.problems:
                messages.error(request, f"Nothing was removed: {problem}")
        else:
            request.session.pop(SESSION_KEY, None)
            return redirect("lbadmin:wizard_lync_progress", pk=revision.pk)
    return render(request, "lbadmin/wizard/remove.html", {"preview": wizard_preview(None)})


@require_GET
def lync_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The apply after Create (the blue box follows it), then the post-apply checks."""
    revision = get_object_or_404(ConfigRevision, pk=pk)
    return render(
        request,
        "lbadmin/wizard/progress.html",
        {
            "apply_revision": revision,
            "config_state": ConfigState.load(),
            "deployment": deployment_current(),
        },
    )
