"""lbadmin.engines.certificates: uploads (PEM, PFX modern and Windows-legacy), CSR, self-signed.

All material is made here with cryptography (a root → intermediate → leaf hierarchy for a Lync
pool); the one RC2-40 PFX, which cryptography cannot write, comes from the local ``openssl``.
No network, no database, no daemons.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from lbadmin.engines import certificates as c
from lbadmin.engines.certificates import CertificateError

LEAF_CN = "lyncpool.example.com"
LEAF_SANS = ["lyncpool.example.com", "sip.example.com", "meet.example.com", "192.0.2.10"]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _name(cn: str, org: str = "Example Ltd") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _issue(
    subject: x509.Name,
    public_key,
    issuer: x509.Name,
    signing_key,
    *,
    ca: bool,
    sans: list[str] = (),  # type: ignore[assignment]
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(c._clean_sans(sans, common_name="")), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def _key_pem(key, password: bytes | None = None, *, traditional: bool = False) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL
        if traditional
        else serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption(),
    )


@dataclass
class Pki:
    root_key: rsa.RSAPrivateKey
    root: x509.Certificate
    inter_key: rsa.RSAPrivateKey
    inter: x509.Certificate
    leaf_key: rsa.RSAPrivateKey
    leaf: x509.Certificate

    def all_in_one(self) -> bytes:
        return _key_pem(self.leaf_key) + _pem(self.leaf, self.inter, self.root)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name("Example Root CA")
    root = _issue(root_name, root_key.public_key(), root_name, root_key, ca=True)
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter_name = _name("Example Issuing CA 1")
    inter = _issue(inter_name, inter_key.public_key(), root_name, root_key, ca=True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _issue(
        _name(LEAF_CN), leaf_key.public_key(), inter_name, inter_key, ca=False, sans=LEAF_SANS
    )
    return Pki(root_key, root, inter_key, inter, leaf_key, leaf)


def _parse(data: bytes, password: str | None = None, now: datetime = NOW) -> c.ParsedCertificate:
    return c.parse_upload(data, password=password, now=now)


def _refused(data: bytes, password: str | None = None, now: datetime = NOW) -> str:
    with pytest.raises(CertificateError) as caught:
        _parse(data, password, now)
    return str(caught.value)


def _assert_full(parsed: c.ParsedCertificate, pki: Pki) -> None:
    assert parsed.certificate_pem == _pem(pki.leaf).decode()
    assert parsed.chain_pem == _pem(pki.inter, pki.root).decode()
    assert parsed.key_pem == _key_pem(pki.leaf_key)
    assert parsed.common_name == LEAF_CN
    assert parsed.subject == f"CN={LEAF_CN},O=Example Ltd"
    assert parsed.issuer == "CN=Example Issuing CA 1,O=Example Ltd"
    assert parsed.sans == tuple(LEAF_SANS)
    assert parsed.not_before == NOW - timedelta(days=30)
    assert parsed.not_after == NOW + timedelta(days=365)
    assert parsed.not_after.tzinfo is not None
    assert parsed.key_type == "RSA 2048"
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", parsed.fingerprint_sha256)
    assert (
        parsed.fingerprint_sha256.replace(":", "")
        == pki.leaf.fingerprint(hashes.SHA256()).hex().upper()
    )
    assert "PRIVATE KEY" not in repr(parsed)  # the key stays out of logs and tracebacks


# --------------------------------------------------------------------------------------------
# PEM


def test_pem_all_in_one(pki: Pki) -> None:
    _assert_full(_parse(pki.all_in_one()), pki)


def test_pem_shuffled_blocks_with_bag_attributes_and_crlf(pki: Pki) -> None:
    blocks = [_key_pem(pki.leaf_key), _pem(pki.root), _pem(pki.leaf), _pem(pki.inter)]
    for seed in range(4):
        random.Random(seed).shuffle(blocks)
        # What `openssl pkcs12 -nodes` writes, saved by Windows Notepad.
        text = b"".join(b"Bag Attributes\n    friendlyName: lync\n" + b for b in blocks)
        parsed = _parse(text.replace(b"\n", b"\r\n"))
        _assert_full(parsed, pki)


def test_pem_chain_may_be_partial_or_absent(pki: Pki) -> None:
    parsed = _parse(_pem(pki.inter, pki.leaf) + _key_pem(pki.leaf_key))
    assert parsed.chain_pem == _pem(pki.inter).decode()
    parsed = _parse(_pem(pki.leaf) + _key_pem(pki.leaf_key))
    assert parsed.chain_pem == ""


def test_pem_duplicate_certificates_are_merged(pki: Pki) -> None:
    parsed = _parse(pki.all_in_one() + _pem(pki.inter, pki.leaf))
    assert parsed.chain_pem == _pem(pki.inter, pki.root).decode()


@pytest.mark.parametrize("traditional", [False, True], ids=["pkcs8", "traditional"])
def test_pem_encrypted_key(pki: Pki, traditional: bool) -> None:
    data = _key_pem(pki.leaf_key, b"s3cret", traditional=traditional) + _pem(
        pki.leaf, pki.inter, pki.root
    )
    _assert_full(_parse(data, "s3cret"), pki)
    assert _refused(data, None) == "The private key is encrypted: enter its password."
    assert _refused(data, "") == "The private key is encrypted: enter its password."
    assert _refused(data, "wrong") == "The private key's password is wrong."


def test_pem_password_given_for_unencrypted_key_is_ignored(pki: Pki) -> None:
    _assert_full(_parse(pki.all_in_one(), "not needed"), pki)


def test_pem_ec_key(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(_name(LEAF_CN), key.public_key(), pki.inter.subject, pki.inter_key, ca=False)
    parsed = _parse(_key_pem(key) + _pem(cert, pki.inter))
    assert parsed.key_type == "EC P-256"
    assert parsed.sans == ()


def test_pkcs7_chain_block_in_pem(pki: Pki) -> None:
    p7 = pkcs7.serialize_certificates([pki.root, pki.inter], serialization.Encoding.PEM)
    _assert_full(_parse(_key_pem(pki.leaf_key) + _pem(pki.leaf) + p7), pki)


# --------------------------------------------------------------------------------------------
# PKCS#12


def _pfx(pki: Pki, encryption, *, cas=None, key=True) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"lyncpool",
        pki.leaf_key if key else None,
        pki.leaf,
        [pki.inter, pki.root] if cas is None else cas,
        encryption,
    )


def test_pfx_modern(pki: Pki) -> None:
    data = _pfx(pki, serialization.BestAvailableEncryption(b"Pa55word!"))
    _assert_full(_parse(data, "Pa55word!"), pki)


def test_pfx_windows_legacy_3des(pki: Pki) -> None:
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # noqa: S303 - the legacy format under test
        .build(b"pw")
    )
    # Windows puts the leaf itself among "all certificates in the certification path", and the
    # chain in no particular order.
    data = _pfx(pki, encryption, cas=[pki.root, pki.leaf, pki.inter])
    _assert_full(_parse(data, "pw"), pki)


def test_pfx_windows_legacy_rc2_40_from_openssl(pki: Pki, tmp_path: Path) -> None:
    """RC2-40 certificate bag, 3DES key bag, SHA-1 MAC: what Windows Server 2008–2016 export.

    cryptography can read RC2-40 but not write it, so the local OpenSSL makes the file.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed, so no RC2-40 PFX can be made")
    (tmp_path / "leaf.pem").write_bytes(_pem(pki.leaf))
    (tmp_path / "key.pem").write_bytes(_key_pem(pki.leaf_key))
    (tmp_path / "chain.pem").write_bytes(_pem(pki.root, pki.inter))
    pfx = tmp_path / "lync.pfx"
    made = subprocess.run(
        [
            openssl,
            "pkcs12",
            "-export",
            "-legacy",
            "-certpbe",
            "PBE-SHA1-RC2-40",
            "-keypbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
            "-in",
            str(tmp_path / "leaf.pem"),
            "-inkey",
            str(tmp_path / "key.pem"),
            "-certfile",
            str(tmp_path / "chain.pem"),
            "-out",
            str(pfx),
            "-passout",
            "pass:Lync2013!",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"the local OpenSSL cannot write an RC2-40 PFX (-legacy): {made.stderr}")
    info = subprocess.run(
        [
            openssl,
            "pkcs12",
            "-info",
            "-noout",
            "-legacy",
            "-in",
            str(pfx),
            "-passin",
            "pass:Lync2013!",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Prove the file really is the legacy kind before trusting the test.
    assert "pbeWithSHA1And40BitRC2-CBC" in info.stderr + info.stdout
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info.stderr + info.stdout
    assert "MAC: sha1" in info.stderr + info.stdout
    data = pfx.read_bytes()
    _assert_full(_parse(data, "Lync2013!"), pki)
    assert _refused(data, "lync2013!") == c.MSG_PFX_PASSWORD


def test_pfx_without_password(pki: Pki) -> None:
    data = _pfx(pki, serialization.NoEncryption())
    _assert_full(_parse(data, ""), pki)
    _assert_full(_parse(data, None), pki)


def test_pfx_wrong_or_missing_password(pki: Pki) -> None:
    data = _pfx(pki, serialization.BestAvailableEncryption(b"right"))
    message = (
        "The PFX password is wrong (or the file is damaged): enter the password the file was "
        "exported with."
    )
    assert _refused(data, "wrong") == message
    assert _refused(data, None) == message
    assert _refused(data, "") == message


def test_pfx_without_key(pki: Pki) -> None:
    data = _pfx(pki, serialization.BestAvailableEncryption(b"pw"), key=False)
    assert _refused(data, "pw") == (
        "The file contains no private key: export the certificate together with its private "
        'key (in Windows: "Yes, export the private key") or upload a PEM file that includes '
        "the key."
    )


# --------------------------------------------------------------------------------------------
# Refusals


def test_too_large(pki: Pki) -> None:
    data = pki.all_in_one() + b"\n" * c.MAX_UPLOAD_BYTES
    assert _refused(data).startswith("The file is too large (")
    assert _refused(data).endswith("KB): a certificate file is at most 256 KB.")
    # Exactly at the limit is still read.
    padded = pki.all_in_one()
    _parse(padded + b"\n" * (c.MAX_UPLOAD_BYTES - len(padded)))


@pytest.mark.parametrize(
    "data",
    [
        random.Random(1).randbytes(4096),
        b"\x30\x82\x01\x00" + random.Random(2).randbytes(256),  # looks like DER, is not
        b"Thank you for your order.\nYour certificate will be emailed to you.\n",
        b"-----BEGIN NOTHING-----\nno blocks here\n",
    ],
    ids=["random", "fake-der", "text", "broken-pem"],
)
def test_not_a_certificate(data: bytes) -> None:
    assert _refused(data) == (
        "This is not a certificate file: upload a PEM file (certificate, private key and "
        "chain) or a PKCS#12 file (.pfx / .p12)."
    )


def test_empty_file() -> None:
    assert _refused(b"") == "The file is empty."
    assert _refused(b" \n") == "The file is empty."


def test_unknown_pem_block() -> None:
    data = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    assert _refused(data) == (
        'The file contains a "OPENSSH PRIVATE KEY" block; only certificates, private keys and '
        "certificate chains are accepted."
    )


def test_damaged_certificate_block(pki: Pki) -> None:
    data = (
        _key_pem(pki.leaf_key) + b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    assert _refused(data) == "A certificate in the file is damaged and cannot be read."


def test_csr_alone_pem_and_der() -> None:
    csr_pem, _key = c.make_csr(common_name=LEAF_CN, sans=[])
    message = (
        "This is a certificate signing request (CSR), not a certificate: upload the certificate "
        "your certificate authority issued for it."
    )
    assert _refused(csr_pem.encode()) == message
    der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    assert _refused(der) == message


def test_certificate_only(pki: Pki) -> None:
    assert _refused(_pem(pki.leaf, pki.inter)) == c.MSG_NO_KEY
    assert _refused(pki.leaf.public_bytes(serialization.Encoding.DER)) == c.MSG_NO_KEY


def test_key_only(pki: Pki) -> None:
    assert _refused(_key_pem(pki.leaf_key)) == (
        "The file contains a private key but no certificate."
    )


def test_two_keys(pki: Pki) -> None:
    data = pki.all_in_one() + _key_pem(pki.inter_key)
    assert _refused(data) == (
        "The file contains more than one private key: upload one certificate and its key."
    )


def test_key_does_not_match(pki: Pki) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _refused(_key_pem(other) + _pem(pki.leaf)) == (
        "The private key does not match the certificate."
    )
    assert _refused(_key_pem(other) + _pem(pki.leaf, pki.inter, pki.root)) == (
        "The private key does not match any of the 3 certificates in the file."
    )


def test_expired_and_not_yet_valid(pki: Pki) -> None:
    after = pki.leaf.not_valid_after_utc
    assert _refused(pki.all_in_one(), now=after + timedelta(seconds=1)) == (
        f'The certificate "{LEAF_CN}" expired on {after:%Y-%m-%d %H:%M} UTC.'
    )
    before = pki.leaf.not_valid_before_utc
    assert _refused(pki.all_in_one(), now=before - timedelta(days=1)) == (
        f'The certificate "{LEAF_CN}" is not valid until {before:%Y-%m-%d %H:%M} UTC.'
    )
    _parse(pki.all_in_one(), now=after)  # valid up to and including notAfter


def test_two_certificates_for_the_key(pki: Pki) -> None:
    renewed = _issue(
        pki.leaf.subject, pki.leaf_key.public_key(), pki.inter.subject, pki.inter_key, ca=False
    )
    assert _refused(pki.all_in_one() + _pem(renewed)) == (
        "The file contains more than one certificate for this private key: upload only the "
        "current certificate with its chain."
    )


def test_unrelated_certificate(pki: Pki) -> None:
    stray_key = ec.generate_private_key(ec.SECP256R1())
    stray = _issue(
        _name("Other Root"), stray_key.public_key(), _name("Other Root"), stray_key, ca=True
    )
    assert _refused(pki.all_in_one() + _pem(stray)) == (
        'The certificate "Other Root" is not part of this certificate\'s chain.'
    )


def test_chain_with_a_gap(pki: Pki) -> None:
    data = _key_pem(pki.leaf_key) + _pem(pki.leaf, pki.root)
    assert _refused(data) == (
        'The certificate "Example Root CA" is not part of this certificate\'s chain: the chain '
        'stops at "lyncpool.example.com", whose issuer "CN=Example Issuing CA 1,O=Example Ltd" '
        "is not in the file."
    )


def test_impostor_issuer(pki: Pki) -> None:
    # Same name as the real intermediate, different key: names link up, signatures do not.
    fake_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = _issue(pki.inter.subject, fake_key.public_key(), pki.root.subject, pki.root_key, ca=True)
    data = _key_pem(pki.leaf_key) + _pem(pki.leaf, fake, pki.root)
    assert _refused(data) == (
        'The chain is broken: "lyncpool.example.com" names "CN=Example Issuing CA 1,O=Example '
        'Ltd" as its issuer, but the certificate of that name in the file did not sign it.'
    )


def test_two_issuers(pki: Pki) -> None:
    # The same intermediate key certified twice (a renewed intermediate): ambiguous.
    again = _issue(
        pki.inter.subject, pki.inter_key.public_key(), pki.root.subject, pki.root_key, ca=True
    )
    assert _refused(pki.all_in_one() + _pem(again)) == (
        'The file contains more than one issuer certificate for "lyncpool.example.com".'
    )


@pytest.mark.parametrize(
    ("key_factory", "message"),
    [
        (
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505
            "The RSA key has 1024 bits: at least 2048 bits are required.",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP224R1()),
            "The EC key uses the curve secp224r1: use P-256, P-384 or P-521.",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP256K1()),
            "The EC key uses the curve secp256k1: use P-256, P-384 or P-521.",
        ),
        (
            ed25519.Ed25519PrivateKey.generate,
            "Only RSA and EC (ECDSA) keys are supported; this key is Ed25519.",
        ),
    ],
    ids=["rsa1024", "p224", "secp256k1", "ed25519"],
)
def test_weak_or_unsupported_keys(pki: Pki, key_factory, message: str) -> None:
    key = key_factory()
    signing = pki.inter_key
    cert = _issue(_name(LEAF_CN), key.public_key(), pki.inter.subject, signing, ca=False)
    assert _refused(_key_pem(key) + _pem(cert, pki.inter)) == message


def test_naive_now_is_a_programming_error(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        c.parse_upload(pki.all_in_one(), password=None, now=datetime(2026, 1, 1))


# --------------------------------------------------------------------------------------------
# PEM splitting: hostile uploads (finding 5 of issue 16)
#
# The former lazy DOTALL regex rescanned the rest of the file for every unterminated BEGIN
# line: ~25 s for 256 KB of them. No timed assertion here (shared, noisy machines): these
# check the answers, and that each marker is looked at once; bench/pem_parse.py has the times.

# The former regex, kept as the reference the splitter must agree with (fast on small input).
_FORMER_PEM_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\n.*?\n?-----END (?P=label)-----", re.DOTALL
)


def _fill(unit: bytes, *, head: bytes = b"", tail: bytes = b"") -> bytes:
    """head + as many whole units as fit + tail: an upload of the largest allowed size."""
    count = (c.MAX_UPLOAD_BYTES - len(head) - len(tail)) // len(unit)
    data = head + unit * count + tail
    assert c.MAX_UPLOAD_BYTES - len(unit) < len(data) <= c.MAX_UPLOAD_BYTES
    return data


_MIXED_UNTERMINATED = b"".join(
    f"-----BEGIN {label}-----\nMIIBAAAA\n".encode()
    for label in (
        "CERTIFICATE",
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "RSA PRIVATE KEY",
        "X509 CERTIFICATE",
        "PKCS7",
        "A",
    )
)


@pytest.mark.parametrize(
    "data",
    [
        _fill(b"-----BEGIN A-----\n"),
        _fill(b"-----BEGIN A-----\r\n"),  # saved on Windows
        _fill(_MIXED_UNTERMINATED),
        _fill(b"-----END CERTIFICATE-----\n", head=b"-----BEGIN A-----\n"),
        _fill(b"-----END A-----\n"),  # no BEGIN at all: read as DER, refused the same way
        _fill(b"-----BEGIN A-----\n-----END B-----\n"),
        _fill(b"QUFBQUFB" * 8 + b"\n", head=b"-----BEGIN CERTIFICATE-----\n"),  # no END
    ],
    ids=[
        "begin-lines",
        "begin-lines-crlf",
        "unterminated-mixed-labels",
        "end-lines-after-one-begin",
        "end-lines-only",
        "begin-end-mismatched",
        "huge-body-no-end",
    ],
)
def test_hostile_pem_is_not_a_certificate(data: bytes) -> None:
    assert _refused(data) == c.MSG_NOT_CERTIFICATE
    _csr, key_pem = c.make_csr(common_name=LEAF_CN, sans=[], key_type="ec256")
    with pytest.raises(CertificateError) as caught:
        c.accept_signed(data, key_pem=key_pem, now=NOW)
    assert str(caught.value) == c.MSG_NOT_CERTIFICATE


def test_hostile_pem_closed_once_is_one_block() -> None:
    # One END after all the BEGIN lines: the first BEGIN's block swallows the rest, as before.
    data = _fill(b"-----BEGIN A-----\n", tail=b"-----END A-----\n")
    assert _refused(data) == (
        'The file contains a "A" block; only certificates, private keys and certificate chains '
        "are accepted."
    )
    data = _fill(b"-----BEGIN CERTIFICATE-----\n", tail=b"-----END CERTIFICATE-----\n")
    assert _refused(data) == c.MSG_CERT_UNREADABLE


def test_bundle_among_hostile_lines_still_parses(pki: Pki) -> None:
    # Unterminated BEGIN lines are skipped wherever they are, so the real blocks are found.
    bundle = pki.all_in_one()
    _assert_full(_parse(_fill(b"-----BEGIN A-----\n", head=bundle)), pki)
    _assert_full(_parse(_fill(b"-----BEGIN A-----\n", tail=bundle)), pki)
    _assert_full(_parse(_fill(b"-----END A-----\n-----BEGIN B-----\n", head=bundle)), pki)


class _Counting:
    """A compiled pattern that counts the searches and matches made through it."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.calls = 0

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        self.calls += 1
        return self.pattern.search(text, pos)

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        self.calls += 1
        return self.pattern.match(text, pos)


def test_pem_splitting_looks_at_each_marker_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each BEGIN line is searched for once (plus the search that finds none left) and each END
    # marker is read once: no rescanning of the rest of the file per BEGIN line.
    begin, end = _Counting(c._PEM_BEGIN), _Counting(c._PEM_END)
    monkeypatch.setattr(c, "_PEM_BEGIN", begin)
    monkeypatch.setattr(c, "_PEM_END", end)
    unit = b"-----BEGIN A-----\n-----END B-----\n"
    data = _fill(unit)
    pairs = len(data) // len(unit)
    assert _refused(data) == c.MSG_NOT_CERTIFICATE
    assert (begin.calls, end.calls) == (pairs + 1, pairs)


_FRAGMENTS = [
    "-----BEGIN A-----\n",
    "-----BEGIN A-----",
    "-----BEGIN B-----\n",
    "-----BEGIN A B-----\n",
    "-----BEGIN ",
    "-----END A-----",
    "-----END B-----",
    "-----END A B-----",
    "\n-----END A-----\n",
    "-----END ",
    "-----",
    "-",
    "BEGIN ",
    "END ",
    "A",
    "B",
    " ",
    "x",
    "Q==",
    "\n",
]


def test_pem_blocks_found_as_the_former_regex_found_them() -> None:
    # Random sequences of marker fragments (mid-line markers, shared dashes, nested and
    # unterminated blocks): the same blocks, in the same order, as the former regex.
    rng = random.Random(16)
    matched = 0
    for _ in range(20000):
        text = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(0, 14)))
        former = [(m["label"], m[0]) for m in _FORMER_PEM_BLOCK.finditer(text)]
        assert list(c._pem_blocks(text)) == former, text
        matched += bool(former)
    assert matched > 2000  # the fragments do make blocks, not only garbage


# --------------------------------------------------------------------------------------------
# Self-signed, CSR, signed certificate, stunnel


def test_self_signed() -> None:
    parsed = c.make_self_signed("lb01.example.com", sans=["192.0.2.5", "LB01.example.com"])
    assert parsed.common_name == "lb01.example.com"
    assert parsed.subject == parsed.issuer == "CN=lb01.example.com"
    assert parsed.sans == ("lb01.example.com", "192.0.2.5")
    assert parsed.chain_pem == ""
    assert parsed.key_type == "RSA 2048"
    assert timedelta(days=3649) < parsed.not_after - parsed.not_before < timedelta(days=3651)
    # It round-trips through the upload path as a valid certificate with its own key.
    again = c.parse_upload(c.stunnel_pem(parsed), password=None)
    assert again == parsed


def test_self_signed_with_a_descriptive_common_name() -> None:
    parsed = c.make_self_signed("Default Self Signed Certificate", days=30)
    assert parsed.sans == ()


def _sign_csr(csr_pem: str, pki: Pki) -> x509.Certificate:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(pki.inter.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=730))
        .add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
            critical=False,
        )
    )
    return builder.sign(pki.inter_key, hashes.SHA256())


@pytest.mark.parametrize("key_type", ["rsa2048", "ec256"])
def test_csr_round_trip(pki: Pki, key_type: str) -> None:
    csr_pem, key_pem = c.make_csr(
        common_name=LEAF_CN,
        sans=["sip.example.com", "*.meet.example.com", "192.0.2.10", ""],
        organisation="Example Ltd",
        organisational_unit="IT",
        locality="Newcastle upon Tyne",
        state="Tyne & Wear",
        country="gb",
        key_type=key_type,
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.subject.rfc4514_string() == (
        f"CN={LEAF_CN},OU=IT,O=Example Ltd,L=Newcastle upon Tyne,ST=Tyne & Wear,C=GB"
    )
    assert b"BEGIN PRIVATE KEY" in key_pem
    signed = _sign_csr(csr_pem, pki)
    parsed = c.accept_signed(_pem(pki.root, signed, pki.inter), key_pem=key_pem, now=NOW)
    assert parsed.key_pem == key_pem
    assert parsed.key_type == c.KEY_TYPES[key_type]
    assert parsed.sans == (LEAF_CN, "sip.example.com", "*.meet.example.com", "192.0.2.10")
    assert parsed.chain_pem == _pem(pki.inter, pki.root).decode()
    # Windows CAs hand back a DER .cer or a .p7b; both are taken.
    der = signed.public_bytes(serialization.Encoding.DER)
    assert c.accept_signed(der, key_pem=key_pem, now=NOW).certificate_pem == _pem(signed).decode()
    p7b = pkcs7.serialize_certificates([signed, pki.inter], serialization.Encoding.DER)
    assert c.accept_signed(p7b, key_pem=key_pem, now=NOW).chain_pem == _pem(pki.inter).decode()

    bundle = c.stunnel_pem(parsed)
    assert bundle.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert bundle == key_pem + _pem(signed, pki.inter, pki.root)


def test_accept_signed_refusals(pki: Pki) -> None:
    _csr, key_pem = c.make_csr(common_name=LEAF_CN, sans=[])
    with pytest.raises(CertificateError) as caught:
        c.accept_signed(_pem(pki.leaf, pki.inter), key_pem=key_pem, now=NOW)
    assert str(caught.value) == c.MSG_CSR_KEY_MISMATCH
    with pytest.raises(CertificateError, match=re.escape(c.MSG_KEY_IN_SIGNED)):
        c.accept_signed(pki.all_in_one(), key_pem=key_pem, now=NOW)
    pfx = _pfx(pki, serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(CertificateError, match=re.escape(c.MSG_PFX_IN_SIGNED)):
        c.accept_signed(pfx, key_pem=key_pem, now=NOW)
    with pytest.raises(CertificateError, match=re.escape(c.MSG_CSR_ONLY)):
        c.accept_signed(_csr.encode(), key_pem=key_pem, now=NOW)


CONTROL = "control characters and line breaks are not allowed."
ALLOWED = "only letters, digits, spaces and . , ' ( ) + - / : = ? & @ ! # * are allowed."
SANS = "Subject Alternative Names"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"common_name": ""}, "Common Name: this field is required."),
        ({"common_name": "x" * 65}, "Common Name: at most 64 characters."),
        ({"common_name": "lync\npool"}, f"Common Name: {CONTROL}"),
        ({"organisation": 'Example "Ltd"'}, f"Organisation: {ALLOWED}"),
        ({"organisational_unit": "IT\x00"}, f"Organisational Unit: {CONTROL}"),
        ({"locality": "a" * 129}, "City / Locality: at most 128 characters."),
        ({"state": "<script>"}, f"State / Province: {ALLOWED}"),
        ({"country": "GBR"}, 'Country: enter the two-letter ISO 3166 code, such as "GB".'),
        ({"country": "G1"}, 'Country: enter the two-letter ISO 3166 code, such as "GB".'),
        ({"country": "uk"}, 'Country: the ISO 3166 code for the United Kingdom is "GB".'),
        (
            {"key_type": "dsa1024"},
            "Key type: choose one of RSA 2048, RSA 3072, RSA 4096, EC P-256, EC P-384.",
        ),
        (
            {"sans": ["sip.example.com", "bad_name.example.com"]},
            'Subject Alternative Names: "bad_name.example.com" is not a valid DNS name (RFC 1123) '
            "or IP address.",
        ),
        (
            {"sans": ["-lead.example.com"]},
            'Subject Alternative Names: "-lead.example.com" is not a valid DNS name (RFC 1123) or '
            "IP address.",
        ),
        (
            {"sans": ["192.0.2.300"]},
            'Subject Alternative Names: "192.0.2.300" is not a valid DNS name (RFC 1123) or IP '
            "address.",
        ),
        (
            {"sans": ["a" * 64 + ".example.com"]},
            f'Subject Alternative Names: "{"a" * 64}.example.com" is not a valid DNS name (RFC '
            "1123) or IP address.",
        ),
        (
            {"sans": ["sip.*.example.com"]},
            'Subject Alternative Names: "sip.*.example.com" is not valid: a wildcard is only '
            'allowed as the whole first label, as in "*.example.com".',
        ),
        (
            {"sans": ["*.com"]},
            'Subject Alternative Names: "*.com" is not valid: a wildcard is only allowed as the '
            'whole first label, as in "*.example.com".',
        ),
        ({"sans": ["ok.example.com\r\nX: y"]}, f"{SANS}: control characters are not allowed."),
        ({"sans": [f"h{i}.example.com" for i in range(101)]}, f"{SANS}: at most 100 names."),
    ],
)
def test_csr_field_validation(fields: dict, message: str) -> None:
    arguments = {"common_name": LEAF_CN, "sans": [], **fields}
    with pytest.raises(CertificateError) as caught:
        c.make_csr(**arguments)
    assert str(caught.value) == message


def test_csr_accepts_international_names_and_ipv6() -> None:
    csr_pem, _key = c.make_csr(
        common_name="lyncpool.example.com",
        sans=["2001:db8::10", "lyncpool"],
        organisation="Müller & Söhne GmbH",
        locality="Zürich",
        country="CH",
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert "O=Müller & Söhne GmbH" in csr.subject.rfc4514_string()
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["lyncpool.example.com", "lyncpool"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["2001:db8::10"]


def test_self_signed_validates_its_input() -> None:
    with pytest.raises(CertificateError, match=r"^Common Name: this field is required\.$"):
        c.make_self_signed("  ")
    with pytest.raises(CertificateError, match="not a valid DNS name"):
        c.make_self_signed("lb01.example.com", sans=["under_score"])
