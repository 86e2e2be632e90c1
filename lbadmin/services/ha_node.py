"""This node's side of its HA pair, kept and read here without a word to the peer: the
floating addresses and the VRRP instance that keepalived is told (lbadmin.services.config
renders them into every apply), the replicated HA settings, and queuing the push of what an
apply made to the slave. Pairing, the calls between the nodes and the push itself are
lbadmin.services.ha, which builds on this module."""

import hashlib
from typing import Any

from django.db import transaction
from django.utils import timezone

from lbadmin.engines import netinfo
from lbadmin.forms.ha import HaSettingsForm  # checks imported documents, until issue 19 part 1
from lbadmin.models import AuditEntry, HaNode, HaSettings, L4VirtualService, User, VirtualService
from lbadmin.render.snapshot import VrrpInstance
from lbadmin.services import jobs
from lbadmin.services.audit import audit_record
from lbadmin.services.changes import KEEPALIVED, config_changed
from lbadmin.services.document_forms import form_data, form_problems
from lbadmin.services.secrets import secret_decrypt


def pair_key(node: HaNode) -> bytes:
    return secret_decrypt(bytes(node.pair_key_encrypted))


# --- Floating addresses: who holds them --------------------------------------------------------


def floating_addresses() -> list[str]:
    """The virtual services' addresses: what floats between the nodes."""
    addresses = set(VirtualService.objects.values_list("ip", flat=True))
    addresses |= set(L4VirtualService.objects.values_list("ip", flat=True))
    return sorted(addresses)


def holds_floating_addresses() -> bool | None:
    """Whether this node holds the floating addresses now (None: there are none)."""
    addresses = floating_addresses()
    if not addresses:
        return None
    try:
        return netinfo.holds_address(addresses[0])
    except (OSError, ValueError):
        return None


def floating_binds_allow() -> None:
    """On a node in a pair, let HAProxy and stunnel bind floating addresses this node does not
    hold yet (net.ipv4/ipv6.ip_nonlocal_bind in its network namespace): the BACKUP must be
    ready to serve the moment keepalived moves them. Nothing changes on a standalone node."""
    if HaNode.load().paired:
        netinfo.set_nonlocal_bind(True)


def standalone_addresses(document: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(address, device) of the floating addresses this standalone node kept when its pair
    was broken (none otherwise, or for an address no interface of this node has a subnet for).
    """
    node = HaNode.load()
    if node.paired or not node.holds_addresses_standalone:
        return ()
    try:
        live = netinfo.interfaces()
    except netinfo.NetinfoError:
        return ()
    addresses = {item["ip"] for item in document["layer7"]["virtual_services"]}
    addresses |= {item["ip"] for item in document["layer4"]["virtual_services"]}
    held = ((address, netinfo.interface_for(address, among=live)) for address in sorted(addresses))
    return tuple((address, device) for address, device in held if device is not None)


# --- Floating addresses: what keepalived is told ----------------------------------------------

MASTER_PRIORITY = 150
SLAVE_PRIORITY = 100


def vrrp_instances(document: dict[str, Any]) -> tuple[VrrpInstance, ...]:
    """This node's VRRP instance for the virtual services of ``document`` (empty when it is not
    in a pair): one instance on the interface of the node addresses, adverts unicast between
    them, carrying every floating address on its own interface; both nodes BACKUP with
    distinct priorities and, by default, no preemption, so a node that comes back never fights
    for the addresses. See floating_problems() for addresses that cannot float."""
    node = HaNode.load()
    if not node.paired or not node.local_ip or not node.peer_ip:
        return ()
    try:
        live = netinfo.interfaces()
    except netinfo.NetinfoError:
        return ()
    home = netinfo.interface_for(node.local_ip, among=live)
    if home is None:
        return ()
    floating, _problems = _floating(document, node, live)
    if not floating:
        return ()
    # Both nodes derive the same router id from the pair key they share.
    vrid = hashlib.sha256(b"lbadmin vrid\0" + pair_key(node)).digest()[0] % 254 + 1
    settings_ = document.get("ha") or ha_settings_defaults()
    return (
        VrrpInstance(
            name="VI_lbadmin",
            interface=home,
            virtual_router_id=vrid,
            priority=MASTER_PRIORITY if node.role == HaNode.Role.MASTER else SLAVE_PRIORITY,
            local_ip=node.local_ip,
            peer_ip=node.peer_ip,
            addresses=tuple(address for address, _device in floating),
            devices=tuple(device for _address, device in floating),
            advert_interval_ms=settings_["advert_interval_ms"],
            preempt=settings_["preempt"],
        ),
    )


def floating_problems(document: dict[str, Any]) -> list[str]:
    """Virtual service addresses that cannot float between the nodes, and why (shown on the
    HA page: those services are not highly available)."""
    node = HaNode.load()
    if not node.paired:
        return []
    try:
        live = netinfo.interfaces()
    except netinfo.NetinfoError as error:
        return [f"the interfaces could not be read: {error}"]
    return _floating(document, node, live)[1]


def _floating(
    document: dict[str, Any], node: HaNode, live: list[Any]
) -> tuple[list[tuple[str, str]], list[str]]:
    addresses = {item["ip"] for item in document["layer7"]["virtual_services"]}
    addresses |= {item["ip"] for item in document["layer4"]["virtual_services"]}
    family = ":" in (node.local_ip or "")
    floating, problems = [], []
    for address in sorted(addresses):
        if address in (node.local_ip, node.peer_ip):
            problems.append(f"{address} is a node's own address: it cannot float")
        elif (":" in address) != family:
            problems.append(f"{address}: the pair's addresses are of the other IP family")
        else:
            device = netinfo.interface_for(address, among=live)
            if device is None:
                problems.append(f"{address}: no interface of this node has a subnet holding it")
            else:
                floating.append((address, device))
    return floating, problems


# --- HA settings (replicated) -------------------------------------------------------------------

_SETTINGS_KEYS = ("advert_interval_ms", "preempt")


def ha_settings_defaults() -> dict[str, Any]:
    return {name: HaSettings._meta.get_field(name).default for name in _SETTINGS_KEYS}


def ha_settings_export() -> dict[str, Any]:
    settings_ = HaSettings.load()
    return {name: getattr(settings_, name) for name in _SETTINGS_KEYS}


def ha_settings_import(item: Any) -> list[str]:
    """Problems with the document's HA settings; saves them when there are none."""
    problems: list[str] = []
    data = form_data(item, set(_SETTINGS_KEYS), "ha", problems)
    form = HaSettingsForm(data)
    if not form.is_valid():
        return problems + form_problems("ha", form)
    if not problems:
        HaSettings.objects.update_or_create(pk=1, defaults=form.values())
    return problems


@transaction.atomic
def ha_settings_update(*, actor: User | None, values: dict[str, Any]) -> None:
    HaSettings.objects.update_or_create(pk=1, defaults=values)
    audit_record(
        action=AuditEntry.Action.CONFIG_UPDATED, actor=actor, target="HA settings", detail=values
    )
    config_changed((KEEPALIVED,))


# --- Configuration sync ------------------------------------------------------------------------


def ha_sync_request() -> None:
    """Queue a push to the slave. It runs on its own queue and worker (settings.CELERY_HA_QUEUE),
    so a slave that does not answer never delays this node's applies; it is retried while the
    slave is down. From now until the slave confirms, the pages say "not confirmed since"."""
    node = HaNode.load()
    if node.role == HaNode.Role.MASTER:
        HaNode.objects.filter(pk=node.pk, unconfirmed_since=None).update(
            unconfirmed_since=timezone.now()
        )
        jobs.enqueue("ha_sync_task")
