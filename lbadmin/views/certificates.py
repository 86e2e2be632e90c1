"""Cluster Configuration > SSL Certificate."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lbadmin.engines.certificates import CertificateError
from lbadmin.forms.certificates import CertificateUploadForm, CsrForm, SignedCertificateForm
from lbadmin.models import SslCertificate
from lbadmin.services import certificates as service


@require_GET
def certificate_list(request: HttpRequest) -> HttpResponse:
    certificates = SslCertificate.objects.defer("key_encrypted", "certificate_pem", "chain_pem")
    rows = [
        {
            "certificate": certificate,
            "days_left": (certificate.not_after - timezone.now()).days
            if certificate.not_after
            else None,
            "used_by": service.certificate_usage(certificate),
        }
        for certificate in certificates
    ]
    return render(request, "lbadmin/certificates/list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
def certificate_add(request: HttpRequest) -> HttpResponse:
    choice = request.POST.get("choice", "upload")
    upload = CertificateUploadForm(
        request.POST if choice == "upload" else None,
        request.FILES if choice == "upload" else None,
        prefix="upload",
    )
    csr = CsrForm(request.POST if choice == "csr" else None, prefix="csr")
    if request.method == "POST" and choice == "upload" and upload.is_valid():
        try:
            certificate = service.certificate_upload(
                actor=request.user,
                label=upload.cleaned_data["label"],
                data=upload.cleaned_data["file"],
                password=upload.cleaned_data["password"],
            )
        except CertificateError as error:
            upload.add_error("file", str(error))
        else:
            messages.success(request, f"Certificate {certificate.label} added.")
            return redirect("lbadmin:certificates")
    if request.method == "POST" and choice == "csr" and csr.is_valid():
        try:
            certificate = service.certificate_csr_create(
                actor=request.user, label=csr.cleaned_data["label"], **csr.subject()
            )
        except CertificateError as error:
            csr.add_error(None, str(error))
        else:
            return redirect("lbadmin:certificate_csr", pk=certificate.pk)
    return render(
        request,
        "lbadmin/certificates/add.html",
        {"upload": upload, "csr": csr, "choice": choice},
    )


@require_http_methods(["GET", "POST"])
def certificate_csr(request: HttpRequest, pk: int) -> HttpResponse:
    """Shows the CSR to copy; accepts the signed certificate for it."""
    certificate = get_object_or_404(SslCertificate, pk=pk, source=SslCertificate.Source.CSR)
    form = SignedCertificateForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            service.certificate_csr_complete(
                actor=request.user, certificate=certificate, data=form.cleaned_data["file"]
            )
        except CertificateError as error:
            form.add_error("file", str(error))
        else:
            messages.success(request, f"Signed certificate stored for {certificate.label}.")
            return redirect("lbadmin:certificates")
    return render(
        request, "lbadmin/certificates/csr.html", {"certificate": certificate, "form": form}
    )


@require_POST
def certificate_delete(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = get_object_or_404(SslCertificate, pk=pk)
    try:
        service.certificate_delete(actor=request.user, certificate=certificate)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Certificate {certificate.label} deleted.")
    return redirect("lbadmin:certificates")
