"""The WebUI's own TLS certificate: self-signed, made on first start, kept under var/tls/."""

import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lbadmin.engines.certificate_making import build_self_signed
from lbadmin.engines.certificate_model import key_pem
from lbadmin.engines.files import write_atomically


def webui_certificate_ensure(*, cert_path: Path, key_path: Path, days: int = 3650) -> bool:
    """Create a self-signed certificate and key if either is missing. Returns True if created.

    The key is written with mode 0600 before any byte of it reaches the disk.
    """
    if cert_path.exists() and key_path.exists():
        return False
    hostname = socket.gethostname()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lbadmin appliance"),
        ]
    )
    sans: list[x509.GeneralName] = [
        x509.DNSName(hostname),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = build_self_signed(key, name, days=days, sans=sans)
    for path in (cert_path, key_path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(key_path, key_pem(key), mode=0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True
