"""SSL certificates: upload (PEM/PFX), CSRs created on the appliance, the default self-signed
certificate. Private keys are stored only encrypted (lbadmin.services.secrets)."""

import socket
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from lbadmin.engines.certificates import (
    ParsedCertificate,
    accept_signed,
    make_csr,
    make_self_signed,
    parse_upload,
)
from lbadmin.models import AuditEntry, SslCertificate, User
from lbadmin.services.audit import audit_record
from lbadmin.services.secrets import secret_decrypt, secret_encrypt

DEFAULT_CERTIFICATE_LABEL = "Default Self Signed Certificate"
EXPIRY_WARNING = timedelta(days=30)


def _fields(parsed: ParsedCertificate) -> dict[str, Any]:
    return {
        "certificate_pem": parsed.certificate_pem,
        "chain_pem": parsed.chain_pem,
        "key_encrypted": secret_encrypt(parsed.key_pem),
        "subject": parsed.subject,
        "common_name": parsed.common_name,
        "sans": list(parsed.sans),
        "issuer": parsed.issuer,
        "not_before": parsed.not_before,
        "not_after": parsed.not_after,
        "fingerprint_sha256": parsed.fingerprint_sha256,
        "key_type": parsed.key_type,
    }


@transaction.atomic
def certificate_upload(
    *, actor: User | None, label: str, data: bytes, password: str | None
) -> SslCertificate:
    """Raises lbadmin.engines.certificates.CertificateError with a message for the form."""
    parsed = parse_upload(data, password=password or None)
    certificate = SslCertificate.objects.create(
        label=label, source=SslCertificate.Source.UPLOAD, **_fields(parsed)
    )
    audit_record(
        action=AuditEntry.Action.CERTIFICATE_ADDED,
        actor=actor,
        target=f"SSL certificate {label}",
        detail={"subject": parsed.subject, "fingerprint": parsed.fingerprint_sha256},
    )
    return certificate


@transaction.atomic
def certificate_csr_create(*, actor: User | None, label: str, **subject: Any) -> SslCertificate:
    """Make a key and a CSR on the appliance; the signed certificate comes later."""
    csr_pem, key_pem = make_csr(**subject)
    certificate = SslCertificate.objects.create(
        label=label,
        source=SslCertificate.Source.CSR,
        csr_pem=csr_pem,
        key_encrypted=secret_encrypt(key_pem),
        common_name=subject["common_name"],
        sans=list(subject.get("sans", ())),
    )
    audit_record(
        action=AuditEntry.Action.CERTIFICATE_ADDED,
        actor=actor,
        target=f"SSL certificate {label} (CSR)",
    )
    return certificate


@transaction.atomic
def certificate_csr_complete(
    *, actor: User | None, certificate: SslCertificate, data: bytes
) -> SslCertificate:
    """Store the CA-signed certificate (and chain) for a CSR made here."""
    parsed = accept_signed(data, key_pem=secret_decrypt(certificate.key_encrypted))
    for name, value in _fields(parsed).items():
        setattr(certificate, name, value)
    certificate.save()
    audit_record(
        action=AuditEntry.Action.CERTIFICATE_ADDED,
        actor=actor,
        target=f"SSL certificate {certificate.label} (signed)",
        detail={"fingerprint": parsed.fingerprint_sha256},
    )
    return certificate


def certificate_usage(certificate: SslCertificate) -> list[str]:
    """Where a certificate is used (SSL terminations, once they exist)."""
    return []


@transaction.atomic
def certificate_delete(*, actor: User | None, certificate: SslCertificate) -> None:
    used_by = certificate_usage(certificate)
    if used_by:
        raise ValueError(f"{certificate.label} is in use by {', '.join(used_by)}.")
    label = certificate.label
    certificate.delete()
    audit_record(
        action=AuditEntry.Action.CERTIFICATE_DELETED, actor=actor, target=f"SSL certificate {label}"
    )


def certificate_default_ensure() -> SslCertificate:
    """The appliance's "Default Self Signed Certificate", present from the first start."""
    existing = SslCertificate.objects.filter(label=DEFAULT_CERTIFICATE_LABEL).first()
    if existing is not None:
        return existing
    parsed = make_self_signed(socket.gethostname())
    return SslCertificate.objects.create(
        label=DEFAULT_CERTIFICATE_LABEL, source=SslCertificate.Source.SELF_SIGNED, **_fields(parsed)
    )


def certificates_expiring() -> list[SslCertificate]:
    """Certificates that expire within 30 days (flagged on System Overview)."""
    return list(
        SslCertificate.objects.filter(not_after__lt=timezone.now() + EXPIRY_WARNING)
        .exclude(not_after=None)
        .only("label", "not_after")
    )
