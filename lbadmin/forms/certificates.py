"""Cluster Configuration > SSL Certificate: upload, CSR, signed certificate."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from lbadmin import allowlists
from lbadmin.engines.certificates import KEY_TYPES, MAX_UPLOAD_BYTES
from lbadmin.models import SslCertificate


def clean_new_label(value: str) -> str:
    label = allowlists.clean_label(value)
    if SslCertificate.objects.filter(label=label).exists():
        raise ValidationError("A certificate with this label already exists.")
    return label


def read_upload(upload: Any) -> bytes:
    if upload.size > MAX_UPLOAD_BYTES:
        raise ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // 1024} KiB.")
    return upload.read()


class CertificateUploadForm(forms.Form):
    """ "Upload prepared PEM/PFX file": label, file, PFX password."""

    label = forms.CharField(max_length=64, strip=False, help_text="e.g. cert1")
    file = forms.FileField(label="File to upload", allow_empty_file=False)
    password = forms.CharField(
        label="PFX File Password", required=False, strip=False, max_length=1024,
        widget=forms.PasswordInput(render_value=False),
    )  # fmt: skip

    def clean_label(self) -> str:
        return clean_new_label(self.cleaned_data["label"])

    def clean_file(self) -> bytes:
        return read_upload(self.cleaned_data["file"])


class CsrForm(forms.Form):
    """ "Create a new SSL certificate (CSR)": the key is made on the appliance."""

    label = forms.CharField(max_length=64, strip=False)
    common_name = forms.CharField(label="Common Name", max_length=64)
    sans = forms.CharField(
        label="Subject Alternative Names", required=False, max_length=4000,
        help_text="comma-separated DNS names or IP addresses",
    )  # fmt: skip
    organisation = forms.CharField(required=False, max_length=64)
    organisational_unit = forms.CharField(
        label="Organisational Unit", required=False, max_length=64
    )
    locality = forms.CharField(label="City", required=False, max_length=64)
    state = forms.CharField(label="State / County", required=False, max_length=64)
    country = forms.CharField(label="Country (2 letters)", required=False, max_length=2)
    key_type = forms.ChoiceField(label="Key type", choices=list(KEY_TYPES.items()))

    def clean_label(self) -> str:
        return clean_new_label(self.cleaned_data["label"])

    def subject(self) -> dict[str, Any]:
        data = self.cleaned_data
        sans = [part.strip() for part in data["sans"].split(",") if part.strip()]
        return {
            "common_name": data["common_name"],
            "sans": sans,
            "organisation": data["organisation"],
            "organisational_unit": data["organisational_unit"],
            "locality": data["locality"],
            "state": data["state"],
            "country": data["country"],
            "key_type": data["key_type"],
        }


class SignedCertificateForm(forms.Form):
    file = forms.FileField(label="Signed certificate (PEM, with its chain)", allow_empty_file=False)

    def clean_file(self) -> bytes:
        return read_upload(self.cleaned_data["file"])
