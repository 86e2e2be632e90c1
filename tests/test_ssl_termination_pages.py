"""Cluster Configuration > SSL Termination: the form's allowlists, the guide's defaults,
conflicts, what may not be deleted, the blue box, and export/import with certificates."""

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lbadmin.models import AuditEntry, ConfigState, SslCertificate, SslTermination, VirtualService
from lbadmin.render.snapshot import L7Protocol, Persistence, SslMode
from lbadmin.services.certificates import DEFAULT_CERTIFICATE_LABEL, certificate_default_ensure
from lbadmin.services.config import ImportRejected, config_export, config_import, render_current

pytestmark = pytest.mark.django_db
URL = "/lbadmin/cluster/ssl/"


@pytest.fixture
def default_certificate() -> SslCertificate:
    return certificate_default_ensure()


def make_service(label: str, ip: str, ports: str, protocol: str = L7Protocol.HTTP):
    return VirtualService.objects.create(
        label=label,
        ip=ip,
        ports=ports,
        protocol=protocol,
        persistence=Persistence.HTTP_COOKIE if protocol == L7Protocol.HTTP else "none",
        cookie_name="MS-WSMAN",
    )


@pytest.fixture
def web8081():
    return make_service("FePoolExtWebSvcs8081", "192.168.20.30", "8081")


def post(client, service, certificate, **fields):
    data = {
        "label": "",
        "virtual_service": service.pk,
        "port": "4443",
        "mode": SslMode.HIGH_SECURITY,
        "ciphers": "",
        "certificate": certificate.pk,
    } | fields
    return client.post(URL + "add/", data)


def error_of(response, field: str) -> str:
    errors = response.context["form"].errors
    assert field in errors, dict(errors)
    return " ".join(errors[field])


def test_guide_termination_with_its_defaults(admin, web8081, default_certificate) -> None:
    page = admin.get(URL + "add/").content.decode()
    assert "Default Self Signed Certificate" in page  # the default choice
    assert 'value="high_security" selected' in page

    response = post(admin, web8081, default_certificate)
    assert response.status_code == 302
    termination = SslTermination.objects.get()
    assert termination.label == "SSL-FePoolExtWebSvcs8081"  # Label default: SSL-<service>
    assert (termination.port, termination.mode) == (4443, SslMode.HIGH_SECURITY)
    assert AuditEntry.objects.filter(target="SSL termination SSL-FePoolExtWebSvcs8081").exists()
    assert ConfigState.load().pending_engines == ["haproxy", "stunnel"]
    listing = admin.get(URL).content.decode()
    assert "SSL-FePoolExtWebSvcs8081" in listing and "192.168.20.30" in listing
    assert 'id="restart-stunnel-pending"' in listing  # the blue box's "Restart Stunnel"
    assert 'id="reload-haproxy"' in listing  # HAProxy gets the PROXY-protocol socket


def test_rendered_pair_links_stunnel_to_the_service(admin, web8081, default_certificate) -> None:
    post(admin, web8081, default_certificate, label="SSL-FE")
    rendered = render_current()
    (instance,) = rendered.stunnel
    assert (instance.host, instance.port) == ("192.168.20.30", 4443)
    socket_line = next(line for line in instance.config.splitlines() if line.startswith("connect"))
    socket_path = socket_line.split("= ")[1]
    assert f"    bind unix@{socket_path} mode 600 accept-proxy" in rendered.haproxy
    (name,) = rendered.certificate_files
    assert f"cert = {socket_path.rsplit('/run/', 1)[0]}/etc/certs/{name}" in instance.config
    bundle = rendered.certificate_files[name].decode()
    assert "PRIVATE KEY" in bundle and "BEGIN CERTIFICATE" in bundle


def test_only_http_mode_services_can_be_associated(admin, default_certificate) -> None:
    tcp = make_service("FePoolExtWebSvcs4443", "192.168.20.30", "4443", L7Protocol.TCP)
    response = post(admin, tcp, default_certificate, port="4444")
    assert "HTTP-mode" in error_of(response, "virtual_service")
    assert not SslTermination.objects.exists()


BROKEN = "selects ciphers without encryption, without authentication or known to be broken"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"label": "SSL-x\nexec = /bin/sh"}, "label", "letters, digits"),
        ({"label": "SSL x"}, "label", "letters, digits"),
        # The newline is shown as "?".
        ({"port": "4443\nexec = /bin/sh"}, "port", "“4443?exec = /bin/sh” is not a port: use a"),
        ({"port": "0"}, "port", "“0” is not a port: use a whole number from 1 to 65535."),
        ({"port": "65536"}, "port", "“65536” is not a port: use a whole number from 1 to 65535."),
        ({"mode": "weak"}, "mode", "Select a valid choice. weak is not one of the available"),
        ({"mode": "custom", "ciphers": "HIGH\nexec = /bin/sh"}, "ciphers", "no spaces"),
        ({"mode": "custom", "ciphers": "HIGH MEDIUM"}, "ciphers", "no spaces"),
        ({"mode": "custom", "ciphers": "NOT-A-CIPHER"}, "ciphers", "OpenSSL knows no cipher"),
        ({"mode": "custom", "ciphers": ""}, "ciphers", "Use cipher names separated by colons"),
        # Accepted by OpenSSL, but without encryption, authentication, or TLS 1.2 at all.
        ({"mode": "custom", "ciphers": "eNULL:@SECLEVEL=0"}, "ciphers", f"“NULL” {BROKEN}"),
        ({"mode": "custom", "ciphers": "ADH-AES128-SHA"}, "ciphers", f"“ADH” {BROKEN}"),
        ({"mode": "custom", "ciphers": "HIGH:NULL-SHA"}, "ciphers", f"“NULL” {BROKEN}"),
        ({"mode": "custom", "ciphers": "EXPORT"}, "ciphers", f"“EXP” {BROKEN}"),
        # TLS 1.3 suites are not TLS 1.2 cipher names.
        (
            {"mode": "custom", "ciphers": "TLS_AES_128_GCM_SHA256"},
            "ciphers",
            "OpenSSL knows no cipher in “TLS_AES_128_GCM_SHA256”",
        ),
    ],
)
def test_hostile_and_invalid_values_are_refused(
    admin, web8081, default_certificate, fields, field, message
) -> None:
    generation = ConfigState.load().generation
    response = post(admin, web8081, default_certificate, **fields)
    assert response.status_code == 200
    assert message and message in error_of(response, field)
    assert not SslTermination.objects.exists()
    assert ConfigState.load().generation == generation


def test_custom_cipher_list_is_kept_and_others_are_cleared(
    admin, web8081, default_certificate
) -> None:
    ciphers = "ECDHE-RSA-AES256-GCM-SHA384:!aNULL"
    post(admin, web8081, default_certificate, mode="custom", ciphers=ciphers)
    assert SslTermination.objects.get().ciphers == ciphers
    termination = SslTermination.objects.get()
    admin.post(
        URL + f"{termination.pk}/modify/",
        {
            "label": termination.label, "virtual_service": web8081.pk, "port": "4443",
            "mode": "compatibility", "ciphers": ciphers, "certificate": default_certificate.pk,
        },
    )  # fmt: skip
    termination.refresh_from_db()
    assert (termination.mode, termination.ciphers) == (SslMode.COMPATIBILITY, "")


def test_an_address_is_used_once_across_services_and_terminations(
    admin, web8081, default_certificate
) -> None:
    other = make_service("Other", "192.168.20.30", "8443")
    response = post(admin, web8081, default_certificate, port="8443")
    assert "already used by virtual service Other" in error_of(response, "port")
    post(admin, web8081, default_certificate, label="SSL-A", port="4443")
    response = post(admin, web8081, default_certificate, label="SSL-B", port="4443")
    assert "already used by SSL termination SSL-A" in error_of(response, "port")
    # …and a virtual service cannot take the termination's port either.
    response = admin.post(
        f"/lbadmin/cluster/l7/services/{other.pk}/modify/",
        {
            "label": "Other", "ip": "192.168.20.30", "ports": "4443", "protocol": "http",
            "balance": "leastconn", "persistence": "none", "cookie_name": "",
            "persistence_timeout": "30m", "health_check": "connect", "check_port": "",
            "check_interval": "4s", "fallback_ip": "", "fallback_port": "",
        },
    )  # fmt: skip
    assert "already used by SSL termination SSL-A" in error_of(response, "ports")


def test_what_a_termination_uses_cannot_be_deleted_or_changed_under_it(
    admin, web8081, default_certificate
) -> None:
    post(admin, web8081, default_certificate)
    response = admin.post(
        f"/lbadmin/cluster/certificates/{default_certificate.pk}/delete/", follow=True
    )
    assert "in use by SSL termination SSL-FePoolExtWebSvcs8081" in response.content.decode()
    assert SslCertificate.objects.filter(pk=default_certificate.pk).exists()
    listing = admin.get("/lbadmin/cluster/certificates/").content.decode()
    assert "SSL termination SSL-FePoolExtWebSvcs8081" in listing  # "where each is used"

    response = admin.post(f"/lbadmin/cluster/l7/services/{web8081.pk}/delete/", follow=True)
    assert "used by SSL termination SSL-FePoolExtWebSvcs8081" in response.content.decode()
    assert VirtualService.objects.filter(pk=web8081.pk).exists()

    response = admin.post(
        f"/lbadmin/cluster/l7/services/{web8081.pk}/modify/",
        {
            "label": web8081.label, "ip": web8081.ip, "ports": "8081", "protocol": "tcp",
            "balance": "leastconn", "persistence": "none", "cookie_name": "",
            "persistence_timeout": "30m", "health_check": "connect", "check_port": "",
            "check_interval": "4s", "fallback_ip": "", "fallback_port": "",
        },
    )  # fmt: skip
    assert "must stay in HTTP mode" in error_of(response, "protocol")

    termination = SslTermination.objects.get()
    admin.post(URL + f"{termination.pk}/delete/")
    assert not SslTermination.objects.exists()
    admin.post(f"/lbadmin/cluster/certificates/{default_certificate.pk}/delete/")
    assert not SslCertificate.objects.exists()


def test_list_page_queries_do_not_grow(admin, default_certificate) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin.get(URL).status_code == 200
        return len(queries)

    for n in range(2):
        service = make_service(f"web{n}", f"192.168.30.{n + 1}", "80")
        SslTermination.objects.create(
            label=f"SSL-{n}", virtual_service=service, port=443, certificate=default_certificate
        )
    count()  # the first request of a session does one-off work (session, ConfigState row)
    few = count()
    for n in range(2, 12):
        service = make_service(f"web{n}", f"192.168.30.{n + 1}", "80")
        SslTermination.objects.create(
            label=f"SSL-{n}", virtual_service=service, port=443, certificate=default_certificate
        )
    assert count() == few


def test_export_import_carries_certificates_and_terminations(
    admin, web8081, default_certificate
) -> None:
    post(admin, web8081, default_certificate)
    exported = config_export()
    (certificate,) = exported["ssl"]["certificates"]
    assert certificate["label"] == DEFAULT_CERTIFICATE_LABEL
    assert "PRIVATE KEY" not in json.dumps(exported)  # the key travels encrypted only
    assert exported["ssl"]["terminations"] == [
        {
            "label": "SSL-FePoolExtWebSvcs8081", "port": 4443, "mode": "high_security",
            "ciphers": "", "virtual_service": "FePoolExtWebSvcs8081",
            "certificate": DEFAULT_CERTIFICATE_LABEL,
        }
    ]  # fmt: skip
    config_import(actor=None, document=json.loads(json.dumps(exported)))
    assert config_export() == exported
    assert ConfigState.load().pending_engines == ["haproxy", "keepalived", "stunnel"]


def test_import_refuses_what_it_cannot_use(web8081, default_certificate) -> None:
    SslTermination.objects.create(
        label="SSL-FE", virtual_service=web8081, port=4443, certificate=default_certificate
    )
    good = config_export()

    foreign = json.loads(json.dumps(good))
    token = Fernet(Fernet.generate_key()).encrypt(b"-----BEGIN PRIVATE KEY-----\n")
    foreign["ssl"]["certificates"][0]["key_encrypted"] = token.decode()
    hostile = json.loads(json.dumps(good))
    hostile["ssl"]["terminations"][0]["ciphers"] = "HIGH\nexec = /bin/sh"
    hostile["ssl"]["terminations"][0]["mode"] = "custom"
    dangling = json.loads(json.dumps(good))
    dangling["ssl"]["terminations"][0]["certificate"] = "nope"
    for document, expected in (
        (
            foreign,
            f"ssl.certificates[0] ({DEFAULT_CERTIFICATE_LABEL}): the private key was encrypted "
            "with another appliance's key (or is damaged), so it cannot be used here",
        ),
        (
            hostile,
            "ssl.terminations[0] (SSL-FE).ciphers: Use cipher names separated by colons",
        ),
        # The message does not say that no certificate is labelled "nope".
        (dangling, "ssl.terminations[0] (SSL-FE).certificate: This field is required."),
    ):
        with pytest.raises(ImportRejected) as rejected:
            config_import(actor=None, document=document)
        assert any(problem.startswith(expected) for problem in rejected.value.problems), (
            rejected.value.problems
        )
        assert config_export() == good  # nothing changed


def test_secrets_key_file_stays_out_of_the_export(default_certificate) -> None:
    key = Path(settings.LBADMIN_SECRETS_KEY_FILE).read_text().strip()
    assert key not in json.dumps(config_export())


def test_reencrypt_needs_http_mode(admin) -> None:
    tcp = make_service("Passthrough", "192.168.20.40", "4443", L7Protocol.TCP)
    response = admin.post(
        f"/lbadmin/cluster/l7/services/{tcp.pk}/servers/add/",
        {"label": "FE-1", "ip": "192.168.10.31", "port": "4443", "weight": "100",
         "reencrypt": "on"},
    )  # fmt: skip
    assert "HTTP-mode" in error_of(response, "reencrypt")
    assert not tcp.real_servers.exists()


def test_a_rollback_keeps_certificates_uploaded_since(web8081, default_certificate) -> None:
    from lbadmin.models import ConfigRevision
    from lbadmin.services.certificates import certificate_csr_create
    from lbadmin.services.config import config_rollback

    older = ConfigRevision.objects.create(status="applied", document=config_export())
    csr = certificate_csr_create(
        actor=None, label="FE-2026", common_name="lyncweb.example.com", sans=["lyncweb.example.com"]
    )
    config_rollback(actor=None, revision=older)
    kept = SslCertificate.objects.get(label="FE-2026")  # its key exists only here
    assert kept.key_encrypted and kept.csr_pem == csr.csr_pem
    # A plain import, by contrast, makes the appliance hold exactly the document's.
    config_import(actor=None, document=older.document)
    assert not SslCertificate.objects.filter(label="FE-2026").exists()


def test_import_refuses_a_certificate_label_twice(default_certificate) -> None:
    document = config_export()
    document["ssl"]["certificates"] *= 2
    with pytest.raises(ImportRejected, match="already in the document"):
        config_import(actor=None, document=document)
