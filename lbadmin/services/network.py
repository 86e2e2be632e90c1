"""Local Configuration: the node's own interfaces, addresses, routes, hostname and DNS.

The database holds what the administrator configured; lbadmin.engines.netconfig makes the
host match it (iproute2 argument lists) and reads the live state shown beside it. Never
replicated to the HA peer.

How a change is made, so that no administrator locks themselves out and none loses another's
work:
- A change is a ``NetworkEdit`` (add an address, set an interface, add a route …). The web
  request checks it for quick feedback, then the node's worker replays it on whatever is
  stored when its turn comes, under one node lock across validate -> apply -> record. The
  database is written only there, from what was applied; a session is told "Applied" only
  when it is both stored and live.
- The appliance owns what it made: ``HostSettings.applied`` is its record, and the engine
  refuses an address live elsewhere, a route over a connected or someone else's route, an
  MTU that would strip addresses it did not add.
- A change that touches the path of the reply to the browser (``ip route get`` to the
  client's address, and the interface holding the address the browser asked for) or any route
  waits for confirmation. The point to go back to (the configuration confirmed last and a
  snapshot of the live network before the first unconfirmed change) and the deadline are
  stored on the node (``HostSettings``), and honoured by whichever comes first: the ``serve``
  supervisor's timer, the worker's start, or the node's start (which restores the confirmed
  configuration, never an unconfirmed one). A second change inside the window keeps the first
  one's revert point. A revert that cannot be completed is reported in red with what is still
  different (``HostSettings.network_problem``).
- At start each interface is configured on its own: one that is missing is reported (Local
  Configuration, System Overview, health) and the others are configured.

Here: a change's flow (check, hand to the worker, apply and record, confirm) and hostname and
DNS. ``network_edit``: the change itself. ``network_state``: what is stored and live.
``network_revert``: going back (the timer, the starts).
"""

import ipaddress
from datetime import timedelta
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lbadmin.engines import netconfig, netinfo
from lbadmin.engines.netconfig import (
    HostIdentity,
    LiveSnapshot,
    NetworkConfig,
)
from lbadmin.models import (
    AuditEntry,
    HostSettings,
    User,
)
from lbadmin.services import jobs
from lbadmin.services.audit import audit_record
from lbadmin.services.ha_node import floating_addresses
from lbadmin.services.locks import node_lock
from lbadmin.services.network_edit import NetworkEdit
from lbadmin.services.network_state import (
    NetworkRefused,
    applicable_part,
    config_as_json,
    config_from_json,
    configured_network,
    live_interface_names,
    locked_state,
    management_off_reason,
    netns,
    store_configured,
)

# How long a page waits for the node's worker to make a change; a change the worker has not
# started by then is dropped (the page says so), never applied behind the administrator's back.
APPLY_WAIT_S = 60


def _problems(
    edit: NetworkEdit,
    desired: NetworkConfig,
    record: NetworkConfig | None,
    live_names: list[str],
) -> tuple[NetworkConfig, list[str]]:
    """Raise NetworkRefused (each problem at its field) when ``desired`` cannot be applied
    here now: invalid, or taking what the appliance did not make. Returns ``applicable_part``
    of it: what can be applied (the interfaces present in ``live_names``) and what cannot."""
    present, missing = applicable_part(desired, live_names)
    try:
        problems = netconfig.validate_against_live(present, previous=record, netns=netns())
    except netinfo.NetinfoError as error:
        problems = [f"the live network cannot be read: {error}"]
    floating = set(floating_addresses())
    for i, item in enumerate(present.interfaces):
        for j, address in enumerate(item.addresses):
            if address.split("/")[0] in floating:
                problems.append(
                    f"interfaces[{i}].addresses[{j}]: {address.split('/')[0]} is a virtual "
                    "service's floating address (keepalived places it): not a node address"
                )
    if problems:
        raise NetworkRefused(problems, [edit.field_of(problem, present) for problem in problems])
    return present, missing


def _session_interfaces(client_address: str | None, host_address: str | None) -> set[str] | None:
    """The interfaces the administrator's connection depends on: the one the reply to the
    client leaves by (``ip route get``; a proxy or NAT in between changes nothing), and the one
    holding the address the browser asked for. None when that cannot be known."""
    if not client_address:
        return None
    try:
        choice = netinfo.route_get(client_address, netns())
    except (ValueError, netinfo.NetinfoError):
        return None
    names = {choice.interface} if choice.interface else set()
    try:
        host = ipaddress.ip_address(host_address or "")
    except ValueError:
        return names  # a host name: the reply's path is what counts
    for link in netinfo.links(netns()):
        if any(item.address.ip == host for item in link.addresses):
            names.add(link.name)
    return names


def _needs_confirmation(
    before: NetworkConfig, after: NetworkConfig, session: set[str] | None
) -> bool:
    if before.routes != after.routes:
        return True
    old = {item.name: item for item in before.interfaces}
    new = {item.name: item for item in after.interfaces}
    changed = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    return bool(changed) if session is None else bool(changed & session)


# --- Changing it -------------------------------------------------------------------------------


def _require_managed() -> None:
    reason = management_off_reason()
    if reason:
        raise NetworkRefused([reason[0].upper() + reason[1:]])


def network_change(
    *,
    actor: User | None,
    edit: NetworkEdit,
    client_address: str | None,
    host_address: str | None,
    source_ip: str | None,
) -> bool:
    """Have the node's worker make ``edit`` and wait for it. Returns True when the
    administrator must confirm it (it touches their own connection). NetworkRefused lists why
    nothing changed (each problem with its form field)."""
    _require_managed()
    state = HostSettings.load()
    desired = edit.applied_to(configured_network())
    _problems(edit, desired, config_from_json(state.applied), live_interface_names())
    task = jobs.enqueue(
        "network_apply_task",
        edit=edit.to_json(),
        client_address=client_address,
        host_address=host_address,
        actor_id=actor.pk if actor else None,
        source_ip=source_ip,
        expires=APPLY_WAIT_S,
    )
    try:
        outcome = task.get(timeout=APPLY_WAIT_S)
    except CeleryTimeout:
        raise NetworkRefused(
            [
                f"the node's worker did not answer within {APPLY_WAIT_S} s: a change it has not "
                "started by then is dropped; these pages show what is stored and live"
            ]
        ) from None
    except Exception as error:  # the task failed on the worker (it undid its own part)
        raise NetworkRefused([f"the node's worker could not make the change: {error}"]) from error
    if not outcome["ok"]:
        raise NetworkRefused(outcome["problems"], outcome["fields"])
    return bool(outcome["confirm"])


def network_edit_apply(
    *,
    edit: dict[str, Any],
    client_address: str | None,
    host_address: str | None,
    actor_id: int | None,
    source_ip: str | None,
) -> dict[str, Any]:
    """The worker's part, one change at a time: replay ``edit`` on what is stored, validate,
    apply, and record — the database is written only when the host took it. Returns
    {"ok", "problems", "fields", "confirm"}."""
    try:
        _require_managed()
        change = NetworkEdit.from_json(edit)
        with node_lock("network", timeout=30), transaction.atomic():
            return _edit_locked(change, client_address, host_address, actor_id, source_ip)
    except NetworkRefused as refused:
        return {"ok": False, "problems": refused.problems, "fields": refused.fields}


def _edit_locked(
    edit: NetworkEdit,
    client_address: str | None,
    host_address: str | None,
    actor_id: int | None,
    source_ip: str | None,
) -> dict[str, Any]:
    state = locked_state()
    record = config_from_json(state.applied)
    current = configured_network()
    desired = edit.applied_to(current)
    try:
        snapshot = netconfig.snapshot_live(netns())
    except netinfo.NetinfoError as error:
        raise NetworkRefused([f"the live network cannot be read: {error}"]) from error
    present, missing = _problems(edit, desired, record, snapshot.interface_names())
    confirm = _needs_confirmation(
        current, desired, _session_interfaces(client_address, host_address)
    )
    result = netconfig.apply_network(
        present, previous=record, netns=netns(), keep_out=floating_addresses()
    )
    if not result.ok:
        raise NetworkRefused([result.error or "the change failed"])
    try:
        store_configured(desired)
        state.applied = config_as_json(present)
        state.network_problem = "; ".join(missing)
        if confirm or state.confirm_until is not None:
            # Inside a window, every change joins the revert (the window only grows for one
            # that itself touches the administrator's connection).
            _revert_point_keep(state, current, snapshot, desired, extend=confirm)
        state.save()
        audit_record(
            action=AuditEntry.Action.CONFIG_UPDATED,
            actor=User.objects.filter(pk=actor_id).first() if actor_id else None,
            source_ip=source_ip,
            target=f"network: {edit.describe()}",
            detail={"changes": result.changes[:50], "confirm": confirm},
        )
    except Exception:
        # Not recorded, so not applied either: the host goes back to what is stored.
        netconfig.apply_network(
            applicable_part(current, live_interface_names())[0],
            previous=present,
            netns=netns(),
            baseline=snapshot,
            keep_out=floating_addresses(),
        )
        raise
    return {"ok": True, "problems": [], "fields": [], "confirm": confirm}


def _revert_point_keep(
    state: HostSettings,
    current: NetworkConfig,
    snapshot: LiveSnapshot,
    desired: NetworkConfig,
    *,
    extend: bool,
) -> None:
    """Start (or with ``extend``, lengthen) the confirmation window. The first unconfirmed
    change sets the point to go back to; a later one inside the window only adds the
    interfaces it touched."""
    touched = {item.name for item in desired.interfaces}
    if state.confirm_until is None or not state.revert_to:
        state.revert_to = {
            "config": config_as_json(current),
            "snapshot": snapshot.to_json(),
            "touched": sorted(touched | {item.name for item in current.interfaces}),
        }
    else:
        state.revert_to = {
            **state.revert_to,
            "touched": sorted(touched | set(state.revert_to.get("touched", []))),
        }
    if extend or state.confirm_until is None:
        deadline = timezone.now() + timedelta(seconds=settings.LBADMIN_NETWORK_CONFIRM_SECONDS)
        state.confirm_until = max(deadline, state.confirm_until or deadline)


def network_confirm(*, actor: User | None, source_ip: str | None) -> bool:
    """Keep a change that waited for confirmation. False when there was none (too late)."""
    with transaction.atomic():
        updated = HostSettings.objects.filter(pk=1, confirm_until__gt=timezone.now()).update(
            confirm_until=None, revert_to=None
        )
        if updated:
            audit_record(
                action=AuditEntry.Action.CONFIG_UPDATED,
                actor=actor,
                source_ip=source_ip,
                target="network: change confirmed",
            )
    return bool(updated)


# --- Hostname and DNS --------------------------------------------------------------------------


def identity_update(
    *,
    actor: User | None,
    hostname: str,
    dns_servers: tuple[str, ...],
    search: tuple[str, ...],
    source_ip: str | None,
) -> None:
    _require_managed()
    identity = HostIdentity(hostname=hostname, dns_servers=dns_servers, search=search)
    problems = netconfig.validate_identity(identity)
    if problems:
        raise NetworkRefused(problems)
    try:
        settings.LBADMIN_ETC_DIR.mkdir(parents=True, exist_ok=True)
        netconfig.write_identity(
            identity,
            etc_dir=settings.LBADMIN_ETC_DIR,
            # The kernel's name only on the real host, not for a test's network namespace.
            set_kernel_hostname=not settings.LBADMIN_NETWORK_NETNS,
        )
    except (OSError, netconfig.NetconfigError) as error:
        raise NetworkRefused([f"the files could not be written: {error}"]) from error
    HostSettings.objects.update_or_create(
        pk=1,
        defaults={"hostname": hostname, "dns_servers": list(dns_servers), "search": list(search)},
    )
    audit_record(
        action=AuditEntry.Action.CONFIG_UPDATED,
        actor=actor,
        source_ip=source_ip,
        target="hostname and DNS",
        detail={"hostname": hostname, "dns_servers": list(dns_servers), "search": list(search)},
    )
