"""What the post-apply checklist asks the network from this appliance: does an address answer
on a TCP port, does it answer an RFC 5389 STUN Binding Request on a UDP port, and which route
would the kernel use to reach it.

No Django. Probes never raise for a network outcome: they return a ``ProbeResult`` whose
``reason`` says what happened ("connected in 3 ms", "connection refused", "no answer within
1 s"). ``run_probes`` runs many at once in threads, so a checklist of a hundred probes takes
about one timeout, not the sum. ``route_to`` runs ``ip`` with an argument list (never a shell)
through ``netinfo``'s bounded runner; the lookup sends nothing on the network.

Measured on Linux 6.x / iproute2 6.1:
- a TCP connect to a listener whose accept queue is full is not refused: the SYN is dropped
  and the connect waits (how the tests make a "no answer" on loopback);
- a UDP datagram to a port nothing listens on comes back as ICMP port unreachable, which a
  connected UDP socket reports as ECONNREFUSED on the next ``recv``;
- ``ip -j route get fibmatch <ip>`` prints the routing-table entry the lookup matched (its
  ``dst`` is "default" for the default route, else the prefix, e.g. "192.168.100.0/24"), with
  ``gateway``/``dev``, ``nexthops`` for a multipath route, and ``"type": "local"`` for an
  address of this host. Plain ``route get`` prints the address itself as ``dst``, which cannot
  tell a static route from the default one. With no route (none at all, or an ``unreachable``
  or ``blackhole`` one) ip exits 2 with "RTNETLINK answers: Network is unreachable" / "No
  route to host".
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import struct
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from lbadmin.engines import netinfo

# Threads for one run: enough that the guide's deployment (~100 probes) is one round; a pool
# of 64 servers × 10 ports would take a few rounds rather than thousands of sockets at once.
MAX_PARALLEL = 256

# RFC 5389 §6: the header is type (2 bytes), length (2), magic cookie (4), transaction id (12).
STUN_MAGIC_COOKIE = 0x2112A442
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101
STUN_BINDING_ERROR = 0x0111
_ATTR_MAPPED_ADDRESS = 0x0001
_ATTR_ERROR_CODE = 0x0009
_ATTR_XOR_MAPPED_ADDRESS = 0x0020
_STUN_RTO_S = 0.5  # RFC 5389 §7.2.1: the first retransmission after 500 ms, then doubling
_STUN_MAX_DATAGRAM = 2048


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str  # "connected in 3 ms", "connection refused", "no answer within 1 s", …


@dataclass(frozen=True)
class Probe:
    """One question for ``run_probes``: "tcp" connects, "stun" sends a Binding Request."""

    kind: Literal["tcp", "stun"]
    ip: str
    port: int


def _seconds(timeout_s: float) -> str:
    return f"{timeout_s:g} s"


def _milliseconds(elapsed_s: float) -> str:
    return "under 1 ms" if elapsed_s < 0.0005 else f"{elapsed_s * 1000:.0f} ms"


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET


def _os_reason(error: OSError) -> str:
    """'no route to host', 'network is unreachable', … as the kernel says it."""
    text = error.strerror or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]


def tcp_probe(ip: str, port: int, timeout_s: float) -> ProbeResult:
    """Whether ``ip:port`` accepts a TCP connection within ``timeout_s`` (then closed at once,
    nothing sent)."""
    try:
        sock = socket.socket(_family(ip), socket.SOCK_STREAM)
    except (OSError, ValueError) as error:
        return ProbeResult(False, f"cannot open a socket: {error}")
    with sock:
        sock.settimeout(timeout_s)
        started = time.monotonic()
        try:
            sock.connect((ip, port))
        except TimeoutError:
            return ProbeResult(False, f"no answer within {_seconds(timeout_s)}")
        except ConnectionRefusedError:
            return ProbeResult(False, "connection refused")
        except OSError as error:
            return ProbeResult(False, _os_reason(error))
        return ProbeResult(True, f"connected in {_milliseconds(time.monotonic() - started)}")


# --- STUN ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StunMessage:
    type: int  # STUN_BINDING_SUCCESS, STUN_BINDING_ERROR, …
    transaction_id: bytes  # 12 bytes
    mapped_address: str | None  # "192.0.2.1:3478" from (XOR-)MAPPED-ADDRESS, when present
    error: str | None  # "401 Unauthorized" from ERROR-CODE, when present


def stun_binding_request(transaction_id: bytes) -> bytes:
    """RFC 5389 §6: a Binding Request without attributes (the 20-byte header alone)."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id has 96 bits")
    return struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC_COOKIE) + transaction_id


def parse_stun_message(data: bytes) -> StunMessage | None:
    """An RFC 5389 message (header, attributes); None for anything that is not one (the two
    top bits set, a wrong magic cookie or a length that does not match)."""
    if len(data) < 20:
        return None
    kind, length, cookie = struct.unpack("!HHI", data[:8])
    if kind & 0xC000 or cookie != STUN_MAGIC_COOKIE or length % 4 or length != len(data) - 20:
        return None
    transaction_id = data[8:20]
    mapped: str | None = None
    error: str | None = None
    offset = 20
    while offset + 4 <= len(data):
        attribute, size = struct.unpack("!HH", data[offset : offset + 4])
        value = data[offset + 4 : offset + 4 + size]
        if len(value) != size:
            return None
        if attribute == _ATTR_XOR_MAPPED_ADDRESS:
            mapped = _address(value, transaction_id, xor=True) or mapped
        elif attribute == _ATTR_MAPPED_ADDRESS and mapped is None:
            mapped = _address(value, transaction_id, xor=False)
        elif attribute == _ATTR_ERROR_CODE and size >= 4:
            code = (value[2] & 0x07) * 100 + value[3]
            phrase = value[4:].decode("utf-8", errors="replace").strip()
            error = f"{code} {phrase}".strip()
        offset += 4 + size + (-size % 4)  # values are padded to 4 bytes
    return StunMessage(kind, transaction_id, mapped, error)


def _address(value: bytes, transaction_id: bytes, *, xor: bool) -> str | None:
    """(XOR-)MAPPED-ADDRESS (RFC 5389 §15.1, §15.2) as "ip:port" / "[ip]:port"."""
    if len(value) < 8 or value[1] not in (1, 2):
        return None
    port = struct.unpack("!H", value[2:4])[0]
    raw = value[4:8] if value[1] == 1 else value[4:20]
    if len(raw) != (4 if value[1] == 1 else 16):
        return None
    if xor:
        port ^= STUN_MAGIC_COOKIE >> 16
        mask = struct.pack("!I", STUN_MAGIC_COOKIE) + transaction_id
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=False))
    ip = ipaddress.ip_address(raw)
    return f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}"


def stun_probe(ip: str, port: int, timeout_s: float) -> ProbeResult:
    """Whether ``ip:port`` answers an RFC 5389 Binding Request over UDP with a Binding Success
    or Error Response for the same (random, 96-bit) transaction, within ``timeout_s``. This is
    how the guide's A/V Edge services on UDP 3478 can be told apart from a silent port: UDP has no
    handshake. The request is retransmitted after 500 ms, 1.5 s, … (RFC 5389 §7.2.1) with the
    same transaction id; anything else that arrives is ignored and counted in the reason."""
    transaction_id = secrets.token_bytes(12)
    request = stun_binding_request(transaction_id)
    try:
        sock = socket.socket(_family(ip), socket.SOCK_DGRAM)
    except (OSError, ValueError) as error:
        return ProbeResult(False, f"cannot open a socket: {error}")
    with sock:
        started = time.monotonic()
        deadline = started + timeout_s
        next_send, rto = started, _STUN_RTO_S
        ignored = 0
        try:
            sock.connect((ip, port))  # so ICMP port unreachable comes back as ECONNREFUSED
            while (now := time.monotonic()) < deadline:
                if now >= next_send:
                    sock.send(request)
                    next_send, rto = next_send + rto, rto * 2
                sock.settimeout(max(min(deadline, next_send) - now, 0.001))
                try:
                    data = sock.recv(_STUN_MAX_DATAGRAM)
                except TimeoutError:
                    continue
                message = parse_stun_message(data)
                if message is None or message.transaction_id != transaction_id:
                    ignored += 1
                    continue
                elapsed = _milliseconds(time.monotonic() - started)
                if message.type == STUN_BINDING_SUCCESS:
                    mapped = f" (mapped address {message.mapped_address})"
                    return ProbeResult(
                        True,
                        f"STUN Binding Success Response in {elapsed}"
                        + (mapped if message.mapped_address else ""),
                    )
                if message.type == STUN_BINDING_ERROR:
                    # A TURN server (the A/V Edge's MS-TURN) may want credentials even for a
                    # Binding Request: an error for our transaction still proves it answers.
                    return ProbeResult(
                        True,
                        f"STUN Binding Error Response {message.error or '(no error code)'} in "
                        f"{elapsed}: a STUN/TURN server answers (it wants credentials)",
                    )
                ignored += 1  # our transaction id on some other message type: not an answer
        except ConnectionRefusedError:
            return ProbeResult(False, "connection refused (ICMP port unreachable)")
        except OSError as error:
            return ProbeResult(False, _os_reason(error))
    reason = f"no STUN answer within {_seconds(timeout_s)}"
    if ignored:
        reason += (
            f" ({ignored} other datagram{'s' if ignored > 1 else ''} ignored: not a Binding "
            "response to this request's transaction id)"
        )
    return ProbeResult(False, reason)


# --- Many at once -------------------------------------------------------------------------------


def _run(probe: Probe, timeout_s: float) -> ProbeResult:
    if probe.kind == "stun":
        return stun_probe(probe.ip, probe.port, timeout_s)
    return tcp_probe(probe.ip, probe.port, timeout_s)


def run_probes(probes: Iterable[Probe], timeout_s: float) -> dict[Probe, ProbeResult]:
    """Every distinct probe, run concurrently (up to ``MAX_PARALLEL`` at a time): the whole
    run takes about one ``timeout_s``, however many probes time out."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive: {timeout_s!r}")
    unique = list(dict.fromkeys(probes))
    if not unique:
        return {}
    workers = min(len(unique), MAX_PARALLEL)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
        results = list(pool.map(lambda probe: _run(probe, timeout_s), unique))
    return dict(zip(unique, results, strict=True))


# --- Routes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """The route the kernel would use to reach one address (``ip route get fibmatch``)."""

    address: str  # the address asked about
    matched: str  # the routing-table entry: "default", "192.168.100.0/24", "127.0.0.0/8"
    type: str  # "unicast" (ip prints none), "local" (an address of this host), …
    gateway: str | None  # None on-link, for a local address and for a multipath route
    device: str | None  # the outgoing interface (the first nexthop's for a multipath route)
    multipath: bool = False  # several nexthops (``nexthops``), each through a gateway

    @property
    def local(self) -> bool:
        """An address of this host: nothing leaves it."""
        return self.type == "local"

    @property
    def on_link(self) -> bool:
        """Reached directly on an interface, without a gateway."""
        return self.type == "unicast" and self.gateway is None and not self.multipath

    @property
    def via_default(self) -> bool:
        """Matched by the default route (0.0.0.0/0, ::/0), not a more specific one."""
        return self.matched == "default" or ipaddress.ip_network(self.matched).prefixlen == 0

    def describe(self) -> str:
        """How the address is reached, for a check's reason: "on-link on eth1
        (192.168.20.0/24)", "via 192.168.20.2 on eth1 (route 192.168.100.0/24)", "via the
        default gateway 192.0.2.1 on eth0", "an address of this appliance on lo"."""
        device = f" on {self.device}" if self.device else ""
        if self.local:
            return f"an address of this appliance{device}"
        if self.type != "unicast":
            return f"a {self.type} route ({self.matched})"
        if self.on_link:
            return f"on-link{device} ({self.matched})"
        through = "several gateways (multipath)" if self.multipath else self.gateway
        if self.via_default:
            return f"via the default gateway {through}{device}"
        return f"via {through}{device} (route {self.matched})"


def parse_route_get(text: str, address: str) -> Route:
    """The output of ``ip -j route get fibmatch <address>``; ValueError if it is not that."""
    entries = json.loads(text)
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise ValueError(f"expected one route, not {text[:200]!r}")
    entry = entries[0]
    matched = str(entry["dst"])
    if matched != "default":
        matched = str(ipaddress.ip_network(matched))  # a host route has no "/32": checked here
    nexthops = entry.get("nexthops")
    gateway = entry.get("gateway")
    device = entry.get("dev")
    if isinstance(nexthops, list) and nexthops:
        device = device or nexthops[0].get("dev")
        gateway = None
    return Route(
        address=address,
        matched=matched,
        type=str(entry.get("type", "unicast")),
        gateway=str(ipaddress.ip_address(gateway)) if gateway is not None else None,
        device=str(device) if device is not None else None,
        multipath=bool(nexthops),
    )


def route_to(ip: str, netns: str | None = None) -> Route:
    """The route this node (or ``netns``) would use to reach ``ip``. Sends nothing.
    Raises netinfo.NetinfoError with ip's own words when there is none ("Network is
    unreachable") or ip cannot run; ValueError for something that is not an address."""
    address = str(ipaddress.ip_address(ip))
    # netinfo's runner: argument list, bounded wait and output, NetinfoError quoting ip.
    text = netinfo.run_ip(netns, "-j", "route", "get", "fibmatch", address)
    try:
        return parse_route_get(text, address)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise netinfo.NetinfoError(
            f"cannot read the output of ip -j route get fibmatch {address}: {error}"
        ) from error


__all__ = [
    "MAX_PARALLEL",
    "Probe",
    "ProbeResult",
    "Route",
    "StunMessage",
    "parse_route_get",
    "parse_stun_message",
    "route_to",
    "run_probes",
    "stun_binding_request",
    "stun_probe",
    "tcp_probe",
]
