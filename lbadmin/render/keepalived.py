"""keepalived.conf (Layer 4: IPVS virtual servers; HA pair: VRRP floating addresses) from a
frozen ``KeepalivedSnapshot``.

``render_keepalived`` does no I/O and reads no clock: the same snapshot always gives
byte-identical text. Every value has already passed lbadmin.allowlists; the checks here are
defence in depth, so a value that slipped through raises ValueError before anything is
rendered (a label ``x\\n    notify_master "/bin/sh -c ..."`` must be impossible to write).

One ``virtual_server <ip> <port>`` block per (service, port, protocol): a port list gives one
block per port and TCP_UDP one TCP and one UDP block, in snapshot order, then port, then TCP
before UDP, after ``global_defs``; the empty snapshot is the bootstrap configuration
(``lbadmin.render.bootstrap.render_keepalived_bootstrap``).

Measured with ``keepalived -t -f`` on keepalived 2.2.7 (exit 0 = accepted, 5 = any config
error, including the ones keepalived calls warnings and "corrects"):
- ``#`` and ``!`` start a comment anywhere, even inside a word: ``delay_loop 1#0`` passes as
  ``delay_loop 1``, so a check path ``/a#b`` would silently become ``/a``. ``$NAME`` is
  keepalived's parameter substitution; ``{``/``}`` open and close blocks; quotes are
  stripped. Check paths are therefore held to a strict allowlist (``CHECK_PATH``).
- IPv6 is written bare, as for IPv4: ``virtual_server 2001:db8::30 443``,
  ``real_server 2001:db8::31 443``.
- A real server of the other address family is skipped ("Address family of virtual server
  and real server ... don't match", exit 5) except with ``lb_kind TUN`` (IPVS tunnels
  IPv4-in-IPv6 and back): refused here unless forwarding is TUNNEL.
- With DR or TUN the real server port must equal the virtual server's ("ports don't match -
  resetting", exit 5): refused here; a port-less server takes the block's port.
- A virtual server with no real server is ignored ("has no real servers - ignoring", exit 5):
  such a service (no servers, or all halted) is left out with a comment, which is exactly
  what keepalived would do with it.
- A virtual server whose real servers' weights sum to 0 fails the quorum check ("quorum 1
  exceeds total weight of real servers 0", exit 5; ``quorum 0`` is out of range): refused
  here, see ``_zero_weight_problem``.
- A duplicate real server (same ip and port in one block) is removed with an error (exit 5).
- ``persistence_timeout`` must be 1..2678400 (31 days; keepalived's LVS_MAX_TIMEOUT).
- ``weight`` accepts 0..2^31-1; IPVS weights are 0..65535 in practice (ipvsadm), which is the
  bound here. ``uthreshold``/``lthreshold`` (the real-server keywords for IPVS's upper and
  lower connection thresholds) accept 0..2^32-1.
- ``status_code`` outside 100..599 is refused ("Invalid HTTP_GET status code").
- ``UDP_CHECK`` is accepted in a UDP virtual server (keepalived 2.2). Without ``payload`` or
  ``require_reply`` it sends an empty datagram and fails only on an ICMP error (port
  unreachable, host unreachable) or a send error, i.e. "the port is not closed": what
  "connect" means for UDP, with no protocol-specific payload (the Lync Edge A/V service on
  3478 is STUN/TURN).
- ``lb_algo``/``lb_kind`` are the long-standing names of ``lvs_sched``/``lvs_method``; 2.2.7
  accepts both with no warning.

VRRP (the HA pair's floating addresses): one ``vrrp_instance`` per ``VrrpInstance``, after
``global_defs`` and before the virtual servers, then (with two or more) one
``vrrp_sync_group``. Each is ``state BACKUP`` on both nodes, unicast to the peer
(``unicast_src_ip``/``unicast_peer``, ``check_unicast_src``), ``nopreempt`` unless preempt,
and floats ``<vip>/32`` (``/128``) ``dev <interface>`` in ``virtual_ipaddress_excluded``; its
adverts carry one constant link-local address (``169.254.0.<vrid>``, ``fe80::ff:<vrid>``).
Measured on keepalived 2.2.7, ``-t`` (exit 5 for each of these unless said otherwise) and two
nodes in network namespaces (tests/engines/test_vrrp_failover.py):
- Sub-second adverts need VRRPv3: VRRPv2 (the default) rounds ``advert_int 0.1`` ("must be an
  integer. rounding"). Both the global ``vrrp_version 3`` and a per-instance ``version 3``
  are accepted; the global one is written (in ``global_defs``, only with an instance).
- VRRPv3 ``advert_int`` is 0.01..40.95 s in 10 ms steps ("Must be less than 40.96s", "must
  be in units of 10ms"; the parser's own range is 0.01..255, VRRPv2's): the allowlist is
  10..40950 ms in multiples of 10, written without float rounding (100 -> ``0.1``).
- ``priority`` 1..254: 0 is refused, 255 (the address owner) clears ``nopreempt``.
  ``nopreempt`` with ``state MASTER`` is cleared too, hence BACKUP on both nodes.
- One address family per instance: an IPv6 VIP in an IPv4 instance is dropped ("address
  family must match VRRP instance"), a peer of the other family too ("MUST be of the same
  family"). ``virtual_ipaddress_excluded`` could carry the other family, unadvertised; the
  simpler rule here is one instance per family and interface (ValueError otherwise). The same
  VRID on one interface is refused within a family ("duplicate VRID conflict") and accepted
  across families (IPv4 and IPv6 virtual routers are distinct, RFC 5798), and so here.
- ``-t`` refuses an instance on an interface the host lacks ("Non-existent interface") but
  does not check that ``unicast_src_ip`` is on it, a peer equal to the node's own address, or
  a VIP equal to a node address (which the BACKUP would delete): refused here.
- keepalived drops an advert whose address count differs from its own ("received an
  unexpected ip number count 2, expected 1!") and, from a master it has not heard before, one
  whose addresses differ ("ip address associated with VRID not present in MASTER advert"). The
  master applies a new address set before its push reaches the slave, so with the services'
  addresses in the adverts every apply that added or removed one made the slave take over too
  (two holders for ~1.7 s, tests/engines/test_vrrp_failover.py). keepalived needs at least
  one advertised address ("No VIP specified; at least one is required", at start-up: ``-t``
  passes): a link-local one derived from the VRID is the same on both nodes whatever their
  configurations; RFC 5798 wants IPv6's first address link-local anyway.
- ``check_unicast_src`` (accepted; documented to drop adverts whose source is not a
  ``unicast_peer``): VRRPv3 has no authentication, and a forged higher-priority advert would
  otherwise take the addresses.
- Failover (SIGKILL of the master's keepalived and its link down, 100 ms adverts, backup
  priority 100): the backup holds the VIPs and answers 0.27-0.37 s later (median 0.34 s,
  19 runs), its master-down interval: 3 x 100 ms + skew (256 - 100) / 256 x 100 ms = 0.361 s
  after the last advert it heard, plus scheduling.
  keepalived sends 5 gratuitous ARPs on becoming MASTER and 5 more 5 s later
  (``garp_master_delay``'s default); the client's first connection to the new master follows
  the takeover within the test's 10 ms resolution, so no garp option is written.
- SIGKILL leaves the VIPs on the dead node's interfaces; keepalived removes them itself when
  it starts again ("removing VIPs", in BACKUP or FAULT).
- ``nopreempt``: a node that comes back stays BACKUP. The flip side: both nodes start as
  BACKUP and the first to time out becomes MASTER and stays; at a simultaneous start the
  higher priority is only ahead by its skew, (150 - 100) / 256 x 100 ms = 20 ms, and 8 such
  starts went 3 to the master node, 5 to the slave. Start the node meant to be master first
  and the other once it holds the addresses; restarting the node that holds them while the
  other runs hands them over for good.
- Instances move independently unless grouped. The pair has one active node (a NAT service
  needs its VIP and its real servers' gateway on the same node), so all instances form one
  ``vrrp_sync_group``: the master losing one interface's link puts every instance in FAULT
  and the peer takes all the addresses (measured, 0.30-0.40 s; keepalived sends priority 0
  only on the failed link). keepalived refuses a group of one ("has only 1 virtual
  router(s)"), so a single instance has none; instances of one group must agree on preempt.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from lbadmin.render import checks
from lbadmin.render.snapshot import (
    AdminState,
    Forwarding,
    KeepalivedSnapshot,
    L4HealthCheck,
    L4Protocol,
    L4RealServer,
    L4VirtualService,
    Scheduler,
    VrrpInstance,
)

if TYPE_CHECKING:
    from lbadmin.engines.daemons import RuntimeLayout

    Address = ipaddress.IPv4Address | ipaddress.IPv6Address

INDENT = "    "
HEADER = (
    "# Generated by lbadmin (lbadmin.render.keepalived). Do not edit: every apply rewrites\n"
    "# this file from the configuration database."
)

# fullmatch, not ^...$: "$" also matches before a trailing newline.
_ROUTER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# What an HTTP/HTTPS check may request: a path (and query) keepalived cannot misparse. No
# whitespace (word separator), '#' or '!' (comments, even mid-word), '{' '}' (blocks),
# quotes (stripped), '$' (parameter substitution), backslash, control characters.
CHECK_PATH = re.compile(r"/[A-Za-z0-9._~%/?&=+,:@-]{0,254}")

MAX_WEIGHT = 65535  # IPVS (ipvsadm) weights
MAX_THRESHOLD = 2**32 - 1  # IPVS u_threshold / l_threshold are unsigned 32-bit
MAX_PERSISTENCE_TIMEOUT_S = 86400 * 31  # keepalived 2.2.7 refuses more (LVS_MAX_TIMEOUT)
MAX_CHECK_SECONDS = 3600  # delay_loop and connect_timeout

# Health-check retries. keepalived's defaults differ by checker (retry 1; delay_before_retry
# 3 s for HTTP_GET/SSL_GET, 1 s otherwise), so they are written out: a server is marked down
# after three consecutive failures (the Layer 7 checks' `fall 3`), so one lost probe - UDP
# datagrams do get lost - never takes a server out, and a dead server is out within
# delay_loop + CHECK_RETRY * (CHECK_DELAY_BEFORE_RETRY_S + connect_timeout) seconds.
CHECK_RETRY = 2
CHECK_DELAY_BEFORE_RETRY_S = 2

# VRRP (see the module docstring). fullmatch, as above.
_VRRP_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_INTERFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # Linux IFNAMSIZ - 1; "." and ".." refused
VRRP_VERSION = 3
MIN_ADVERT_MS, MAX_ADVERT_MS = 10, 40950  # VRRPv3: 12 bits of centiseconds (keepalived 2.2.7)
SYNC_GROUP = "VG_lbadmin"

_LB_KIND = {Forwarding.NAT: "NAT", Forwarding.DR: "DR", Forwarding.TUNNEL: "TUN"}
_PROTOCOLS = {
    L4Protocol.TCP: ("TCP",),
    L4Protocol.UDP: ("UDP",),
    L4Protocol.TCP_UDP: ("TCP", "UDP"),
}


# ---------------------------------------------------------------------------------------------
# Defence-in-depth checks: each returns the value to render or raises ValueError.


def _tuple(value: object, what: str) -> tuple:
    # A bare string would iterate by character; lists are not what the snapshots hold.
    if not isinstance(value, tuple):
        raise ValueError(f"{what} must be a tuple: {value!r}")
    return value


def _check_path(value: str, what: str) -> str:
    if not isinstance(value, str) or not CHECK_PATH.fullmatch(value):
        raise ValueError(
            f"{what} check path must start with / and hold only A-Z a-z 0-9 . _ ~ % / ? & = + , "
            f": @ - (at most 255 characters): {value!r}"
        )
    return value


def _router_id(value: str) -> str:
    if not isinstance(value, str) or not _ROUTER_ID.fullmatch(value):
        raise ValueError(f"unsafe router_id: {value!r}")
    return value


def _vrrp_name(value: str) -> str:
    if not isinstance(value, str) or not _VRRP_NAME.fullmatch(value):
        raise ValueError(f"invalid vrrp_instance name (A-Z a-z 0-9 _ -, 1 to 32): {value!r}")
    return value


def _interface(value: str, what: str) -> str:
    if not isinstance(value, str) or not _INTERFACE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"invalid {what} interface name: {value!r}")
    return value


def _seconds(ms: int) -> str:
    """advert_int text: 100 -> 0.1, 1000 -> 1, 1250 -> 1.25 (no float rounding)."""
    return f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------------------------
# Validated, rendering-ready values


class _Server:
    """One real server, checked once and rendered into each of its service's blocks."""

    def __init__(self, server: L4RealServer, service: str) -> None:
        self.label = checks.label(server.label, f"{service} real server")
        what = f"{service} real server {self.label}"
        self.ip = checks.ip(server.ip, what)
        self.port = None if server.port is None else checks.port(server.port, f"{what} port")
        self.state = AdminState(server.state)
        weight = checks.integer(server.weight, 0, MAX_WEIGHT, f"{what} weight")
        # Drained: no new connections, existing ones finish (IPVS weight 0).
        self.weight = 0 if self.state is AdminState.DRAIN else weight
        self.lower = checks.integer(
            server.min_connections, 0, MAX_THRESHOLD, f"{what} minimum connections"
        )
        self.upper = checks.integer(
            server.max_connections, 0, MAX_THRESHOLD, f"{what} maximum connections"
        )
        if self.upper and self.lower > self.upper:
            raise ValueError(
                f"{what}: minimum connections {self.lower} exceed maximum {self.upper}"
            )


class _Service:
    """One virtual service, checked as a whole before any of its blocks is rendered."""

    def __init__(self, service: L4VirtualService) -> None:
        self.label = label = checks.label(service.label, "virtual service")
        what = f"virtual service {label}"
        self.ip = checks.ip(service.ip, what)
        ports = _tuple(service.ports, f"{what} ports")
        if not ports:
            raise ValueError(f"{what} has no port")
        self.ports = [checks.port(port, f"{what} port") for port in ports]
        if len(set(self.ports)) != len(self.ports):
            raise ValueError(f"{what} lists a port twice")
        self.ports.sort()
        # Enum constructors reject anything that is not one of the known values.
        self.protocols = _PROTOCOLS[L4Protocol(service.protocol)]
        self.forwarding = Forwarding(service.forwarding)
        self.scheduler = Scheduler(service.scheduler)
        self.health_check = L4HealthCheck(service.health_check)
        if type(service.persistence) is not bool:
            raise ValueError(f"{what}: persistence must be True or False")
        self.persistence_timeout = None
        if service.persistence:
            self.persistence_timeout = checks.integer(
                service.persistence_timeout_s,
                1,
                MAX_PERSISTENCE_TIMEOUT_S,
                f"{what} persistence timeout",
            )
        self.interval = checks.integer(
            service.check_interval_s, 1, MAX_CHECK_SECONDS, f"{what} check interval"
        )
        self.check_port = None
        self.timeout = self.path = self.status = None
        if self.health_check is not L4HealthCheck.NONE:
            if service.check_port is not None:
                self.check_port = checks.port(service.check_port, f"{what} check port")
            self.timeout = checks.integer(
                service.check_timeout_s, 1, MAX_CHECK_SECONDS, f"{what} check timeout"
            )
        if self.health_check in (L4HealthCheck.HTTP, L4HealthCheck.HTTPS):
            self.path = _check_path(service.check_path, what)
            self.status = checks.integer(service.check_status, 100, 599, f"{what} check status")

        self.servers: list[_Server] = []
        labels: set[str] = set()
        for raw in _tuple(service.real_servers, f"{what} real servers"):
            server = _Server(raw, what)
            if server.label in labels:
                raise ValueError(f"{what}: duplicate real server label {server.label!r}")
            labels.add(server.label)
            if server.ip.version != self.ip.version and self.forwarding is not Forwarding.TUNNEL:
                # keepalived skips it ("Address family ... don't match"); IPVS mixes address
                # families only through a tunnel.
                raise ValueError(
                    f"{what}: real server {server.label} ({server.ip}) is not of the virtual "
                    f"service's address family; only TUN forwarding can mix IPv4 and IPv6"
                )
            self.servers.append(server)
        self.in_service = [s for s in self.servers if s.state is not AdminState.HALT]

    def blocks(self) -> list[tuple[int, str]]:
        return [(port, protocol) for port in self.ports for protocol in self.protocols]


class _Vrrp:
    """One vrrp_instance, checked as a whole before anything is rendered."""

    def __init__(self, instance: VrrpInstance) -> None:
        if not isinstance(instance, VrrpInstance):
            raise ValueError(f"not a VrrpInstance: {instance!r}")
        self.name = name = _vrrp_name(instance.name)
        what = f"vrrp_instance {name}"
        self.interface = _interface(instance.interface, what)
        self.vrid = checks.integer(instance.virtual_router_id, 1, 255, f"{what} virtual_router_id")
        # 255 is the address owner's priority (keepalived then clears nopreempt), 0 "resign".
        self.priority = checks.integer(instance.priority, 1, 254, f"{what} priority")
        self.local_ip = checks.ip(instance.local_ip, f"{what} local")
        self.peer_ip = checks.ip(instance.peer_ip, f"{what} peer")
        if self.local_ip == self.peer_ip:
            raise ValueError(f"{what}: the peer address is this node's own ({self.peer_ip})")
        self.version = self.local_ip.version
        addresses = _tuple(instance.addresses, f"{what} addresses")
        if not addresses:
            raise ValueError(f"{what} has no floating address")
        self.addresses = [checks.ip(address, f"{what} floating") for address in addresses]
        for address in (self.peer_ip, *self.addresses):
            if address.version != self.version:
                # keepalived drops it ("address family must match VRRP instance", "MUST be of
                # the same family"): one instance per address family and interface.
                raise ValueError(
                    f"{what}: {address} is not of the instance's address family (IPv"
                    f"{self.version}, from the local address {self.local_ip}); make one "
                    "instance per address family"
                )
        if len(set(self.addresses)) != len(self.addresses):
            raise ValueError(f"{what} lists a floating address twice")
        devices = _tuple(instance.devices, f"{what} devices")
        if devices and len(devices) != len(addresses):
            raise ValueError(f"{what}: one device per floating address, or none")
        self.devices = [_interface(device, what) for device in devices] or [self.interface] * len(
            self.addresses
        )
        # A link of another interface going down must move the addresses too.
        self.tracked = sorted(set(self.devices) - {self.interface})
        self.anchor = advert_address(self.vrid, self.version)
        if self.anchor in self.addresses:
            raise ValueError(f"{what}: {self.anchor} is the address its adverts carry")
        for own in (self.local_ip, self.peer_ip):
            if own in self.addresses or own == self.anchor:
                # The BACKUP deletes its floating addresses: that would be a node's own.
                raise ValueError(f"{what}: {own} is a node address, it cannot float")
        ms = checks.integer(
            instance.advert_interval_ms, MIN_ADVERT_MS, MAX_ADVERT_MS, f"{what} advert interval"
        )
        if ms % 10:
            raise ValueError(f"{what}: advert interval must be a multiple of 10 ms: {ms}")
        self.advert_int = _seconds(ms)
        if type(instance.preempt) is not bool:
            raise ValueError(f"{what}: preempt must be True or False")
        self.preempt = instance.preempt


# ---------------------------------------------------------------------------------------------
# Formatting


def _global_defs(router_id: str, *, vrrp: bool) -> list[str]:
    lines = [
        "global_defs {",
        f"{INDENT}router_id {_router_id(router_id)}",
        f"{INDENT}# Refuse health-check scripts that non-root users could modify.",
        f"{INDENT}enable_script_security",
        f"{INDENT}# Explicit, so keepalived does not look for a 'keepalived_script' user.",
        f"{INDENT}script_user root",
    ]
    if vrrp:
        lines += [
            f"{INDENT}# VRRPv3 (RFC 5798): advert intervals in centiseconds, for sub-second",
            f"{INDENT}# failover (VRRPv2 rounds them to whole seconds).",
            f"{INDENT}vrrp_version {VRRP_VERSION}",
        ]
    return [*lines, "}"]


def advert_address(vrid: int, version: int) -> Address:
    """The one address a VRRP instance advertises (see _vrrp_block): link-local, from the VRID."""
    if version == 4:
        return ipaddress.IPv4Address(f"169.254.0.{vrid}")
    return ipaddress.IPv6Address(f"fe80::ff:{vrid:x}")


def _vrrp_block(vrrp: _Vrrp) -> list[str]:
    prefix = 32 if vrrp.version == 4 else 128
    body = [
        "# Both nodes start as BACKUP (nopreempt needs it) and elect a master by priority.",
        "state BACKUP",
        f"interface {vrrp.interface}",
        f"virtual_router_id {vrrp.vrid}",
        f"priority {vrrp.priority}",
        f"advert_int {vrrp.advert_int}",
    ]
    if not vrrp.preempt:
        body += ["# A node that comes back does not take the addresses back.", "nopreempt"]
    if vrrp.tracked:
        body += ["track_interface {", *(INDENT + device for device in vrrp.tracked), "}"]
    body += [
        f"unicast_src_ip {vrrp.local_ip}",
        "unicast_peer {",
        f"{INDENT}{vrrp.peer_ip}",
        "}",
        "# Adverts from any other source are ignored (VRRPv3 has no authentication).",
        "check_unicast_src",
    ]
    # keepalived drops an advert whose address count, or (from a master not heard before)
    # whose addresses, differ from its own; and the master applies a new address set before
    # the slave has it. So the adverts carry one link-local address derived from the VRID,
    # the same on both nodes whatever their configurations, and the services' addresses float
    # unadvertised (virtual_ipaddress_excluded). RFC 5798 wants IPv6's first one link-local.
    body += [
        "# Only this link-local address is advertised: it never changes (see the docs).",
        "virtual_ipaddress {",
        f"{INDENT}{vrrp.anchor}/{prefix} dev {vrrp.interface}",
        "}",
        "virtual_ipaddress_excluded {",
        *(
            f"{INDENT}{address}/{prefix} dev {device}"
            for address, device in zip(vrrp.addresses, vrrp.devices, strict=True)
        ),
        "}",
    ]
    return [
        f"# Floating addresses on {vrrp.interface}",
        f"vrrp_instance {vrrp.name} {{",
        *(INDENT + line for line in body),
        "}",
    ]


def _static_addresses(items: object, *, vrrp: bool) -> list[str]:
    """``static_ipaddress``: addresses a standalone node holds itself (see KeepalivedSnapshot)."""
    entries = _tuple(items, "static addresses")
    if not entries:
        return []
    if vrrp:
        raise ValueError("static addresses and VRRP instances exclude each other")
    lines, seen = [], set()
    for entry in entries:
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise ValueError(f"a static address is (address, device), not {entry!r}")
        address = checks.ip(entry[0], "static address")
        device = _interface(entry[1], f"static address {address}")
        if address in seen:
            raise ValueError(f"static address {address} twice")
        seen.add(address)
        prefix = 32 if address.version == 4 else 128
        lines.append(f"{INDENT}{address}/{prefix} dev {device}")
    return [
        "# The addresses of a broken pair that this node held: it keeps them, without VRRP.",
        "static_ipaddress {",
        *lines,
        "}",
    ]


def _sync_group(instances: list[_Vrrp]) -> list[str]:
    """All instances move together: the pair has one active node (see the module docstring).
    keepalived refuses a group of one ("has only 1 virtual router(s)"), so none then."""
    if len(instances) < 2:
        return []
    return [
        "# One active node: every instance changes state together (an interface failure on",
        "# the master moves all its addresses, not just that interface's).",
        f"vrrp_sync_group {SYNC_GROUP} {{",
        f"{INDENT}group {{",
        *(f"{INDENT * 2}{vrrp.name}" for vrrp in instances),
        f"{INDENT}}}",
        "}",
    ]


def _check_vrrp_instances(instances: list[_Vrrp]) -> None:
    if len({vrrp.preempt for vrrp in instances}) > 1:
        raise ValueError(
            "vrrp instances: preempt must be the same for all of them (they move together)"
        )
    names: set[str] = set()
    routers: set[tuple[str, int, int]] = set()
    floating: dict[Address, str] = {}
    for vrrp in instances:
        if vrrp.name in names:
            raise ValueError(f"duplicate vrrp_instance name {vrrp.name!r}")
        names.add(vrrp.name)
        # A VRID names one virtual router per interface and address family (RFC 5798; the
        # IPv4 and IPv6 virtual MACs differ): keepalived refuses a second one ("duplicate
        # VRID conflict") and accepts the same VRID for IPv4 and IPv6.
        router = (vrrp.interface, vrrp.vrid, vrrp.version)
        if router in routers:
            raise ValueError(
                f"vrrp_instance {vrrp.name}: virtual_router_id {vrrp.vrid} is already used on "
                f"{vrrp.interface} for IPv{vrrp.version}"
            )
        routers.add(router)
        for address in vrrp.addresses:
            if address in floating:
                raise ValueError(
                    f"vrrp_instance {vrrp.name}: floating address {address} is already in "
                    f"vrrp_instance {floating[address]}"
                )
            floating[address] = vrrp.name
    for vrrp in instances:
        for own in (vrrp.local_ip, vrrp.peer_ip):
            if own in floating:
                raise ValueError(
                    f"vrrp_instance {floating[own]}: {own} is a node address of vrrp_instance "
                    f"{vrrp.name}, it cannot float"
                )


def _checker(service: _Service, protocol: str, server_port: int) -> list[str]:
    """The health checker of one real server in one block (empty for NONE)."""
    check = service.health_check
    if check is L4HealthCheck.NONE:
        return []
    connect = [
        f"connect_port {service.check_port or server_port}",
        f"connect_timeout {service.timeout}",
    ]
    if check is L4HealthCheck.CONNECT:
        # TCP: a completed handshake. UDP: an empty datagram that must not draw an ICMP
        # error (see the module docstring).
        name = "TCP_CHECK" if protocol == "TCP" else "UDP_CHECK"
        body = connect
    else:
        name = "HTTP_GET" if check is L4HealthCheck.HTTP else "SSL_GET"
        body = [
            "url {",
            f"{INDENT}path {service.path}",
            f"{INDENT}status_code {service.status}",
            "}",
            *connect,
        ]
    return [f"{name} {{", *(INDENT + line for line in body), "}"]


def _real_server(service: _Service, server: _Server, port: int, protocol: str) -> list[str]:
    server_port = port if server.port is None else server.port
    if service.forwarding is not Forwarding.NAT and server_port != port:
        # keepalived "resets" it with an error: DR and TUN cannot change the port.
        raise ValueError(
            f"virtual service {service.label}: real server {server.label} port {server_port} "
            f"differs from the service port {port}; {_LB_KIND[service.forwarding]} forwarding "
            "keeps the port (leave the real server port blank)"
        )
    body = [f"weight {server.weight}"]
    if server.upper:
        body.append(f"uthreshold {server.upper}")
    if server.lower:
        body.append(f"lthreshold {server.lower}")
    body += _checker(service, protocol, server_port)
    return [
        f"# {server.label}" + (": drained" if server.state is AdminState.DRAIN else ""),
        f"real_server {server.ip} {server_port} {{",
        *(INDENT + line for line in body),
        "}",
    ]


def _zero_weight_problem(service: _Service, port: int, protocol: str) -> str:
    return (
        f"virtual service {service.label} ({protocol} {port}): every real server in service "
        "has weight 0 or is drained, which keepalived 2.2.7 refuses (its quorum needs a total "
        "weight of at least 1); halt a server instead of draining the last one"
    )


def _block(service: _Service, port: int, protocol: str) -> list[str]:
    body = [
        f"delay_loop {service.interval}",
        f"lb_algo {service.scheduler.value}",
        f"lb_kind {_LB_KIND[service.forwarding]}",
    ]
    if service.persistence_timeout is not None:
        body.append(f"persistence_timeout {service.persistence_timeout}")
    body.append(f"protocol {protocol}")
    if service.health_check is not L4HealthCheck.NONE:
        body += [f"retry {CHECK_RETRY}", f"delay_before_retry {CHECK_DELAY_BEFORE_RETRY_S}"]
    seen: set[tuple[Address, int]] = set()
    for server in service.servers:
        if server.state is AdminState.HALT:
            body.append(f"# {server.label}: halted, left out")
            continue
        server_port = port if server.port is None else server.port
        if (server.ip, server_port) in seen:
            # keepalived drops the second one with an error.
            raise ValueError(
                f"virtual service {service.label}: real server {server.ip} port {server_port} "
                "is listed twice"
            )
        seen.add((server.ip, server_port))
        body += _real_server(service, server, port, protocol)
    if not any(server.weight for server in service.in_service):
        raise ValueError(_zero_weight_problem(service, port, protocol))
    return [
        f"# Virtual service {service.label}",
        f"virtual_server {service.ip} {port} {{",
        *(INDENT + line for line in body),
        "}",
    ]


def render_keepalived(snapshot: KeepalivedSnapshot, layout: RuntimeLayout) -> str:
    """The complete keepalived.conf for ``snapshot``.

    ``layout`` is unused today (keepalived's pid files are command-line options) and kept so
    every renderer shares one signature. With no services and no VRRP instance it is
    ``global_defs`` alone. Raises ValueError, before anything is rendered, for any value that
    could not have passed the allowlists (defence in depth) and for combinations keepalived
    would refuse or that would break the pair (see the module docstring): VRRP names
    ``[A-Za-z0-9_-]{1,32}``, interfaces ``[A-Za-z0-9_.-]{1,15}`` (not ``.``/``..``), VRID
    1..255, priority 1..254, canonical addresses of one family per instance, local != peer,
    at least one VIP, no VIP twice or equal to a node address, adverts 10..40950 ms in steps
    of 10, unique instance names and (interface, VRID, family).
    """
    del layout
    if not isinstance(snapshot, KeepalivedSnapshot):
        raise ValueError(f"not a KeepalivedSnapshot: {snapshot!r}")
    services = [_Service(service) for service in _tuple(snapshot.services, "services")]
    instances = [_Vrrp(instance) for instance in _tuple(snapshot.vrrp, "vrrp instances")]
    _check_vrrp_instances(instances)
    head = [HEADER, *_global_defs(snapshot.router_id, vrrp=bool(instances))]
    static = _static_addresses(snapshot.static_addresses, vrrp=bool(instances))

    labels: set[str] = set()
    addresses: set[tuple[Address, int, str]] = set()
    for service in services:
        if service.label in labels:
            raise ValueError(f"duplicate virtual service label {service.label!r}")
        labels.add(service.label)
        for port, protocol in service.blocks():
            if (service.ip, port, protocol) in addresses:
                raise ValueError(
                    f"virtual service {service.label}: {service.ip} {protocol} port {port} "
                    "is already used by another virtual service"
                )
            addresses.add((service.ip, port, protocol))

    chunks = ["\n".join(head)]
    if static:
        chunks.append("\n".join(static))
    chunks += ["\n".join(_vrrp_block(vrrp)) for vrrp in instances]
    if group := _sync_group(instances):
        chunks.append("\n".join(group))
    for service in services:
        if not service.in_service:
            # keepalived ignores a virtual server with no real server (and -t fails on it).
            chunks.append(
                f"# Virtual service {service.label}: no real server in service "
                "(keepalived ignores such a virtual_server)"
            )
            continue
        chunks += ["\n".join(_block(service, port, p)) for port, p in service.blocks()]
    return "\n\n".join(chunks) + "\n"
