"""The guide's Lync 2010 mobility path end to end, on loopback, with real daemons:

    client ──TLS──▶ stunnel 127.0.20.30:<port> ──PROXY──▶ HAProxy FePoolExtWebSvcs8081
        (HTTP mode, cookie MS-WSMAN) ──TLS (re-encrypt)──▶ FE-1 / FE-2 (HTTPS only)

The client sees the uploaded certificate and its chain, the servers see the client's real
address, the cookie keeps a client on one server, and replacing the certificate under load
fails no request.
"""

import datetime
import hashlib
import http.client
import socket
import ssl
import threading
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from lbadmin.models import ConfigRevision
from lbadmin.services import l7, terminations
from lbadmin.services.certificates import certificate_upload
from lbadmin.services.config import config_apply_request
from lbadmin.services.daemons import daemon_controllers
from tests.conftest import free_port, wait_until
from tests.support import http_backend

VIP = "127.0.20.30"
RIPS = ("127.0.10.41", "127.0.10.42")
CLIENT = "127.0.0.77"  # the client's own loopback address, which the servers must see
NAME = "lyncweb.example.com"
NOW = datetime.datetime.now(datetime.UTC)

pytestmark = [pytest.mark.daemons, pytest.mark.django_db(transaction=True)]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject, key, issuer, issuer_key, *, ca: bool, sans=()) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """A root, an intermediate, and server certificates issued by the intermediate."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root_key, self.mid_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
        self.root = _issue("Test Root", self.root_key, "Test Root", self.root_key, ca=True)
        self.mid = _issue("Test Intermediate", self.mid_key, "Test Root", self.root_key, ca=True)
        self.root_file = directory / "root.pem"
        self.root_file.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))

    def pfx(self, password: bytes) -> tuple[bytes, str]:
        """A Front End certificate exported "with all certificates in the certification path";
        returns the PFX and the leaf's SHA-256 fingerprint (hex)."""
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _issue(NAME, key, "Test Intermediate", self.mid_key, ca=False, sans=(NAME,))
        data = pkcs12.serialize_key_and_certificates(
            b"fe", key, leaf, [self.mid, self.root],
            serialization.BestAvailableEncryption(password),
        )  # fmt: skip
        return data, leaf.fingerprint(hashes.SHA256()).hex()

    def server_pem(self, name: str) -> str:
        """key + certificate for a real server's own HTTPS (its internal certificate)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(name, key, "Test Intermediate", self.mid_key, ca=False, sans=(name,))
        path = self.directory / f"{name}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        )
        return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def daemons_stopped_after():
    yield
    controls = daemon_controllers()
    controls["stunnel"].stop()
    controls["haproxy"].stop()


@pytest.fixture
def tls_backends(pki: Pki):
    port = free_port(RIPS[0])
    with (
        http_backend(RIPS[0], port, "FE-1", tls_cert=pki.server_pem("fe1.example.com")),
        http_backend(RIPS[1], port, "FE-2", tls_cert=pki.server_pem("fe2.example.com")),
    ):
        yield port


def apply() -> ConfigRevision:
    revision = config_apply_request(actor=None)

    def finished() -> bool:
        revision.refresh_from_db()
        return revision.finished

    wait_until(finished, 60, f"revision {revision.pk} to finish", interval=0.1)
    assert revision.status == ConfigRevision.Status.APPLIED, revision.error
    return revision


def client_context(pki: Pki) -> ssl.SSLContext:
    # Only the root is trusted: verification succeeds only if the intermediate is served.
    context = ssl.create_default_context(cafile=str(pki.root_file))
    return context


def get(
    context: ssl.SSLContext, port: int, cookie: str = ""
) -> tuple[str, http.client.HTTPMessage, str]:
    """One HTTPS request on a new connection from CLIENT: (body, headers (case-insensitive:
    HAProxy sends header names in lower case), leaf fingerprint)."""
    raw = socket.create_connection((VIP, port), timeout=5, source_address=(CLIENT, 0))
    tls = context.wrap_socket(raw, server_hostname=NAME)
    try:
        fingerprint = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
        connection = http.client.HTTPConnection(VIP, port, timeout=5)
        connection.sock = tls
        connection.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        return response.read().decode(), response.headers, fingerprint
    finally:
        tls.close()


def test_lync_2010_mobility_path(
    client, admin_user, celery_worker_process, daemons_stopped_after, pki: Pki, tls_backends: int
) -> None:
    data, fingerprint = pki.pfx(b"Export-Password-1")
    certificate = certificate_upload(
        actor=None, label="FE-cert", data=data, password="Export-Password-1"
    )
    service = l7.virtualservice_create(
        actor=None,
        values={
            "label": "FePoolExtWebSvcs8081", "ip": VIP, "ports": str(free_port(VIP)),
            "protocol": "http", "persistence": "http_cookie", "cookie_name": "MS-WSMAN",
        },
    )  # fmt: skip
    for label, ip in zip(("FE-1", "FE-2"), RIPS, strict=True):
        l7.realserver_create(
            actor=None,
            service=service,
            values={"label": label, "ip": ip, "port": tls_backends, "reencrypt": True},
        )
    port = free_port(VIP)
    termination = terminations.termination_create(
        actor=None,
        values={
            "label": "SSL-FePoolExtWebSvcs4443", "virtual_service": service, "port": port,
            "mode": "high_security", "ciphers": "", "certificate": certificate,
        },
    )  # fmt: skip
    revision = apply()
    assert "[SSL-FePoolExtWebSvcs4443]" in revision.stunnel_text
    assert "accept-proxy" in revision.text and "ssl verify none" in revision.text
    assert revision.document["ssl"]["terminations"][0]["certificate"] == "FE-cert"
    context = client_context(pki)

    body, headers, served = get(context, port)
    assert served == fingerprint  # the uploaded certificate, with a chain the client verified
    assert body in ("FE-1", "FE-2")  # reached a server that speaks HTTPS only: re-encrypted
    assert headers["X-Seen-Forwarded-For"] == CLIENT  # PROXY protocol + forwardfor
    cookie = headers["Set-Cookie"].split(";")[0]
    assert cookie == f"MS-WSMAN={body}"
    # The cookie keeps the client on its server; without it both servers get traffic.
    assert {get(context, port, cookie)[0] for _ in range(8)} == {body}
    assert Counter(get(context, port)[0] for _ in range(8)).keys() == {"FE-1", "FE-2"}

    # Replace the certificate under load: no failed request, and the new one is served.
    stunnel = daemon_controllers()["stunnel"]
    pid = stunnel.instance_pid(next(iter(stunnel.running_instances())))
    new_data, new_fingerprint = pki.pfx(b"Export-Password-2")
    renewed = certificate_upload(
        actor=None, label="FE-cert-2026", data=new_data, password="Export-Password-2"
    )
    outcomes: Counter = Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                outcomes[get(context, port)[0] in ("FE-1", "FE-2")] += 1
            except OSError as error:
                outcomes[repr(error)] += 1

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: outcomes[True] >= 20, 20, "traffic before the replacement")
        terminations.termination_update(
            actor=None, termination=termination, values={"certificate": renewed}
        )
        apply()
        before = outcomes[True]
        wait_until(lambda: outcomes[True] >= before + 20, 20, "traffic after the replacement")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert set(outcomes) == {True}, outcomes  # not one failed request
    assert get(context, port)[2] == new_fingerprint
    assert stunnel.instance_pid(next(iter(stunnel.running_instances()))) == pid  # HUP, no restart

    # Maintenance > Restart Services > Restart Stunnel: a new process, serving again.
    client.force_login(admin_user)
    response = client.post("/lbadmin/maintenance/services/stunnel/restart/", follow=True)
    assert "Stunnel restarted." in response.content.decode()
    assert stunnel.instance_pid(next(iter(stunnel.running_instances()))) not in (None, pid)
    assert get(context, port)[2] == new_fingerprint
