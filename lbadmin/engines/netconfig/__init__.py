"""The appliance's own network (interfaces, addresses, MTU, routes) and identity (hostname, DNS).

What *Local Configuration > Network Interface Configuration*, *Routing* and *Hostname & DNS*
apply on the node: the desired state is a frozen ``NetworkConfig`` / ``HostIdentity``;
``validate_network`` / ``validate_identity`` say what is wrong with it, field by field;
``apply_network`` makes the live state match it (and undoes itself on failure);
``read_network`` / ``read_identity`` show what is live; ``write_identity`` writes
``hostname``, ``resolv.conf`` and ``hosts`` under a directory (``/etc`` in production).

No Django. Every command is an argument list for ``ip`` (never a shell), built only from values
parsed with ``ipaddress`` and names checked against the live list; every call is bounded by
``netinfo.TIMEOUT_S``. Each network function takes ``netns``: a network namespace
(``ip netns add``) to work in instead of the caller's own. Live state is read through
``lbadmin.engines.netinfo`` (``links()``, ``routes()``).

Validation messages start with the field they are about, then ``": "``:
``interfaces[0].addresses[1]: …``, ``routes[2].gateway: …``, ``hostname: …``,
``dns_servers[0]: …``, ``search[1]: …`` (indexes into the config's tuples).

Decisions:
- Ownership, by record. The appliance manages the interfaces named in ``desired`` or
  ``previous`` (its record of what it applied last; None before the first apply); on those
  only the addresses stated there *for that interface*, and only the routes it set itself
  (protocol ``static``, OUR_PROTOCOL) to a destination stated in either. Anything else is
  never changed or removed: another address (a VIP keepalived holds on the MASTER, the
  installer's address, a DHCP or SLAAC address), a route made by hand (protocol ``boot``),
  by a DHCP client or by the kernel, an interface named in neither. Within that, live drift
  is corrected: a desired address or route that went missing is put back, a managed one that
  differs is replaced, a managed one no longer desired is removed. An interface dropped from
  ``desired`` but in ``previous`` loses its previous addresses; its MTU and up/down are left
  as they are. ``mtu=None`` leaves the MTU alone.
- Taking nothing from others (``validate_against_live``; ``apply_network`` refuses the same):
  an address whose IP is live elsewhere (or on the same interface with another prefix) and not
  on record, an address overlapping a live subnet not on record (foreign /32 and /128 make no
  subnet), a route to a live connected subnet or at the place (destination and metric) of a
  live route it did not set — unless it is the very same route, which is taken over — and an
  MTU below 1280 on a link carrying IPv6 addresses the configuration does not state.
- Putting back. What the appliance does not own and the kernel removed on the way (IPv6
  addresses and routes flushed with a link going down, secondaries of a deleted primary,
  routes that lost their link or source) is put back as it was before the apply — or as it
  was in ``baseline``, a ``LiveSnapshot`` taken before an earlier change that a revert undoes
  — with its label, protocol and source; never a dynamic address, one now live elsewhere, or
  one in ``keep_out`` (floating addresses: keepalived's to place).
- The loopback interface is not configurable (refused by name ``lo``; ``read_network`` omits
  every loopback device). Link-local addresses (``fe80::/10``, ``169.254.0.0/16``) belong to
  the kernel and are neither configured nor read; an IPv6 link-local *gateway* is allowed with
  an explicit interface (``default via fe80::1 dev eth1`` is common).
- Order (each phase computed from a fresh read, because the kernel has side effects):
  1. remove managed routes that are no longer desired (before the addresses they depend on);
  2. links: bring down, set MTU, bring up (down before addresses: a link going down flushes
     its IPv6 addresses, so they are added afterwards, to the down link, where they stay);
  3. remove managed addresses no longer desired (before adding: deleting a primary IPv4
     address takes its secondaries with it, promote_secondaries being 0 by default);
  4. add desired addresses that are missing (IPv4 with ``broadcast +``); then put back what
     the appliance does not own and the kernel removed since the start (see Putting back),
     each where it can still exist (link up, gateway on-link, source present);
  5. set desired routes that are missing or differ, with ``ip route replace … proto static``
     (atomic for the route the administrator may be using: the default gateway);
  6. remove its other routes to a desired destination (e.g. the old one with another
     metric). Then a fresh read must show nothing left to do, else it is a failure.
- Rollback. ``ApplyResult.before`` is a snapshot of the managed items as they were live (MTU,
  up, their addresses and routes). On a failed step the same engine converges back to it
  (best effort: every step is tried, failures are reported), so kernel side effects (routes
  flushed with an address, others' IPv6 addresses flushed with a link) are undone too. A
  revert of a confirmed-or-not change is ``apply_network(previous, previous=desired,
  baseline=snapshot_before_the_change)`` and restores ``previous`` exactly as far as it states
  it; ``read_network`` output states everything (MTU, up, addresses, routes).
- ``apply_network`` validates ``desired`` against the live interface list first and applies
  nothing if anything is wrong. It does not serialise concurrent callers (the service layer
  runs one apply per node at a time).
- Routes: one per destination (no ECMP); a destination is a network address with its prefix
  (host bits refused) or ``default`` (its family is the gateway's); ``metric=None`` is the
  kernel's default (0 for IPv4, 1024 for IPv6). Blackhole/unreachable and multipath routes are
  not represented and never touched. ``read_network`` reports each route's device as the
  kernel resolved it.
- IPv6 addresses are added with duplicate address detection (the kernel's default): they are
  ``tentative`` for about a second, and stay so while their link is down or has no carrier.
- Identity files are each replaced atomically (temporary file in the same directory, fsync,
  ``os.replace``), all three prepared before any is replaced. A ``resolv.conf`` symlink
  (resolvconf, systemd-resolved) is replaced by a plain file: the appliance owns DNS.
  ``hosts`` keeps every line but the ``127.0.1.1`` one, which names the host (as Debian's
  installer writes it), so ``sudo`` and friends can resolve the new name. The kernel hostname
  is only set when asked (``set_kernel_hostname=True``).

Measured on iproute2 6.1 / Linux 6.x (in network namespaces):
- Deleting an interface's last IPv4 address flushes every IPv4 route through that interface;
  a route through a link that is down, or whose gateway is in no connected subnet, is refused
  ("Error: Nexthop has invalid gateway."). ``ip route replace`` of a connected subnet replaces
  the kernel's own route (so such a destination is refused).
- ``ip link set … down`` flushes the link's IPv6 addresses (``keep_addr_on_down`` is 0 by
  default) and its routes; IPv6 addresses added to a down link stay. An MTU below 1280 removes
  every IPv6 address from the link, and adding one then fails ("RTNETLINK answers: Invalid
  argument").
- Deleting a primary IPv4 address deletes the secondaries of its subnet too (a namespace's
  ``promote_secondaries`` is 0; systemd's sysctl.d sets it to 1 on the host), and the routes
  whose ``src`` was one of them; with other IPv4 addresses left on the link, routes through
  a gateway in the deleted subnet stay (unreachable).
- ``ip route del <dst>`` without more deletes the first route to ``dst`` (any gateway, the
  lowest metric), so deletions name the exact gateway, device, protocol, metric and table.
- ip's words on failure: "Error: ipv4: Address already assigned.", "Error: ipv4: Address not
  found.", "RTNETLINK answers: No such process" (route to delete not found), 'Cannot find
  device "eth9"' (exit 1; the others exit 2).
- ``ip addr add`` sets no IPv4 broadcast address unless told (``broadcast +``).
"""

from lbadmin.engines.netconfig.apply import apply_network, plan_network, validate_against_live
from lbadmin.engines.netconfig.identity import read_identity, validate_identity, write_identity
from lbadmin.engines.netconfig.live import LiveSnapshot, read_network, snapshot_live
from lbadmin.engines.netconfig.model import (
    ApplyResult,
    HostIdentity,
    InterfaceConfig,
    NetconfigError,
    NetworkConfig,
    RouteConfig,
)
from lbadmin.engines.netconfig.validate import validate_network

__all__ = [
    "ApplyResult",
    "HostIdentity",
    "InterfaceConfig",
    "LiveSnapshot",
    "NetconfigError",
    "NetworkConfig",
    "RouteConfig",
    "apply_network",
    "plan_network",
    "read_identity",
    "read_network",
    "snapshot_live",
    "validate_against_live",
    "validate_identity",
    "validate_network",
    "write_identity",
]
