"""Applying: running the phases on fresh reads, putting back what the kernel removed, rolling
back on failure (``apply_network``), and the dry run (``plan_network``)."""

from __future__ import annotations

import contextlib
import copy
import ipaddress
from collections.abc import Callable, Iterable

from lbadmin.engines import netinfo
from lbadmin.engines.netconfig.live import LiveSnapshot, _Live, _read_live, _route_config
from lbadmin.engines.netconfig.model import (
    IPV6_MTU_MIN,
    ApplyResult,
    InterfaceConfig,
    IPAddress,
    IPInterface,
    NetconfigError,
    NetworkConfig,
    _Iface,
    _Net,
    _parse,
    _Route,
)
from lbadmin.engines.netconfig.plan import (
    _PHASES,
    _family,
    _Owned,
    _owned,
    _phase_addresses_in,
    _plan,
    _route_text,
    _simulate,
    _Step,
)
from lbadmin.engines.netconfig.validate import _conflicts, validate_network
from lbadmin.engines.netinfo import NetinfoError
from lbadmin.engines.processes import run_command

# ---------------------------------------------------------------------------------------------
# Applying


def _run_ip(netns: str | None, args: tuple[str, ...]) -> None:
    ns = netinfo._netns(netns)
    run_command(
        [netinfo._binary("ip"), *(["-n", ns] if ns else []), *args],
        timeout=netinfo.TIMEOUT_S,
        shown="ip " + " ".join(args),
        error=NetconfigError,
        no_words="no message",
    )


def _can_exist(route: netinfo.Route, live: _Live) -> bool:
    """Whether the kernel would take ``route`` back now: its link is up, its gateway on-link,
    its source address still here."""
    link = live.links.get(route.interface) if route.interface else None
    if link is None or not link.admin_up:
        return False
    if route.source is not None and not any(
        address.ip == route.source for other in live.links.values() for address in other.addresses
    ):
        return False
    gateway = route.gateway
    if gateway is None or (gateway.version == 6 and gateway.is_link_local):
        return True
    return any(
        gateway in address.network and address.network.prefixlen < address.network.max_prefixlen
        for address in link.addresses
    )


def _route_key(route: netinfo.Route) -> tuple:
    return (route.destination, route.gateway, route.interface, route.metric)


def _address_argv(address: IPInterface, name: str, label: str | None = None) -> tuple[str, ...]:
    argv = [_family(address.version), "addr", "add", str(address)]
    if address.version == 4 and address.network.prefixlen <= 30:
        argv += ["broadcast", "+"]
    if label is not None:
        argv += ["label", label]
    return (*argv, "dev", name)


def _put_back(
    pre: _Live, live: _Live, owned: _Owned, keep_out: frozenset[IPAddress]
) -> list[_Step]:
    """What the appliance does not own and was there in ``pre`` but is gone now, put back
    where it can still exist: the secondaries of a deleted primary, IPv6 addresses a link
    lost going down, routes through a link that went down or lost its last IPv4 address or
    whose ``src`` went — with their labels, protocols and sources. Never what a DHCP or SLAAC
    client keeps (dynamic), an address now live elsewhere, or one in ``keep_out`` (floating
    addresses: keepalived's to place)."""
    state = copy.deepcopy(live)
    steps: list[_Step] = []
    everywhere = {a.ip for link in state.links.values() for a in link.addresses}
    for name in sorted(owned.interfaces):
        old, link = pre.links.get(name), state.links.get(name)
        if old is None or link is None:
            continue
        for address in old.addresses:
            if (
                (name, address.ip) in owned.addresses
                or address.ip in everywhere
                or address.ip in keep_out
                or address in old.dynamic
                or (address.version == 6 and link.mtu < IPV6_MTU_MIN)
            ):
                continue
            label = old.labels.get(address)
            step = _Step(
                "addr-add",
                f"put back {address} on {name} (the kernel removed it with a managed change)",
                _address_argv(address, name, label),
                name,
                address=address,
            )
            steps.append(step)
            _simulate(state, step)
            if label:
                state.links[name].labels[address] = label
    for route in pre.routes:
        if owned.route(route) or not _can_exist(route, state):
            continue
        taken = any(
            other.destination == route.destination and other.metric == route.metric
            for other in state.routes
        )
        if taken:  # there already (or replaced at its place by a route of the same metric)
            continue
        argv = [_family(route.destination.version), "route", "add", str(route.destination)]
        if route.gateway is not None:
            argv += ["via", str(route.gateway)]
        if route.interface is not None:
            argv += ["dev", route.interface]
        if route.source is not None:
            argv += ["src", str(route.source)]
        argv += ["proto", route.protocol, "metric", str(route.metric), "table", "main"]
        text = _route_text(route.destination, route.gateway, route.interface, route.metric)
        step = _Step(
            "route-add",
            f"put back route {text} (the kernel removed it with a managed change)",
            tuple(argv),
            route=route,
        )
        steps.append(step)
        _simulate(state, step)
    return steps


def _converge(
    target: _Net,
    owned: _Owned,
    netns: str | None,
    *,
    done: list[str],
    stop_on_error: bool,
    pre: _Live,
    keep_out: frozenset[IPAddress] = frozenset(),
    on_step: Callable[[str], None] | None = None,
) -> list[str]:
    """Run the phases, each on a fresh read; the steps carried out go to ``done``. Between the
    address phases and the route phases, put back what the appliance does not own and the
    kernel removed since ``pre`` (``_put_back``). Returns the errors (at most one when
    ``stop_on_error``)."""
    errors: list[str] = []
    live: _Live | None = None
    phases: list[object] = list(_PHASES)
    phases.insert(phases.index(_phase_addresses_in) + 1, _put_back)
    for phase in phases:
        if live is None:
            try:
                live = _read_live(netns)
            except NetinfoError as exc:
                errors.append(f"cannot read the live state: {exc}")
                if stop_on_error:
                    return errors
                continue
        if phase is _put_back:
            steps = _put_back(pre, live, owned, keep_out)
        else:
            steps = phase(target, owned, live)  # type: ignore[operator]
        if steps:
            live = None  # the kernel may have done more than asked: read again
        for step in steps:
            try:
                if on_step is not None:
                    on_step(step.description)
                _run_ip(netns, step.argv)
            except (NetconfigError, NetinfoError) as exc:
                errors.append(f"{step.description}: {exc}")
                if stop_on_error:
                    return errors
                continue
            done.append(step.description)
    return errors


def _before(live: _Live, owned: _Owned, order: Iterable[str]) -> tuple[NetworkConfig, _Net]:
    """The managed items as they are live: public (for the caller) and parsed (to restore)."""
    public: list[InterfaceConfig] = []
    parsed: list[_Iface] = []
    for name in dict.fromkeys(order):
        link = live.links.get(name)
        if link is None or link.loopback:
            continue
        mine = [a for a in link.addresses if (name, a.ip) in owned.addresses]
        v4 = [a for a in mine if a.version == 4]
        v6 = [a for a in reversed(mine) if a.version == 6]
        addresses = tuple(v4 + v6)
        public.append(
            InterfaceConfig(name, link.admin_up, link.mtu, tuple(str(a) for a in addresses))
        )
        parsed.append(_Iface(name, link.admin_up, link.mtu, addresses))
    routes = [route for route in live.routes if owned.route(route)]
    return (
        NetworkConfig(tuple(public), tuple(_route_config(route) for route in routes)),
        _Net(
            tuple(parsed),
            tuple(_Route(r.destination, r.gateway, r.interface, r.metric) for r in routes),
        ),
    )


def plan_network(
    desired: NetworkConfig, *, previous: NetworkConfig | None, netns: str | None = None
) -> list[str]:
    """What ``apply_network`` would do now, without doing it (the drift of the managed items
    from ``desired``): an empty list when the live state matches. Raises ValueError when
    ``desired`` or ``previous`` is invalid, NetinfoError when ip fails."""
    live = _read_live(netns)
    problems = validate_network(desired, live.links.values())
    previous_problems: list[str] = []
    old = _parse(previous if previous is not None else NetworkConfig(), previous_problems)
    if problems or previous_problems:
        raise ValueError("; ".join(problems + [f"previous {p}" for p in previous_problems]))
    target = _parse(desired, [])
    return [step.description for step in _plan(target, _owned(target, old), live)]


def validate_against_live(
    desired: NetworkConfig, *, previous: NetworkConfig | None, netns: str | None = None
) -> list[str]:
    """What is wrong with ``desired`` on this node now: ``validate_network``'s problems, then
    what it would take from someone else (``previous`` is the appliance's record of what it
    made): an address live elsewhere or overlapping a live subnet it did not configure, a
    route over a connected subnet or in place of a route it did not set, an MTU that would
    strip IPv6 addresses it did not add. Raises NetinfoError when ip fails."""
    live = _read_live(netns)
    problems = validate_network(desired, live.links.values())
    if problems:
        return problems
    old = _parse(previous if previous is not None else NetworkConfig(), [])
    return _conflicts(_parse(desired, []), old, live)


def apply_network(
    desired: NetworkConfig,
    *,
    previous: NetworkConfig | None,
    netns: str | None = None,
    on_step: Callable[[str], None] | None = None,
    baseline: LiveSnapshot | None = None,
    keep_out: Iterable[str] = (),
) -> ApplyResult:
    """Make the live network match ``desired`` for the items the appliance manages (see the
    module docstring for what it owns and in which order it works); ``previous`` is what it
    applied last (None the first time). Nothing is applied when ``desired`` is invalid on this
    node or would take what the appliance did not make (``validate_against_live``). When a
    step fails, everything already done is undone and the result says so, quoting ip.
    What the appliance does not own and the kernel removes on the way is put back as it was
    in ``baseline`` (a revert passes the snapshot taken before the change it undoes; by
    default the live state now), but never the IPs in ``keep_out`` (floating addresses).
    ``on_step`` is called with each step's description just before it runs (not for
    rollback steps). A hostile ``netns`` raises ValueError before anything runs."""
    netinfo._netns(netns)
    try:
        live = _read_live(netns)
    except NetinfoError as exc:
        return ApplyResult(ok=False, error=f"cannot read the live state: {exc}")
    problems = validate_network(desired, live.links.values())
    previous_problems: list[str] = []
    old = _parse(previous if previous is not None else NetworkConfig(), previous_problems)
    if problems:
        return ApplyResult(ok=False, error="refused, nothing applied: " + "; ".join(problems))
    if previous_problems:
        return ApplyResult(
            ok=False,
            error="refused, nothing applied: the previous configuration is unreadable: "
            + "; ".join(previous_problems),
        )
    target = _parse(desired, [])
    conflicts = _conflicts(target, old, live)
    if conflicts:
        return ApplyResult(ok=False, error="refused, nothing applied: " + "; ".join(conflicts))
    owned = _owned(target, old)
    order = [iface.name for iface in target.interfaces] + [i.name for i in old.interfaces]
    before, restore = _before(live, owned, order)
    pre = baseline.live if baseline is not None else live
    floating = frozenset(ipaddress.ip_address(ip) for ip in keep_out)

    changes: list[str] = []
    errors = _converge(
        target, owned, netns, done=changes, stop_on_error=True, on_step=on_step,
        pre=pre, keep_out=floating,
    )  # fmt: skip
    if not errors:
        try:
            left = _plan(target, owned, _read_live(netns))
        except NetinfoError as exc:
            errors = [f"cannot read the live state back: {exc}"]
        else:
            if left:
                errors = [
                    "the live state still differs after applying: "
                    + "; ".join(step.description for step in left)
                ]
    if not errors:
        return ApplyResult(ok=True, changes=changes, before=before)

    # Roll back: converge on the snapshot of the managed items, best effort.
    undo: list[str] = []
    rollback_errors = _converge(
        restore, owned, netns, done=undo, stop_on_error=False, pre=pre, keep_out=floating
    )
    error = errors[0]
    if rollback_errors:
        error += "; the rollback failed too: " + "; ".join(rollback_errors)
    else:
        error += "; rolled back"
        with contextlib.suppress(NetinfoError):
            now = _read_live(netns).links
            gone = [iface.name for iface in restore.interfaces if iface.name not in now]
            if gone:
                error += f" (no longer here: {', '.join(gone)})"
    return ApplyResult(
        ok=False,
        error=error,
        changes=changes,
        rollback=undo,
        rolled_back=not rollback_errors,
        before=before,
    )
