"""Certificates for tests: a key and a self-signed certificate, as PEM or as a PFX, made with
the certificate tests' own builder (tests/engines/test_certificates.py)."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.engines.test_certificates import _issue, _name


def _self_signed(common_name: str, sans: Sequence[str], days: int):
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    now = datetime.now(UTC)
    certificate = _issue(
        name, key.public_key(), name, key, ca=False, sans=list(sans),
        not_before=now - timedelta(days=1), not_after=now + timedelta(days=days),
    )  # fmt: skip
    return key, certificate


def self_signed_pem(common_name: str, *, sans: Sequence[str] = (), days: int = 90) -> bytes:
    """Key and certificate in one PEM, as an upload; no SAN extension when ``sans`` is empty."""
    key, certificate = _self_signed(common_name, sans, days)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + certificate.public_bytes(serialization.Encoding.PEM)


def self_signed_pfx(common_name: str, *, sans: list[str], password: str) -> bytes:
    """Key and certificate in a password-protected PFX, as Windows exports it."""
    key, certificate = _self_signed(common_name, sans, 90)
    return pkcs12.serialize_key_and_certificates(
        b"lbadmin-test", key, certificate, None,
        serialization.BestAvailableEncryption(password.encode()),
    )  # fmt: skip
