"""The HA clustered pair: pairing two appliances, pushing the master's configuration to the
slave after every apply, and what each node tells the other. What the configuration pipeline
needs of the pair without calling the peer (the floating addresses and the VRRP instance, the
HA settings, queuing a push) is lbadmin.services.ha_node, below lbadmin.services.config.

Trust between the nodes:
- Pairing: the master calls the peer's HTTPS API once with the peer's `loadbalancer` password
  (checked behind the same login throttle as the WebUI, never stored) and hands it a fresh
  random pair key. Each side pins the other's WebUI certificate (SHA-256).
- Afterwards every call carries an HMAC-SHA256 of method, path, time, a random nonce and body
  under the pair key. The receiver checks, in this order, the sender's node id, the time (at
  most MAX_AGE_S old, at most MAX_FUTURE_SKEW_S ahead of its own clock), the MAC, and last
  that it has not seen the nonce yet: it remembers nonces (PeerNonce) as long as their time is
  acceptable, so a captured call cannot be replayed (a second keepalived restart, a sync
  applied again). Only calls that passed the MAC are remembered, so forged ones cannot fill
  the table.
- Private keys of certificates travel re-encrypted under a key derived from the pair key; each
  node stores them under its own key file.
"""

import base64
import hashlib
import hmac
import http.client
import json
import re
import secrets
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from lbadmin import allowlists
from lbadmin.engines import netinfo
from lbadmin.models import AuditEntry, ConfigRevision, HaNode, PeerNonce, User
from lbadmin.services import config
from lbadmin.services.audit import audit_record
from lbadmin.services.changes import KEEPALIVED, config_changed
from lbadmin.services.daemons import daemon_controllers, daemon_restart
from lbadmin.services.ha_node import (
    ha_sync_request,  # noqa: F401  here too; defined below config, which calls it
    holds_floating_addresses,
    pair_key,
)
from lbadmin.services.secrets import secret_decrypt, secret_encrypt

API_PREFIX = "/lbadmin/api/ha/"
HEADER_NODE = "X-Lbadmin-Node"
HEADER_TIME = "X-Lbadmin-Time"
HEADER_SIGNATURE = "X-Lbadmin-Signature"
HEADER_NONCE = "X-Lbadmin-Nonce"
MAX_AGE_S = 300  # how old a signed call may be; its nonce is remembered that long
# How far ahead of the receiver's clock a call may be dated: some clock skew, no more, so a call
# withheld on the way (or signed ahead) cannot be delivered long after it was made.
MAX_FUTURE_SKEW_S = 30
NONCE_BYTES = 16  # 128 bits, sent as 32 lowercase hex digits
CALL_TIMEOUT_S = 10.0
# A peer that drops packets is given up on this fast, whatever the call's read timeout.
CONNECT_TIMEOUT_S = 3.0
SYNC_WAIT_S = 90.0  # how long the master waits for the slave's apply to finish
# The slave answers a push once it has imported it (its apply then runs on its own), and the
# master follows that apply with short status calls: no call waits on the slave's daemons.
SYNC_IMPORT_TIMEOUT_S = 30.0  # a 10,000-server document is validated whole before the answer
STATUS_TIMEOUT_S = 5.0
SYNC_POLL_S = 0.5
MAX_BODY = 16 * 1024 * 1024
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")  # certificate fingerprints, configuration hashes
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
NONCE_RE = re.compile(rf"[0-9a-f]{{{2 * NONCE_BYTES}}}")


class PeerError(Exception):
    """The peer could not be reached or refused; the message is fit for the administrator."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class PeerAuthError(Exception):
    """A call that claims to come from the peer does not prove it."""


# --- Keys and signatures -------------------------------------------------------------------


def _wrapping(key: bytes) -> Fernet:
    """The Fernet key certificates' private keys travel under (derived, not the MAC key)."""
    derived = hashlib.sha256(b"lbadmin certificate keys\0" + key).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def sign(key: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    # Unambiguous: method, path, timestamp and nonce never hold a newline (timestamp and nonce
    # are checked against their patterns before the MAC is).
    message = f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def nonce_new() -> str:
    return secrets.token_hex(NONCE_BYTES)


def signed_call_headers(node: HaNode, method: str, path: str, body: bytes) -> dict[str, str]:
    """The headers that prove a call comes from ``node`` (its peer checks them)."""
    timestamp = f"{time.time():.3f}"
    nonce = nonce_new()
    return {
        HEADER_NODE: str(node.node_id),
        HEADER_TIME: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(pair_key(node), method, path, timestamp, nonce, body),
    }


def verify_peer_call(
    node: HaNode, method: str, path: str, headers: Any, body: bytes | Callable[[], bytes]
) -> None:
    """Raises PeerAuthError unless the call is signed by this node's paired peer and is not a
    replay. Checks are cheapest first; the nonce is only remembered once the MAC is right.
    ``body`` may be a function that reads it: it is read only once the headers passed, so a
    caller without the pair's node id and a fresh time cannot make this node read a large body.
    """
    if not node.paired or not node.peer_node_id:
        raise PeerAuthError("this appliance is not in a pair")
    if headers.get(HEADER_NODE, "") != str(node.peer_node_id):
        raise PeerAuthError("the call does not come from this appliance's peer")
    timestamp = headers.get(HEADER_TIME, "")
    if not TIMESTAMP_RE.fullmatch(timestamp):  # float() would take "nan", "inf"
        raise PeerAuthError("the call carries no valid time")
    signed_at = float(timestamp)
    age = time.time() - signed_at
    if age < -MAX_FUTURE_SKEW_S:
        raise PeerAuthError(
            f"the call is dated {-age:.0f} s ahead of this appliance's clock (at most "
            f"{MAX_FUTURE_SKEW_S} s allowed): set both nodes' clocks right"
        )
    if age > MAX_AGE_S:
        raise PeerAuthError(
            f"the call is {age:.0f} s old by this appliance's clock (at most {MAX_AGE_S} s "
            "allowed): set both nodes' clocks right"
        )
    nonce = headers.get(HEADER_NONCE, "")
    if not NONCE_RE.fullmatch(nonce):
        raise PeerAuthError("the call carries no valid nonce")
    data = body() if callable(body) else body
    expected = sign(pair_key(node), method, path, timestamp, nonce, data).encode()
    given = headers.get(HEADER_SIGNATURE, "").encode("utf-8", "replace")
    if not hmac.compare_digest(expected, given):
        raise PeerAuthError("the call's signature is wrong")
    if not _nonce_remember(nonce, signed_at=signed_at):
        raise PeerAuthError("the call was already received once: a replay is refused")


def _nonce_remember(nonce: str, *, signed_at: float) -> bool:
    """Insert-or-refuse: False when the nonce was seen before. The unique column decides, so
    two copies of one call arriving at once cannot both pass."""
    # Forget nonces whose calls are too old to pass the time check anyway.
    cutoff = datetime.fromtimestamp(time.time() - MAX_AGE_S, tz=UTC)
    PeerNonce.objects.filter(signed_at__lt=cutoff).delete()
    try:
        with transaction.atomic():  # a savepoint: the refusal leaves any outer transaction usable
            PeerNonce.objects.create(
                nonce=nonce, signed_at=datetime.fromtimestamp(signed_at, tz=UTC)
            )
    except IntegrityError:
        return False
    return True


def webui_fingerprint() -> str:
    """SHA-256 of this node's WebUI certificate (DER), which the peer pins."""
    certificate = x509.load_pem_x509_certificate(settings.LBADMIN_TLS_CERT.read_bytes())
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


# --- Calling the peer ------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerAnswer:
    status: int
    data: dict[str, Any]
    fingerprint: str  # of the certificate the peer presented


def peer_call(
    peer_ip: str,
    path: str,
    payload: dict[str, Any] | None = None,
    *,
    node: HaNode | None = None,
    pinned: str = "",
    timeout: float = CALL_TIMEOUT_S,
) -> PeerAnswer:
    """One HTTPS call to the peer's API (POST with a JSON body, or GET when payload is None);
    signed when ``node`` is given; the peer's certificate must match ``pinned`` if set."""
    method = "GET" if payload is None else "POST"
    body = b"" if payload is None else json.dumps(payload, sort_keys=True).encode()
    url_path = API_PREFIX + path
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if node is not None:
        headers |= signed_call_headers(node, method, url_path, body)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed WebUI certificates: pinned instead
    host = f"[{peer_ip}]" if ":" in peer_ip else peer_ip
    where = f"https://{host}:{settings.LBADMIN_HTTPS_PORT}"
    connection = http.client.HTTPSConnection(
        peer_ip, settings.LBADMIN_HTTPS_PORT, timeout=min(timeout, CONNECT_TIMEOUT_S),
        context=context,
    )  # fmt: skip
    try:
        connection.connect()  # TCP and TLS within CONNECT_TIMEOUT_S
        connection.sock.settimeout(timeout)
        der = connection.sock.getpeercert(binary_form=True) or b""
        fingerprint = hashlib.sha256(der).hexdigest()
        if pinned and not hmac.compare_digest(fingerprint, pinned):
            raise PeerError(
                f"{where} presented another certificate than at pairing (SHA-256 {fingerprint}): "
                "refusing to talk to it. Break the pair and pair again if the peer was rebuilt."
            )
        connection.request(method, url_path, body=body or None, headers=headers)
        response = connection.getresponse()
        raw = response.read(MAX_BODY)
    except (OSError, http.client.HTTPException) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise PeerError(f"no appliance answers at {where} ({reason})", unreachable=True) from None
    finally:
        connection.close()
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        raise PeerError(
            f"{where} answered, but not as an lbadmin appliance (HTTP {response.status})"
        ) from None
    return PeerAnswer(status=response.status, data=data, fingerprint=fingerprint)


def call_peer(node: HaNode, path: str, payload: dict[str, Any] | None = None, **kw: Any) -> dict:
    """A signed call to this node's peer, which must present the certificate pinned at
    pairing; PeerError unless it answers 200."""
    if not SHA256_HEX_RE.fullmatch(node.peer_fingerprint or ""):
        raise PeerError("no certificate of the peer is pinned: break the pair and pair again")
    answer = peer_call(node.peer_ip, path, payload, node=node, pinned=node.peer_fingerprint, **kw)
    if answer.status != 200:
        raise PeerError(str(answer.data.get("error") or f"the peer answered HTTP {answer.status}"))
    return answer.data


# --- Pairing ---------------------------------------------------------------------------------


def peer_fingerprint(peer_ip: str) -> str:
    """The SHA-256 of the certificate the appliance at peer_ip presents, for the administrator
    to compare with the one its own HA page shows before its password is sent to it.
    PeerError when nothing, or something that is not an lbadmin appliance, answers."""
    answer = peer_call(peer_ip, "status/", timeout=5)  # unsigned: refused, but it answers
    return answer.fingerprint


def ha_pair(
    *,
    actor: User | None,
    local_ip: str,
    peer_ip: str,
    password: str,
    source_ip: str | None,
    fingerprint: str,
) -> list[str]:
    """Pair this node (the master) with a standalone appliance at peer_ip (the slave), which
    must present the certificate ``fingerprint`` the administrator confirmed. Returns the
    progress steps; raises PeerError with the reason when it cannot."""
    node = HaNode.load()
    if node.paired:
        raise PeerError(f"this appliance is already the {node.role} of a pair with {node.peer_ip}")
    if local_ip == peer_ip or netinfo.holds_address(peer_ip):
        raise PeerError(f"{peer_ip} is this appliance itself: give the other appliance's address")
    if not netinfo.holds_address(local_ip):
        raise PeerError(f"{local_ip} is not an address of this appliance")
    steps = [f"Attempting to pair with {peer_ip}.."]
    key = secrets.token_bytes(32)
    answer = peer_call(
        peer_ip,
        "pair/",
        {
            "username": settings.LBADMIN_DEFAULT_USERNAME,
            "password": password,
            "master_ip": local_ip,
            "slave_ip": peer_ip,
            "master_node_id": str(node.node_id),
            "master_fingerprint": webui_fingerprint(),
            "pair_key": base64.b64encode(key).decode(),
        },
        pinned=fingerprint,  # the certificate the administrator confirmed, or nothing is sent
    )
    if answer.status != 200:
        raise PeerError(str(answer.data.get("error") or f"the peer answered HTTP {answer.status}"))
    try:
        peer_node_id = uuid.UUID(str(answer.data["node_id"]))
    except (KeyError, ValueError):
        raise PeerError(f"{peer_ip} answered the pairing without a valid node id") from None
    steps.append("configuring..")
    with transaction.atomic():
        node = HaNode.objects.select_for_update().get(pk=node.pk)
        node.role = HaNode.Role.MASTER
        node.local_ip, node.peer_ip, node.peer_node_id = local_ip, peer_ip, peer_node_id
        node.peer_fingerprint = answer.fingerprint
        node.pair_key_encrypted = secret_encrypt(key)
        node.paired_at = timezone.now()
        node.out_of_sync_since, node.sync_error = timezone.now(), "not synced yet"
        node.holds_addresses_standalone = False  # VRRP floats them again
        node.save()
        audit_record(
            action=AuditEntry.Action.HA_PAIRED,
            actor=actor,
            source_ip=source_ip,
            target=f"slave {peer_ip}",
        )
        # Apply here (keepalived gets the VRRP instance, HAProxy may bind floating
        # addresses), which then pushes the configuration to the slave.
        transaction.on_commit(lambda: _apply_after_pairing(actor))
    steps.append(f"Paired: this appliance ({local_ip}) is the master, {peer_ip} the slave.")
    return steps


def _apply_after_pairing(actor: User | None) -> None:
    config_changed((KEEPALIVED,))
    config.config_apply_request(actor=actor)


def ha_accept_pairing(payload: dict[str, Any], *, source_ip: str | None) -> HaNode:
    """The slave's side of pairing (its API), after the password was checked. Raises
    PeerError (with an HTTP status in .args[1]) when it refuses."""
    node = HaNode.load()
    try:
        master_ip = allowlists.clean_ip(str(payload["master_ip"]))
        slave_ip = allowlists.clean_ip(str(payload["slave_ip"]))
        master_node_id = uuid.UUID(str(payload["master_node_id"]))
        fingerprint = str(payload["master_fingerprint"])
        key = base64.b64decode(str(payload["pair_key"]), validate=True)
    except (KeyError, ValueError, TypeError, ValidationError):
        raise PeerError("the pairing request is malformed") from None
    if len(key) != 32 or not SHA256_HEX_RE.fullmatch(fingerprint):
        raise PeerError("the pairing request is malformed")
    if master_node_id == node.node_id:
        raise PeerError("that is this appliance itself")
    if node.paired:
        raise PeerError(f"this appliance already belongs to a pair with {node.peer_ip}")
    node.role = HaNode.Role.SLAVE
    node.local_ip, node.peer_ip, node.peer_node_id = slave_ip, master_ip, master_node_id
    node.peer_fingerprint = fingerprint
    node.pair_key_encrypted = secret_encrypt(key)
    node.paired_at = timezone.now()
    node.holds_addresses_standalone = False  # VRRP floats them again
    node.save()
    audit_record(
        action=AuditEntry.Action.HA_PAIRED, source_ip=source_ip, target=f"master {master_ip}"
    )
    return node


def ha_break(*, actor: User | None, source_ip: str | None, tell_peer: bool = True) -> str:
    """Break the pair: both nodes become standalone (the peer is told if it answers).

    The node that holds the floating addresses (VRRP master, by keepalived's own word) keeps
    them without VRRP and goes on serving its services; the other removes its virtual
    services (they were the pair's, served by the first), so it no longer binds addresses it
    does not hold. The passive node changes first and waits for its apply: were the active
    one to stop advertising while the passive one still ran VRRP, the passive one would take
    the addresses over (and the clients' ARP with them) just before dropping them. Returns a
    warning when the peer could not be told."""
    node = HaNode.load()
    holds = node.paired and vrrp_state_local() == "MASTER"
    warning = ""
    if node.paired and tell_peer and holds:
        warning = _tell_peer_unpaired(node)  # it is passive: it lets go first
    peer = node.peer_ip
    HaNode.objects.filter(pk=node.pk).update(
        role=HaNode.Role.STANDALONE, local_ip=None, peer_ip=None, peer_node_id=None,
        peer_fingerprint="", pair_key_encrypted=b"", paired_at=None, synced_generation=None,
        synced_hash="", synced_at=None, out_of_sync_since=None, sync_error="",
        unconfirmed_since=None, holds_addresses_standalone=holds,
    )  # fmt: skip
    audit_record(
        action=AuditEntry.Action.HA_BROKEN, actor=actor, source_ip=source_ip, target=f"peer {peer}"
    )
    if not holds:
        _release_floating_services(actor=actor, peer=peer)
    # keepalived stops floating the addresses (the holder keeps them as its own); and this
    # node binds only addresses it holds again.
    try:
        netinfo.set_nonlocal_bind(False)
    except netinfo.NetinfoError as error:
        warning = f"{warning} ip_nonlocal_bind could not be reset: {error}".strip()
    revision = config.config_apply_request(actor=actor)
    if not holds:
        config.revision_wait(revision, BREAK_APPLY_WAIT_S)  # no VRRP here before the peer hears
        if node.paired and tell_peer:
            warning = _tell_peer_unpaired(node)
    return warning


BREAK_APPLY_WAIT_S = 30.0


def _tell_peer_unpaired(node: HaNode) -> str:
    """Tell the peer the pair is broken (a passive peer answers once it has applied)."""
    try:
        call_peer(node, "unpair/", {}, timeout=BREAK_APPLY_WAIT_S + 10)
    except PeerError as error:
        return f"The peer was not told ({error}): break the pair on it too."
    return ""


def _release_floating_services(*, actor: User | None, peer: str | None) -> None:
    """The passive node of a broken pair: its virtual services (and their SSL terminations)
    go; certificates and settings stay. One validated import, like any other."""
    document = config.config_export()
    document["layer7"]["virtual_services"] = []
    document["layer4"]["virtual_services"] = []
    document["ssl"]["terminations"] = []
    config.config_import(
        actor=actor, document=document, reason=f"pair with {peer} broken: the peer serves them"
    )


# --- Configuration sync ------------------------------------------------------------------------


def config_hash(document: dict[str, Any]) -> str:
    """The configuration's identity, the same on both nodes: the document without the
    wrapped private keys (each node stores them under its own key)."""
    stripped = json.loads(json.dumps(document))
    for certificate in stripped.get("ssl", {}).get("certificates", []):
        certificate.pop("key_encrypted", None)
    canonical = json.dumps(stripped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def rewrap_keys(document: dict[str, Any], *, unwrap: Any, wrap: Any) -> dict[str, Any]:
    """A copy of the document whose certificates' private keys are unwrapped with one
    function and wrapped with another (this node's key file ↔ the pair's key)."""
    copy = json.loads(json.dumps(document))
    for certificate in copy["ssl"]["certificates"]:
        plain = unwrap(certificate["key_encrypted"].encode("ascii"))
        certificate["key_encrypted"] = wrap(plain).decode("ascii")
    return copy


def running_revision() -> ConfigRevision | None:
    """The last revision this node applied (what its daemons run)."""
    return (
        ConfigRevision.objects.filter(
            status__in=[ConfigRevision.Status.APPLIED, ConfigRevision.Status.UNCHANGED]
        )
        .exclude(document=None)
        .first()
    )


def ha_sync_push() -> bool:
    """Push what this master runs to its slave. True when the slave runs it too. Records the
    outcome for the HA page and System Overview; raises PeerError when the slave is
    unreachable (the task retries with backoff)."""
    node = HaNode.load()
    if node.role != HaNode.Role.MASTER:
        return True
    revision = running_revision()
    if revision is None:
        return False
    wrapping = _wrapping(pair_key(node))
    document = rewrap_keys(revision.document, unwrap=secret_decrypt, wrap=wrapping.encrypt)
    expected = config_hash(revision.document)
    try:
        answer = call_peer(
            node,
            "sync/",
            {"generation": revision.generation, "document": document},
            timeout=SYNC_IMPORT_TIMEOUT_S,
        )
        if answer.get("status") == "queued":
            answer = _slave_apply_outcome(node, answer.get("revision"))
    except PeerError as error:
        _record_sync(node, ok=False, error=str(error))
        raise
    ok = answer.get("status") in ("applied", "unchanged") and answer.get("hash") == expected
    error = (
        "" if ok else str(answer.get("error") or f"the slave's apply ended {answer.get('status')}")
    )
    _record_sync(node, ok=ok, error=error, generation=revision.generation, hash_=expected)
    return ok


def _slave_apply_outcome(node: HaNode, revision: object) -> dict[str, Any]:
    """Follow the slave's apply of a push (its status API, one short call at a time) until it
    finishes; its outcome as the sync answer gives it. PeerError if the slave stops answering
    or does not finish within SYNC_WAIT_S."""
    deadline = time.monotonic() + SYNC_WAIT_S
    while True:
        sync = call_peer(node, "status/", timeout=STATUS_TIMEOUT_S).get("sync")
        if isinstance(sync, dict) and sync.get("revision") == revision and sync.get("finished"):
            return sync
        if time.monotonic() >= deadline:
            raise PeerError(f"the slave's apply did not finish within {SYNC_WAIT_S:.0f} s")
        time.sleep(SYNC_POLL_S)


def _record_sync(
    node: HaNode, *, ok: bool, error: str = "", generation: int | None = None, hash_: str = ""
) -> None:
    now = timezone.now()
    if ok:
        HaNode.objects.filter(pk=node.pk).update(
            synced_generation=generation, synced_hash=hash_, synced_at=now,
            out_of_sync_since=None, sync_error="",
        )  # fmt: skip
        running = running_revision()
        if running is None or running.generation == generation:  # not if a newer one waits
            HaNode.objects.filter(pk=node.pk).update(unconfirmed_since=None)
    else:
        HaNode.objects.filter(pk=node.pk, out_of_sync_since=None).update(out_of_sync_since=now)
        HaNode.objects.filter(pk=node.pk).update(sync_error=error[:4000])


def ha_accept_sync(payload: dict[str, Any], *, source_ip: str | None) -> dict[str, Any]:
    """The slave's side of a push: import (validated whole, as any import), queue the apply
    through its own pipeline and answer "queued" with the revision (or "refused"). A refused
    document leaves the slave as it was."""
    node = HaNode.load()
    generation = payload.get("generation")
    if type(generation) is not int:
        return {"status": "refused", "error": "the push carries no generation"}
    if node.synced_generation is not None and generation < node.synced_generation:
        # A late or repeated push of an older configuration must not roll the slave back.
        return {
            "status": "refused",
            "error": f"older than the configuration this slave already runs "
            f"({generation} < {node.synced_generation})",
        }
    wrapping = _wrapping(pair_key(node))
    try:
        document = rewrap_keys(payload["document"], unwrap=wrapping.decrypt, wrap=secret_encrypt)
    except (KeyError, TypeError, AttributeError, InvalidToken, UnicodeError):
        return {"status": "refused", "error": "the pushed configuration is malformed"}
    try:
        reason = f"sync from master {node.peer_ip}"
        config.config_import(actor=None, document=document, reason=reason)
    except config.ImportRejected as rejected:
        return {"status": "refused", "error": "; ".join(rejected.problems)[:4000]}
    audit_record(
        action=AuditEntry.Action.HA_SYNCED, source_ip=source_ip, target=f"master {node.peer_ip}"
    )
    HaNode.objects.filter(pk=node.pk).update(synced_generation=generation, synced_at=timezone.now())
    revision = config.config_apply_request(actor=None, kind=ConfigRevision.Kind.SYNC)
    # Answered now: the master follows the apply through the status API (last_sync_outcome).
    return {"status": "queued", "revision": revision.pk}


def last_sync_outcome() -> dict[str, Any] | None:
    """The slave's latest apply of a push: what the master's push waits for."""
    revision = ConfigRevision.objects.filter(kind=ConfigRevision.Kind.SYNC).order_by("-pk").first()
    if revision is None:
        return None
    return {
        "revision": revision.pk,
        "finished": revision.finished,
        "status": revision.status,
        "hash": config_hash(revision.document) if revision.document else "",
        "error": revision.error,
    }


# --- What the nodes tell each other ------------------------------------------------------------


def ha_status_local() -> dict[str, Any]:
    """This node as its peer sees it (the status API)."""
    node = HaNode.load()
    revision = running_revision()
    return {
        "role": node.role,
        "node_id": str(node.node_id),
        "config_hash": config_hash(revision.document) if revision else "",
        "active": holds_floating_addresses(),
        "vrrp_state": vrrp_state_local(),
        "sync": last_sync_outcome(),
    }


VRRP_STOPPED = "stopped"  # keepalived is not running
VRRP_STATES = frozenset({"MASTER", "BACKUP", "FAULT", VRRP_STOPPED, ""})
DUAL_MASTER_ADVICE = (
    "Both appliances are VRRP master and hold the floating addresses: they do not hear each "
    "other's adverts (the link between them is down or filtered, or keepalived failed on one). "
    "Restore the network between {local} and {peer}; keepalived then leaves one master. If "
    "both stay master, use Restart heartbeat on the appliance that should be passive."
)


def vrrp_state_local() -> str:
    """This node's VRRP state as keepalived reports it (its log, not interface addresses):
    "MASTER", "BACKUP", "FAULT", "stopped", or "" when not in a pair or no instance runs.
    The instances form one sync group, so they agree; a fault or a master wins if not."""
    if not HaNode.load().paired:
        return ""
    control = daemon_controllers()["keepalived"]
    if control.pid() is None:
        return VRRP_STOPPED
    states = set(control.vrrp_states().values())
    return next((state for state in ("FAULT", "MASTER", "BACKUP") if state in states), "")


@dataclass(frozen=True)
class PairState:
    """Both nodes' VRRP states; ``peer`` is None when the peer does not answer."""

    local_ip: str
    peer_ip: str
    local: str
    peer: str | None
    local_hash: str = ""  # of the configuration each node runs ("" none yet or not answering)
    peer_hash: str = ""
    confirmed_at: datetime | None = None  # the slave last confirmed it runs the master's

    @property
    def dual_master(self) -> bool:
        return self.local == "MASTER" and self.peer == "MASTER"

    @property
    def advice(self) -> str:
        return DUAL_MASTER_ADVICE.format(local=self.local_ip, peer=self.peer_ip)


def ha_pair_state(*, timeout: float = 1.0) -> PairState | None:
    """What each node of the pair says of itself (None on a standalone node). One call to the
    peer; a peer that does not answer within ``timeout`` is "not answering"."""
    node = HaNode.load()
    if not node.paired:
        return None
    try:
        answer = call_peer(node, "status/", timeout=timeout)
    except PeerError:
        answer = None
    revision = running_revision()
    return pair_state(
        node,
        local_state=vrrp_state_local(),
        local_hash=config_hash(revision.document) if revision else "",
        answer=answer,
    )


def pair_state(
    node: HaNode, *, local_state: str, local_hash: str, answer: dict[str, Any] | None
) -> PairState:
    """Both nodes' states from this node's own and the peer's status answer (None: it did not
    answer); what the peer says is believed only within its allowlists."""
    answer = answer or {}
    peer, peer_hash = answer.get("vrrp_state"), answer.get("config_hash")
    return PairState(
        local_ip=node.local_ip or "",
        peer_ip=node.peer_ip or "",
        local=local_state,
        peer=peer if isinstance(peer, str) and peer in VRRP_STATES else None,
        local_hash=local_hash,
        peer_hash=peer_hash
        if isinstance(peer_hash, str) and SHA256_HEX_RE.fullmatch(peer_hash)
        else "",
        confirmed_at=node.synced_at if node.role == HaNode.Role.MASTER else None,
    )


# --- Floating addresses: who holds them --------------------------------------------------------


def ha_hand_over(*, actor: User | None, source_ip: str | None) -> str:
    """Let the peer take the floating addresses: restart keepalived here, so this node stops
    sending adverts for a moment and the peer becomes master; with nopreempt (the default)
    this node then stays backup. Returns '' or keepalived's error."""
    error = daemon_restart("keepalived")
    audit_record(
        action=AuditEntry.Action.HA_TAKEOVER,
        actor=actor,
        source_ip=source_ip,
        target="handed the floating IPs to the peer",
        detail={"error": error} if error else {},
    )
    return error


def ha_take_over(*, actor: User | None, source_ip: str | None) -> str:
    """Take the floating addresses: ask the peer to hand them over. Returns '' or why not."""
    node = HaNode.load()
    try:
        answer = call_peer(node, "hand-over/", {})
    except PeerError as error:
        return str(error)
    audit_record(
        action=AuditEntry.Action.HA_TAKEOVER,
        actor=actor,
        source_ip=source_ip,
        target=f"took the floating IPs from {node.peer_ip}",
    )
    return str(answer.get("error") or "")


def ha_restart_heartbeat(*, actor: User | None, source_ip: str | None) -> list[str]:
    """Restart keepalived here and, on the master, on the slave too (as the guide says).
    Returns the problems."""
    problems = []
    error = daemon_restart("keepalived")
    if error:
        problems.append(f"here: {error}")
    node = HaNode.load()
    if node.role == HaNode.Role.MASTER:
        try:
            answer = call_peer(node, "restart-heartbeat/", {})
            if answer.get("error"):
                problems.append(f"on the slave: {answer['error']}")
        except PeerError as error:
            problems.append(f"on the slave: {error}")
    audit_record(
        action=AuditEntry.Action.SERVICE_RESTARTED,
        actor=actor,
        source_ip=source_ip,
        target="keepalived (heartbeat)",
        detail={"problems": problems} if problems else {},
    )
    return problems


# --- Floating addresses: what keepalived is told ----------------------------------------------

# --- HA settings (replicated) -------------------------------------------------------------------
