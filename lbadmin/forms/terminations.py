"""Cluster Configuration > SSL Termination: every field through an allowlist, every error next
to its field. The form returns model-ready values; lbadmin.services.terminations saves."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from lbadmin import allowlists
from lbadmin.forms.l7 import text
from lbadmin.models import SslCertificate, SslTermination, VirtualService
from lbadmin.render.snapshot import L7Protocol, SslMode
from lbadmin.services.certificates import DEFAULT_CERTIFICATE_LABEL
from lbadmin.services.ports import port_user

MODE_CHOICES = SslTermination._meta.get_field("mode").choices


class _ByLabel(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.label


class TerminationForm(forms.Form):
    label = text("Label", required=False, help_text="blank: SSL-<virtual service label>")
    virtual_service = _ByLabel(
        label="Associated Virtual Service",
        help_text="HTTP-mode Layer 7 services only: create it first (the guide's "
        "FePoolExtWebSvcs8081, HTTP Mode, cookie MS-WSMAN).",
        queryset=VirtualService.objects.none(),
        error_messages={"invalid_choice": "Choose an HTTP-mode Layer 7 virtual service."},
    )
    port = text("Virtual Service Port", help_text="e.g. 4443")
    mode = forms.ChoiceField(label="SSL Operation Mode", choices=MODE_CHOICES)
    ciphers = text(
        "Custom cipher list",
        required=False,
        help_text="Custom mode only; OpenSSL syntax, e.g. ECDHE-RSA-AES128-GCM-SHA256:...",
    )
    certificate = _ByLabel(
        label="SSL Certificate",
        queryset=SslCertificate.objects.none(),
        error_messages={"invalid_choice": "Choose a certificate that has been signed."},
    )

    def __init__(self, data: Any = None, *, instance: SslTermination | None = None) -> None:
        self.instance = instance
        super().__init__(data, initial=self._initial(instance))
        self.fields["virtual_service"].queryset = http_services()
        self.fields["certificate"].queryset = usable_certificates()

    @staticmethod
    def _initial(instance: SslTermination | None) -> dict[str, Any]:
        if instance is None:
            default = SslCertificate.objects.filter(label=DEFAULT_CERTIFICATE_LABEL).first()
            return {"mode": SslMode.HIGH_SECURITY, "certificate": default}
        return {
            "label": instance.label,
            "virtual_service": instance.virtual_service_id,
            "port": str(instance.port),
            "mode": instance.mode,
            "ciphers": instance.ciphers,
            "certificate": instance.certificate_id,
        }

    def clean_port(self) -> int:
        return allowlists.clean_port(self.cleaned_data["port"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        service = data.get("virtual_service")
        label = data.get("label") or (f"SSL-{service.label}" if service else "")
        if label:
            try:
                data["label"] = allowlists.clean_label(label)
            except ValidationError as error:
                self.add_error("label", error)
            else:
                others = SslTermination.objects.filter(label=data["label"])
                if self.instance is not None:
                    others = others.exclude(pk=self.instance.pk)
                if others.exists():
                    self.add_error("label", "An SSL termination with this label already exists.")
        if data.get("mode") == SslMode.CUSTOM:
            try:
                data["ciphers"] = allowlists.clean_cipher_list(data.get("ciphers", ""))
            except ValidationError as error:
                self.add_error("ciphers", error)
        else:
            data["ciphers"] = ""
        if service is not None and data.get("port"):
            used_by = port_user(service.ip, data["port"], exclude_termination=self.instance)
            if used_by:
                self.add_error("port", f"{service.ip}:{data['port']} is already used by {used_by}.")
        return data

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "label": data["label"],
            "virtual_service": data["virtual_service"],
            "port": data["port"],
            "mode": SslMode(data["mode"]),
            "ciphers": data["ciphers"],
            "certificate": data["certificate"],
        }


def http_services() -> QuerySet[VirtualService]:
    return VirtualService.objects.filter(protocol=L7Protocol.HTTP).order_by("label")


def usable_certificates() -> QuerySet[SslCertificate]:
    """Certificates with a certificate (not a CSR still waiting for its signed one)."""
    return SslCertificate.objects.exclude(certificate_pem="").only("id", "label").order_by("label")
