"""Layer 4 through the apply pipeline with the real keepalived, and System Overview's
drain / halt / online for Layer 4 servers.

These machines have no IPVS, so keepalived runs for VRRP only (DESIGN.md): what is checked
here is what keepalived is given and that it takes it (keepalived -t, reload confirmed). The
traffic test through IPVS is tests/test_l4_traffic.py, which runs where the kernel has it.
"""

import pytest

from lbadmin.engines.daemons import ipvs_available
from lbadmin.models import ConfigRevision, L4RealServer
from lbadmin.services import l4
from lbadmin.services.config import config_apply_request, keepalived_running_text
from lbadmin.services.daemons import daemon_controllers
from tests.conftest import wait_until

pytestmark = [pytest.mark.daemons, pytest.mark.django_db(transaction=True)]
VIP = "127.0.50.10"
EDGES = (("EDGE-1", "127.0.50.11"), ("EDGE-2", "127.0.50.12"))
# The guide's internal Edge table (STEP 4), on loopback.
INTERNAL_EDGE = (
    ("IntEdgeAccess5061", 5061, "tcp"),
    ("IntEdgeWebConf8057", 8057, "tcp"),
    ("IntEdgeAv443", 443, "tcp"),
    ("IntEdgeAv3478", 3478, "udp"),
    ("IntEdgeAv5062", 5062, "tcp"),
)


@pytest.fixture
def daemons_stopped_after():
    yield
    for name in ("keepalived", "haproxy", "stunnel"):
        daemon_controllers()[name].stop()


def apply() -> ConfigRevision:
    revision = config_apply_request(actor=None)

    def finished() -> bool:
        revision.refresh_from_db()
        return revision.finished

    wait_until(finished, 60, f"revision {revision.pk} to finish", interval=0.1)
    assert revision.status == ConfigRevision.Status.APPLIED, revision.error
    return revision


def internal_edge() -> None:
    for label, port, protocol in INTERNAL_EDGE:
        service = l4.l4service_create(
            actor=None,
            values={
                "label": label, "ip": VIP, "ports": str(port), "protocol": protocol,
                "forwarding": "nat", "persistence_timeout_s": 1800,
            },
        )  # fmt: skip
        for name, ip in EDGES:
            l4.l4server_create(
                actor=None, service=service, values={"label": name, "ip": ip, "port": port}
            )


def server_block(text: str, port: int, ip: str) -> str:
    """The real_server block for ip in the virtual_server of port ('' if absent)."""
    block = text.split(f"virtual_server {VIP} {port} {{", 1)[1].split("\nvirtual_server", 1)[0]
    start = block.find(f"real_server {ip} {port} {{")
    return "" if start < 0 else block[start : block.index("\n        }", start)]


def test_the_internal_edge_is_applied_to_keepalived(
    client, admin_user, celery_worker_process, daemons_stopped_after
) -> None:
    internal_edge()
    revision = apply()
    live = keepalived_running_text()
    assert revision.keepalived_text == live
    for _label, port, _protocol in INTERNAL_EDGE:
        assert f"virtual_server {VIP} {port} {{" in live
        assert server_block(live, port, "127.0.50.12")
    assert "protocol UDP" in live and "persistence_timeout 1800" in live
    assert daemon_controllers()["keepalived"].is_running()

    client.force_login(admin_user)
    page = client.get("/lbadmin/").content.decode()
    assert 'id="layer4-overview"' in page and "IntEdgeAv3478" in page
    if not ipvs_available():  # these machines: said plainly, nothing else breaks
        assert "Layer 4 services are configured but cannot run on this host" in page

    # A pending Layer 4 change stays pending through drain / halt / online.
    l4.l4service_create(
        actor=None,
        values={"label": "Pending", "ip": VIP, "ports": "9999", "forwarding": "nat"},
    )
    edge2 = L4RealServer.objects.get(virtual_service__label="IntEdgeAccess5061", label="EDGE-2")
    url = f"/lbadmin/overview/l4servers/{edge2.pk}/state/"

    client.post(url, {"action": "drain"})
    live = keepalived_running_text()
    assert "weight 0" in server_block(live, 5061, "127.0.50.12")  # existing connections finish
    assert "weight 100" in server_block(live, 5061, "127.0.50.11")
    assert "9999" not in live
    client.post(url, {"action": "halt"})
    live = keepalived_running_text()
    assert server_block(live, 5061, "127.0.50.12") == ""  # out of the service
    assert server_block(live, 5061, "127.0.50.11")
    client.post(url, {"action": "online"})
    assert "weight 100" in server_block(keepalived_running_text(), 5061, "127.0.50.12")
    edge2.refresh_from_db()
    assert edge2.admin_state == "online"

    # Draining every server of a service is refused (keepalived cannot run it): halt instead.
    edge1 = L4RealServer.objects.get(virtual_service__label="IntEdgeAccess5061", label="EDGE-1")
    client.post(url, {"action": "drain"})
    page = client.post(
        f"/lbadmin/overview/l4servers/{edge1.pk}/state/", {"action": "drain"}, follow=True
    ).content.decode()
    assert "stays as it was" in page
    edge1.refresh_from_db()
    assert edge1.admin_state == "online"

    # A drain survives the next apply (which also brings in the pending service).
    apply()
    live = keepalived_running_text()
    assert "weight 0" in server_block(live, 5061, "127.0.50.12")
    # The pending service arrived with it (it has no real server yet, so keepalived is told
    # only that, as a comment: it would ignore an empty virtual_server).
    assert "# Virtual service Pending: no real server in service" in live
