"""SSL certificates: upload (PEM/PFX), CSRs created on the appliance, the default self-signed
certificate. Private keys are stored only encrypted (lbadmin.services.secrets)."""

import socket
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from lbadmin import allowlists
from lbadmin.engines.certificates import (
    CertificateError,
    ParsedCertificate,
    accept_signed,
    make_csr,
    make_self_signed,
    parse_upload,
)
from lbadmin.models import AuditEntry, SslCertificate, User
from lbadmin.services.audit import audit_record
from lbadmin.services.changes import STUNNEL, config_changed
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
    config_changed(())  # in the export (and so the HA peer's copy), in no daemon's files yet
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
    config_changed(())
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
    config_changed((STUNNEL,) if certificate.terminations.exists() else ())
    audit_record(
        action=AuditEntry.Action.CERTIFICATE_ADDED,
        actor=actor,
        target=f"SSL certificate {certificate.label} (signed)",
        detail={"fingerprint": parsed.fingerprint_sha256},
    )
    return certificate


def certificate_usage(certificate: SslCertificate) -> list[str]:
    """Where a certificate is used: the labels of its SSL terminations."""
    return [
        f"SSL termination {label}"
        for label in certificate.terminations.values_list("label", flat=True)
    ]


@transaction.atomic
def certificate_delete(*, actor: User | None, certificate: SslCertificate) -> None:
    used_by = certificate_usage(certificate)
    if used_by:
        raise ValueError(f"{certificate.label} is in use by {', '.join(used_by)}.")
    label = certificate.label
    certificate.delete()
    config_changed(())
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


# --- Export / import (the cluster configuration document, see lbadmin.services.config) -------

_EXPORT_KEYS = ("label", "source", "certificate_pem", "chain_pem", "csr_pem", "key_encrypted")


def certificates_export() -> list[dict[str, Any]]:
    """Certificates for the export document. The private key stays encrypted with this
    appliance's key (LBADMIN_SECRETS_KEY_FILE): the document never holds a key in clear."""
    items = []
    for row in SslCertificate.objects.values(*_EXPORT_KEYS):
        row["key_encrypted"] = bytes(row["key_encrypted"]).decode("ascii")  # a Fernet token
        items.append(row)
    return sorted(items, key=lambda item: item["label"])


def certificate_bundle(item: dict[str, Any]) -> bytes:
    """Key, certificate and chain in one PEM (stunnel's ``cert =``), from an export item."""
    key = secret_decrypt(item["key_encrypted"].encode("ascii")).decode("ascii")
    parts = [key, item["certificate_pem"], item["chain_pem"]]
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts if p).encode("ascii")


def certificate_import(item: Any, *, where: str) -> list[str]:
    """Re-create one certificate of an imported document, checked as an upload would be;
    returns the problems (nothing is created if there are any)."""
    if not isinstance(item, dict) or set(item) != set(_EXPORT_KEYS):
        return [f"{where}: must hold exactly {', '.join(_EXPORT_KEYS)}"]
    if not all(isinstance(item[key], str) for key in _EXPORT_KEYS):
        return [f"{where}: every value must be text"]
    label = item["label"]
    try:
        if label != DEFAULT_CERTIFICATE_LABEL:  # the one label with spaces, made here
            allowlists.clean_label(label)
    except ValidationError as error:
        return [f"{where}.label: {' '.join(error.messages)}"]
    if SslCertificate.objects.filter(label=label).exists():
        return [f"{where}: a certificate labelled {label!r} is already in the document"]
    if item["source"] not in SslCertificate.Source.values:
        return [f"{where}.source: unknown source {item['source'][:40]!r}"]
    try:
        token = item["key_encrypted"].encode("ascii")
        secret_decrypt(token)
    except (InvalidToken, UnicodeEncodeError, ValueError):
        return [
            f"{where} ({label}): the private key was encrypted with another appliance's key "
            "(or is damaged), so it cannot be used here"
        ]
    try:
        if item["certificate_pem"]:
            # Checked as of its own start of validity: a rollback restores what was valid when
            # it was uploaded; expiry is flagged on System Overview, not refused here.
            leaf = x509.load_pem_x509_certificate(item["certificate_pem"].encode("ascii"))
            bundle = certificate_bundle(item)
            parsed = parse_upload(bundle, password=None, now=leaf.not_valid_before_utc)
            fields = _fields(parsed) | {"key_encrypted": token}
        else:
            csr = x509.load_pem_x509_csr(item["csr_pem"].encode("ascii"))
            if not csr.is_signature_valid:
                raise CertificateError("the CSR's signature is not valid")
            # Its key is checked against the certificate when the signed one arrives.
            fields = {
                "key_encrypted": token,
                "common_name": _common_name(csr.subject),
                "sans": _csr_sans(csr),
            }
    except (CertificateError, ValueError) as error:
        return [f"{where} ({label}): {error}"]
    SslCertificate.objects.create(
        label=label,
        source=item["source"],
        csr_pem=item["csr_pem"],
        **fields,
    )
    return []


def _csr_sans(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in names]


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""
