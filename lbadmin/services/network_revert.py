"""Going back: the point to restore after an unconfirmed change (``revert_to``), honoured by the
supervisor's timer (``network_watch``), the worker's start and the node's start
(``network_reapply``); see ``network``'s docstring."""

import dataclasses
from typing import Any

from django.db import transaction
from django.utils import timezone

from lbadmin.engines import netconfig, netinfo
from lbadmin.engines.netconfig import (
    InterfaceConfig,
    LiveSnapshot,
    NetworkConfig,
)
from lbadmin.models import (
    AuditEntry,
    HostSettings,
)
from lbadmin.services.audit import audit_record
from lbadmin.services.ha_node import floating_addresses
from lbadmin.services.locks import node_lock
from lbadmin.services.network_state import (
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

# --- Going back --------------------------------------------------------------------------------


def _revert_target(point: dict[str, Any]) -> tuple[NetworkConfig, NetworkConfig, LiveSnapshot]:
    """(what to store, what to apply, the snapshot) for a revert point. What is applied also
    states the link and MTU each touched interface had before, from the snapshot, so an
    interface the appliance had not configured yet comes back as it was."""
    config = config_from_json(point["config"]) or NetworkConfig()
    snapshot = LiveSnapshot.from_json(point["snapshot"])
    touched = point.get("touched", [])
    if not isinstance(touched, list) or not all(isinstance(name, str) for name in touched):
        raise ValueError("revert point: touched is a list of names")
    interfaces: list[InterfaceConfig] = []
    for item in config.interfaces:
        was = snapshot.link_state(item.name)
        mtu = item.mtu if item.mtu is not None or was is None else was[1]
        interfaces.append(dataclasses.replace(item, mtu=mtu))
    for name in touched:
        was = snapshot.link_state(name)
        if was is not None and name not in {item.name for item in config.interfaces}:
            interfaces.append(InterfaceConfig(name=name, up=was[0], mtu=was[1]))
    return config, NetworkConfig(tuple(interfaces), config.routes), snapshot


def network_revert_if_unconfirmed(*, now: bool = False) -> bool:
    """Restore the point before an unconfirmed change once its time is up (``now``: at once,
    as the node's start does). True when there was one to restore (even if that failed: see
    ``HostSettings.network_problem``)."""
    if management_off_reason():
        return False  # this node manages no network: nothing was changed, nothing to undo
    with node_lock("network", timeout=30), transaction.atomic():
        state = locked_state()
        if state.confirm_until is None:
            return False
        if not now and state.confirm_until > timezone.now():
            return False
        record = config_from_json(state.applied)
        try:
            confirmed, target, snapshot = _revert_target(state.revert_to or {})
        except (ValueError, KeyError, TypeError) as error:
            problem = (
                "The unconfirmed network change could not be undone: its stored revert point "
                f"is unreadable ({error!r})"
            )
            ok, error_text = False, str(error)
        else:
            live_names = live_interface_names()
            target, missing = applicable_part(target, live_names)
            result = netconfig.apply_network(
                target, previous=record, netns=netns(), baseline=snapshot,
                keep_out=floating_addresses(),
            )  # fmt: skip
            ok, error_text = result.ok, result.error or ""
            if ok:
                store_configured(confirmed)
                state.applied = config_as_json(applicable_part(confirmed, live_names)[0])
                problem = (
                    "The unconfirmed network change was undone, but not all of it: "
                    + "; ".join(missing)
                    if missing
                    else ""
                )
            else:
                problem = _revert_failure(error_text, target, record)
        state.confirm_until, state.revert_to = None, None
        state.network_problem = problem
        state.save()
        audit_record(
            action=AuditEntry.Action.CONFIG_UPDATED,
            target="network: unconfirmed change reverted"
            if ok
            else "network: the revert of an unconfirmed change failed",
            detail={"ok": ok, "error": error_text, "problem": problem},
        )
    return True


def _revert_failure(error: str, target: NetworkConfig, record: NetworkConfig | None) -> str:
    try:
        left = netconfig.plan_network(target, previous=record, netns=netns())
    except (ValueError, netinfo.NetinfoError) as exc:
        left = [f"(cannot tell: {exc})"]
    return (
        f"The unconfirmed network change could not be undone: {error}. The unconfirmed "
        "settings are still live and stored; still different from the confirmed ones: "
        + ("; ".join(left[:20]) or "nothing")
    )


def network_watch() -> str:
    """The supervisor's timer (``serve``, every half second, whatever the worker is doing):
    restore an unconfirmed change whose time is up. Returns what to log ('' mostly)."""
    if management_off_reason():
        return ""
    due = HostSettings.objects.filter(pk=1, confirm_until__lte=timezone.now()).exists()
    if not due:
        return ""
    if not network_revert_if_unconfirmed():
        return ""  # confirmed at the last moment, or undone by the worker's start first
    problem = HostSettings.load().network_problem
    return problem or "An unconfirmed network change was undone (its time was up)."


def network_reapply() -> str:
    """At the node's start: an unconfirmed change is undone (the confirmed configuration comes
    back, never an unconfirmed one); otherwise the stored configuration is applied again (a
    reboot forgot it), each present interface on its own. Returns the problems ('' if none)."""
    if management_off_reason():
        return ""
    if network_revert_if_unconfirmed(now=True):
        return HostSettings.load().network_problem
    with node_lock("network", timeout=30), transaction.atomic():
        state = locked_state()
        desired = configured_network()
        record = config_from_json(state.applied)
        if not desired.interfaces and not desired.routes and record is None:
            return ""
        present, missing = applicable_part(desired, live_interface_names())
        result = netconfig.apply_network(
            present, previous=record, netns=netns(), keep_out=floating_addresses()
        )
        if result.ok:
            state.applied = config_as_json(present)
            state.network_problem = "; ".join(missing)
        else:
            state.network_problem = (
                f"The stored network configuration could not be applied: {result.error}"
            )
        state.save()
        return state.network_problem
