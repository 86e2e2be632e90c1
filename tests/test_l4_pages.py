"""Cluster Configuration > Layer 4: the guide's Edge services through the forms, the
allowlists, address conflicts across layers, the hosts-without-IPVS notice, export/import."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lbadmin.models import AuditEntry, ConfigState, L4RealServer, L4VirtualService
from lbadmin.services.config import ImportRejected, config_export, config_import, render_current

pytestmark = pytest.mark.django_db
SERVICES = "/lbadmin/cluster/l4/services/"


def add_service(client, **fields):
    data = {
        "label": "IntEdgeAccess5061", "ip": "192.168.10.10", "ports": "5061",
        "protocol": "tcp", "forwarding": "nat",
    } | fields  # fmt: skip
    return client.post(SERVICES + "add/", data)


def modify_service(client, service, **fields):
    data = {
        "label": service.label, "ip": service.ip, "ports": service.ports,
        "protocol": service.protocol, "forwarding": service.forwarding, "persistence": "on",
        "persistence_timeout": "1800", "scheduler": "wlc", "health_check": "connect",
        "check_port": "", "check_path": "/", "check_status": "200", "check_interval": "10",
        "check_timeout": "5",
    } | fields  # fmt: skip
    return client.post(SERVICES + f"{service.pk}/modify/", data)


def add_server(client, service, **fields):
    data = {
        "label": "EDGE-1", "ip": "192.168.100.10", "port": "5061", "weight": "100",
        "min_connections": "0", "max_connections": "0",
    } | fields  # fmt: skip
    return client.post(f"{SERVICES}{service.pk}/servers/add/", data)


def error_of(response, field: str) -> str:
    errors = response.context["form"].errors
    assert field in errors, dict(errors)
    return " ".join(errors[field])


def test_the_guides_steps_for_an_internal_edge_service(admin) -> None:
    page = admin.get(SERVICES + "add/").content.decode()
    assert "Direct Routing is not supported for Lync" in page  # the guide's warning
    assert add_service(admin).status_code == 302
    service = L4VirtualService.objects.get()
    # The appliance's defaults until Modify: persistence on, 300 s.
    assert (service.persistence, service.persistence_timeout_s) == (True, 300)
    assert modify_service(admin, service, persistence_timeout="1800").status_code == 302
    service.refresh_from_db()
    assert service.persistence_timeout_s == 1800
    assert add_server(admin, service).status_code == 302
    assert add_server(admin, service, label="EDGE-2", ip="192.168.100.11").status_code == 302
    assert AuditEntry.objects.filter(target="L4 real server IntEdgeAccess5061/EDGE-2").exists()
    assert ConfigState.load().pending_engines == ["keepalived"]
    listing = admin.get(SERVICES).content.decode()
    assert 'id="reload-layer4"' in listing and "IntEdgeAccess5061" in listing

    keepalived = render_current().keepalived
    assert "virtual_server 192.168.10.10 5061" in keepalived
    assert "persistence_timeout 1800" in keepalived
    assert "lb_kind NAT" in keepalived
    assert "real_server 192.168.100.11 5061" in keepalived


def test_udp_and_port_ranges(admin) -> None:
    add_service(admin, label="IntEdgeAv3478", ports="3478", protocol="udp")
    add_service(admin, label="Range", ip="192.168.10.11", ports="5060-5062, 5065")
    assert L4VirtualService.objects.get(label="Range").ports == "5060,5061,5062,5065"
    for service in L4VirtualService.objects.all():
        assert add_server(admin, service, port="").status_code == 302
    keepalived = render_current().keepalived
    assert "protocol UDP" in keepalived
    assert all(f"virtual_server 192.168.10.11 {port}" in keepalived for port in (5060, 5062, 5065))
    page = admin.get(SERVICES + f"{L4VirtualService.objects.get(label='Range').pk}/modify/")
    assert 'value="5060-5062,5065"' in page.content.decode()  # shown compactly


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"label": 'x\n    notify_master "/bin/sh -c id"'}, "label", "letters, digits"),
        ({"label": "x#y"}, "label", "letters, digits"),
        # A control character is shown as "?".
        ({"ip": "192.168.10.10 \n}"}, "ip", "“192.168.10.10 ?}” is not an IPv4 or IPv6 address."),
        ({"ports": "5061\n}"}, "ports", "“5061?}” is not a port: use a whole number from 1 to"),
        ({"ports": "5062-5060"}, "ports", "lower port first"),
        ({"ports": "1-100"}, "ports", "At most 64"),
        ({"ports": "80,80"}, "ports", "twice"),
        ({"protocol": "sctp"}, "protocol", "Select a valid choice. sctp is not one of the"),
        ({"forwarding": "fullnat"}, "forwarding", "Select a valid choice. fullnat is not one of"),
    ],
)
def test_hostile_and_invalid_service_values_are_refused(admin, fields, field, message) -> None:
    response = add_service(admin, **fields)
    assert response.status_code == 200
    assert message and message in error_of(response, field)
    assert not L4VirtualService.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"persistence_timeout": "0"}, "persistence_timeout", "from 1 to 86400"),
        ({"persistence_timeout": "86401"}, "persistence_timeout", "from 1 to 86400"),
        ({"health_check": "http", "check_path": "/x y"}, "check_path", "no spaces"),
        ({"health_check": "http", "check_path": "/x#y"}, "check_path", "no spaces"),
        ({"health_check": "http", "check_path": "/$VAR"}, "check_path", "no spaces"),
        ({"health_check": "http", "check_path": "/}\n"}, "check_path", "no spaces"),
        ({"health_check": "http", "check_path": "index.html"}, "check_path", "Start with /"),
        ({"check_status": "99"}, "check_status", "from 100 to 599"),
        ({"check_interval": "0"}, "check_interval", "must be a whole number from 1 to 3600"),
        ({"check_port": "70000"}, "check_port", "“70000” is not a port: use a whole number"),
    ],
)
def test_hostile_and_invalid_modify_values_are_refused(admin, fields, field, message) -> None:
    add_service(admin)
    service = L4VirtualService.objects.get()
    response = modify_service(admin, service, **fields)
    assert response.status_code == 200
    assert message and message in error_of(response, field)
    service.refresh_from_db()
    assert service.persistence_timeout_s == 300  # nothing saved


def test_real_server_rules(admin) -> None:
    add_service(admin)
    service = L4VirtualService.objects.get()
    response = add_server(admin, service, min_connections="10", max_connections="5")
    assert "more than the maximum" in error_of(response, "min_connections")
    response = add_server(admin, service, label="bad\nlabel")
    assert "letters, digits" in error_of(response, "label")
    add_service(admin, label="Multi", ip="192.168.10.12", ports="5060-5062")
    multi = L4VirtualService.objects.get(label="Multi")
    assert "Leave it blank" in error_of(add_server(admin, multi, port="5061"), "port")
    add_service(admin, label="Dr", ip="192.168.10.13", ports="80", forwarding="dr")
    dr = L4VirtualService.objects.get(label="Dr")
    assert "cannot change the port" in error_of(add_server(admin, dr, port="8080"), "port")
    assert add_server(admin, dr, port="80").status_code == 302
    assert not L4RealServer.objects.filter(virtual_service=service).exists()


def test_no_address_is_used_twice_across_layers(admin) -> None:
    from lbadmin.models import VirtualService

    VirtualService.objects.create(label="FrontEndPool", ip="192.168.10.30", ports="443,5061")
    response = add_service(admin, label="Clash", ip="192.168.10.30", ports="5061")
    assert "already used by virtual service FrontEndPool" in error_of(response, "ports")
    # UDP on the same port is another address: allowed (the guide's TCP 443 + UDP 3478 pair).
    response = add_service(admin, label="Udp", ip="192.168.10.30", ports="5061", protocol="udp")
    assert response.status_code == 302
    add_service(admin, label="Tcp", ip="192.168.10.10", ports="443")
    response = add_service(admin, label="Both", ip="192.168.10.10", ports="443", protocol="tcp_udp")
    assert "192.168.10.10:443/TCP is already used by Layer 4 virtual service Tcp" in error_of(
        response, "ports"
    )
    # And a Layer 7 service cannot take a Layer 4 TCP address either.
    response = admin.post(
        "/lbadmin/cluster/l7/services/add/",
        {"label": "L7", "ip": "192.168.10.10", "ports": "443", "protocol": "tcp"},
    )
    assert "already used by Layer 4 virtual service Tcp" in error_of(response, "ports")


def test_pages_say_when_layer4_cannot_run_here(admin, monkeypatch) -> None:
    from lbadmin.services import daemons

    add_service(admin)
    monkeypatch.setattr(daemons, "ipvs_available", lambda: False)  # as on hosts without IPVS
    for url in (SERVICES, "/lbadmin/cluster/l4/servers/", "/lbadmin/"):
        page = admin.get(url).content.decode()
        assert "Layer 4 services are configured but cannot run on this host" in page, url
        assert "has no IPVS" in page
    monkeypatch.setattr(daemons, "ipvs_available", lambda: True)
    assert "cannot run on this host" not in admin.get(SERVICES).content.decode()


def test_list_pages_queries_do_not_grow(admin) -> None:
    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin.get(url).status_code == 200
        return len(queries)

    def grow(start: int, stop: int) -> None:
        for n in range(start, stop):
            service = L4VirtualService.objects.create(
                label=f"s{n}", ip=f"192.168.40.{n + 1}", ports="443"
            )
            for m in range(3):
                L4RealServer.objects.create(
                    virtual_service=service, label=f"r{m}", ip=f"10.0.{n}.{m + 1}"
                )

    urls = (SERVICES, "/lbadmin/cluster/l4/servers/", "/lbadmin/")
    grow(0, 2)
    for url in urls:
        count(url)  # warm up the session
    few = {url: count(url) for url in urls}
    grow(2, 12)
    assert {url: count(url) for url in urls} == few


def test_export_import_round_trip_keeps_layer4_and_its_states(admin) -> None:
    add_service(admin, label="IntEdgeAv3478", ports="3478", protocol="udp")
    service = L4VirtualService.objects.get()
    modify_service(admin, service, persistence_timeout="1800", scheduler="rr")
    add_server(admin, service, port="3478")
    L4RealServer.objects.update(admin_state="drain")
    exported = config_export()
    assert exported["layer4"]["virtual_services"][0]["real_servers"][0]["label"] == "EDGE-1"
    assert "admin_state" not in json.dumps(exported)  # operational state is not configuration
    config_import(actor=None, document=json.loads(json.dumps(exported)))
    assert config_export() == exported
    assert L4RealServer.objects.get().admin_state == "drain"
    assert "keepalived" in ConfigState.load().pending_engines

    bad = json.loads(json.dumps(exported))
    bad["layer4"]["virtual_services"][0]["check_path"] = "/x\n}"
    bad["layer4"]["virtual_services"][0]["real_servers"][0]["max_connections"] = -1
    with pytest.raises(ImportRejected) as rejected:
        config_import(actor=None, document=bad)
    assert (
        "layer4.virtual_services[0].check_path: Start with / and use letters, digits and "
        ". _ ~ % / ? & = + , : @ - only (no spaces), at most 255 characters."
    ) in rejected.value.problems
    assert config_export() == exported  # nothing changed
