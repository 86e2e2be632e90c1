"""Parsing the kernel's IPVS table (lbadmin.engines.ipvs).

The texts here are sample kernel output, not read from a kernel: this host's kernel has no IPVS
(/proc/net/ip_vs does not exist and the module cannot be loaded), so a real IPVS table cannot
be produced here. They are built with the kernel's own format strings from
``ip_vs_info_seq_show`` (net/netfilter/ipvs/ip_vs_ctl.c), copied below, including their padding
and trailing spaces, so they are byte-for-byte what the kernel prints for these services:

- service, IPv4:  ``"%s  %08X:%04X %s %s "`` (protocol, address, port, scheduler, "ops " or "")
- service, IPv6:  ``"%s  [%pI6]:%04X %s "`` (%pI6: eight 4-digit lower-case hex groups)
- service, mark:  ``"FWM  %08X %s %s"``
- then ``"persistent %d %08X\\n"`` (timeout, netmask) or ``"\\n"``
- real server:    ``"  -> %08X:%04X      %-7s %-6d %-10d %-10d\\n"`` (IPv6: ``[%pI6]``)
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lbadmin.engines.ipvs import (
    PROC_IP_VS,
    IpvsRealServer,
    IpvsService,
    parse_ip_vs,
    read_ipvs,
)

HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
)


def v4(address: str) -> int:
    return int(ipaddress.IPv4Address(address))


def pi6(address: str) -> str:
    """The kernel's %pI6 of ``address``."""
    return ipaddress.IPv6Address(address).exploded


# The kernel's format strings, as ip_vs_info_seq_show passes them to seq_printf.
SERVICE_V4 = "%s  %08X:%04X %s %s "
SERVICE_V6 = "%s  [%s]:%04X %s "
SERVICE_FWM = "FWM  %08X %s %s"
PERSISTENT = "persistent %d %08X\n"
REAL_V4 = "  -> %08X:%04X      %-7s %-6d %-10d %-10d\n"
REAL_V6 = "  -> [%s]:%04X      %-7s %-6d %-10d %-10d\n"


def printf(fmt: str, *args: object) -> str:
    """C's printf for these formats (%08X, %-7s, %-10d … mean the same in Python's %)."""
    return fmt % args


def persistence(timeout: int | None) -> str:
    return "\n" if timeout is None else printf(PERSISTENT, timeout, 0xFFFFFFFF)


def service_v4(
    protocol: str,
    address: str,
    port: int,
    scheduler: str,
    *,
    ops: bool = False,
    timeout: int | None = None,
) -> str:
    flags = "ops " if ops else ""
    return printf(SERVICE_V4, protocol, v4(address), port, scheduler, flags) + persistence(timeout)


def service_v6(
    protocol: str, address: str, port: int, scheduler: str, *, timeout: int | None = None
) -> str:
    return printf(SERVICE_V6, protocol, pi6(address), port, scheduler) + persistence(timeout)


def service_fwm(mark: int, scheduler: str, *, timeout: int | None = None) -> str:
    return printf(SERVICE_FWM, mark, scheduler, "") + persistence(timeout)


def real_v4(address: str, port: int, forward: str, weight: int, active: int, inactive: int) -> str:
    return printf(REAL_V4, v4(address), port, forward, weight, active, inactive)


def real_v6(address: str, port: int, forward: str, weight: int, active: int, inactive: int) -> str:
    return printf(REAL_V6, pi6(address), port, forward, weight, active, inactive)


def test_sample_lines_look_like_the_kernels() -> None:
    """The helpers reproduce the lines quoted in lbadmin/engines/ipvs.py's docstring."""
    assert service_v4("TCP", "10.25.10.10", 443, "wlc", timeout=1800) == (
        "TCP  0A190A0A:01BB wlc  persistent 1800 FFFFFFFF\n"
    )
    assert real_v4("192.168.100.10", 443, "Masq", 100, 3, 12) == (
        "  -> C0A8640A:01BB      Masq    100    3          12        \n"
    )
    assert service_v6("UDP", "2001:db8::10", 53, "rr") == (
        "UDP  [2001:0db8:0000:0000:0000:0000:0000:0010]:0035 rr \n"
    )
    assert service_fwm(1, "wlc", timeout=300) == "FWM  00000001 wlc persistent 300 FFFFFFFF\n"


def test_empty_table() -> None:
    assert parse_ip_vs(HEADER) == ()
    assert parse_ip_vs("") == ()


def test_ipv4_persistent_masq_service_with_two_real_servers() -> None:
    """The guide's Layer 4 shape: a VIP on 443, source-IP persistence, NAT to two servers."""
    text = (
        HEADER
        + service_v4("TCP", "10.25.10.10", 443, "wlc", timeout=1800)
        + real_v4("192.168.100.10", 443, "Masq", 100, 3, 12)
        + real_v4("192.168.100.11", 443, "Masq", 0, 0, 1)
    )
    assert parse_ip_vs(text) == (
        IpvsService(
            protocol="tcp",
            ip="10.25.10.10",
            port=443,
            scheduler="wlc",
            persistent=True,
            persistence_timeout=1800,
            real_servers=(
                IpvsRealServer("192.168.100.10", 443, "Masq", 100, 3, 12),
                IpvsRealServer("192.168.100.11", 443, "Masq", 0, 0, 1),
            ),
        ),
    )


def test_several_services_route_tunnel_and_one_packet() -> None:
    text = (
        HEADER
        + service_v4("TCP", "10.25.10.20", 5061, "rr")
        + real_v4("10.25.10.21", 5061, "Route", 1, 250, 1003)
        + real_v4("10.25.10.22", 5061, "Tunnel", 2, 0, 0)
        + service_v4("UDP", "10.25.10.20", 3478, "sh", ops=True)
        + real_v4("10.25.10.21", 3478, "Local", 1, 0, 0)
        + service_v4("TCP", "10.25.10.30", 80, "lc")  # no real servers (all removed)
    )
    first, second, third = parse_ip_vs(text)
    assert (first.protocol, first.ip, first.port, first.scheduler) == (
        "tcp",
        "10.25.10.20",
        5061,
        "rr",
    )
    assert not first.persistent and first.persistence_timeout == 0 and not first.one_packet
    assert [(r.ip, r.forward, r.weight, r.active, r.inactive) for r in first.real_servers] == [
        ("10.25.10.21", "Route", 1, 250, 1003),
        ("10.25.10.22", "Tunnel", 2, 0, 0),
    ]
    assert (second.protocol, second.port, second.scheduler, second.one_packet) == (
        "udp",
        3478,
        "sh",
        True,
    )
    assert second.real_servers == (IpvsRealServer("10.25.10.21", 3478, "Local", 1, 0, 0),)
    assert third.real_servers == () and third.port == 80


def test_ipv6_services_and_real_servers() -> None:
    text = (
        HEADER
        + service_v6("TCP", "2001:db8::10", 443, "wlc", timeout=600)
        + real_v6("2001:db8::11", 443, "Masq", 100, 1, 2)
        + real_v6("2001:db8:0:1::12", 8443, "Route", 50, 0, 0)
    )
    (service,) = parse_ip_vs(text)
    assert (service.protocol, service.ip, service.port) == ("tcp", "2001:db8::10", 443)
    assert service.persistent and service.persistence_timeout == 600
    assert service.real_servers == (
        IpvsRealServer("2001:db8::11", 443, "Masq", 100, 1, 2),
        IpvsRealServer("2001:db8:0:1::12", 8443, "Route", 50, 0, 0),
    )


def test_fwmark_services_are_parsed_with_their_mark() -> None:
    text = (
        HEADER
        + service_v4("TCP", "10.25.10.10", 443, "wlc")
        + real_v4("192.168.100.10", 443, "Masq", 1, 0, 0)
        + service_fwm(0x1F, "wlc", timeout=300)
        + real_v4("192.168.100.10", 0, "Tunnel", 50, 4, 5)
        + real_v4("192.168.100.11", 0, "Tunnel", 50, 0, 0)
    )
    plain, marked = parse_ip_vs(text)
    assert plain.fwmark is None and plain.protocol == "tcp"
    assert (marked.protocol, marked.ip, marked.port, marked.fwmark) == ("fwm", "", 0, 31)
    assert marked.persistent and marked.persistence_timeout == 300
    assert [r.ip for r in marked.real_servers] == ["192.168.100.10", "192.168.100.11"]
    assert all(r.port == 0 and r.forward == "Tunnel" for r in marked.real_servers)


def test_kernels_without_the_ops_field() -> None:
    """Before one-packet scheduling the IPv4 service line had one space after the scheduler."""
    text = "TCP  0A190A0A:01BB wlc persistent 1800 FFFFFFFF\n" + real_v4(
        "192.168.100.10", 443, "Masq", 100, 0, 0
    )
    (service,) = parse_ip_vs(text)
    assert service.persistent and service.port == 443 and len(service.real_servers) == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("hello world", "unrecognised /proc/net/ip_vs line"),
        ("TCP  ZZZZZZZZ:01BB wlc ", "unrecognised /proc/net/ip_vs line"),
        ("TCP  0A190A0A wlc ", "unrecognised /proc/net/ip_vs line"),  # no port
        # not a protocol IPVS balances here
        ("ICMP  0A190A0A:0000 wlc ", "unknown protocol in /proc/net/ip_vs line"),
        (
            "TCP  0A190A0A:01BB wlc persistent soon FFFFFFFF",
            "unexpected service flags in /proc/net/ip_vs line",
        ),
        ("TCP  0A190A0A:01BB wlc frobnicate", "unexpected service flags in /proc/net/ip_vs line"),
        ("TCP  [2001:db8::zz]:01BB wlc ", "unrecognised /proc/net/ip_vs line"),
        ("TCP  [2001:db8:::1]:01BB wlc ", "bad address '[2001:db8:::1]' in /proc/net/ip_vs line"),
        (
            "  -> C0A8640A:01BB      Bogus   1      0          0",
            "unknown forwarding method in /proc/net/ip_vs line",
        ),
        # a column short
        ("  -> C0A8640A:01BB      Masq    1      0", "unrecognised /proc/net/ip_vs line"),
        (
            "  -> C0A8640A:01BB      Masq    1      -1         0",
            "unrecognised /proc/net/ip_vs line",
        ),
    ],
)
def test_garbage_lines_raise_value_error_naming_the_line(line: str, reason: str) -> None:
    text = HEADER + service_v4("TCP", "10.25.10.10", 443, "wlc") + line + "\n"
    with pytest.raises(ValueError) as error:
        parse_ip_vs(text)
    assert str(error.value) == f"{reason}: {line!r}"


def test_real_server_before_any_service_is_an_error() -> None:
    line = real_v4("192.168.100.10", 443, "Masq", 1, 0, 0)
    with pytest.raises(ValueError, match="before any service"):
        parse_ip_vs(HEADER + line)


def test_read_ipvs(tmp_path: Path) -> None:
    assert read_ipvs(tmp_path / "no-ip_vs") is None  # the kernel has no IPVS
    sample = tmp_path / "ip_vs"
    sample.write_text(
        HEADER
        + service_v4("TCP", "10.25.10.10", 443, "wlc")
        + real_v4("192.168.100.10", 443, "Masq", 1, 2, 3)
    )
    (service,) = read_ipvs(sample) or ()
    assert service.real_servers[0].inactive == 3
    # This host: None without IPVS, a table (possibly empty) with it.
    assert (read_ipvs() is None) == (not PROC_IP_VS.exists())
