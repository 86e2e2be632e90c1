"""How tests/fixtures/config-v2-*.json were made: real version-2 exports of the code before
the typed document (lbadmin.document), kept as they came out so the upgrade to version 3 is
tested on what appliances really hold.

Not collected by the test run (no ``test_`` prefix); to make them again with version-2 code:

    LBADMIN_MAKE_V2_FIXTURES=1 pytest tests/document/make_v2_fixtures.py

Certificate keys are encrypted under ``FIXTURE_SECRETS_KEY`` (tests/document/support.py), so
they can always be decrypted again.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command

from lbadmin.forms.ha import HaSettingsForm
from lbadmin.forms.l4 import L4RealServerForm, L4VirtualServiceForm
from lbadmin.forms.l7 import L7SettingsForm, RealServerForm, VirtualServiceForm
from lbadmin.models import L7Settings
from lbadmin.services import ha_node, jobs, l4, l7
from lbadmin.services.certificates import (
    DEFAULT_CERTIFICATE_LABEL,
    certificate_csr_create,
    certificate_default_ensure,
    certificate_upload,
)
from tests.document.support import FIXTURE_SECRETS_KEY, FIXTURES
from tests.engines.test_certificates import _issue, _key_pem, _name, _pem

pytestmark = pytest.mark.django_db
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "lync-2013-guide.json"


@pytest.fixture(autouse=True)
def fixture_key(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("LBADMIN_MAKE_V2_FIXTURES") != "1":
        pytest.skip("set LBADMIN_MAKE_V2_FIXTURES=1 to write tests/fixtures/config-v2-*.json")
    # Only the stored configuration is wanted: no apply may run, or HAProxy would health-check
    # the guide's addresses (not ours) from this host's own network.
    monkeypatch.setattr(jobs, "enqueue", lambda *args, **kwargs: None)
    monkeypatch.setattr(jobs, "enqueue_on_commit", lambda *args, **kwargs: None)
    key = tmp_path / "certificates.key"
    key.write_bytes(FIXTURE_SECRETS_KEY + b"\n")
    settings.LBADMIN_SECRETS_KEY_FILE = key


def export(name: str) -> None:
    """`lbconfig export`, byte for byte, into tests/fixtures/<name>."""
    out = StringIO()
    call_command("lbconfig", "export", stdout=out)
    document = json.loads(out.getvalue())
    assert document["version"] == 2
    (FIXTURES / name).write_text(out.getvalue())


def answers(tmp_path: Path, **changes: Any) -> str:
    document = json.loads(EXAMPLE.read_text()) | changes
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_guide(tmp_path: Path) -> None:
    """The guide's configuration as the wizard makes it (Lync 2013, no certificate)."""
    call_command("lync_wizard", "--answers", answers(tmp_path), stdout=StringIO())
    export("config-v2-guide.json")


def test_guide_with_ssl(tmp_path: Path) -> None:
    """Lync 2010 with cookie persistence: SSL terminations on the default certificate; and a
    certificate uploaded with its chain, and a CSR still waiting for its signed one."""
    certificate_default_ensure()
    example = json.loads(EXAMPLE.read_text())
    example["reverse_proxy"]["director_vip"] = "10.12.1.151"
    path = answers(
        tmp_path,
        version="2010",
        web_persistence="cookie",
        certificate=DEFAULT_CERTIFICATE_LABEL,
        reverse_proxy=example["reverse_proxy"],
    )
    call_command("lync_wizard", "--answers", path, stdout=StringIO())
    certificate_upload(actor=None, label="FE-cert", data=_chain_upload(), password=None)
    certificate_csr_create(
        actor=None, label="Edge-csr", common_name="sip.example.com",
        sans=["sip.example.com", "av.example.com"], organisation="Example Ltd",
        organisational_unit="", locality="", state="", country="GB", key_type="rsa2048",
    )  # fmt: skip
    export("config-v2-guide-ssl.json")


def _chain_upload() -> bytes:
    """A leaf, its issuing CA and the root, with the leaf's key: one PEM upload."""
    now = datetime.now(UTC)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    root, inter = _name("Example Root CA"), _name("Example Issuing CA 1")
    days = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=3650)}
    root_cert = _issue(root, keys[0].public_key(), root, keys[0], ca=True, **days)
    inter_cert = _issue(inter, keys[1].public_key(), root, keys[0], ca=True, **days)
    leaf = _issue(
        _name("lyncpool.example.com"), keys[2].public_key(), inter, keys[1], ca=False,
        sans=["lyncpool.example.com"], **days,
    )  # fmt: skip
    return _key_pem(keys[2]) + _pem(leaf, inter_cert, root_cert)


def _valid(form: Any) -> dict[str, Any]:
    assert form.is_valid(), form.errors
    return form.values()


def test_webui() -> None:
    """Objects as the WebUI's own forms make them: the short add forms' defaults, a manual
    service ticked with no lines yet, IPv6, fallback, every Layer 4 protocol and forwarding,
    changed Layer 7 and HA settings. No certificate."""
    settings = L7Settings.load()
    l7.l7settings_update(actor=None, values=_valid(L7SettingsForm(
        {"logging": "on", "log_only_errors": "on", "redispatch": "", "connect_timeout": "5s",
         "client_timeout": "30m", "server_timeout": "30m"}, instance=settings,
    )))  # fmt: skip
    ha_node.ha_settings_update(
        actor=None, values=_valid(HaSettingsForm({"advert_interval": "250", "preempt": "on"}))
    )

    def add_l7(**data: str) -> Any:
        return l7.virtualservice_create(
            actor=None, values=_valid(VirtualServiceForm(data, add=True))
        )

    def add_l7_server(service: Any, **data: str) -> None:
        form = RealServerForm({"weight": "100", **data}, virtual_service=service)
        l7.realserver_create(actor=None, service=service, values=_valid(form))

    web = add_l7(label="Web", ip="192.168.30.10", ports="80", protocol="http")
    add_l7_server(web, label="WEB-1", ip="192.168.30.21", port="8080")
    add_l7_server(web, label="WEB-2", ip="192.168.30.22", port="8443", reencrypt="on", weight="7")
    add_l7(label="Mail", ip="192.168.30.11", ports="25,587", protocol="tcp")
    add_l7(label="Manual", ip="192.168.30.12", ports="8000", protocol="http", manual_config="on")
    v6 = add_l7(label="Web6", ip="2001:DB8::10", ports="443", protocol="tcp")
    l7.virtualservice_update(actor=None, service=v6, values=_valid(VirtualServiceForm({
        "label": "Web6", "ip": "2001:db8::10", "ports": "443, 80", "protocol": "tcp",
        "balance": "source", "persistence": "none", "cookie_name": "", "persistence_timeout": "1h",
        "health_check": "none", "check_port": "", "check_interval": "10s",
        "fallback_ip": "2001:db8::99", "fallback_port": "8080", "manual_config": "",
        "manual_text": "left here\nwhen unticked",
    }, instance=v6)))  # fmt: skip
    add_l7_server(v6, label="WEB6-1", ip="2001:db8::21")

    def add_l4(**data: str) -> Any:
        return l4.l4service_create(actor=None, values=_valid(L4VirtualServiceForm(data, add=True)))

    def add_l4_server(service: Any, **data: str) -> None:
        form = L4RealServerForm(
            {"weight": "100", "min_connections": "0", "max_connections": "0", **data},
            virtual_service=service,
        )
        l4.l4server_create(actor=None, service=service, values=_valid(form))

    dns = add_l4(label="Dns", ip="192.168.30.20", ports="53", protocol="tcp_udp", forwarding="dr")
    add_l4_server(dns, label="DNS-1", ip="192.168.30.41")
    sip = add_l4(
        label="Sip", ip="192.168.30.21", ports="5060-5062,5065", protocol="udp", forwarding="nat"
    )
    add_l4_server(sip, label="SIP-1", ip="192.168.30.51", min_connections="10",
                  max_connections="500")  # fmt: skip
    add_l4_server(sip, label="SIP-2", ip="192.168.30.52", weight="0")
    web4 = add_l4(label="Web4", ip="2001:db8::20", ports="443", protocol="tcp", forwarding="tun")
    l4.l4service_update(actor=None, service=web4, values=_valid(L4VirtualServiceForm({
        "label": "Web4", "ip": "2001:db8::20", "ports": "443", "protocol": "tcp",
        "forwarding": "tun", "persistence": "", "persistence_timeout": "600",
        "scheduler": "wrr", "health_check": "https", "check_port": "8443",
        "check_path": "/health?full=1", "check_status": "204", "check_interval": "5",
        "check_timeout": "3",
    }, instance=web4)))  # fmt: skip
    add_l4_server(web4, label="WEB4-1", ip="192.168.30.61", port="443")
    add_l4(label="Empty", ip="192.168.30.22", ports="8080", protocol="tcp", forwarding="nat")
    export("config-v2-webui.json")
