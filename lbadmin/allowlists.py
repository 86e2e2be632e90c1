"""Strict allowlists for every configuration value a user or a peer can send.

Each ``clean_*`` function takes the raw text, returns the one canonical value the renderers may
use, or raises ``ValidationError`` with a message fit to show next to the field. Nothing reaches
a config file, a command line or a path without passing through one of these.
"""

import ipaddress
import re
import ssl

from django.core.exceptions import ValidationError

from lbadmin.render.checks import LABEL
from lbadmin.render.keepalived import CHECK_PATH
from lbadmin.render.manual_lines import manual_line_problem
from lbadmin.render.stunnel import CIPHER_LIST

LABEL_RE = LABEL  # the renderers check labels against the same pattern
PORT_RE = re.compile(r"[0-9]{1,5}")
# RFC 6265 token characters, less the ones HAProxy's parser gives a meaning to
# ('#' comment, quotes, '$' environment expansion, '%' log-format, backslash escapes).
COOKIE_NAME_RE = re.compile(r"[A-Za-z0-9!&*+.^_|~-]{1,64}")
DURATION_RE = re.compile(r"([0-9]{1,9})(ms|s|m|h)?")
DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, None: 1}
MAX_PORTS_PER_SERVICE = 64
MAX_TIMEOUT_MS = 86_400_000  # one day: HAProxy's own limit is 2**31 ms
MAX_WEIGHT = 256  # HAProxy's range is 0..256
MAX_MANUAL_LINES = 200
MAX_MANUAL_LINE_LENGTH = 1000


def clean_label(value: str) -> str:
    if not LABEL_RE.fullmatch(value):
        raise ValidationError(
            "Use 1 to 64 characters: letters, digits and _ . : - only.", code="label"
        )
    return value


def clean_ip(value: str) -> str:
    """A unicast IPv4 or IPv6 address, exactly (no prefix, port, scope or other text)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(
            f"“{shown(value)}” is not an IPv4 or IPv6 address.", code="ip"
        ) from None
    if "%" in value:
        raise ValidationError("Scoped IPv6 addresses are not supported.", code="ip")
    if address.is_multicast or address.is_unspecified:
        raise ValidationError("Use a unicast address, not a multicast or 0.0.0.0/::.", code="ip")
    if address.version == 6 and address.is_link_local:
        raise ValidationError("IPv6 link-local addresses are not supported.", code="ip")
    return str(address)


DNS_NAME_RE = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)


def clean_dns_name(value: str) -> str:
    """A fully qualified host name (RFC 1123, at least two labels, no wildcard), lowercased."""
    if not DNS_NAME_RE.fullmatch(value):
        raise ValidationError(
            f"“{shown(value)}” is not a fully qualified DNS name like pool1.example.com.",
            code="dns_name",
        )
    return value.lower()


def clean_port(value: str) -> int:
    if not PORT_RE.fullmatch(value) or not 1 <= int(value) <= 65535:
        raise ValidationError(
            f"“{shown(value)}” is not a port: use a whole number from 1 to 65535.", code="port"
        )
    return int(value)


def clean_optional_port(value: str) -> int | None:
    return clean_port(value) if value else None


def clean_port_list(value: str) -> tuple[int, ...]:
    """'135,443, 444' -> (135, 443, 444): comma-separated, spaces allowed after commas."""
    if not value:
        raise ValidationError("Enter at least one port.", code="ports")
    ports = [clean_port(part.strip(" ")) for part in value.split(",")]
    if len(set(ports)) != len(ports):
        raise ValidationError("A port is listed twice.", code="ports")
    if len(ports) > MAX_PORTS_PER_SERVICE:
        raise ValidationError(
            f"At most {MAX_PORTS_PER_SERVICE} ports per virtual service.", code="ports"
        )
    return tuple(sorted(ports))


def clean_port_ranges(value: str) -> tuple[int, ...]:
    """'5060-5062, 5065' -> (5060, 5061, 5062, 5065): ports and ranges, comma-separated."""
    if not value:
        raise ValidationError("Enter a port, a list or a range.", code="ports")
    ports: list[int] = []
    for part in value.split(","):
        first, dash, last = part.strip(" ").partition("-")
        if not dash:
            ports.append(clean_port(first))
            continue
        low, high = clean_port(first), clean_port(last)
        if low >= high:
            raise ValidationError(
                f"“{shown(part.strip())}” is not a range: write the lower port first.",
                code="ports",
            )
        if high - low >= MAX_PORTS_PER_SERVICE:
            raise ValidationError(
                f"At most {MAX_PORTS_PER_SERVICE} ports per virtual service.", code="ports"
            )
        ports.extend(range(low, high + 1))
    if len(set(ports)) != len(ports):
        raise ValidationError("A port is listed twice.", code="ports")
    if len(ports) > MAX_PORTS_PER_SERVICE:
        raise ValidationError(
            f"At most {MAX_PORTS_PER_SERVICE} ports per virtual service.", code="ports"
        )
    return tuple(sorted(ports))


def format_port_ranges(ports: tuple[int, ...]) -> str:
    """(5060, 5061, 5062, 5065) -> '5060-5062,5065': how a port list is shown."""
    parts: list[str] = []
    start = previous = None
    for port in [*sorted(ports), None]:
        if start is not None and port == previous + 1:
            previous = port
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = port
    return ",".join(parts)


# An HTTP(S) health-check path as keepalived reads it unquoted (see render.keepalived).
CHECK_PATH_RE = CHECK_PATH


def clean_check_path(value: str) -> str:
    if not CHECK_PATH_RE.fullmatch(value):
        raise ValidationError(
            "Start with / and use letters, digits and . _ ~ % / ? & = + , : @ - only "
            "(no spaces), at most 255 characters.",
            code="path",
        )
    return value


def clean_cookie_name(value: str) -> str:
    if not COOKIE_NAME_RE.fullmatch(value):
        raise ValidationError(
            "Use 1 to 64 characters: letters, digits and ! & * + - . ^ _ | ~ only.",
            code="cookie_name",
        )
    return value


def clean_duration_ms(value: str, *, minimum_ms: int = 1, maximum_ms: int = MAX_TIMEOUT_MS) -> int:
    """'1800000' (ms), '30m', '4s', '1h', '500ms' -> milliseconds."""
    match = DURATION_RE.fullmatch(value)
    if not match:
        raise ValidationError(
            f"“{shown(value)}” is not a duration: use milliseconds (1800000) or a number "
            "with ms, s, m or h (30m).",
            code="duration",
        )
    milliseconds = int(match.group(1)) * DURATION_UNITS_MS[match.group(2)]
    if not minimum_ms <= milliseconds <= maximum_ms:
        raise ValidationError(
            f"Use a duration from {format_duration_ms(minimum_ms)} to "
            f"{format_duration_ms(maximum_ms)}.",
            code="duration",
        )
    return milliseconds


def format_duration_ms(milliseconds: int) -> str:
    """The shortest exact way to write a duration: 1800000 -> '30m', 4000 -> '4s'."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def clean_whole_number(value: str, *, minimum: int, maximum: int, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value) or not minimum <= int(value) <= maximum:
        raise ValidationError(
            f"{what} must be a whole number from {minimum} to {maximum}.", code="number"
        )
    return int(value)


def clean_weight(value: str) -> int:
    return clean_whole_number(value, minimum=0, maximum=MAX_WEIGHT, what="Weight")


def clean_manual_lines(value: str) -> tuple[str, ...]:
    """Raw HAProxy lines for one service: the one deliberate escape hatch (admins only).

    They go inside that service's section and must not be able to leave it: no line may open
    a section or a conditional block, and no control characters are allowed.
    """
    lines = [line.rstrip() for line in value.replace("\r\n", "\n").split("\n")]
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise ValidationError("Enter the HAProxy lines for this service.", code="manual")
    if len(lines) > MAX_MANUAL_LINES:
        raise ValidationError(f"At most {MAX_MANUAL_LINES} lines.", code="manual")
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_MANUAL_LINE_LENGTH:
            raise ValidationError(f"Line {number} is too long.", code="manual")
        problem = manual_line_problem(line)
        if problem:
            raise ValidationError(f"Line {number} {problem}.", code="manual")
    return tuple(lines)


# Cipher-string words that select no encryption (NULL), no authentication (anonymous DH),
# export-grade or broken ciphers, or lower OpenSSL's security level.
WEAK_CIPHER_WORDS = ("NULL", "ADH", "AECDH", "EXP", "RC4", "MD5", "@SECLEVEL", "DES-CBC-")


def clean_cipher_list(value: str) -> str:
    """An OpenSSL cipher list for TLS 1.2 and older ("ECDHE-RSA-AES128-GCM-SHA256:..."):
    only cipher-string characters, and OpenSSL itself must find at least one cipher in it."""
    if not CIPHER_LIST.fullmatch(value):
        raise ValidationError(
            "Use cipher names separated by colons (letters, digits and _ . : + ! @ = - only, "
            "no spaces), at most 1024 characters.",
            code="ciphers",
        )
    # Only what the list adds counts: "!aNULL" (remove) and "-x" (take out) are good practice.
    added = [part.upper() for part in value.split(":") if not part.startswith(("!", "-"))]
    weak = [word for word in WEAK_CIPHER_WORDS if any(word in part for part in added)]
    if weak:
        raise ValidationError(
            f"“{weak[0]}” selects ciphers without encryption, without authentication or known "
            "to be broken: remove it.",
            code="ciphers",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(value)
    except ssl.SSLError:
        raise ValidationError(
            f"OpenSSL knows no cipher in “{shown(value)}”: check the names "
            "(openssl ciphers -v lists them).",
            code="ciphers",
        ) from None
    # TLS 1.3 suites are not chosen by this list; a list that leaves no TLS 1.2 cipher would
    # lock out every TLS 1.2 client.
    if not any(cipher["protocol"] == "TLSv1.2" for cipher in context.get_ciphers()):
        raise ValidationError("The list leaves no cipher for TLS 1.2 clients.", code="ciphers")
    return value


def shown(value: str) -> str:
    """A value as it may be echoed in a message: printable and short."""
    printable = "".join(char if char.isprintable() else "?" for char in value)
    return printable if len(printable) <= 40 else printable[:37] + "..."
