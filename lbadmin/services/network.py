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
"""

import dataclasses
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
    InterfaceConfig,
    LiveSnapshot,
    NetworkConfig,
    RouteConfig,
)
from lbadmin.models import (
    AuditEntry,
    HostSettings,
    NetworkAddress,
    NetworkInterface,
    StaticRoute,
    User,
)
from lbadmin.services import jobs
from lbadmin.services.audit import audit_record
from lbadmin.services.ha_node import floating_addresses
from lbadmin.services.locks import node_lock

# How long a page waits for the node's worker to make a change; a change the worker has not
# started by then is dropped (the page says so), never applied behind the administrator's back.
APPLY_WAIT_S = 60


class NetworkRefused(ValueError):
    """The change is invalid or cannot be made here; nothing was changed. ``fields`` holds,
    for each problem, the form field it is about (None: the change as a whole)."""

    def __init__(self, problems: list[str], fields: list[str | None] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.fields = fields if fields is not None else [None] * len(problems)


def management_off_reason() -> str:
    """Why this node's network is shown read-only ('' when the appliance manages it)."""
    if settings.LBADMIN_MANAGE_NETWORK:
        return ""
    return (
        "network management is off (LBADMIN_MANAGE_NETWORK is not set): this host's network "
        "is not the appliance's to change (a container or a developer's machine), so its live "
        "state is shown read-only."
    )


def network_problem() -> str:
    """What is wrong with this node's network now ('' when nothing): a missing interface, a
    revert that could not be completed. Shown on System Overview and by health."""
    stored = HostSettings.objects.filter(pk=1).values_list("network_problem", flat=True).first()
    return stored or ""


def _netns() -> str | None:
    return settings.LBADMIN_NETWORK_NETNS or None


# --- Configured and live state -----------------------------------------------------------------


def configured_network() -> NetworkConfig:
    interfaces = []
    for interface in NetworkInterface.objects.prefetch_related("addresses"):  # added order
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
            metric=route.metric,
        )
        for route in StaticRoute.objects.all()
    )
    return NetworkConfig(interfaces=tuple(interfaces), routes=routes)


def live_network() -> tuple[NetworkConfig | None, list[Any], str]:
    """(live config, live interfaces, error) of the managed namespace."""
    try:
        return netconfig.read_network(_netns()), netinfo.interfaces(_netns()), ""
    except (netinfo.NetinfoError, netconfig.NetconfigError) as error:
        return None, [], str(error)


def _as_json(config: NetworkConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _from_json(data: dict[str, Any] | None) -> NetworkConfig | None:
    """A stored NetworkConfig (None when there is none). Its values are checked by the engine
    (validate_network) before anything is applied from it."""
    if not data:
        return None
    return NetworkConfig(
        interfaces=tuple(
            InterfaceConfig(
                name=item["name"],
                up=item["up"],
                mtu=item["mtu"],
                addresses=tuple(item["addresses"]),
            )
            for item in data["interfaces"]
        ),
        routes=tuple(
            RouteConfig(
                destination=item["destination"],
                gateway=item["gateway"],
                interface=item["interface"],
                metric=item.get("metric"),
            )
            for item in data["routes"]
        ),
    )


# --- One change ---------------------------------------------------------------------------------

EDIT_KINDS = ("address-add", "address-remove", "interface-set", "route-add", "route-remove")


@dataclasses.dataclass(frozen=True)
class NetworkEdit:
    """One administrator's change, replayed on whatever is stored when the worker gets to it
    (so two sessions never overwrite each other). Values come from the pages' forms; the
    engine validates the configuration they make before anything is applied."""

    kind: str
    interface: str = ""
    address: str = ""
    up: bool = True
    mtu: int | None = None
    destination: str = ""
    gateway: str = ""
    metric: int | None = None

    def describe(self) -> str:
        if self.kind == "address-add":
            return f"add {self.address} on {self.interface}"
        if self.kind == "address-remove":
            return f"remove {self.address} from {self.interface}"
        if self.kind == "interface-set":
            state = "up" if self.up else "down"
            return f"{self.interface} {state}, MTU {self.mtu or 'unchanged'}"
        if self.kind == "route-add":
            return f"route {self.destination} via {self.gateway or self.interface}"
        return f"remove route {self.destination}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "NetworkEdit":
        """Strict: exactly the fields, each of its type (a task's argument is an input)."""
        fields = {field.name: field.type for field in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != set(fields):
            raise NetworkRefused(["the change is malformed"])
        if data["kind"] not in EDIT_KINDS or type(data["up"]) is not bool:
            raise NetworkRefused(["the change is malformed"])
        for number in ("mtu", "metric"):
            if data[number] is not None and type(data[number]) is not int:
                raise NetworkRefused(["the change is malformed"])
        texts = ("kind", "interface", "address", "destination", "gateway")
        if not all(isinstance(data[name], str) and len(data[name]) <= 64 for name in texts):
            raise NetworkRefused(["the change is malformed"])
        return cls(**data)

    def applied_to(self, config: NetworkConfig) -> NetworkConfig:
        """``config`` with this change made; NetworkRefused when it no longer fits (another
        session got there first)."""
        interfaces = list(config.interfaces)
        names = [item.name for item in interfaces]
        if self.kind == "address-add":
            for item in interfaces:
                if self.address.split("/")[0] in {a.split("/")[0] for a in item.addresses}:
                    raise NetworkRefused(
                        [f"{self.address} is configured already (on {item.name})"], ["address"]
                    )
            if self.interface not in names:
                interfaces.append(InterfaceConfig(name=self.interface))
                names.append(self.interface)
            index = names.index(self.interface)
            item = interfaces[index]
            interfaces[index] = dataclasses.replace(item, addresses=(*item.addresses, self.address))
        elif self.kind == "address-remove":
            found = [item for item in interfaces if self.address in item.addresses]
            if not found or found[0].name != self.interface:
                raise NetworkRefused(
                    [f"{self.address} is no longer configured on {self.interface}"]
                )
            index = names.index(self.interface)
            interfaces[index] = dataclasses.replace(
                found[0], addresses=tuple(a for a in found[0].addresses if a != self.address)
            )
        elif self.kind == "interface-set":
            if self.interface in names:
                index = names.index(self.interface)
                interfaces[index] = dataclasses.replace(interfaces[index], up=self.up, mtu=self.mtu)
            else:
                interfaces.append(InterfaceConfig(name=self.interface, up=self.up, mtu=self.mtu))
        routes = list(config.routes)
        if self.kind == "route-add":
            if any(route.destination == self.destination for route in routes):
                raise NetworkRefused(
                    [f"a route to {self.destination} exists: remove it first"], ["destination"]
                )
            routes.append(
                RouteConfig(
                    destination=self.destination,
                    gateway=self.gateway or None,
                    interface=self.interface or None,
                    metric=self.metric,
                )
            )
        elif self.kind == "route-remove":
            kept = [route for route in routes if route.destination != self.destination]
            if len(kept) == len(routes):
                raise NetworkRefused([f"there is no longer a route to {self.destination}"])
            routes = kept
        return NetworkConfig(interfaces=tuple(interfaces), routes=tuple(routes))

    def field_of(self, problem: str, config: NetworkConfig) -> str | None:
        """The form field a validation message (``interfaces[0].mtu: …``) is about, when it
        is about what this change edits."""
        path = problem.split(": ", 1)[0]
        names = [item.name for item in config.interfaces]
        if self.kind in ("address-add", "interface-set") and self.interface in names:
            where = f"interfaces[{names.index(self.interface)}]"
            if self.kind == "address-add":
                item = config.interfaces[names.index(self.interface)]
                if self.address in item.addresses:
                    at = f"{where}.addresses[{item.addresses.index(self.address)}]"
                    if path == at:
                        return "address"
            elif path == f"{where}.mtu":
                return "mtu"
            elif path.startswith(where):
                return "interface"
        if self.kind == "route-add":
            for index, route in enumerate(config.routes):
                if route.destination == self.destination and path.startswith(f"routes[{index}]"):
                    part = path.rsplit(".", 1)[-1]
                    fields = ("destination", "gateway", "interface", "metric")
                    return part if part in fields else None
        return None


def _problems(edit: NetworkEdit, desired: NetworkConfig, record: NetworkConfig | None) -> None:
    """Raise NetworkRefused (each problem at its field) when ``desired`` cannot be applied
    here now: invalid, or taking what the appliance did not make."""
    present, _missing = _present(desired, _live_names())
    try:
        problems = netconfig.validate_against_live(present, previous=record, netns=_netns())
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


def _live_names() -> list[str]:
    try:
        return [link.name for link in netinfo.links(_netns())]
    except netinfo.NetinfoError:
        return []


def _present(config: NetworkConfig, live_names: list[str]) -> tuple[NetworkConfig, list[str]]:
    """``config`` without what cannot be applied because an interface is missing (its own
    settings, the routes through it or only reachable through it), and a line for each
    missing interface."""
    live = set(live_names)
    interfaces = tuple(item for item in config.interfaces if item.name in live)
    missing = [item.name for item in config.interfaces if item.name not in live]
    if not missing:
        return config, []
    routes = [route for route in config.routes if route.interface in (None, *live)]
    reduced = NetworkConfig(interfaces=interfaces, routes=tuple(routes))
    unreachable = {
        int(problem.split("]", 1)[0].removeprefix("routes["))
        for problem in netconfig.validate_network(reduced, live_names)
        if problem.startswith("routes[")
    }
    kept = tuple(route for index, route in enumerate(routes) if index not in unreachable)
    dropped = [route for route in config.routes if route not in kept]
    lines = [
        f"{name} is missing: its settings are not applied"
        + (
            f" (nor the routes {', '.join(route.destination for route in dropped)})"
            if dropped
            else ""
        )
        for name in missing
    ]
    return NetworkConfig(interfaces=interfaces, routes=kept), lines


def _session_interfaces(client_address: str | None, host_address: str | None) -> set[str] | None:
    """The interfaces the administrator's connection depends on: the one the reply to the
    client leaves by (``ip route get``; a proxy or NAT in between changes nothing), and the one
    holding the address the browser asked for. None when that cannot be known."""
    if not client_address:
        return None
    try:
        choice = netinfo.route_get(client_address, _netns())
    except (ValueError, netinfo.NetinfoError):
        return None
    names = {choice.interface} if choice.interface else set()
    try:
        host = ipaddress.ip_address(host_address or "")
    except ValueError:
        return names  # a host name: the reply's path is what counts
    for link in netinfo.links(_netns()):
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
    _problems(edit, edit.applied_to(configured_network()), _from_json(state.applied))
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


def _locked_state() -> HostSettings:
    HostSettings.load()
    return HostSettings.objects.select_for_update().get(pk=1)


def _edit_locked(
    edit: NetworkEdit,
    client_address: str | None,
    host_address: str | None,
    actor_id: int | None,
    source_ip: str | None,
) -> dict[str, Any]:
    state = _locked_state()
    record = _from_json(state.applied)
    current = configured_network()
    desired = edit.applied_to(current)
    _problems(edit, desired, record)
    present, missing = _present(desired, _live_names())
    try:
        snapshot = netconfig.snapshot_live(_netns())
    except netinfo.NetinfoError as error:
        raise NetworkRefused([f"the live network cannot be read: {error}"]) from error
    confirm = _needs_confirmation(
        current, desired, _session_interfaces(client_address, host_address)
    )
    result = netconfig.apply_network(
        present, previous=record, netns=_netns(), keep_out=floating_addresses()
    )
    if not result.ok:
        raise NetworkRefused([result.error or "the change failed"])
    try:
        _store_configured(desired)
        state.applied = _as_json(present)
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
            _present(current, _live_names())[0],
            previous=present,
            netns=_netns(),
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
            "config": _as_json(current),
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


# --- Going back --------------------------------------------------------------------------------


def _revert_target(point: dict[str, Any]) -> tuple[NetworkConfig, NetworkConfig, LiveSnapshot]:
    """(what to store, what to apply, the snapshot) for a revert point. What is applied also
    states the link and MTU each touched interface had before, from the snapshot, so an
    interface the appliance had not configured yet comes back as it was."""
    config = _from_json(point["config"]) or NetworkConfig()
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
        state = _locked_state()
        if state.confirm_until is None:
            return False
        if not now and state.confirm_until > timezone.now():
            return False
        record = _from_json(state.applied)
        try:
            confirmed, target, snapshot = _revert_target(state.revert_to or {})
        except (ValueError, KeyError, TypeError) as error:
            problem = (
                "The unconfirmed network change could not be undone: its stored revert point "
                f"is unreadable ({error!r})"
            )
            ok, error_text = False, str(error)
        else:
            live_names = _live_names()
            target, missing = _present(target, live_names)
            result = netconfig.apply_network(
                target, previous=record, netns=_netns(), baseline=snapshot,
                keep_out=floating_addresses(),
            )  # fmt: skip
            ok, error_text = result.ok, result.error or ""
            if ok:
                _store_configured(confirmed)
                state.applied = _as_json(_present(confirmed, live_names)[0])
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
        left = netconfig.plan_network(target, previous=record, netns=_netns())
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


def _store_configured(config: NetworkConfig) -> None:
    """Make the database hold ``config``, keeping the rows that stay as they are (their ids
    are in other sessions' pages; a new address goes last, as it went live)."""
    wanted = {item.name: item for item in config.interfaces}
    NetworkInterface.objects.exclude(name__in=wanted).delete()
    rows = {row.name: row for row in NetworkInterface.objects.all()}
    for name, item in wanted.items():
        row = rows.get(name) or NetworkInterface(name=name)
        if row.pk is None or (row.up, row.mtu) != (item.up, item.mtu):
            row.up, row.mtu = item.up, item.mtu
            row.save()
        rows[name] = row
    places = {address: rows[item.name] for item in config.interfaces for address in item.addresses}
    NetworkAddress.objects.exclude(address__in=places).delete()
    kept = {row.address: row for row in NetworkAddress.objects.all()}
    for address, interface in places.items():
        row = kept.get(address)
        if row is None:
            NetworkAddress.objects.create(interface=interface, address=address)
        elif row.interface_id != interface.pk:
            row.interface = interface
            row.save()
    routes = {(route.destination, route.gateway or ""): route for route in config.routes}
    for row in StaticRoute.objects.all():
        route = routes.pop((row.destination, row.gateway), None)
        if route is None:
            row.delete()
        elif (row.interface, row.metric) != (route.interface or "", route.metric):
            row.interface, row.metric = route.interface or "", route.metric
            row.save()
    for (destination, gateway), route in routes.items():
        StaticRoute.objects.create(
            destination=destination,
            gateway=gateway,
            interface=route.interface or "",
            metric=route.metric,
        )


def network_reapply() -> str:
    """At the node's start: an unconfirmed change is undone (the confirmed configuration comes
    back, never an unconfirmed one); otherwise the stored configuration is applied again (a
    reboot forgot it), each present interface on its own. Returns the problems ('' if none)."""
    if management_off_reason():
        return ""
    if network_revert_if_unconfirmed(now=True):
        return HostSettings.load().network_problem
    with node_lock("network", timeout=30), transaction.atomic():
        state = _locked_state()
        desired = configured_network()
        record = _from_json(state.applied)
        if not desired.interfaces and not desired.routes and record is None:
            return ""
        present, missing = _present(desired, _live_names())
        result = netconfig.apply_network(
            present, previous=record, netns=_netns(), keep_out=floating_addresses()
        )
        if result.ok:
            state.applied = _as_json(present)
            state.network_problem = "; ".join(missing)
        else:
            state.network_problem = (
                f"The stored network configuration could not be applied: {result.error}"
            )
        state.save()
        return state.network_problem


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
