"""Local Configuration: the node's own interfaces, addresses, routes, hostname and DNS.

The database holds what the administrator configured; lbadmin.engines.netconfig makes the
host match it (iproute2 argument lists) and reads the live state shown beside it. A change
that touches the interface the administrator's own browser session arrives on, or any route,
must be confirmed within LBADMIN_NETWORK_CONFIRM_SECONDS from the new settings; otherwise the
node's worker restores the previous ones. Never replicated to the HA peer.
"""

import dataclasses
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lbadmin.engines import netconfig
from lbadmin.engines.netconfig import HostIdentity, InterfaceConfig, NetworkConfig, RouteConfig
from lbadmin.models import (
    AuditEntry,
    HostSettings,
    NetworkAddress,
    NetworkInterface,
    StaticRoute,
    User,
)
from lbadmin.services.audit import audit_record
from lbadmin.services.locks import node_lock


class NetworkRefused(ValueError):
    """The change is invalid or cannot be made here; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def management_off_reason() -> str:
    """Why this node's network is shown read-only ('' when the appliance manages it)."""
    if settings.LBADMIN_MANAGE_NETWORK:
        return ""
    return (
        "network management is off (LBADMIN_MANAGE_NETWORK is not set): this host's network "
        "is not the appliance's to change (a container or a developer's machine), so its live "
        "state is shown read-only."
    )


def _netns() -> str | None:
    return settings.LBADMIN_NETWORK_NETNS or None


# --- Configured and live state -----------------------------------------------------------------


def configured_network() -> NetworkConfig:
    interfaces = []
    for interface in NetworkInterface.objects.prefetch_related("addresses"):
        interfaces.append(
            InterfaceConfig(
                name=interface.name,
                up=interface.up,
                mtu=interface.mtu,
                addresses=tuple(a.address for a in interface.addresses.all()),
            )
        )
    routes = tuple(
        RouteConfig(
            destination=route.destination,
            gateway=route.gateway or None,
            interface=route.interface or None,
        )
        for route in StaticRoute.objects.all()
    )
    return NetworkConfig(interfaces=tuple(interfaces), routes=routes)


def live_network() -> tuple[NetworkConfig | None, list[Any], str]:
    """(live config, live interfaces, error) of the managed namespace."""
    from lbadmin.engines import netinfo

    try:
        return netconfig.read_network(_netns()), netinfo.interfaces(_netns()), ""
    except (netinfo.NetinfoError, netconfig.NetconfigError) as error:
        return None, [], str(error)


def _as_json(config: NetworkConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _from_json(data: dict[str, Any] | None) -> NetworkConfig | None:
    if not data:
        return None
    return NetworkConfig(
        interfaces=tuple(
            InterfaceConfig(**{**item, "addresses": tuple(item["addresses"])})
            for item in data["interfaces"]
        ),
        routes=tuple(RouteConfig(**item) for item in data["routes"]),
    )


# --- Changing it -------------------------------------------------------------------------------


def _require_managed() -> None:
    reason = management_off_reason()
    if reason:
        raise NetworkRefused([reason[0].upper() + reason[1:]])


def network_change(
    *,
    actor: User | None,
    change: Any,
    what: str,
    session_address: str | None,
    source_ip: str | None,
) -> bool:
    """Run ``change`` (a function editing the configured network in the database), check the
    result whole against the live interfaces, save it, and have the node's worker apply it,
    waiting for the outcome. Returns True when the administrator must confirm it (it touches
    their own connection). NetworkRefused lists why nothing changed."""
    from lbadmin.tasks import network_apply_task  # tasks import services

    _require_managed()
    with transaction.atomic():
        before = configured_network()
        change()
        desired = configured_network()
        problems = netconfig.validate_network(desired, live_network()[1])
        if problems:
            transaction.set_rollback(True)
            raise NetworkRefused(problems)
    try:
        outcome = network_apply_task.delay(
            before=_as_json(before),
            session_address=session_address,
            what=what,
            actor_id=actor.pk if actor else None,
            source_ip=source_ip,
        ).get(timeout=60)
    except Exception as error:  # the worker is down or too slow: the DB goes back
        _store_configured(before)
        raise NetworkRefused([f"the node's worker did not apply it: {error}"]) from error
    if not outcome["ok"]:
        raise NetworkRefused([outcome["error"]])
    return outcome["confirm"]


def network_apply_configured(
    *,
    before: dict[str, Any],
    session_address: str | None,
    what: str,
    actor_id: int | None,
    source_ip: str | None,
) -> dict[str, Any]:
    """The worker's part: make the host match the configured network. On failure the database
    goes back to ``before`` (the engine has already put the host back). Returns
    {"ok", "error", "confirm"}."""
    if management_off_reason():
        return {"ok": False, "error": management_off_reason(), "confirm": False}
    previous_config = _from_json(before) or NetworkConfig()
    with node_lock("network", timeout=30), transaction.atomic():
        desired = configured_network()
        live = live_network()[1]
        state = HostSettings.load()
        result = netconfig.apply_network(
            desired, previous=_from_json(state.applied), netns=_netns()
        )
        if not result.ok:
            _store_configured(previous_config)
            return {"ok": False, "error": result.error or "the change failed", "confirm": False}
        confirm = _touches_session(previous_config, desired, session_address, live)
        state.applied = _as_json(desired)
        if confirm:
            state.confirm_until = timezone.now() + timedelta(
                seconds=settings.LBADMIN_NETWORK_CONFIRM_SECONDS
            )
            state.revert_to = before
        state.save()
        audit_record(
            action=AuditEntry.Action.CONFIG_UPDATED,
            actor=User.objects.filter(pk=actor_id).first() if actor_id else None,
            source_ip=source_ip,
            target=f"network: {what}",
            detail={"changes": result.changes[:50], "confirm": confirm},
        )
        if confirm:
            _schedule_revert(state.confirm_until)
    return {"ok": True, "error": "", "confirm": confirm}


def _touches_session(
    before: NetworkConfig, after: NetworkConfig, session_address: str | None, live: list[Any]
) -> bool:
    """Whether the change may cut the administrator's connection: any route changed, or the
    interface holding the address the browser connected to changed."""
    import ipaddress

    if before.routes != after.routes:
        return True
    if not session_address:
        return False
    try:
        target = ipaddress.ip_address(session_address)
    except ValueError:
        return False  # a host name: the address is unknown, be conservative below
    names = {
        interface.name
        for interface in live
        if any(target == address.ip for address in interface.addresses)
    }
    names |= {
        item.name
        for item in before.interfaces
        if any(ipaddress.ip_interface(a).ip == target for a in item.addresses)
    }
    old = {item.name: item for item in before.interfaces}
    new = {item.name: item for item in after.interfaces}
    return any(old.get(name) != new.get(name) for name in names)


def _schedule_revert(deadline: Any) -> None:
    from lbadmin.tasks import network_confirm_deadline_task  # tasks import services

    seconds = max(0.0, (deadline - timezone.now()).total_seconds())
    transaction.on_commit(
        lambda: network_confirm_deadline_task.apply_async(countdown=seconds + 0.5)
    )


def network_confirm(*, actor: User | None, source_ip: str | None) -> bool:
    """Keep a change that waited for confirmation. False when there was none (too late)."""
    updated = HostSettings.objects.filter(pk=1, confirm_until__isnull=False).update(
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


def network_revert_if_unconfirmed() -> bool:
    """Restore the settings before an unconfirmed change once its time is up (the node's
    worker runs this). True when it reverted."""
    if management_off_reason():
        return False  # this node manages no network: nothing was changed, nothing to undo
    with node_lock("network", timeout=30), transaction.atomic():
        state = HostSettings.load()
        state = HostSettings.objects.select_for_update().get(pk=state.pk)
        if state.confirm_until is None or state.confirm_until > timezone.now():
            return False
        previous = _from_json(state.revert_to) or NetworkConfig()
        current = _from_json(state.applied)
        result = netconfig.apply_network(previous, previous=current, netns=_netns())
        _store_configured(previous)
        state.applied = _as_json(previous)
        state.confirm_until, state.revert_to = None, None
        state.save()
        audit_record(
            action=AuditEntry.Action.CONFIG_UPDATED,
            target="network: unconfirmed change reverted",
            detail={"ok": result.ok, "error": result.error or ""},
        )
    return True


def _store_configured(config: NetworkConfig) -> None:
    """Make the database hold ``config`` (after a revert)."""
    NetworkInterface.objects.all().delete()
    StaticRoute.objects.all().delete()
    for item in config.interfaces:
        interface = NetworkInterface.objects.create(name=item.name, up=item.up, mtu=item.mtu)
        for address in item.addresses:
            NetworkAddress.objects.create(interface=interface, address=address)
    for route in config.routes:
        StaticRoute.objects.create(
            destination=route.destination,
            gateway=route.gateway or "",
            interface=route.interface or "",
        )


def network_reapply() -> str:
    """Apply the configured network again (at start: a reboot forgot it). Returns problems."""
    if management_off_reason():
        return ""
    with node_lock("network", timeout=30):
        state = HostSettings.load()
        desired = configured_network()
        if not desired.interfaces and not desired.routes:
            return ""
        result = netconfig.apply_network(
            desired, previous=_from_json(state.applied), netns=_netns()
        )
        if result.ok:
            HostSettings.objects.filter(pk=1).update(applied=_as_json(desired))
        return result.error or ""


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
