"""Cluster Configuration > SSL Certificate in the browser: a Windows-style PFX (key, certificate
and its CA) is refused with a wrong password, accepted with the right one, listed with what the
certificate says, and deleted. Real Chromium, real gunicorn over HTTPS, real PostgreSQL."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from playwright.sync_api import Locator, Page, expect

from lbadmin.engines.certificates import MSG_PFX_PASSWORD
from lbadmin.models import SslCertificate
from tests.conftest import sign_in
from tests.engines.test_certificates import _issue, _name

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Lync-Cert-Upload-2013"
LABEL = "lync-fe-cert"
CN = "lyncpool.example.com"
SANS = ["lyncpool.example.com", "sip.example.com", "meet.example.com", "192.0.2.10"]
PFX_PASSWORD = "Pfx-Exp0rt!"


@pytest.fixture(scope="module")
def pfx() -> dict:
    """A CA, a server certificate it signed (with SANs) and a PFX holding key, leaf and CA."""
    now = datetime.now(UTC).replace(microsecond=0)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name("Browser Test Root CA")
    ca = _issue(
        ca_name, ca_key.public_key(), ca_name, ca_key, ca=True,
        not_before=now - timedelta(days=1), not_after=now + timedelta(days=730),
    )  # fmt: skip
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _issue(
        _name(CN), leaf_key.public_key(), ca_name, ca_key, ca=False, sans=SANS,
        not_before=now - timedelta(days=1), not_after=now + timedelta(days=400),
    )  # fmt: skip
    data = pkcs12.serialize_key_and_certificates(
        b"lyncpool",
        leaf_key,
        leaf,
        [ca],
        serialization.BestAvailableEncryption(PFX_PASSWORD.encode()),
    )
    return {
        "data": data,
        "leaf": leaf,
        # Computed here, not by the appliance's code: "AB:CD:..." upper-case hex pairs.
        "fingerprint": ":".join(f"{byte:02X}" for byte in leaf.fingerprint(hashes.SHA256())),
    }


@pytest.fixture
def signed_in(page: Page) -> Page:
    sign_in(page, PASSWORD)
    return page


def open_certificates(page: Page) -> Locator:
    """Cluster Configuration > SSL Certificate from the left menu; returns the list table."""
    page.locator("nav.menu").get_by_role("link", name="SSL Certificate", exact=True).click()
    expect(page).to_have_url(re.compile(r"/lbadmin/cluster/certificates/$"))
    expect(page.locator("h1")).to_have_text("SSL Certificate")
    table = page.locator("table#certificates")
    expect(table).to_be_visible()
    return table


def upload_pfx(page: Page, data: bytes, password: str) -> Locator:
    """Add a new SSL Certificate > Upload prepared PEM/PFX file; returns the upload panel."""
    page.click("#add-certificate")
    expect(page.locator("h1")).to_have_text("Add a new SSL Certificate")
    # Pick the other option first so choosing "Upload" is seen to switch the panels.
    page.get_by_label("Create a New SSL Certificate (CSR)").check()
    panel = page.locator("#upload-panel")
    expect(panel).to_be_hidden()
    page.get_by_label("Upload prepared PEM/PFX file").check()
    expect(panel).to_be_visible()
    expect(page.locator("#csr-panel")).to_be_hidden()
    panel.get_by_label("Label", exact=True).fill(LABEL)
    panel.get_by_label("File to upload").set_input_files(
        files=[{"name": "lyncpool.pfx", "mimeType": "application/x-pkcs12", "buffer": data}]
    )
    panel.get_by_label("PFX File Password").fill(password)
    panel.locator("#add-certificate-submit").click()
    return panel


def row_of(table: Locator, label: str) -> Locator:
    return table.locator("tbody tr").filter(
        has=table.page.get_by_role("cell", name=label, exact=True)
    )


def test_pfx_upload_wrong_then_right_password_then_delete(signed_in: Page, pfx: dict) -> None:
    page = signed_in
    table = open_certificates(page)
    expect(row_of(table, LABEL)).to_have_count(0)

    # A wrong password: the form comes back with the message next to the file field.
    panel = upload_pfx(page, pfx["data"], "not-the-password")
    expect(page).to_have_url(re.compile(r"/lbadmin/cluster/certificates/add/$"))
    expect(panel.locator("#row-file #errors-file")).to_have_text(MSG_PFX_PASSWORD)
    expect(panel.get_by_label("Label", exact=True)).to_have_value(LABEL)
    assert not SslCertificate.objects.filter(label=LABEL).exists()
    table = open_certificates(page)
    expect(table.locator("tbody")).not_to_contain_text(LABEL)
    expect(row_of(table, LABEL)).to_have_count(0)

    # The right password: back on the list, with the certificate as it was issued.
    upload_pfx(page, pfx["data"], PFX_PASSWORD)
    expect(page).to_have_url(re.compile(r"/lbadmin/cluster/certificates/$"))
    expect(page.locator(".message.success")).to_have_text(f"Certificate {LABEL} added.")
    stored = SslCertificate.objects.get(label=LABEL)
    row = row_of(table, LABEL)
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("id", f"certificate-{stored.pk}")
    headers = [h.strip() for h in table.locator("thead th").all_text_contents()]
    leaf: x509.Certificate = pfx["leaf"]

    def cell(header: str) -> Locator:
        return row.locator("td").nth(headers.index(header))

    expect(cell("Label")).to_have_text(LABEL)
    expect(cell("Subject")).to_have_text(f"CN={CN},O=Example Ltd")
    expect(cell("SANs")).to_have_text(", ".join(SANS))
    expect(cell("Issuer")).to_have_text("CN=Browser Test Root CA,O=Example Ltd")
    expect(cell("Valid to")).to_have_text(leaf.not_valid_after_utc.strftime("%Y-%m-%d"))
    expect(cell("SHA-256 fingerprint")).to_have_text(pfx["fingerprint"])
    expect(row.locator("code.fingerprint")).to_have_text(pfx["fingerprint"])
    assert stored.fingerprint_sha256 == pfx["fingerprint"]

    # Delete, confirming the browser's dialog: the row and the database record are gone.
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".message.success")).to_have_text(f"Certificate {LABEL} deleted.")
    assert dialogs == [f"Delete {LABEL}?"]
    expect(row_of(table, LABEL)).to_have_count(0)
    expect(table.locator("tbody")).not_to_contain_text(pfx["fingerprint"])
    assert not SslCertificate.objects.filter(label=LABEL).exists()
