"""What reading (``certificates``) and making (``certificate_making``) certificates share: the
error the administrator sees, the checked result, and how a key and its certificate are
described and written out as PEM. Pure: no Django, no files, no daemons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# The CSR form's choices: value → label (the label is also ParsedCertificate.key_type's form).
KEY_TYPES: dict[str, str] = {
    "rsa2048": "RSA 2048",
    "rsa3072": "RSA 3072",
    "rsa4096": "RSA 4096",
    "ec256": "EC P-256",
    "ec384": "EC P-384",
}

# Browsers and current TLS libraries refuse anything weaker; P-521 is allowed though rarely used.
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


class CertificateError(ValueError):
    """A message fit to show an administrator next to the upload field."""


@dataclass(frozen=True)
class ParsedCertificate:
    certificate_pem: str  # the leaf certificate
    chain_pem: str  # intermediates (and root if supplied), ordered leaf-issuer first
    # PKCS#8 PEM, unencrypted (the caller encrypts it at rest); kept out of repr so a logged
    # object or a traceback never shows the key.
    key_pem: bytes = field(repr=False)
    subject: str  # RFC 4514
    common_name: str
    sans: tuple[str, ...]  # DNS names and IP addresses
    issuer: str
    not_before: datetime  # timezone-aware UTC
    not_after: datetime
    fingerprint_sha256: str  # "AB:CD:…" as browsers show it
    key_type: str  # "RSA 2048", "EC P-256"


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def describe(
    key: PrivateKey, leaf: x509.Certificate, chain: list[x509.Certificate]
) -> ParsedCertificate:
    """The checked result for ``leaf`` (whose key is ``key``) and its ordered ``chain``."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        sans = ()
    return ParsedCertificate(
        certificate_pem=cert_pem(leaf),
        chain_pem="".join(cert_pem(c) for c in chain),
        key_pem=key_pem(key),
        subject=leaf.subject.rfc4514_string(),
        common_name=common_name(leaf),
        sans=sans,
        issuer=leaf.issuer.rfc4514_string(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        key_type=key_type(key),
    )


def key_type(key: PrivateKey) -> str:
    """ "RSA 2048", "EC P-256": as KEY_TYPES labels them."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    return f"EC {EC_CURVES.get(key.curve.name, key.curve.name)}"


def common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (whoever stores it decides how to protect it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
