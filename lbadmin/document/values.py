"""Value rules that take code rather than a pattern: a unicast address, manual HAProxy lines, a
custom cipher list and the shape of an encrypted private key. Pure and Django-free.

The unicast-address, manual-text and cipher-list rules are the ones lbadmin.allowlists applies
to the WebUI's forms (clean_ip, clean_manual_lines, clean_cipher_list), which cannot be imported
here (they raise Django's ValidationError): they are written here once, and the allowlists
should call these (see the package docstring). What each line and cipher string may hold is
not repeated: lbadmin.render.manual_lines and lbadmin.render.stunnel define it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import ssl

from lbadmin.render.manual_lines import manual_line_problem
from lbadmin.render.stunnel import CIPHER_LIST

MAX_MANUAL_LINES = 200
MAX_MANUAL_LINE_LENGTH = 1000

# Cipher-string words that select no encryption (NULL), no authentication (anonymous DH),
# export-grade or broken ciphers, or lower OpenSSL's security level.
WEAK_CIPHER_WORDS = ("NULL", "ADH", "AECDH", "EXP", "RC4", "MD5", "@SECLEVEL", "DES-CBC-")

# A Fernet token: version byte 0x80, 8-byte time, 16-byte IV, AES-CBC blocks, 32-byte HMAC.
_FERNET_VERSION = 0x80
_FERNET_OVERHEAD = 1 + 8 + 16 + 32
_AES_BLOCK = 16


@functools.lru_cache(maxsize=65536)  # the same servers recur across services; parsing is slow
def unicast_ip(value: str) -> str:
    """The canonical text of ``value``, a unicast IPv4 or IPv6 address exactly (no prefix,
    port, scope or other text); ValueError says why it is not one."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address") from None
    if "%" in value:
        raise ValueError("is a scoped IPv6 address, which is not supported")
    if address.is_multicast or address.is_unspecified:
        raise ValueError("is not a unicast address: multicast and 0.0.0.0/:: cannot be used")
    if address.version == 6 and address.is_link_local:
        raise ValueError("is an IPv6 link-local address, which is not supported")
    return str(address)


def manual_lines(text: str) -> list[str]:
    """The HAProxy lines of a manual service as the WebUI keeps them: stripped, blanks left out."""
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def manual_text_problems(text: str) -> list[str]:
    """Every problem of a manual service's lines (none entered yet is no problem: the WebUI
    makes such a service when Manual Configuration is ticked on its add form)."""
    lines = manual_lines(text)
    if len(lines) > MAX_MANUAL_LINES:
        return [f"holds {len(lines)} lines: at most {MAX_MANUAL_LINES}"]
    problems = []
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_MANUAL_LINE_LENGTH:
            problems.append(f"line {number} is too long (at most {MAX_MANUAL_LINE_LENGTH})")
        elif problem := manual_line_problem(line):
            problems.append(f"line {number} {problem}")
    return problems


def cipher_list_problem(value: str) -> str | None:
    """Why an OpenSSL cipher list (TLS 1.2 and older) cannot be used, or None: only
    cipher-string characters, nothing weak added, and OpenSSL must find a TLS 1.2 cipher."""
    if not CIPHER_LIST.fullmatch(value):
        return (
            "must be cipher names separated by colons (letters, digits and _ . : + ! @ = - "
            "only, no spaces), at most 1024 characters"
        )
    # Only what the list adds counts: "!aNULL" (remove) and "-x" (take out) are good practice.
    added = [part.upper() for part in value.split(":") if not part.startswith(("!", "-"))]
    weak = [word for word in WEAK_CIPHER_WORDS if any(word in part for part in added)]
    if weak:
        return (
            f"“{weak[0]}” selects ciphers without encryption, without authentication or known "
            "to be broken: remove it"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(value)
    except ssl.SSLError:
        return "names no cipher OpenSSL knows (openssl ciphers -v lists them)"
    # TLS 1.3 suites are not chosen by this list; one that leaves no TLS 1.2 cipher would lock
    # out every TLS 1.2 client.
    if not any(cipher["protocol"] == "TLSv1.2" for cipher in context.get_ciphers()):
        return "leaves no cipher for TLS 1.2 clients"
    return None


def fernet_token_problem(value: str) -> str | None:
    """Why ``value`` is not shaped like a Fernet token, or None. Only the shape: whether it
    decrypts (under this appliance's key) is for lbadmin.services.certificates."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if (
        len(raw) < _FERNET_OVERHEAD + _AES_BLOCK
        or raw[0] != _FERNET_VERSION
        or (len(raw) - _FERNET_OVERHEAD) % _AES_BLOCK
    ):
        return "is not a Fernet token (base64 of version, time, IV, AES blocks and HMAC)"
    return None
