"""SSL certificates for the appliance's stunnel / HAProxy termination: upload, CSR, self-signed.

This module reads uploads; making a CSR or a self-signed certificate is ``certificate_making``,
and what both share is ``certificate_model`` (the forms, views and services import all of it
from here). Everything is pure (no Django, no files, no daemons) so the forms and views can call
it and show ``CertificateError`` text next to the upload field as it is.

Uploads come as:
- PEM with certificate, private key and chain in one file, blocks in any order, possibly with
  OpenSSL "Bag Attributes" text between them and an encrypted key (PKCS#8 or the traditional
  ``Proc-Type: 4,ENCRYPTED`` form);
- PKCS#12 (.pfx / .p12), modern (AES / PBKDF2) or Windows-legacy (RC2-40 certificates, 3DES
  key, SHA-1 MAC) as exported by Windows with "Include all certificates in the certification
  path". ``cryptography`` reads both; a wrong password and garbage both raise
  ``ValueError("Invalid password or PKCS12 data")``, so the file is first recognised as a PFX
  by its DER header to tell "wrong password" from "not a certificate file".

The leaf is the certificate whose public key matches the private key; the chain is rebuilt from
it by following issuer → subject and checking each signature, so intermediates supplied out of
order are reordered and anything that is not part of the chain is refused.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

# Making certificates, and what reading and making share, have modules of their own; the
# forms, views and services import all of it from here.
from lbadmin.engines.certificate_making import (  # noqa: F401 (re-exported)
    MAX_SANS,
    _clean_sans,  # tests check the SAN rules through this module
    make_csr,
    make_self_signed,
    stunnel_pem,
)
from lbadmin.engines.certificate_model import (  # noqa: F401 (KEY_TYPES: re-exported)
    EC_CURVES,
    KEY_TYPES,
    CertificateError,
    ParsedCertificate,
    PrivateKey,
    common_name,
    describe,
)

MAX_UPLOAD_BYTES = 256 * 1024

# Browsers and current TLS libraries refuse anything weaker (EC: the curves of EC_CURVES).
MIN_RSA_BITS = 2048

# Messages shown to the administrator as they are (tests assert them).
MSG_TOO_LARGE = "The file is too large ({size} KB): a certificate file is at most {limit} KB."
MSG_EMPTY = "The file is empty."
MSG_NOT_CERTIFICATE = (
    "This is not a certificate file: upload a PEM file (certificate, private key and chain) "
    "or a PKCS#12 file (.pfx / .p12)."
)
MSG_CSR_ONLY = (
    "This is a certificate signing request (CSR), not a certificate: upload the certificate "
    "your certificate authority issued for it."
)
# (S105: these are messages about passwords, not passwords)
MSG_PFX_PASSWORD = (
    "The PFX password is wrong (or the file is damaged): enter the password the file was "  # noqa: S105
    "exported with."
)
MSG_KEY_NEEDS_PASSWORD = "The private key is encrypted: enter its password."  # noqa: S105
MSG_KEY_WRONG_PASSWORD = "The private key's password is wrong."  # noqa: S105
MSG_KEY_UNREADABLE = "The private key is damaged or in an unsupported format."
MSG_CERT_UNREADABLE = "A certificate in the file is damaged and cannot be read."
MSG_NO_KEY = (
    "The file contains no private key: export the certificate together with its private key "
    '(in Windows: "Yes, export the private key") or upload a PEM file that includes the key.'
)
MSG_NO_CERTIFICATE = "The file contains a private key but no certificate."
MSG_MANY_KEYS = "The file contains more than one private key: upload one certificate and its key."
MSG_KEY_MISMATCH = "The private key does not match the certificate."
MSG_KEY_MISMATCH_ANY = "The private key does not match any of the {count} certificates in the file."
MSG_CSR_KEY_MISMATCH = (
    "The certificate was not issued for this certificate signing request (CSR): its public key "
    "does not match the request's private key."
)
MSG_MANY_LEAVES = (
    "The file contains more than one certificate for this private key: upload only the current "
    "certificate with its chain."
)
MSG_EXPIRED = 'The certificate "{name}" expired on {date}.'
MSG_NOT_YET_VALID = 'The certificate "{name}" is not valid until {date}.'
MSG_NOT_IN_CHAIN = 'The certificate "{name}" is not part of this certificate\'s chain.'
MSG_CHAIN_GAP = (
    'The certificate "{name}" is not part of this certificate\'s chain: the chain stops at '
    '"{last}", whose issuer "{issuer}" is not in the file.'
)
MSG_BAD_SIGNATURE = (
    'The chain is broken: "{child}" names "{issuer}" as its issuer, but the certificate of that '
    "name in the file did not sign it."
)
MSG_MANY_ISSUERS = 'The file contains more than one issuer certificate for "{child}".'
MSG_RSA_WEAK = "The RSA key has {bits} bits: at least 2048 bits are required."
MSG_EC_WEAK = "The EC key uses the curve {curve}: use P-256, P-384 or P-521."
MSG_KEY_TYPE = "Only RSA and EC (ECDSA) keys are supported; this key is {kind}."
MSG_PFX_IN_SIGNED = (
    "This is a PKCS#12 (.pfx) file: upload it as a prepared certificate with its password instead."
)
MSG_KEY_IN_SIGNED = (
    "The file contains a private key: upload only the signed certificate (and its chain)."
)


# --------------------------------------------------------------------------------------------
# Public API: reading uploads


def parse_upload(
    data: bytes, *, password: str | None, now: datetime | None = None
) -> ParsedCertificate:
    """An uploaded PEM or PFX file → the checked certificate, key and ordered chain."""
    now = _utc_now(now)
    _check_size(data)
    certs, keys, saw_csr = _read_material(data, password)
    if not certs:
        if saw_csr:
            raise CertificateError(MSG_CSR_ONLY)
        raise CertificateError(MSG_NO_CERTIFICATE if keys else MSG_NOT_CERTIFICATE)
    if not keys:
        raise CertificateError(MSG_NO_KEY)
    key = _single_key(keys)
    mismatch = MSG_KEY_MISMATCH if len(certs) == 1 else MSG_KEY_MISMATCH_ANY
    return _assemble(key, certs, now, mismatch.format(count=len(certs)))


def accept_signed(
    certificate_data: bytes, *, key_pem: bytes, now: datetime | None = None
) -> ParsedCertificate:
    """The certificate a CA signed for one of our CSRs (optionally with its chain) + the CSR key.

    Accepts PEM (certificate and chain blocks), a DER certificate (.cer) or a PKCS#7 bundle
    (.p7b), which is what Windows and most CAs hand back.
    """
    now = _utc_now(now)
    _check_size(certificate_data)
    if _looks_like_pkcs12(certificate_data):
        raise CertificateError(MSG_PFX_IN_SIGNED)
    certs, keys, saw_csr = _read_material(certificate_data, None)
    if keys:
        raise CertificateError(MSG_KEY_IN_SIGNED)
    if not certs:
        raise CertificateError(MSG_CSR_ONLY if saw_csr else MSG_NOT_CERTIFICATE)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateError(MSG_KEY_UNREADABLE) from None
    _check_key_type(key)
    return _assemble(key, certs, now, MSG_CSR_KEY_MISMATCH)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Reading files


# A block is a BEGIN line (anywhere, even mid-line) up to the first END marker of the same
# label; an unterminated BEGIN is skipped. Found in linear time: a lazy DOTALL regex did the
# same but rescanned the rest of the file for every unterminated BEGIN, so 256 KB of
# "-----BEGIN A-----" lines held the GIL for ~25 s (finding 5 of issue 16).
_PEM_BEGIN = re.compile(r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\n")
_PEM_END = re.compile(r"-----END (?P<label>[A-Z0-9 ]+)-----")
_CERT_LABELS = {"CERTIFICATE", "X509 CERTIFICATE"}
_KEY_LABELS = {
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
}
_CSR_LABELS = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}
_PKCS7_LABELS = {"PKCS7", "CERTIFICATE CHAIN"}  # .p7b bundles
_IGNORED_LABELS = {"EC PARAMETERS", "DH PARAMETERS"}  # written by `openssl ecparam` / dhparam


def _read_material(
    data: bytes, password: str | None
) -> tuple[list[x509.Certificate], list[PrivateKey], bool]:
    """(certificates, private keys, whether a CSR was seen) from PEM, PFX, DER or PKCS#7."""
    if not data.strip():
        raise CertificateError(MSG_EMPTY)
    if b"-----BEGIN " in data:
        return _read_pem(data, password)
    if _looks_like_pkcs12(data):
        return _read_pkcs12(data, password)
    return _read_der(data)


def _read_pem(
    data: bytes, password: str | None
) -> tuple[list[x509.Certificate], list[PrivateKey], bool]:
    # latin-1 never fails, and only the ASCII PEM blocks matter; "Bag Attributes" text may
    # carry a non-ASCII friendly name.
    text = data.decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    certs: list[x509.Certificate] = []
    keys: list[PrivateKey] = []
    saw_csr = False
    found = False
    for label, block_text in _pem_blocks(text):
        found = True
        block = block_text.encode("ascii", "replace")
        if label in _CERT_LABELS:
            try:
                certs.append(
                    x509.load_pem_x509_certificate(
                        block.replace(b"X509 CERTIFICATE", b"CERTIFICATE")
                    )
                )
            except ValueError:
                raise CertificateError(MSG_CERT_UNREADABLE) from None
        elif label in _KEY_LABELS:
            keys.append(_load_pem_key(block, label, password))
        elif label in _PKCS7_LABELS:
            try:
                certs.extend(pkcs7.load_pem_pkcs7_certificates(block))
            except ValueError:
                raise CertificateError(MSG_CERT_UNREADABLE) from None
        elif label in _CSR_LABELS:
            saw_csr = True
        elif label not in _IGNORED_LABELS:
            raise CertificateError(
                f'The file contains a "{label}" block; only certificates, private keys and '
                "certificate chains are accepted."
            )
    if not found:
        raise CertificateError(MSG_NOT_CERTIFICATE)
    return certs, keys, saw_csr


def _pem_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(label, text from BEGIN to END inclusive) of each PEM block, in file order."""
    # Where every END marker starts, by label. Each "-----END " is tried, so markers sharing
    # dashes ("-----END A-----END B-----") are all seen; the label runs are disjoint, so this
    # pass is linear.
    ends: dict[str, list[int]] = {}
    at = text.find("-----END ")
    while at != -1:
        end = _PEM_END.match(text, at)
        if end is not None:
            ends.setdefault(end["label"], []).append(at)
        at = text.find("-----END ", at + 1)
    position = 0
    while (begin := _PEM_BEGIN.search(text, position)) is not None:
        label = begin["label"]
        starts = ends.get(label, [])
        index = bisect_left(starts, begin.end())  # the first matching END after the BEGIN line
        if index == len(starts):
            position = begin.start() + 1  # unterminated: skipped, looking on from just after it
            continue
        stop = starts[index] + len(f"-----END {label}-----")
        yield label, text[begin.start() : stop]
        position = stop  # BEGIN lines inside a block are part of its body


def _load_pem_key(block: bytes, label: str, password: str | None) -> PrivateKey:
    encrypted = label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and not password:
        raise CertificateError(MSG_KEY_NEEDS_PASSWORD)
    try:
        key = serialization.load_pem_private_key(
            block, password=password.encode("utf-8") if encrypted and password else None
        )
    except ValueError:
        raise CertificateError(
            MSG_KEY_WRONG_PASSWORD if encrypted else MSG_KEY_UNREADABLE
        ) from None
    except (TypeError, UnsupportedAlgorithm):
        raise CertificateError(MSG_KEY_UNREADABLE) from None
    _check_key_type(key)
    return key  # type: ignore[return-value]


def _read_pkcs12(
    data: bytes, password: str | None
) -> tuple[list[x509.Certificate], list[PrivateKey], bool]:
    # Windows can export without a password; a blank form field then means "no password",
    # which OpenSSL may have encoded as either an empty or an absent password.
    attempts: list[bytes | None] = [password.encode("utf-8")] if password else [b"", None]
    for attempt in attempts:
        try:
            loaded = pkcs12.load_pkcs12(data, attempt)
            break
        except ValueError:
            continue
        except UnsupportedAlgorithm:
            raise CertificateError(
                "The PFX file uses an encryption algorithm this appliance cannot read: export "
                "it again (in Windows: TripleDES-SHA1 or AES256-SHA256)."
            ) from None
    else:
        raise CertificateError(MSG_PFX_PASSWORD)
    certs = [c.certificate for c in loaded.additional_certs]
    if loaded.cert is not None:
        certs.insert(0, loaded.cert.certificate)
    keys: list[PrivateKey] = []
    if loaded.key is not None:
        _check_key_type(loaded.key)
        keys.append(loaded.key)  # type: ignore[arg-type]
    return certs, keys, False


def _read_der(data: bytes) -> tuple[list[x509.Certificate], list[PrivateKey], bool]:
    """A lone DER certificate (.cer), a DER PKCS#7 bundle (.p7b) or a DER CSR; else refused."""
    try:
        return [x509.load_der_x509_certificate(data)], [], False
    except ValueError:
        pass
    try:
        return list(pkcs7.load_der_pkcs7_certificates(data)), [], False
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        x509.load_der_x509_csr(data)
    except ValueError:
        raise CertificateError(MSG_NOT_CERTIFICATE) from None
    return [], [], True


_OID_PKCS7_DATA = bytes.fromhex("2a864886f70d010701")
_OID_PKCS7_SIGNED = bytes.fromhex("2a864886f70d010702")


def _looks_like_pkcs12(data: bytes) -> bool:
    """PFX ::= SEQUENCE { version INTEGER 3, authSafe ContentInfo (pkcs7-data|signedData), … }."""
    try:
        tag, body = _der_tlv(data)
        if tag != 0x30:
            return False
        tag, version = _der_tlv(body)
        if tag != 0x02 or version != b"\x02\x01\x03":
            return False
        tag, content_info = _der_tlv(body[len(version) :])
        if tag != 0x30:
            return False
        tag, oid = _der_tlv(content_info)
        return tag == 0x06 and oid[2:] in (_OID_PKCS7_DATA, _OID_PKCS7_SIGNED)
    except (IndexError, ValueError):
        return False


def _der_tlv(data: bytes) -> tuple[int, bytes]:
    """(tag, whole element) for a TLV element at the start of data, or the element's contents
    for constructed SEQUENCEs. BER indefinite lengths (old Java/Windows PFX) run to the end."""
    tag, first = data[0], data[1]
    if first == 0x80:
        return tag, data[2:]
    if first < 0x80:
        header, length = 2, first
    else:
        count = first & 0x7F
        if count > 4:
            raise ValueError("length too long")
        header, length = 2 + count, int.from_bytes(data[2 : 2 + count], "big")
    if header + length > len(data):
        raise ValueError("truncated")
    if tag == 0x30:
        return tag, data[header : header + length]
    return tag, data[: header + length]


# --------------------------------------------------------------------------------------------
# Checking and describing


def _assemble(
    key: PrivateKey, certs: list[x509.Certificate], now: datetime, mismatch: str
) -> ParsedCertificate:
    certs = _unique(certs)  # Windows puts the leaf in the PFX twice, chains often repeat
    key_spki = _spki(key.public_key())
    leaves = [c for c in certs if _cert_spki(c) == key_spki]
    if not leaves:
        raise CertificateError(mismatch)
    if len(leaves) > 1:
        raise CertificateError(MSG_MANY_LEAVES)
    leaf = leaves[0]
    name = _display_name(leaf)
    if now < leaf.not_valid_before_utc:
        raise CertificateError(
            MSG_NOT_YET_VALID.format(name=name, date=_date(leaf.not_valid_before_utc))
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateError(MSG_EXPIRED.format(name=name, date=_date(leaf.not_valid_after_utc)))
    _check_key_strength(key)
    chain = _build_chain(leaf, [c for c in certs if c is not leaf])
    return describe(key, leaf, chain)


def _build_chain(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Follow issuer → subject from the leaf, checking each signature; refuse leftovers."""
    remaining = list(others)
    chain: list[x509.Certificate] = []
    current = leaf
    while remaining and not (current.issuer == current.subject and _signed_by(current, current)):
        named = [c for c in remaining if c.subject == current.issuer]
        if not named:
            break
        signers = [c for c in named if _signed_by(current, c)]
        if not signers:
            raise CertificateError(
                MSG_BAD_SIGNATURE.format(
                    child=_display_name(current), issuer=current.issuer.rfc4514_string()
                )
            )
        if len(signers) > 1:
            raise CertificateError(MSG_MANY_ISSUERS.format(child=_display_name(current)))
        current = signers[0]
        chain.append(current)
        remaining.remove(current)
    if remaining:
        stray = _display_name(remaining[0])
        if current.issuer == current.subject:
            raise CertificateError(MSG_NOT_IN_CHAIN.format(name=stray))
        raise CertificateError(
            MSG_CHAIN_GAP.format(
                name=stray, last=_display_name(current), issuer=current.issuer.rfc4514_string()
            )
        )
    return chain


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_key_type(key: object) -> None:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
        raise CertificateError(MSG_KEY_TYPE.format(kind=kind or "unknown"))


def _check_key_strength(key: PrivateKey) -> None:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise CertificateError(MSG_RSA_WEAK.format(bits=key.key_size))
    elif key.curve.name not in EC_CURVES:
        raise CertificateError(MSG_EC_WEAK.format(curve=key.curve.name))


def _single_key(keys: list[PrivateKey]) -> PrivateKey:
    unique = {_spki(k.public_key()): k for k in keys}
    if len(unique) > 1:
        raise CertificateError(MSG_MANY_KEYS)
    return next(iter(unique.values()))


def _unique(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    seen: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    return list(seen.values())


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _cert_spki(cert: x509.Certificate) -> bytes | None:
    try:
        return _spki(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return None  # a chain certificate with a key type we cannot load is never the leaf


def _display_name(cert: x509.Certificate) -> str:
    return common_name(cert) or cert.subject.rfc4514_string()


def _date(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # a programming error, not the admin's
    return now


def _check_size(data: bytes) -> None:
    if len(data) > MAX_UPLOAD_BYTES:
        raise CertificateError(
            MSG_TOO_LARGE.format(size=-(-len(data) // 1024), limit=MAX_UPLOAD_BYTES // 1024)
        )
