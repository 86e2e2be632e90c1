"""The Setup Wizard for Lync: answers, then a preview (everything that will be created and
what it conflicts with), then Create (one transaction) and an apply."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from lbadmin.forms.wizard import LyncWizardForm
from lbadmin.services.config import ImportRejected
from lbadmin.services.wizard import wizard_apply, wizard_preview


@require_http_methods(["GET", "POST"])
def lync(request: HttpRequest) -> HttpResponse:
    form = LyncWizardForm(request.POST or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        answers = form.answers()
        if request.POST.get("step") == "create":
            try:
                revision = wizard_apply(actor=request.user, answers=answers)
            except (ValueError, ImportRejected) as error:
                messages.error(request, f"Nothing was created: {error}")
            else:
                messages.success(
                    request,
                    f"The Lync deployment was created; applying it as revision {revision.pk}.",
                )
                return redirect("lbadmin:overview")
        preview = wizard_preview(answers)
    return render(request, "lbadmin/wizard/lync.html", {"form": form, "preview": preview})
