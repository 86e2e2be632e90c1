"""Cluster Configuration > SSL Certificate: upload PEM and Windows-style PFX files, CSRs,
the default self-signed certificate, keys encrypted at rest, expiry flagged on the overview."""

import datetime
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from lbadmin.models import AuditEntry, SslCertificate
from lbadmin.services.certificates import DEFAULT_CERTIFICATE_LABEL, certificate_default_ensure
from lbadmin.services.secrets import secret_decrypt

pytestmark = pytest.mark.django_db
NOW = datetime.datetime.now(datetime.UTC)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(subject: str, key, issuer: str, issuer_key, *, ca: bool, days: int = 365):
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    root_key, mid_key, leaf_key = (rsa.generate_private_key(65537, 2048) for _ in range(3))
    root = issue("Test Root", root_key, "Test Root", root_key, ca=True)
    mid = issue("Test Intermediate", mid_key, "Test Root", root_key, ca=True)
    leaf = issue("lyncpool.example.com", leaf_key, "Test Intermediate", mid_key, ca=False)
    short = issue("soon.example.com", leaf_key, "Test Intermediate", mid_key, ca=False, days=10)
    return {
        "root": root, "mid": mid, "mid_key": mid_key, "leaf": leaf, "key": leaf_key,
        "short": short,
    }  # fmt: skip


def pem(*objects) -> bytes:
    out = b""
    for item in objects:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    return out


def upload(client, label: str, data: bytes, password: str = "", filename: str = "cert1.pfx"):
    return client.post(
        "/lbadmin/cluster/certificates/add/",
        {
            "choice": "upload",
            "upload-label": label,
            "upload-file": SimpleUploadedFile(filename, data),
            "upload-password": password,
        },
    )


def test_windows_style_pfx_with_its_chain_is_accepted_and_its_key_encrypted(admin, pki) -> None:
    legacy = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())  # noqa: S303 - what Windows exports
        .build(b"Lync-2010")
    )
    pfx = pkcs12.serialize_key_and_certificates(
        b"lync", pki["key"], pki["leaf"], [pki["root"], pki["mid"]], legacy
    )
    response = upload(admin, "cert1", pfx, "Lync-2010")
    assert response.status_code == 302, response.content.decode()[-2000:]
    stored = SslCertificate.objects.get(label="cert1")
    assert stored.common_name == "lyncpool.example.com"
    assert stored.sans == ["lyncpool.example.com"]
    assert "Test Intermediate" in stored.issuer
    # The chain is complete and ordered from the leaf's issuer up.
    assert stored.chain_pem == pem(pki["mid"], pki["root"]).decode()
    # The key is in the database only encrypted, and decrypts to the uploaded key.
    raw = bytes(stored.key_encrypted)
    assert b"PRIVATE KEY" not in raw
    assert secret_decrypt(raw) == pem(pki["key"])
    key_file = settings.LBADMIN_SECRETS_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    page = admin.get("/lbadmin/cluster/certificates/").content.decode()
    assert "lyncpool.example.com" in page and stored.fingerprint_sha256 in page
    assert AuditEntry.objects.filter(action=AuditEntry.Action.CERTIFICATE_ADDED).exists()


def test_pem_with_key_and_chain_in_any_order(admin, pki) -> None:
    data = pem(pki["root"], pki["key"], pki["leaf"], pki["mid"])
    assert upload(admin, "pem1", data, filename="all.pem").status_code == 302
    assert SslCertificate.objects.get(label="pem1").certificate_pem == pem(pki["leaf"]).decode()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong password", "The PFX password is wrong (or the file is damaged)"),
        ("no key", "The file contains no private key: export the certificate together"),
        ("not a certificate", "This is not a certificate file: upload a PEM file"),
        ("mismatched key", "The private key does not match the certificate."),
    ],
)
def test_bad_uploads_are_refused_next_to_the_file(admin, pki, case: str, message: str) -> None:
    other_key = rsa.generate_private_key(65537, 2048)
    data, password = {
        "wrong password": (
            pkcs12.serialize_key_and_certificates(
                b"x",
                pki["key"],
                pki["leaf"],
                None,
                serialization.BestAvailableEncryption(b"right"),
            ),
            "wrong",
        ),
        "no key": (pem(pki["leaf"]), ""),
        "not a certificate": (b"hello, this is not a certificate\n" * 10, ""),
        "mismatched key": (pem(pki["leaf"], other_key), ""),
    }[case]
    response = upload(admin, "bad", data, password)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="errors-file"' in page
    # "password" is on the page anyway (the password field): the message is looked for at the file.
    assert message in " ".join(response.context["upload"].errors["file"])
    assert not SslCertificate.objects.filter(label="bad").exists()


def test_hostile_labels_are_refused(admin, pki) -> None:
    for label in ("cert 1", "a\nb", "../../etc/passwd", "x" * 65, '"q"'):
        response = upload(admin, label, pem(pki["leaf"], pki["key"]), filename="c.pem")
        assert 'id="errors-label"' in response.content.decode(), label
        assert response.context["upload"].errors["label"] == [
            "Ensure this value has at most 64 characters (it has 65)."
            if len(label) > 64
            else "Use 1 to 64 characters: letters, digits and _ . : - only."
        ]
    assert not SslCertificate.objects.exists()


def test_default_self_signed_certificate_exists_once(db) -> None:
    first = certificate_default_ensure()
    assert first.label == DEFAULT_CERTIFICATE_LABEL
    assert first.source == SslCertificate.Source.SELF_SIGNED
    assert certificate_default_ensure().pk == first.pk


def test_csr_is_made_here_and_takes_its_signed_certificate(admin, pki) -> None:
    response = admin.post(
        "/lbadmin/cluster/certificates/add/",
        {"choice": "csr", "csr-label": "cert2", "csr-common_name": "dirpool.example.com",
         "csr-sans": "dirpool.example.com, meet.example.com", "csr-organisation": "Example",
         "csr-country": "GB", "csr-key_type": "rsa2048"},
    )  # fmt: skip
    stored = SslCertificate.objects.get(label="cert2")
    assert response["Location"] == f"/lbadmin/cluster/certificates/{stored.pk}/csr/"
    page = admin.get(response["Location"]).content.decode()
    assert "BEGIN CERTIFICATE REQUEST" in page
    csr = x509.load_pem_x509_csr(stored.csr_pem.encode())
    # The CA signs it (here: the test intermediate).
    signed = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(pki["mid"].subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                       critical=False)
        .sign(pki["mid_key"], hashes.SHA256())
    )  # fmt: skip
    response = admin.post(
        f"/lbadmin/cluster/certificates/{stored.pk}/csr/",
        {"file": SimpleUploadedFile("signed.pem", pem(signed, pki["mid"], pki["root"]))},
    )
    assert response.status_code == 302, response.content.decode()[-1500:]
    stored.refresh_from_db()
    assert not stored.pending_csr
    assert stored.common_name == "dirpool.example.com"
    assert "meet.example.com" in stored.sans


def test_expiring_certificates_are_flagged_on_system_overview(admin, pki) -> None:
    assert "certificates-expiring" not in admin.get("/lbadmin/").content.decode()
    assert upload(admin, "soon", pem(pki["short"], pki["key"], pki["mid"], pki["root"]),
                  filename="s.pem").status_code == 302  # fmt: skip
    page = admin.get("/lbadmin/").content.decode()
    assert 'id="certificates-expiring"' in page and "soon" in page


def test_delete_is_post_only_and_audited(admin, pki) -> None:
    upload(admin, "gone", pem(pki["leaf"], pki["key"], pki["mid"], pki["root"]), filename="g.pem")
    certificate = SslCertificate.objects.get(label="gone")
    url = f"/lbadmin/cluster/certificates/{certificate.pk}/delete/"
    assert admin.get(url).status_code == 405
    assert admin.post(url).status_code == 302
    assert not SslCertificate.objects.filter(label="gone").exists()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.CERTIFICATE_DELETED).exists()
