"""The HA pair on one node: the pairing API's refusals, signed calls, keys re-wrapped for the
peer, the slave's read-only pages. The two-node tests (real HTTPS between two appliances in
network namespaces, sync, failover) are in tests/test_ha_pair.py."""

import base64
import json
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from lbadmin.models import AuditEntry, HaNode, PeerNonce, User, VirtualService
from lbadmin.services import ha
from lbadmin.services.certificates import certificate_default_ensure
from lbadmin.services.config import config_export
from lbadmin.services.secrets import secret_decrypt
from tests.support import ha_node_paired

pytestmark = pytest.mark.django_db
PAIR = "/lbadmin/api/ha/pair/"


def pairing(password: str, **changes) -> dict:
    return {
        "username": "loadbalancer",
        "password": password,
        "master_ip": "192.0.2.1",
        "slave_ip": "192.0.2.2",
        "master_node_id": str(uuid.uuid4()),
        "master_fingerprint": "ab" * 32,
        "pair_key": base64.b64encode(b"k" * 32).decode(),
    } | changes


def post_json(client, url: str, payload: dict, **headers):
    return client.post(url, json.dumps(payload), content_type="application/json", **headers)


def test_pairing_takes_the_peer_password_once_and_refuses_a_second_master(
    client, admin_user
) -> None:
    password = "Correct-Horse-9-battery"
    admin_user.set_password(password)
    admin_user.save()
    wrong = post_json(client, PAIR, pairing("nope"))
    assert wrong.status_code == 403 and "wrong password" in wrong.json()["error"]
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED).exists()
    assert HaNode.load().role == HaNode.Role.STANDALONE

    answer = post_json(client, PAIR, pairing(password))
    assert answer.status_code == 200, answer.content
    node = HaNode.load()
    assert answer.json()["node_id"] == str(node.node_id)
    assert (node.role, node.peer_ip, node.local_ip) == ("slave", "192.0.2.1", "192.0.2.2")
    assert ha.pair_key(node) == b"k" * 32  # stored encrypted, never in clear
    assert b"k" * 32 not in bytes(node.pair_key_encrypted)
    assert password not in json.dumps(list(AuditEntry.objects.values("detail")), default=str)

    again = post_json(client, PAIR, pairing(password, master_ip="192.0.2.9"))
    assert again.status_code == 409 and "already belongs to a pair" in again.json()["error"]


@pytest.mark.parametrize(
    "changes",
    [
        {"master_ip": "192.0.2.1\n"},
        {"pair_key": "short"},
        {"master_fingerprint": "zz" * 32},
        {"master_node_id": "not-a-uuid"},
    ],
)
def test_malformed_pairing_requests_change_nothing(client, admin_user, changes) -> None:
    admin_user.set_password("Correct-Horse-9-battery")
    admin_user.save()
    answer = post_json(client, PAIR, pairing("Correct-Horse-9-battery", **changes))
    assert answer.status_code == 409 and "malformed" in answer.json()["error"]
    assert HaNode.load().role == HaNode.Role.STANDALONE


def test_pairing_with_itself_is_refused(client, admin_user) -> None:
    admin_user.set_password("Correct-Horse-9-battery")
    admin_user.save()
    me = str(HaNode.load().node_id)
    answer = post_json(client, PAIR, pairing("Correct-Horse-9-battery", master_node_id=me))
    assert answer.status_code == 409 and "itself" in answer.json()["error"]


def header(name: str) -> str:
    """The WSGI key the test client takes for an HTTP header."""
    return f"HTTP_{name.upper().replace('-', '_')}"


def signed_headers(
    node_id: str,
    key: bytes,
    method: str,
    path: str,
    body: bytes,
    when: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """What the peer sends: a fresh random nonce unless one is given."""
    timestamp = f"{when if when is not None else time.time():.3f}"
    nonce = ha.nonce_new() if nonce is None else nonce
    return {
        header(ha.HEADER_NODE): node_id,
        header(ha.HEADER_TIME): timestamp,
        header(ha.HEADER_NONCE): nonce,
        header(ha.HEADER_SIGNATURE): ha.sign(key, method, path, timestamp, nonce, body),
    }


def paired_slave(client: Client, admin_user: User) -> str:
    """Make this node the slave of a master (key b"k" * 32); returns the master's node id."""
    admin_user.set_password("Correct-Horse-9-battery")
    admin_user.save()
    master = str(uuid.uuid4())
    answer = post_json(client, PAIR, pairing("Correct-Horse-9-battery", master_node_id=master))
    assert answer.status_code == 200, answer.content
    return master


def test_only_the_peer_with_the_pair_key_is_heard(client, admin_user) -> None:
    admin_user.set_password("Correct-Horse-9-battery")
    admin_user.save()
    master = str(uuid.uuid4())
    post_json(client, PAIR, pairing("Correct-Horse-9-battery", master_node_id=master))
    path = "/lbadmin/api/ha/status/"
    good = client.get(path, **signed_headers(master, b"k" * 32, "GET", path, b""))
    assert good.status_code == 200 and good.json()["role"] == "slave"
    for headers in (
        signed_headers(master, b"x" * 32, "GET", path, b""),  # another key
        signed_headers(str(uuid.uuid4()), b"k" * 32, "GET", path, b""),  # another node
        signed_headers(master, b"k" * 32, "GET", path, b"", when=time.time() - 3600),  # replay
        signed_headers(master, b"k" * 32, "GET", "/lbadmin/api/ha/unpair/", b""),  # other path
        {},
    ):
        assert client.get(path, **headers).status_code == 403
    assert HaNode.load().role == HaNode.Role.SLAVE


def test_keys_travel_rewrapped_and_the_hash_ignores_the_wrapping() -> None:
    certificate_default_ensure()
    document = config_export()
    wrapping = ha._wrapping(b"p" * 32)
    sent = ha.rewrap_keys(document, unwrap=secret_decrypt, wrap=wrapping.encrypt)
    assert (
        sent["ssl"]["certificates"][0]["key_encrypted"]
        != (document["ssl"]["certificates"][0]["key_encrypted"])
    )
    back = ha.rewrap_keys(sent, unwrap=wrapping.decrypt, wrap=lambda plain: plain)
    assert b"PRIVATE KEY" in back["ssl"]["certificates"][0]["key_encrypted"].encode()
    assert ha.config_hash(sent) == ha.config_hash(document)
    changed = json.loads(json.dumps(document))
    changed["layer7"]["settings"]["client_timeout_ms"] += 1
    assert ha.config_hash(changed) != ha.config_hash(document)


def test_the_slave_refuses_cluster_changes_and_says_why(admin) -> None:
    HaNode.objects.update_or_create(pk=1, defaults={"role": "slave", "peer_ip": "192.0.2.1"})
    page = admin.get("/lbadmin/cluster/l7/services/").content.decode()
    assert 'id="ha-slave-banner"' in page and "192.0.2.1" in page
    assert 'id="reload-haproxy"' not in page  # no blue box: the master applies
    response = admin.post(
        "/lbadmin/cluster/l7/services/add/",
        {"label": "x", "ip": "192.0.2.10", "ports": "80", "protocol": "http"},
    )
    assert response.status_code == 403
    assert not VirtualService.objects.exists()
    assert admin.post("/lbadmin/apply/").status_code == 403
    # Local pages still work: the slave's own password, System Overview.
    assert admin.get("/lbadmin/").status_code == 200


def test_pairing_form_refusals_are_shown_next_to_the_form(admin) -> None:
    from lbadmin.services.tls import webui_certificate_ensure

    # What lbadmin_setup makes on every appliance: the master sends its fingerprint.
    webui_certificate_ensure(cert_path=settings.LBADMIN_TLS_CERT, key_path=settings.LBADMIN_TLS_KEY)
    url = "/lbadmin/cluster/ha/"
    page = admin.get(url).content.decode()
    assert 'id="add-node"' in page and "Password for loadbalancer user on peer" in page
    same = admin.post(url, {"local_ip": "127.0.0.1", "peer_ip": "127.0.0.1", "password": "x"})
    assert "own address" in same.content.decode()
    hostile = admin.post(url, {"local_ip": "127.0.0.1\n", "peer_ip": "x", "password": "x"})
    assert hostile.status_code == 200 and HaNode.load().role == "standalone"
    # Nobody listens there: unreachable, nothing changes.
    port = settings.LBADMIN_HTTPS_PORT
    unreachable = admin.post(
        url, {"local_ip": "127.0.0.1", "peer_ip": "127.0.71.1", "password": "x"}
    ).content.decode()
    assert f"no appliance answers at https://127.0.71.1:{port}" in unreachable
    assert HaNode.load().role == "standalone"


def test_a_refused_push_leaves_the_slave_as_it_was() -> None:
    ha_node_paired("slave")
    VirtualService.objects.create(label="Running", ip="192.0.2.10", ports="80")
    before = config_export()
    pushed = json.loads(json.dumps(before))
    pushed["layer7"]["virtual_services"][0]["label"] = "Bad\nlabel"
    answer = ha.ha_accept_sync({"generation": 5, "document": pushed}, source_ip="192.0.2.1")
    assert answer["status"] == "refused" and "label" in answer["error"]
    assert config_export() == before
    garbage = ha.ha_accept_sync({"generation": 5, "document": "nope"}, source_ip="192.0.2.1")
    assert garbage["status"] == "refused" and "malformed" in garbage["error"]
    HaNode.objects.update(synced_generation=9)
    stale = ha.ha_accept_sync({"generation": 5, "document": before}, source_ip="192.0.2.1")
    assert stale["status"] == "refused" and "older than" in stale["error"]
    assert config_export() == before


def test_heartbeat_settings_are_validated_replicated_and_rendered(admin) -> None:
    from lbadmin.models import HaSettings
    from lbadmin.services.config import ImportRejected, config_import, keepalived_text

    url = "/lbadmin/cluster/ha/settings/"
    for bad in ("5", "105", "100\n", "50000"):
        admin.post(url, {"advert_interval": bad})
        assert HaSettings.load().advert_interval_ms == 100, bad
    admin.post(url, {"advert_interval": "200", "preempt": "on"})
    settings_ = HaSettings.load()
    assert (settings_.advert_interval_ms, settings_.preempt) == (200, True)
    document = config_export()
    assert document["ha"] == {"advert_interval_ms": 200, "preempt": True}

    # In a pair, keepalived.conf floats the services' addresses with these settings. Render
    # only: the loopback interface carries 127.0.0.0/8, nothing on the host changes.
    ha_node_paired("master", local_ip="127.0.0.1", peer_ip="127.0.0.2")
    VirtualService.objects.create(label="Web", ip="127.0.0.10", ports="80")
    text = keepalived_text(config_export(), {})
    assert "vrrp_instance VI_lbadmin" in text and "interface lo" in text
    assert "advert_int 0.2" in text
    assert not re.search(r"^\s*nopreempt$", text, re.MULTILINE)  # preempt is on
    assert "priority 150" in text
    assert "127.0.0.10/32 dev lo" in text

    bad = config_export()
    bad["ha"]["advert_interval_ms"] = 7
    refusal = (
        r"^ha\.advert_interval: The heartbeat interval must be a whole number from 10 to 40950\.$"
    )
    with pytest.raises(ImportRejected, match=refusal):
        config_import(actor=None, document=bad)


def test_pairing_is_refused_while_the_peer_has_the_factory_password(client, admin_user) -> None:
    admin_user.set_password("Correct-Horse-9-battery")
    admin_user.must_change_password = True  # as a factory-fresh appliance
    admin_user.save()
    answer = post_json(client, PAIR, pairing("Correct-Horse-9-battery"))
    assert answer.status_code == 403 and "factory password" in answer.json()["error"]
    assert HaNode.load().role == HaNode.Role.STANDALONE


def test_odd_signed_headers_are_refused_not_crashed(client, admin_user) -> None:
    admin_user.set_password("Correct-Horse-9-battery")
    admin_user.save()
    master = str(uuid.uuid4())
    post_json(client, PAIR, pairing("Correct-Horse-9-battery", master_node_id=master))
    path = "/lbadmin/api/ha/status/"
    for when in ("nan", "inf", "1e9", ""):
        headers = signed_headers(master, b"k" * 32, "GET", path, b"")
        headers["HTTP_X_LBADMIN_TIME"] = when
        assert client.get(path, **headers).status_code == 403, when
    headers = signed_headers(master, b"k" * 32, "GET", path, b"")
    headers["HTTP_X_LBADMIN_SIGNATURE"] = "é" * 64
    assert client.get(path, **headers).status_code == 403
    # Deep enough to pass json's recursion limit, small enough for the pairing route's body cap.
    nested = "[" * 5_000 + "]" * 5_000
    assert client.post(PAIR, nested, content_type="application/json").status_code == 400


def test_a_replayed_signed_call_is_refused(client, admin_user, monkeypatch) -> None:
    from lbadmin.views import ha_api

    restarts: list[str] = []
    monkeypatch.setattr(ha_api, "daemon_restart", lambda name: restarts.append(name) or "")
    master = paired_slave(client, admin_user)
    path, body = "/lbadmin/api/ha/restart-heartbeat/", b"{}"
    captured = signed_headers(master, b"k" * 32, "POST", path, body)
    first = client.post(path, body, content_type="application/json", **captured)
    assert first.status_code == 200 and first.json()["ok"], first.content
    # The same bytes again, well inside the time window: refused, keepalived not restarted.
    again = client.post(path, body, content_type="application/json", **captured)
    assert again.status_code == 403
    assert "already received" in again.json()["error"]
    assert restarts == ["keepalived"]
    # A new call (fresh nonce) from the peer is still heard.
    fresh = signed_headers(master, b"k" * 32, "POST", path, body)
    assert client.post(path, body, content_type="application/json", **fresh).status_code == 200
    assert restarts == ["keepalived", "keepalived"]


def test_a_replayed_read_is_refused_too(client, admin_user) -> None:
    master = paired_slave(client, admin_user)
    path = "/lbadmin/api/ha/status/"
    captured = signed_headers(master, b"k" * 32, "GET", path, b"")
    assert client.get(path, **captured).status_code == 200
    assert client.get(path, **captured).status_code == 403


def test_calls_dated_in_the_future_are_refused(client, admin_user) -> None:
    master = paired_slave(client, admin_user)
    path = "/lbadmin/api/ha/status/"
    ahead = client.get(
        path, **signed_headers(master, b"k" * 32, "GET", path, b"", when=time.time() + 60)
    )
    assert ahead.status_code == 403
    assert "ahead of this appliance's clock" in ahead.json()["error"]
    # A little skew between the clocks is fine.
    slight = signed_headers(master, b"k" * 32, "GET", path, b"", when=time.time() + 10)
    assert client.get(path, **slight).status_code == 200
    assert not PeerNonce.objects.filter(
        signed_at__gt=timezone.now() + timedelta(seconds=30)
    ).exists()


def test_a_call_from_the_past_window_with_a_fresh_nonce_is_heard(client, admin_user) -> None:
    master = paired_slave(client, admin_user)
    path = "/lbadmin/api/ha/status/"
    old = signed_headers(master, b"k" * 32, "GET", path, b"", when=time.time() - 200)
    assert client.get(path, **old).status_code == 200
    too_old = signed_headers(master, b"k" * 32, "GET", path, b"", when=time.time() - 400)
    answer = client.get(path, **too_old)
    assert answer.status_code == 403 and "s old" in answer.json()["error"]


@pytest.mark.parametrize(
    "nonce", ["", "abc", "g" * 32, "A" * 32, "a" * 31, "a" * 33, "a" * 31 + "\n"]
)
def test_a_missing_or_malformed_nonce_is_refused(client, admin_user, nonce) -> None:
    master = paired_slave(client, admin_user)
    path = "/lbadmin/api/ha/status/"
    headers = signed_headers(master, b"k" * 32, "GET", path, b"", nonce=nonce)
    answer = client.get(path, **headers)
    assert answer.status_code == 403 and "nonce" in answer.json()["error"]
    del headers[header(ha.HEADER_NONCE)]
    answer = client.get(path, **headers)
    assert answer.status_code == 403 and "nonce" in answer.json()["error"]
    assert not PeerNonce.objects.exists()


def test_the_nonce_is_bound_by_the_signature(client, admin_user) -> None:
    master = paired_slave(client, admin_user)
    path = "/lbadmin/api/ha/status/"
    headers = signed_headers(master, b"k" * 32, "GET", path, b"")
    # A replay with another nonce: the MAC no longer matches, and nothing is remembered.
    headers[header(ha.HEADER_NONCE)] = ha.nonce_new()
    answer = client.get(path, **headers)
    assert answer.status_code == 403 and "signature is wrong" in answer.json()["error"]
    assert not PeerNonce.objects.exists()


def test_remembered_nonces_are_purged_once_their_calls_are_too_old(client, admin_user) -> None:
    master = paired_slave(client, admin_user)
    path = "/lbadmin/api/ha/status/"
    stale = PeerNonce.objects.create(
        nonce="0" * 32, signed_at=timezone.now() - timedelta(seconds=ha.MAX_AGE_S + 5)
    )
    kept = PeerNonce.objects.create(
        nonce="1" * 32, signed_at=timezone.now() - timedelta(seconds=ha.MAX_AGE_S - 60)
    )
    assert (
        client.get(path, **signed_headers(master, b"k" * 32, "GET", path, b"")).status_code == 200
    )
    remembered = set(PeerNonce.objects.values_list("nonce", flat=True))
    assert stale.nonce not in remembered and kept.nonce in remembered and len(remembered) == 2


def test_peer_call_signs_with_a_fresh_nonce_the_receiver_accepts() -> None:
    """What peer_call sends passes verify_peer_call on the peer, exactly once."""
    from lbadmin.services.secrets import secret_encrypt

    master = HaNode(node_id=uuid.uuid4(), pair_key_encrypted=secret_encrypt(b"p" * 32))
    first = ha.signed_call_headers(master, "POST", "/lbadmin/api/ha/sync/", b"{}")
    second = ha.signed_call_headers(master, "POST", "/lbadmin/api/ha/sync/", b"{}")
    assert first[ha.HEADER_NONCE] != second[ha.HEADER_NONCE]
    assert ha.NONCE_RE.fullmatch(first[ha.HEADER_NONCE])
    slave = HaNode(
        role=HaNode.Role.SLAVE, peer_node_id=master.node_id,
        pair_key_encrypted=secret_encrypt(b"p" * 32),
    )  # fmt: skip
    ha.verify_peer_call(slave, "POST", "/lbadmin/api/ha/sync/", first, b"{}")
    with pytest.raises(ha.PeerAuthError, match="already received"):
        ha.verify_peer_call(slave, "POST", "/lbadmin/api/ha/sync/", first, b"{}")
    ha.verify_peer_call(slave, "POST", "/lbadmin/api/ha/sync/", second, b"{}")


def test_a_queued_push_shows_not_confirmed_until_the_slave_confirms(admin) -> None:
    """Issue 17, item 4: from the moment a push is queued until the slave answers that it runs
    this generation, the HA page and System Overview say "not confirmed since"."""
    from unittest import mock

    from lbadmin.models import ConfigRevision

    ha_node_paired("master", local_ip="192.0.2.2", peer_ip="192.0.2.1")
    revision = ConfigRevision.objects.create(
        generation=3, status=ConfigRevision.Status.APPLIED, document=config_export()
    )
    with mock.patch("lbadmin.tasks.ha_sync_task.delay") as queued:  # no worker here
        ha.ha_sync_request()
    assert queued.called
    since = HaNode.load().unconfirmed_since
    assert since is not None
    page = admin.get("/lbadmin/cluster/ha/").content.decode()
    assert 'id="ha-unconfirmed"' in page and 'id="ha-in-sync"' not in page
    assert 'id="ha-unconfirmed"' in admin.get("/lbadmin/").content.decode()
    with mock.patch("lbadmin.tasks.ha_sync_task.delay"):
        ha.ha_sync_request()  # a second push does not move "since"
    assert HaNode.load().unconfirmed_since == since

    # The slave confirms an older generation: a newer one still waits.
    ha._record_sync(HaNode.load(), ok=True, generation=2, hash_="x")
    assert HaNode.load().unconfirmed_since == since
    ha._record_sync(HaNode.load(), ok=True, generation=revision.generation, hash_="x")
    assert HaNode.load().unconfirmed_since is None
    page = admin.get("/lbadmin/cluster/ha/").content.decode()
    assert 'id="ha-in-sync"' in page and 'id="ha-unconfirmed"' not in page


@pytest.mark.timeout(30)  # the call's read timeout is 60 s: only the connect limit ends it
def test_a_peer_that_drops_connections_is_given_up_on_at_the_connect_timeout(settings) -> None:
    """A listener whose accept queue is full drops new SYNs, as a black-holed peer does."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    host, port = listener.getsockname()
    settings.LBADMIN_HTTPS_PORT = port
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue (backlog 0 takes one or two)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((host, port))
            fillers.append(filler)
        time.sleep(0.2)
        with pytest.raises(ha.PeerError) as failed:
            ha.peer_call(host, "status/", timeout=60)
        assert failed.value.unreachable and "timed out" in str(failed.value)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_keepalived_reports_its_vrrp_state_in_its_log() -> None:
    from lbadmin.engines.daemons import vrrp_states_from_log

    log = (
        "Mon Dec  7 23:11:36 2026: Starting Keepalived v2.2.7 (01/16,2022)\n"
        "Mon Dec  7 23:11:36 2026: (VI_eth1) Entering MASTER STATE\n"
        "Mon Dec  7 23:11:40 2026: Starting Keepalived v2.2.7 (01/16,2022)\n"  # restarted
        "Mon Dec  7 23:11:40 2026: (VI_eth1) Entering BACKUP STATE (init)\n"
        "Mon Dec  7 23:11:40 2026: (VI_eth2) Entering BACKUP STATE (init)\n"
        "Mon Dec  7 23:11:41 2026: (VI_eth2) Entering FAULT STATE\n"
        "Mon Dec  7 23:11:41 2026: (VI_x) Entering SOMETHING STATE\n"
    )
    assert vrrp_states_from_log(log) == {"VI_eth1": "BACKUP", "VI_eth2": "FAULT"}
    assert vrrp_states_from_log("") == {}


@pytest.mark.parametrize(
    ("local", "peer", "dual"),
    [("MASTER", "MASTER", True), ("MASTER", "BACKUP", False), ("MASTER", None, False),
     ("BACKUP", "MASTER", False), ("stopped", "MASTER", False)],
)  # fmt: skip
def test_two_masters_are_shown_in_red_with_what_to_do(admin, client, local, peer, dual) -> None:
    """Issue 17: when both nodes say they are VRRP master (a partition, a crash, a bug), the
    HA page, System Overview and the health endpoint say so. The peer's answer is its status
    API's (a peer that does not answer is None); this node's is keepalived's log."""
    from unittest import mock

    ha_node_paired("master", local_ip="192.0.2.2", peer_ip="192.0.2.1")
    answer = {} if peer is None else {"vrrp_state": peer, "config_hash": "ab" * 32}
    call = mock.patch.object(
        ha, "call_peer", side_effect=ha.PeerError("down") if peer is None else None,
        return_value=answer,
    )  # fmt: skip
    with mock.patch.object(ha, "vrrp_state_local", return_value=local), call:
        overview = admin.get("/lbadmin/").content.decode()
        page = admin.get("/lbadmin/cluster/ha/").content.decode()
        health = client.get("/lbadmin/health/")
    for text in (overview, page):
        assert ('id="ha-dual-master"' in text) == dual
    assert f"<strong>{local}</strong>" in overview
    # Both configuration hashes on System Overview (the peer's as it reports it).
    assert ("<code>abababababab</code>" in overview) == (peer is not None)
    assert (health.status_code, health.json()["ha"]["dual_master"]) == (
        (503, True) if dual else (200, False)
    )
    if dual:
        assert health.json()["status"] == "dual-master"
        assert "Restore the network between 192.0.2.2 and 192.0.2.1" in overview


def test_a_peers_vrrp_state_outside_the_allowlist_is_not_believed() -> None:
    from unittest import mock

    ha_node_paired("master", local_ip="192.0.2.2", peer_ip="192.0.2.1")
    with (
        mock.patch.object(ha, "vrrp_state_local", return_value="MASTER"),
        mock.patch.object(
            ha, "call_peer", return_value={"vrrp_state": "<b>MASTER</b>", "config_hash": "<i>"}
        ),
    ):
        state = ha.ha_pair_state()
    assert state is not None and state.peer is None and not state.dual_master
    assert state.peer_hash == ""


def test_the_slave_answers_a_push_once_imported_and_the_master_follows_its_apply() -> None:
    """Issue 17, item 4: no call waits on the slave's daemons. The slave answers "queued"
    once the document is imported; the master follows the apply with short status calls."""
    from unittest import mock

    from lbadmin.models import ConfigRevision

    ha_node_paired("slave")
    pushed = config_export()
    queued = ConfigRevision(kind=ConfigRevision.Kind.SYNC, status=ConfigRevision.Status.QUEUED)

    def apply_request(**kwargs: object) -> ConfigRevision:
        queued.save()
        return queued

    with mock.patch("lbadmin.services.config.config_apply_request", side_effect=apply_request):
        answer = ha.ha_accept_sync({"generation": 5, "document": pushed}, source_ip="192.0.2.1")
    assert answer == {"status": "queued", "revision": queued.pk}
    assert ha.ha_status_local()["sync"] == {
        "revision": queued.pk, "finished": False, "status": "queued", "hash": "", "error": "",
    }  # fmt: skip

    # The master's side: status calls until that revision has finished.
    progress = [
        {"sync": {"revision": queued.pk - 1, "finished": True, "status": "applied"}},  # older
        {"sync": {"revision": queued.pk, "finished": False, "status": "running"}},
        {"sync": {"revision": queued.pk, "finished": True, "status": "applied", "hash": "h"}},
    ]
    with (
        mock.patch.object(ha, "call_peer", side_effect=progress) as calls,
        mock.patch.object(ha, "SYNC_POLL_S", 0),
    ):
        outcome = ha._slave_apply_outcome(HaNode.load(), queued.pk)
    assert outcome["status"] == "applied" and outcome["hash"] == "h"
    assert [c.kwargs["timeout"] for c in calls.call_args_list] == [ha.STATUS_TIMEOUT_S] * 3
    with (
        mock.patch.object(ha, "call_peer", return_value={"sync": None}),
        mock.patch.object(ha, "SYNC_POLL_S", 0),
        mock.patch.object(ha, "SYNC_WAIT_S", 0),
        pytest.raises(ha.PeerError, match="did not finish"),
    ):
        ha._slave_apply_outcome(HaNode.load(), queued.pk)


@pytest.mark.parametrize("state", ["MASTER", "BACKUP"])
def test_breaking_the_pair_keeps_the_holders_addresses_and_empties_the_other(state) -> None:
    """Issue 17, item 3 (one node; the pair test breaks a real one under load)."""
    from unittest import mock

    from lbadmin.services.config import keepalived_text

    ha_node_paired("slave", local_ip="127.0.0.2", peer_ip="127.0.0.3")
    VirtualService.objects.create(label="Web", ip="127.0.0.10", ports="80")
    with (
        mock.patch.object(ha, "vrrp_state_local", return_value=state),
        mock.patch("lbadmin.engines.netinfo.set_nonlocal_bind"),  # the host's sysctl: no
        mock.patch("lbadmin.services.config.config_apply_request") as applied,
    ):
        warning = ha.ha_break(actor=None, source_ip=None, tell_peer=False)
    assert warning == "" and applied.called
    node = HaNode.load()
    assert node.role == "standalone" and node.holds_addresses_standalone == (state == "MASTER")
    text = keepalived_text(config_export(), {})
    assert "vrrp_instance" not in text
    if state == "MASTER":  # keeps serving, holding the address itself (loopback holds 127/8)
        assert VirtualService.objects.filter(label="Web").exists()
        assert "127.0.0.10/32 dev lo" in text.split("static_ipaddress {", 1)[1]
    else:  # releases its services: nothing binds an address it does not hold
        assert not VirtualService.objects.exists()
        assert "static_ipaddress" not in text
