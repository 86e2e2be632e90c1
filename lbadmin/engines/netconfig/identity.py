"""Hostname and DNS: ``validate_identity``, ``write_identity`` (``hostname``, ``resolv.conf`` and
the ``127.0.1.1`` line of ``hosts``, each replaced atomically) and ``read_identity``."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path

from lbadmin.engines.files import write_all_atomically
from lbadmin.engines.netconfig.model import (
    _LABEL,
    HOSTNAME_MAX,
    MAX_DNS_SERVERS,
    MAX_SEARCH_CHARS,
    MAX_SEARCH_DOMAINS,
    HostIdentity,
    IPAddress,
    NetconfigError,
    _ip,
)

# ---------------------------------------------------------------------------------------------
# Hostname and DNS

_RESOLV_HEADER = (
    "# Written by lbadmin (Local Configuration > Hostname & DNS); changes here are overwritten.\n"
)
_HOSTS_DEFAULT_HEAD = "127.0.0.1\tlocalhost\n"
_HOSTS_DEFAULT_TAIL = (
    "\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)
_HOSTS_SELF = "127.0.1.1"


def _hostname_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a host name"
    if len(value) > HOSTNAME_MAX:
        return f"longer than {HOSTNAME_MAX} characters"
    for label in value.split("."):
        if not _LABEL.fullmatch(label):
            return (
                f"{value!r}: each label must be 1 to 63 letters, digits or hyphens, "
                "not starting or ending with a hyphen"
            )
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value)
        return f"{value!r} is an IP address, not a host name"
    return None


def validate_identity(identity: HostIdentity) -> list[str]:
    """What is wrong with ``identity``: the hostname per RFC 1123 (labels of 1-63 letters,
    digits and hyphens, no hyphen at either end, 253 characters in all), DNS servers as IP
    addresses (at most three, as the resolver reads), search domains as host names (at most
    six, 256 characters)."""
    if not isinstance(identity, HostIdentity):
        return [f"identity: a HostIdentity, not {type(identity).__name__}"]
    problems: list[str] = []
    problem = _hostname_problem(identity.hostname)
    if problem:
        problems.append(f"hostname: {problem}")
    servers = identity.dns_servers
    if not isinstance(servers, tuple | list):
        problems.append("dns_servers: a tuple of addresses")
        servers = ()
    if len(servers) > MAX_DNS_SERVERS:
        problems.append(f"dns_servers: at most {MAX_DNS_SERVERS} (the resolver reads no more)")
    seen: set[IPAddress] = set()
    for i, server in enumerate(servers):
        try:
            address = _ip(server)
        except ValueError as exc:
            problems.append(f"dns_servers[{i}]: {exc}")
            continue
        if address.is_unspecified or address.is_multicast:
            problems.append(f"dns_servers[{i}]: {address} cannot be a DNS server")
        elif address.version == 6 and address.is_link_local:
            problems.append(f"dns_servers[{i}]: a link-local address needs a zone: not supported")
        elif address in seen:
            problems.append(f"dns_servers[{i}]: {address} is listed twice")
        seen.add(address)
    domains = identity.search
    if not isinstance(domains, tuple | list):
        problems.append("search: a tuple of domains")
        domains = ()
    if len(domains) > MAX_SEARCH_DOMAINS:
        problems.append(f"search: at most {MAX_SEARCH_DOMAINS} domains")
    elif all(isinstance(d, str) for d in domains) and len(" ".join(domains)) > MAX_SEARCH_CHARS:
        problems.append(f"search: longer than {MAX_SEARCH_CHARS} characters in all")
    for i, domain in enumerate(domains):
        problem = _hostname_problem(domain)
        if problem:
            problems.append(f"search[{i}]: {problem}")
        elif domains.index(domain) != i:
            problems.append(f"search[{i}]: {domain} is listed twice")
    return problems


def _resolv_text(identity: HostIdentity) -> str:
    text = _RESOLV_HEADER
    if identity.search:
        text += "search " + " ".join(identity.search) + "\n"
    for server in identity.dns_servers:
        text += f"nameserver {ipaddress.ip_address(server)}\n"
    return text


def _hosts_text(current: str | None, hostname: str) -> str:
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    line = f"{_HOSTS_SELF}\t{names}\n"
    if current is None:
        return _HOSTS_DEFAULT_HEAD + line + _HOSTS_DEFAULT_TAIL
    lines = current.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    kept = [text for text in lines if text.split("#", 1)[0].split()[:1] != [_HOSTS_SELF]]
    for index, text in enumerate(kept):
        if text.split("#", 1)[0].split()[:1] == ["127.0.0.1"]:
            kept.insert(index + 1, line)
            break
    else:
        kept.append(line)
    return "".join(kept)


def write_identity(
    identity: HostIdentity,
    *,
    etc_dir: Path,
    update_hosts: bool = True,
    set_kernel_hostname: bool = False,
) -> None:
    """Write ``hostname``, ``resolv.conf`` and (``update_hosts``) the ``127.0.1.1`` line of
    ``hosts`` under ``etc_dir`` (``/etc`` in production), each replaced atomically; with
    ``set_kernel_hostname`` also set the running kernel's host name (``sethostname``, in the
    caller's UTS namespace; needs root). Raises ValueError (the ``validate_identity``
    messages) before writing anything when ``identity`` is invalid, NetconfigError when a file
    or the host name cannot be set."""
    problems = validate_identity(identity)
    if problems:
        raise ValueError("; ".join(problems))
    etc = Path(etc_dir)
    if not etc.is_dir():
        raise NetconfigError(f"{etc} is not a directory")
    texts = {
        etc / "resolv.conf": _resolv_text(identity),
        etc / "hostname": identity.hostname + "\n",
    }
    if update_hosts:
        hosts = etc / "hosts"
        try:
            current = hosts.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise NetconfigError(f"cannot read {hosts}: {exc}") from exc
        texts[hosts] = _hosts_text(current, identity.hostname)
    try:
        write_all_atomically(
            {path: text.encode("utf-8") for path, text in texts.items()}, mode=0o644
        )
    except OSError as exc:
        raise NetconfigError(f"cannot write under {etc}: {exc}") from exc
    if set_kernel_hostname:
        try:
            socket.sethostname(identity.hostname)
        except OSError as exc:
            raise NetconfigError(f"cannot set the host name: {exc}") from exc


def read_identity(*, etc_dir: Path) -> HostIdentity:
    """The identity as the files under ``etc_dir`` state it (the running host name when there
    is no ``hostname`` file): nameserver lines in order, the last search (or domain) line.
    Not validated: it shows what is there."""
    etc = Path(etc_dir)
    try:
        hostname = (etc / "hostname").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        hostname = socket.gethostname()
    servers: list[str] = []
    search: tuple[str, ...] = ()
    try:
        resolv = (etc / "resolv.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        resolv = ""
    for line in resolv.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
        elif len(words) >= 2 and words[0] in ("search", "domain"):
            search = tuple(words[1:])
    return HostIdentity(hostname=hostname, dns_servers=tuple(servers), search=search)
