"""Every value type of the document, each written once: its JSON type, bounds, allowlist (the
renderers' own patterns, anchored, where they exist) and the one message that says what it must
be. The models only name these types and give defaults.

Bounds that exist only in the WebUI's Django forms and lbadmin.allowlists (which this package
cannot import) are written here; the forms should take them from here later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from lbadmin.document.base import shown
from lbadmin.document.values import cipher_list_problem, fernet_token_problem, unicast_ip
from lbadmin.engines.certificates import MAX_UPLOAD_BYTES
from lbadmin.render.checks import LABEL
from lbadmin.render.haproxy import _COOKIE_NAME as COOKIE_NAME
from lbadmin.render.haproxy import _MAX_WEIGHT as MAX_WEIGHT
from lbadmin.render.keepalived import CHECK_PATH, MAX_ADVERT_MS, MAX_CHECK_SECONDS, MIN_ADVERT_MS
from lbadmin.render.stunnel import CIPHER_LIST

# Written only in lbadmin.allowlists and the forms so far (see the module docstring).
MAX_PORTS_PER_SERVICE = 64
MAX_TIMEOUT_MS = 86_400_000  # one day: HAProxy's own limit is 2**31 ms
MIN_CHECK_INTERVAL_MS, MAX_CHECK_INTERVAL_MS = 100, 3_600_000
MAX_PERSISTENCE_S = 86_400  # a day, both layers
MAX_CONNECTIONS = 1_000_000
MAX_MANUAL_TEXT = 200_000  # characters, as the form's field
# The one certificate label with spaces: the appliance makes it (lbadmin.services.certificates).
DEFAULT_CERTIFICATE_LABEL = "Default Self Signed Certificate"

# Enumerations: JSON has strings only, so "lax" (a value's string) is exact for them.
Lax = Strict(False)


class CertificateSource(StrEnum):
    UPLOAD = "upload"  # uploaded PEM/PFX
    CSR = "csr"  # made on the appliance: key and CSR here, signed certificate later
    SELF_SIGNED = "self_signed"


def anchored(pattern: re.Pattern[str] | str) -> str:
    """A fullmatch pattern as a pydantic and JSON Schema pattern. ``$`` is the end of the text
    in Rust's regex (pydantic's) and ECMA-262's (JSON Schema's), unlike Python's, where it also
    matches before a final newline; the patterns are character classes, alike in all three."""
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    return f"^(?:{text})$"


def says(message: str) -> WrapValidator:
    """Whatever is wrong with the value itself, say ``message`` ({value}: the value as given,
    shortened); problems inside it (a list's items) keep their own messages and paths."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            if all(detail["loc"] for detail in error.errors()):
                raise
            raise PydanticCustomError("value", message, {"value": shown(value)}) from None

    return WrapValidator(check)


def _after(problem: Callable[[str], str | None], *, empty_ok: bool = False) -> AfterValidator:
    """A rule in code (lbadmin.document.values) after the type's own checks."""

    def check(value: str) -> str:
        if not (empty_ok and value == "") and (found := problem(value)):
            context = {"value": shown(value), "problem": found}
            raise PydanticCustomError("value", "{value} {problem}", context)
        return value

    return AfterValidator(check)


def _unicast_ip(value: str) -> str:
    try:
        return unicast_ip(value)  # 2001:DB8::1 -> 2001:db8::1, as the WebUI keeps it
    except ValueError as problem:
        context = {"value": shown(value), "problem": str(problem)}
        raise PydanticCustomError("value", "{value} {problem}", context) from None


def _distinct_sorted(ports: list[int]) -> list[int]:
    seen: set[int] = set()
    for port in ports:
        if port in seen:
            raise PydanticCustomError("ports", "port {port} is listed twice", {"port": port})
        seen.add(port)
    return sorted(ports)


def _number(low: int, high: int, message: str, **more: Any) -> Any:
    """A whole number low..high; ``message`` says what it must be."""
    return Annotated[int, Field(ge=low, le=high, **more), says("{value} " + message)]


# --- Names and addresses ------------------------------------------------------------------------

Label = Annotated[
    str,
    Field(pattern=anchored(LABEL), description="1–64 of A-Z a-z 0-9 _ . : -"),
    says("{value} is not a label: use 1 to 64 letters, digits and _ . : - only"),
]
CertificateLabel = Annotated[
    str,
    Field(
        pattern=anchored(f"{LABEL.pattern}|{DEFAULT_CERTIFICATE_LABEL}"),
        description=f"a label, or “{DEFAULT_CERTIFICATE_LABEL}” (made by the appliance)",
    ),
    says("{value} is not a certificate label: use 1 to 64 letters, digits and _ . : - only"),
]
IpAddress = Annotated[
    str,
    Field(
        description="a unicast IPv4 or IPv6 address, nothing else (no prefix, port or scope)",
        json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
    ),
    says("{value} is not an IP address: must be text such as 192.168.10.30"),
    AfterValidator(_unicast_ip),
]

# --- Numbers ------------------------------------------------------------------------------------

Port = _number(1, 65535, "is not a port (1–65535)")
Ports = Annotated[
    list[Port],
    Field(
        min_length=1,
        max_length=MAX_PORTS_PER_SERVICE,
        description=f"1–{MAX_PORTS_PER_SERVICE} distinct ports (kept sorted)",
    ),
    says(f"must be a list of 1 to {MAX_PORTS_PER_SERVICE} ports"),
    AfterValidator(_distinct_sorted),
]
Weight = _number(0, MAX_WEIGHT, f"is not a weight (0–{MAX_WEIGHT}; 0: no new connections)")
TimeoutMs = _number(1, MAX_TIMEOUT_MS, f"is not a timeout: must be 1 to {MAX_TIMEOUT_MS} ms")
CheckIntervalMs = _number(
    MIN_CHECK_INTERVAL_MS,
    MAX_CHECK_INTERVAL_MS,
    f"is not a check interval: must be {MIN_CHECK_INTERVAL_MS} to {MAX_CHECK_INTERVAL_MS} ms",
)
PersistenceTimeoutS = _number(
    1, MAX_PERSISTENCE_S, f"is not a persistence timeout: must be 1 to {MAX_PERSISTENCE_S} s"
)
CheckSeconds = _number(1, MAX_CHECK_SECONDS, f"must be 1 to {MAX_CHECK_SECONDS} seconds")
CheckStatus = _number(100, 599, "is not an HTTP status (100–599)")
Connections = _number(
    0, MAX_CONNECTIONS, f"is not a connection count: must be 0 to {MAX_CONNECTIONS}"
)
AdvertIntervalMs = _number(
    MIN_ADVERT_MS,
    MAX_ADVERT_MS,
    f"is not a heartbeat interval: must be {MIN_ADVERT_MS} to {MAX_ADVERT_MS} ms in steps of 10",
    multiple_of=10,  # VRRPv3 counts centiseconds
)

# --- Texts --------------------------------------------------------------------------------------

CookieName = Annotated[
    str,
    Field(pattern=anchored(COOKIE_NAME), description="an RFC 6265 token without # ' \" $ % \\"),
    says("{value} is not a cookie name: use 1 to 64 letters, digits and ! & * + - . ^ _ | ~"),
]
CheckPath = Annotated[
    str,
    Field(
        pattern=anchored(CHECK_PATH),
        description="/ then letters, digits and . _ ~ % / ? & = + , : @ -, at most 255",
    ),
    says(
        "{value} is not a check path: start with / and use letters, digits and "
        ". _ ~ % / ? & = + , : @ - only (no spaces), at most 255 characters"
    ),
]
CipherList = Annotated[
    str,
    Field(
        pattern=f"^(?:{CIPHER_LIST.pattern})?$",
        description="an OpenSSL cipher list (custom mode only; empty otherwise)",
    ),
    says("{value} is not a cipher list: use cipher names separated by colons, no spaces"),
    _after(cipher_list_problem, empty_ok=True),
]
ManualText = Annotated[
    str,
    Field(
        max_length=MAX_MANUAL_TEXT,
        description="HAProxy lines, checked when manual_config is true",
    ),
    says(f"must be text of at most {MAX_MANUAL_TEXT} characters"),
]


def _pem_blocks(label: str, *, many: bool) -> str:
    """PEM as the appliance writes it (RFC 7468 strict: 64-character base64 lines, a final
    line of whole padded quads, each block ending in a newline): one block or none, or with
    ``many`` any number. The shape only: what it holds is checked when it is imported."""
    b64 = "[A-Za-z0-9+/]"
    last = f"(?:{b64}{{4}}){{0,15}}(?:{b64}{{4}}|{b64}{{3}}=|{b64}{{2}}==)"
    block = f"-----BEGIN {label}-----\\n(?:{b64}{{64}}\\n)*{last}\\n-----END {label}-----\\n"
    return f"^(?:{block}){'*' if many else '?'}$"


def _pem(label: str, *, many: bool, description: str, what: str) -> Any:
    return Annotated[
        str,
        Field(
            pattern=_pem_blocks(label, many=many),
            max_length=MAX_UPLOAD_BYTES,
            description=description,
        ),
        says(f"is not {what} (-----BEGIN {label}----- …) or empty"),
    ]


CertificatePem = _pem(
    "CERTIFICATE",
    many=False,
    description="one PEM certificate; empty while a CSR waits for its signed certificate",
    what="one PEM certificate",
)
ChainPem = _pem(
    "CERTIFICATE",
    many=True,
    description="the issuers' PEM certificates, issuer first; may be empty",
    what="PEM certificates",
)
CsrPem = _pem(
    "CERTIFICATE REQUEST",
    many=False,
    description="the PEM CSR of a certificate made on the appliance; may be empty",
    what="one PEM CSR",
)
FernetToken = Annotated[
    str,
    Field(
        pattern=r"^gAAAAA[A-Za-z0-9_-]+={0,2}$",
        max_length=MAX_UPLOAD_BYTES,
        description="the private key, as a Fernet token under the appliance's key file",
    ),
    says("is not an encrypted private key (a Fernet token, gAAAAA…)"),
    _after(fernet_token_problem),
]
