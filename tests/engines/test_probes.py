"""lbadmin.engines.probes: TCP connect, RFC 5389 STUN over UDP and the route to an address.

Probes only ever touch 127.0.0.0/8 (real sockets: listeners, a full accept queue, a STUN
responder written from the RFC in tests/probe_support.py). Routes are parsed from recorded
``ip -j route get fibmatch`` output, and looked up for real in a network namespace this module
makes (``ip route get`` sends nothing).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from lbadmin.engines import probes
from lbadmin.engines.netinfo import NetinfoError
from lbadmin.engines.probes import (
    Probe,
    ProbeResult,
    Route,
    parse_route_get,
    parse_stun_message,
    route_to,
    run_probes,
    stun_probe,
    tcp_probe,
)
from tests.daemon_support import free_port
from tests.probe_support import (
    StunResponder,
    guide_namespace,
    listen_tcp,
    loopback_base,
    needs_netns,
    stuck_listener,
)

TIMEOUT = 0.3


@pytest.fixture
def host() -> str:
    return f"{loopback_base()}{os.getpid() % 250 + 1}.7"


def _ms(reason: str) -> str:
    """'connected in 3 ms' → 'connected in N ms' (the figure varies, the words do not)."""
    return re.sub(r"(under 1|\d+) ms", "N ms", reason)


# --- TCP ----------------------------------------------------------------------------------------


def test_tcp_connected_refused_and_no_answer(host: str) -> None:
    with listen_tcp(host, 0) as listener:
        port = listener.getsockname()[1]
        result = tcp_probe(host, port, TIMEOUT)
        assert result.ok and _ms(result.reason) == "connected in N ms"

    assert tcp_probe(host, port, TIMEOUT) == ProbeResult(False, "connection refused")

    with stuck_listener(host, free_port(host)) as stuck:
        started = time.monotonic()
        result = tcp_probe(host, stuck.getsockname()[1], TIMEOUT)
        elapsed = time.monotonic() - started
    assert result == ProbeResult(False, "no answer within 0.3 s")
    assert TIMEOUT <= elapsed < TIMEOUT + 1  # it waited for the timeout, not for the kernel's


# --- STUN ---------------------------------------------------------------------------------------


def test_stun_binding_success_with_the_mapped_address(host: str) -> None:
    with StunResponder(host) as responder:
        result = stun_probe(host, responder.port, TIMEOUT)
        again = stun_probe(host, responder.port, TIMEOUT)
    assert result.ok and again.ok
    assert _ms(result.reason).startswith("STUN Binding Success Response in N ms (mapped address ")
    # The probe's own address and port as the responder saw them (127.0.0.1: lo's source).
    assert re.search(r"\(mapped address 127\.0\.0\.1:\d+\)$", result.reason)
    # RFC 5389 §6: Binding Request, no attributes, the magic cookie, a random 96-bit id.
    (_, first), (_, second) = responder.requests
    assert first[:8] == bytes.fromhex("0001 0000 2112a442") and len(first) == 20
    assert first[8:20] != second[8:20]


def test_stun_ignores_another_transaction_and_says_so(host: str) -> None:
    with StunResponder(host, mode="wrong_id") as responder:
        result = stun_probe(host, responder.port, TIMEOUT)
    assert result == ProbeResult(
        False,
        "no STUN answer within 0.3 s (1 other datagram ignored: not a Binding response to "
        "this request's transaction id)",
    )


def test_stun_silence_refusal_and_error_response(host: str) -> None:
    with StunResponder(host, mode="silent") as responder:
        assert stun_probe(host, responder.port, TIMEOUT) == ProbeResult(
            False, "no STUN answer within 0.3 s"
        )
    port = responder.port  # closed now: the kernel answers ICMP port unreachable
    assert stun_probe(host, port, TIMEOUT) == ProbeResult(
        False, "connection refused (ICMP port unreachable)"
    )
    with StunResponder(host, mode="error") as responder:
        result = stun_probe(host, responder.port, TIMEOUT)
    assert result.ok  # a TURN server wanting credentials still answers
    assert _ms(result.reason) == (
        "STUN Binding Error Response 401 Unauthorized in N ms: a STUN/TURN server answers (it "
        "wants credentials)"
    )


def test_stun_retransmits_the_same_transaction(host: str) -> None:
    """RFC 5389 §7.2.1: a lost request is sent again after 500 ms, with the same id."""
    with StunResponder(host, mode="second") as responder:
        result = stun_probe(host, responder.port, 1.0)
    assert result.ok, result.reason
    (at_first, first), (at_second, second) = responder.requests
    assert first == second
    assert 0.4 < at_second - at_first < 0.9


# RFC 5769 §2.2 "Sample IPv4 Response" (software "test vector", 192.0.2.1 port 32853).
RFC5769_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
RFC5769_TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def test_stun_messages_are_parsed_as_the_rfc_says() -> None:
    message = parse_stun_message(RFC5769_IPV4_RESPONSE)
    assert message is not None
    assert message.type == probes.STUN_BINDING_SUCCESS
    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert message.mapped_address == "192.0.2.1:32853"

    # RFC 5769 §2.3's XOR-MAPPED-ADDRESS: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
    value = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")
    ipv6 = bytes.fromhex("01010018 2112a442") + RFC5769_TRANSACTION_ID + b"\x00\x20\x00\x14"
    message = parse_stun_message(ipv6 + value)
    assert message is not None
    assert message.mapped_address == "[2001:db8:1234:5678:11:2233:4455:6677]:32853"

    assert probes.stun_binding_request(RFC5769_TRANSACTION_ID) == (
        bytes.fromhex("000100002112a442") + RFC5769_TRANSACTION_ID
    )
    for broken in (
        b"",
        RFC5769_IPV4_RESPONSE[:19],
        RFC5769_IPV4_RESPONSE[:-4],  # the length no longer matches
        b"\xc1" + RFC5769_IPV4_RESPONSE[1:],  # the two top bits must be zero
        RFC5769_IPV4_RESPONSE[:4] + b"\x21\x12\xa4\x43" + RFC5769_IPV4_RESPONSE[8:],  # cookie
    ):
        assert parse_stun_message(broken) is None


# --- Many at once -------------------------------------------------------------------------------


def test_probes_run_at_once_and_only_once_each(host: str) -> None:
    """Ten silent UDP services time out together: their requests arrive together, not one
    timeout apart as they would one after the other. A probe asked twice runs once."""
    responders = [StunResponder(host, mode="silent") for _ in range(10)]
    try:
        asked = [Probe("stun", host, responder.port) for responder in responders]
        results = run_probes([*asked, asked[0]], 0.5)
    finally:
        for responder in responders:
            responder.close()
    assert list(results) == asked
    assert all(
        result == ProbeResult(False, "no STUN answer within 0.5 s") for result in results.values()
    )
    assert len(responders[0].requests) == 1  # the duplicate was not sent
    arrivals = [responder.requests[0][0] for responder in responders]
    assert max(arrivals) - min(arrivals) < 0.5

    with listen_tcp(host, 0) as listener:
        port = listener.getsockname()[1]
        results = run_probes([Probe("tcp", host, port), Probe("tcp", host, port + 1)], TIMEOUT)
    assert [result.ok for result in results.values()] == [True, False]
    assert run_probes([], TIMEOUT) == {}
    with pytest.raises(ValueError, match="timeout_s must be positive: 0"):
        run_probes([Probe("tcp", host, port)], 0)


# --- Routes -------------------------------------------------------------------------------------

# Recorded from `ip -j route get fibmatch <address>` (iproute2 6.1, Linux 6.x) in a namespace
# with 192.168.20.1/24 on d0, 10.20.0.1/16 on d1, default via 192.168.20.254, the guide's
# 192.168.100.0/24 via 192.168.20.2 and a multipath 198.51.100.0/24.
RECORDED = {
    "gateway": '[{"dst":"192.168.100.0/24","gateway":"192.168.20.2","dev":"d0","flags":[]}]',
    "on_link": (
        '[{"dst":"10.20.0.0/16","dev":"d1","protocol":"kernel","scope":"link",'
        '"prefsrc":"10.20.0.1","flags":[]}]'
    ),
    "default": '[{"dst":"default","gateway":"192.168.20.254","dev":"d0","flags":[]}]',
    "local": (
        '[{"type":"local","dst":"192.168.20.1","dev":"d0","protocol":"kernel","scope":"host",'
        '"prefsrc":"192.168.20.1","flags":[]}]'
    ),
    "loopback": (
        '[{"type":"local","dst":"127.0.0.0/8","dev":"lo","protocol":"kernel","scope":"host",'
        '"prefsrc":"127.0.0.1","flags":[]}]'
    ),
    "multipath": (
        '[{"dst":"198.51.100.0/24","flags":[],"nexthops":[{"gateway":"192.168.20.3","dev":"d0",'
        '"weight":1,"flags":[]},{"gateway":"192.168.20.4","dev":"d0","weight":1,"flags":[]}]}]'
    ),
    "on_link_v6": (
        '[{"dst":"2001:db8:20::/64","dev":"d0","protocol":"kernel","metric":256,"flags":[],'
        '"pref":"medium"}]'
    ),
    "default_v6": (
        '[{"dst":"default","gateway":"2001:db8:20::fe","dev":"d0","metric":1024,"flags":[],'
        '"pref":"medium"}]'
    ),
}


@pytest.mark.parametrize(
    ("sample", "address", "expected", "described"),
    [
        ("gateway", "192.168.100.10",
         Route("192.168.100.10", "192.168.100.0/24", "unicast", "192.168.20.2", "d0"),
         "via 192.168.20.2 on d0 (route 192.168.100.0/24)"),
        ("on_link", "10.20.1.10",
         Route("10.20.1.10", "10.20.0.0/16", "unicast", None, "d1"),
         "on-link on d1 (10.20.0.0/16)"),
        ("default", "203.0.113.7",
         Route("203.0.113.7", "default", "unicast", "192.168.20.254", "d0"),
         "via the default gateway 192.168.20.254 on d0"),
        ("local", "192.168.20.1",
         Route("192.168.20.1", "192.168.20.1/32", "local", None, "d0"),
         "an address of this appliance on d0"),
        ("loopback", "127.0.0.5",
         Route("127.0.0.5", "127.0.0.0/8", "local", None, "lo"),
         "an address of this appliance on lo"),
        ("multipath", "198.51.100.7",
         Route("198.51.100.7", "198.51.100.0/24", "unicast", None, "d0", multipath=True),
         "via several gateways (multipath) on d0 (route 198.51.100.0/24)"),
        ("on_link_v6", "2001:db8:20::5",
         Route("2001:db8:20::5", "2001:db8:20::/64", "unicast", None, "d0"),
         "on-link on d0 (2001:db8:20::/64)"),
        ("default_v6", "2001:db8:99::1",
         Route("2001:db8:99::1", "default", "unicast", "2001:db8:20::fe", "d0"),
         "via the default gateway 2001:db8:20::fe on d0"),
    ],
)  # fmt: skip
def test_route_parser(sample: str, address: str, expected: Route, described: str) -> None:
    route = parse_route_get(RECORDED[sample], address)
    assert route == expected
    assert route.describe() == described
    assert route.local == (sample in ("local", "loopback"))
    assert route.on_link == (sample in ("on_link", "on_link_v6"))
    assert route.via_default == sample.startswith("default")


def test_route_parser_refuses_what_is_not_one_route() -> None:
    for text, error, refusal in (
        ("[]", ValueError, "expected one route, not '[]'"),
        ("{}", ValueError, "expected one route, not '{}'"),
        ('[{"gateway":"192.0.2.1"}]', KeyError, "'dst'"),  # route_to turns it into NetinfoError
        ('[{"dst":"not-a-net"}]', ValueError, "'not-a-net' does not appear to be an IPv4 or IPv6"),
        ("oops", ValueError, "Expecting value: line 1 column 1"),  # json.JSONDecodeError
    ):
        with pytest.raises(error, match=re.escape(refusal)):
            parse_route_get(text, "192.0.2.9")


@pytest.fixture
def namespace() -> Iterator[str]:
    with guide_namespace(f"prb{os.getpid()}") as name:
        yield name


@needs_netns
def test_route_to_asks_the_kernel(namespace: str) -> None:
    assert route_to("192.168.100.10", namespace) == Route(
        "192.168.100.10", "192.168.100.0/24", "unicast", "192.168.20.2", "d0"
    )
    assert route_to("10.20.1.10", namespace).on_link
    assert route_to("198.51.100.7", namespace).via_default
    assert route_to("192.168.20.1", namespace).local
    with pytest.raises(NetinfoError, match="No route to host"):
        route_to("203.0.113.9", namespace)
    refusal = "'192.168.100.10; reboot' does not appear to be an IPv4 or IPv6 address"
    with pytest.raises(ValueError, match=re.escape(refusal)):
        route_to("192.168.100.10; reboot", namespace)
    assert route_to("127.0.0.1").local  # this host's own loopback
