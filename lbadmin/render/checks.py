"""Defence-in-depth checks shared by the renderers: each returns the value to render or raises
ValueError. Every value has passed lbadmin.allowlists already; these make sure one that slipped
through (or a bug) can never reach a config file."""

from __future__ import annotations

import functools
import ipaddress
import re
from pathlib import Path

# fullmatch, not ^...$: "$" also matches before a trailing newline.
LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Written unquoted into config files: no whitespace, quotes, '#', ';', braces or newlines.
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def label(value: str, what: str) -> str:
    if not isinstance(value, str) or not LABEL.fullmatch(value):
        raise ValueError(f"invalid {what} label: {value!r}")
    return value


@functools.lru_cache(maxsize=65536)  # the same servers recur across services; parsing is slow
def canonical_ip(value: str) -> Address | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # Round trip: only the canonical text, no spaces or extra text; and no IPv6 scope
    # ("fe80::1%eth0" round-trips, but the allowlist refuses scoped addresses).
    if str(address) != value or getattr(address, "scope_id", None):
        return None
    return address


def ip(value: str, what: str) -> Address:
    address = canonical_ip(value) if isinstance(value, str) else None
    if address is None:
        raise ValueError(f"invalid {what} IP address (not canonical IPv4/IPv6): {value!r}")
    return address


def integer(value: int, lo: int, hi: int, what: str) -> int:
    # bool is an int subclass; True would render as "True".
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer from {lo} to {hi}: {value!r}")
    return value


def port(value: int, what: str) -> int:
    return integer(value, 1, 65535, what)


def safe_path(value: str | Path) -> str:
    text = str(value)
    if not SAFE_PATH.fullmatch(text):
        raise ValueError(f"unsafe path for a config file: {text!r}")
    return text
