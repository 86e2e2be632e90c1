"""Making certificates: a key and CSR from the administrator's form (``make_csr``), the
appliance's "Default Self Signed Certificate" (``make_self_signed``), the one self-signed
certificate builder behind it and the WebUI's own certificate (``build_self_signed``), and the
checks of the names typed into those forms. Pure: no Django, no files, no daemons.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lbadmin.engines.certificate_model import (
    KEY_TYPES,
    CertificateError,
    ParsedCertificate,
    PrivateKey,
    describe,
    key_pem,
)


def make_self_signed(
    common_name: str, *, days: int = 3650, sans: Sequence[str] = ()
) -> ParsedCertificate:
    """The appliance's "Default Self Signed Certificate" (RSA 2048, SHA-256)."""
    cn = _clean_field("Common Name", common_name, 64, required=True)
    names = _clean_sans(sans, common_name=cn)
    if days < 1:
        raise CertificateError("Days: the certificate must be valid for at least one day.")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = build_self_signed(
        key,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
        days=days,
        sans=names,
        key_usage=_server_key_usage(),
        key_identifier=True,
    )
    return describe(key, cert, [])


def build_self_signed(
    key: PrivateKey,
    subject: x509.Name,
    *,
    days: int,
    sans: Sequence[x509.GeneralName] = (),
    key_usage: x509.KeyUsage | None = None,
    key_identifier: bool = False,
) -> x509.Certificate:
    """A TLS server certificate for ``subject`` signed by its own ``key`` (SHA-256).

    Valid from five minutes ago for ``days`` days; BasicConstraints CA:FALSE (critical),
    ``key_usage`` (critical) if given, ExtendedKeyUsage serverAuth, a SubjectKeyIdentifier
    with ``key_identifier``, and ``sans`` as its SubjectAlternativeName if any, in that order.
    The one builder for the appliance's own certificates: the "Default Self Signed
    Certificate" (``make_self_signed``) and the WebUI's (``lbadmin.services.tls``).
    """
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-dated a little so a client whose clock lags does not see "not yet valid".
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    if key_identifier:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def make_csr(
    *,
    common_name: str,
    sans: Sequence[str],
    organisation: str = "",
    organisational_unit: str = "",
    locality: str = "",
    state: str = "",
    country: str = "",
    key_type: str = "rsa2048",
) -> tuple[str, bytes]:
    """ "Create a new SSL certificate (CSR)": (CSR PEM, unencrypted PKCS#8 key PEM).

    The Common Name is added to the SANs when it is a host name or IP address, because
    browsers only look at the SANs.
    """
    cn = _clean_field("Common Name", common_name, 64, required=True)
    attributes: list[x509.NameAttribute] = []
    country_code = _clean_country(country)
    if country_code:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country_code))
    for oid, label, value, limit in (
        (NameOID.STATE_OR_PROVINCE_NAME, "State / Province", state, 128),
        (NameOID.LOCALITY_NAME, "City / Locality", locality, 128),
        (NameOID.ORGANIZATION_NAME, "Organisation", organisation, 64),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Organisational Unit", organisational_unit, 64),
    ):
        cleaned = _clean_field(label, value, limit)
        if cleaned:
            attributes.append(x509.NameAttribute(oid, cleaned))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    names = _clean_sans(sans, common_name=cn)
    key = _generate_key(key_type)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii"), key_pem(key)


def stunnel_pem(parsed: ParsedCertificate) -> bytes:
    """Key, certificate and chain in one file, as stunnel's ``cert =`` (and HAProxy's ``crt``)."""
    parts = [parsed.key_pem.decode("ascii"), parsed.certificate_pem, parsed.chain_pem]
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts if p).encode("ascii")


# --------------------------------------------------------------------------------------------
# Keys


def _server_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _generate_key(key_type: str) -> PrivateKey:
    if key_type.startswith("rsa") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    raise CertificateError(f"Key type: choose one of {', '.join(KEY_TYPES.values())}.")


# --------------------------------------------------------------------------------------------
# CSR / self-signed input validation

# Letters and digits of any script (\w, NFC-normalised) plus the punctuation company and place
# names use; no quotes, backslashes, angle brackets or shell/config metacharacters.
_FIELD_PUNCTUATION = " .,'()+-/:=?&@!#*"
_FIELD_ALLOWED = re.compile(r"[\w" + re.escape(_FIELD_PUNCTUATION) + r"]+")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_SANS = 100


def _clean_field(label: str, value: str, limit: int, *, required: bool = False) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        if required:
            raise CertificateError(f"{label}: this field is required.")
        return ""
    if not value.isprintable():
        raise CertificateError(f"{label}: control characters and line breaks are not allowed.")
    if len(value) > limit:
        raise CertificateError(f"{label}: at most {limit} characters.")
    if not _FIELD_ALLOWED.fullmatch(value):
        raise CertificateError(
            f"{label}: only letters, digits, spaces and {' '.join(_FIELD_PUNCTUATION.strip())} "
            "are allowed."
        )
    return value


def _clean_country(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if not re.fullmatch(r"[A-Za-z]{2}", value):
        raise CertificateError('Country: enter the two-letter ISO 3166 code, such as "GB".')
    if value.upper() == "UK":
        raise CertificateError('Country: the ISO 3166 code for the United Kingdom is "GB".')
    return value.upper()


def _clean_sans(sans: Sequence[str], *, common_name: str) -> list[x509.GeneralName]:
    """Validated SANs, the Common Name first when it is itself a host name or IP address."""
    label = "Subject Alternative Names"
    if isinstance(sans, str):  # a lone string would otherwise be split into characters
        sans = [sans]
    result: list[x509.GeneralName] = []
    seen: set[str] = set()
    entries = [common_name] if _as_general_name(common_name) is not None else []
    for raw in sans:
        value = raw.strip()
        if not value:
            continue
        if not value.isprintable():
            raise CertificateError(f"{label}: control characters are not allowed.")
        entries.append(value)
    for value in entries:
        general = _as_general_name(value)
        if general is None:
            shown = value if len(value) <= 80 else value[:77] + "…"
            if "*" in value:
                raise CertificateError(
                    f'{label}: "{shown}" is not valid: a wildcard is only allowed as the whole '
                    'first label, as in "*.example.com".'
                )
            raise CertificateError(
                f'{label}: "{shown}" is not a valid DNS name (RFC 1123) or IP address.'
            )
        key = value.lower()
        if key not in seen:
            seen.add(key)
            result.append(general)
    if len(result) > MAX_SANS:
        raise CertificateError(f"{label}: at most {MAX_SANS} names.")
    return result


def _as_general_name(value: str) -> x509.GeneralName | None:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.lower()
    if len(name) > 253 or not name.isascii():
        return None
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:  # "*.com" would cover a whole top-level domain
            return None
    if not labels or not all(_DNS_LABEL.fullmatch(part) for part in labels):
        return None
    if labels[-1].isdigit():  # "10.0.0.999" is a mistyped address, not a host name
        return None
    return x509.DNSName(name)
