"""The kernel's IPVS table (Layer 4 virtual services and their real servers) from
``/proc/net/ip_vs``: pure parsing plus one reader. No Django, no subprocess.

The format is the kernel's ``ip_vs_info_seq_show`` (net/netfilter/ipvs/ip_vs_ctl.c)::

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port Forward Weight ActiveConn InActConn
    TCP  0A190A0A:01BB wlc persistent 1800 FFFFFFFF
      -> C0A8640A:01BB      Masq    100    3          12
    UDP  [2001:0db8:0000:0000:0000:0000:0000:0010]:0035 rr
      -> [2001:0db8:0000:0000:0000:0000:0000:0011]:0035      Route   1      0          0
    FWM  00000001 wlc persistent 300 FFFFFFFF
      -> C0A8640B:0000      Tunnel  50     0          0

- A service line is ``<PROT>  <addr>:<port> <scheduler> [ops ][persistent <timeout>
  <netmask>]``: IPv4 as 8 hex digits (host order, so ``0A190A0A`` is 10.25.10.10), IPv6 in
  brackets as eight colon-separated groups of 4 hex digits (``%pI6``), the port as 4 hex digits;
  ``ops`` (one-packet scheduling) is printed for IPv4 and fwmark services only. PROT is TCP,
  UDP or SCTP.
- ``FWM  <mark, 8 hex digits> <scheduler> …`` is a firewall-mark service: it has no protocol,
  address or port of its own (``IpvsService.protocol == "fwm"``, ``ip == ""``, ``port == 0``
  and ``fwmark`` set). The appliance's Layer 4 services are address:port ones, but a mark
  service set up by hand is reported rather than hidden.
- A real server line is ``  -> <addr>:<port> <Forward> <Weight> <ActiveConn> <InActConn>``;
  Forward is Masq (NAT), Route (DR), Tunnel (TUN) or Local.
- The table lists the services of the reader's network namespace only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

PROC_IP_VS = Path("/proc/net/ip_vs")

FORWARD_METHODS: frozenset[str] = frozenset({"Masq", "Route", "Tunnel", "Local"})
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}

_HEADER = re.compile(
    r"IP Virtual Server version \d+\.\d+\.\d+ \(size=\d+\)"
    r"|Prot LocalAddress:Port Scheduler Flags"
    r"|-> RemoteAddress:Port Forward Weight ActiveConn InActConn"
)
_HEX_V4 = r"[0-9A-Fa-f]{8}"
_HEX_V6 = r"\[[0-9A-Fa-f:]+\]"
_HEX_PORT = r"[0-9A-Fa-f]{4}"
_SERVICE = re.compile(
    rf"(?P<prot>[A-Z]+)\s+(?P<addr>{_HEX_V4}|{_HEX_V6}):(?P<port>{_HEX_PORT})"
    r"\s+(?P<sched>[a-z][a-z0-9]*)(?P<flags>(?:\s+\S+)*)"
)
_FWMARK = re.compile(
    r"FWM\s+(?P<mark>[0-9A-Fa-f]{8})\s+(?P<sched>[a-z][a-z0-9]*)(?P<flags>(?:\s+\S+)*)"
)
_REAL = re.compile(
    rf"->\s+(?P<addr>{_HEX_V4}|{_HEX_V6}):(?P<port>{_HEX_PORT})"
    r"\s+(?P<fwd>[A-Za-z]+)\s+(?P<weight>-?\d+)\s+(?P<active>\d+)\s+(?P<inactive>\d+)"
)


@dataclass(frozen=True)
class IpvsRealServer:
    ip: str
    port: int
    forward: str  # Masq (NAT), Route (direct routing), Tunnel (IPIP) or Local
    weight: int
    active: int  # ActiveConn: established connections
    inactive: int  # InActConn: connections in any other state (closing, SYN_RECV…)


@dataclass(frozen=True)
class IpvsService:
    protocol: str  # "tcp", "udp", "sctp"; "fwm" for a firewall-mark service
    ip: str  # canonical text ("10.25.10.10", "2001:db8::10"); "" for a fwmark service
    port: int  # 0 for a fwmark service
    scheduler: str  # wlc, rr, lc, sh, …
    persistent: bool
    real_servers: tuple[IpvsRealServer, ...]
    persistence_timeout: int = 0  # seconds; 0 when not persistent
    one_packet: bool = False  # "ops": one-packet scheduling (UDP)
    fwmark: int | None = None


def _address(text: str, line: str) -> str:
    try:
        if text.startswith("["):
            return str(ipaddress.IPv6Address(text[1:-1]))
        return str(ipaddress.IPv4Address(int(text, 16)))
    except ValueError:
        raise ValueError(f"bad address {text!r} in /proc/net/ip_vs line: {line!r}") from None


def _service_flags(flags: str, line: str) -> tuple[bool, int, bool]:
    """(persistent, timeout, one_packet) from the words after the scheduler.

    The persistence netmask that follows the timeout is checked but not kept: for an IPv6
    service the kernel stores a prefix length there and prints it through ntohl().
    """
    words = flags.split()
    one_packet = bool(words) and words[0] == "ops"
    if one_packet:
        words = words[1:]
    if not words:
        return False, 0, one_packet
    if (
        len(words) == 3
        and words[0] == "persistent"
        and words[1].isdigit()
        and re.fullmatch(r"[0-9A-Fa-f]{8}", words[2])
    ):
        return True, int(words[1]), one_packet
    raise ValueError(f"unexpected service flags in /proc/net/ip_vs line: {line!r}")


def _parse_service(line: str) -> IpvsService | None:
    """The service of a service line (with no real servers yet), or None if it is not one."""
    service = _SERVICE.fullmatch(line.strip())
    if service is not None:
        if service["prot"] not in _PROTOCOLS:
            raise ValueError(f"unknown protocol in /proc/net/ip_vs line: {line!r}")
        protocol = _PROTOCOLS[service["prot"]]
        ip, port, fwmark = _address(service["addr"], line), int(service["port"], 16), None
    else:
        service = _FWMARK.fullmatch(line.strip())
        if service is None:
            return None
        protocol, ip, port, fwmark = "fwm", "", 0, int(service["mark"], 16)
    persistent, timeout, one_packet = _service_flags(service["flags"], line)
    return IpvsService(
        protocol=protocol,
        ip=ip,
        port=port,
        scheduler=service["sched"],
        persistent=persistent,
        real_servers=(),
        persistence_timeout=timeout,
        one_packet=one_packet,
        fwmark=fwmark,
    )


def _parse_real_server(line: str) -> IpvsRealServer | None:
    """The real server of a ``->`` line, or None if it is not one."""
    real = _REAL.fullmatch(line.strip())
    if real is None:
        return None
    if real["fwd"] not in FORWARD_METHODS:
        raise ValueError(f"unknown forwarding method in /proc/net/ip_vs line: {line!r}")
    return IpvsRealServer(
        ip=_address(real["addr"], line),
        port=int(real["port"], 16),
        forward=real["fwd"],
        weight=int(real["weight"]),
        active=int(real["active"]),
        inactive=int(real["inactive"]),
    )


def parse_ip_vs(text: str) -> tuple[IpvsService, ...]:
    """The services of a ``/proc/net/ip_vs`` text, in the kernel's order, each with its real
    servers. Header and blank lines are skipped; any other line that is not a service or a
    real server (or a real server before any service) raises ValueError naming the line."""
    services: list[IpvsService] = []
    reals: list[IpvsRealServer] = []

    def finish() -> None:
        if services:
            services[-1] = replace(services[-1], real_servers=tuple(reals))

    for raw in text.splitlines():
        if not raw.strip() or _HEADER.fullmatch(raw.strip()):
            continue
        real = _parse_real_server(raw)
        if real is not None:
            if not services:
                raise ValueError(f"real server before any service in /proc/net/ip_vs: {raw!r}")
            reals.append(real)
            continue
        service = _parse_service(raw)
        if service is None:
            raise ValueError(f"unrecognised /proc/net/ip_vs line: {raw!r}")
        finish()
        services.append(service)
        reals = []
    finish()
    return tuple(services)


def read_ipvs(path: Path = PROC_IP_VS) -> tuple[IpvsService, ...] | None:
    """The IPVS table of this network namespace; None when the kernel has no IPVS (the file
    does not exist: module not loaded or not built, as on these test machines).

    ValueError (from ``parse_ip_vs``) if the kernel prints something unexpected; other
    OSErrors (permissions) propagate.
    """
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    return parse_ip_vs(text)
