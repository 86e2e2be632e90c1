"""What the HAProxy apply (``haproxy_apply``) reads in a rendered haproxy.cfg and in HAProxy's
answers about it: HAProxy's messages made fit for a user, the server-state dump rewritten for a
new config, and the bind probe that finds addresses a reload could not bind. No Django.

Measured on HAProxy 2.6.12 (tests/engines/test_haproxy_apply.py):
- A reload that fails to bind (an address this host does not have, a port another program
  holds) pauses the old worker's listeners while HAProxy retries binding (200 times, 10 ms
  apart): every VIP refuses connections for ~2.1 s, then the old worker resumes. Hence the
  bind probe.
- The server-state file's srv_port column wins over the new config's port (the address does
  not), and the optional ssl/check/agent columns override the config too; the dump is
  rewritten by ``server_state_for_config`` so the new config decides those, and only runtime
  state (admin/operational state, weights) is carried over.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Messages


_PID_COLUMN = re.compile(r"^\[(ALERT|WARNING)\]\s+\(\d+\)\s+:\s+")
# HAProxy's closing summaries: they add nothing to the lines that explain the problem.
_GENERIC_LINES = (
    "Fatal errors found in configuration.",
    "Error(s) found in configuration file",
    "Some protocols failed to start their listeners! Exiting.",
    "Loading failure!",
)


# A message about another file may carry that file's content: a pattern file read through the
# configuration is quoted line by line in the parse error ("'<line>' is not a valid IPv4 or IPv6
# address at line 1 of file '<path>'"). A message naming any existing file other than the
# configuration is withheld whole (a path that exists nowhere, such as a URI, is harmless).
_PATH = re.compile(r"/[^\s'\"\[\]:,()]+")
_MAX_MESSAGES = 20
_MAX_MESSAGE_LENGTH = 400
_FOREIGN_FILE_MESSAGE = (
    "HAProxy's message names a file other than its configuration and is not shown"
)


def _shown(message: str, config_files: tuple[str, ...]) -> str:
    """One HAProxy message as the UI and the HA peer may see it: only about our own file."""
    for path in _PATH.findall(message):
        if path not in config_files and os.path.lexists(path):
            return _FOREIGN_FILE_MESSAGE
    if len(message) > _MAX_MESSAGE_LENGTH:
        return message[:_MAX_MESSAGE_LENGTH] + "…"
    return message


def _limited(lines: list[str]) -> list[str]:
    unique = list(dict.fromkeys(lines))  # one foreign-file notice, not one per line
    if len(unique) > _MAX_MESSAGES:
        unique = [*unique[:_MAX_MESSAGES], f"… and {len(unique) - _MAX_MESSAGES} more"]
    return unique


def haproxy_messages(output: str, *, staged: Path | None = None, live: Path | None = None) -> str:
    """The [ALERT]/[WARNING] lines of HAProxy output, without pid columns or generic summaries.

    The staged file's name is replaced by the live one: that is the file the user's config
    would have become, and the line numbers are the same. A message about any other file is
    withheld (see _PATH), and each is cut to a bounded length.
    """
    if staged is not None and live is not None:
        output = output.replace(os.fspath(staged), os.fspath(live))
    config_files = () if live is None else (os.fspath(live),)
    lines = []
    for line in output.splitlines():
        match = _PID_COLUMN.match(line)
        if match:
            message = _shown(line[match.end() :].strip(), config_files)
            lines.append(f"[{match.group(1)}] {message}")
    specific = [line for line in lines if not any(g in line for g in _GENERIC_LINES)]
    return "\n".join(_limited(specific or lines))


def check_output(output: str, *, staged: Path, live: Path) -> str:
    """``haproxy -c`` output for the UI: NOTICE lines (version banner) dropped, and like
    haproxy_messages nothing about another file."""
    output = output.replace(os.fspath(staged), os.fspath(live))
    config_files = (os.fspath(live),)
    return "\n".join(
        _limited(
            [
                _shown(line, config_files)
                for line in output.splitlines()
                if line.strip() and not line.startswith("[NOTICE]")
            ]
        )
    )


# ---------------------------------------------------------------------------------------------
# Server state


_SECTION_KEYWORDS = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "peers",
        "resolvers",
        "userlist",
        "cache",
        "program",
        "http-errors",
        "ring",
        "mailers",
    }
)
_PORT_SUFFIX = re.compile(r":(\d{1,5})$")
_STATE_V1_FIELDS = 20  # be_id … srvrecord: the mandatory columns of version 1
_STATE_PORT_COLUMN = 18  # srv_port
_HOST_LIKE = re.compile(r"[A-Za-z0-9.-]+")  # IPv4 or a host name: not IPv6, unix@, ${VAR}


def _config_lines(config_text: str) -> Iterator[tuple[int, str, str, list[str]]]:
    """(line number, section keyword, section name, words) for each line inside a section.

    Comments are dropped; the renderer never quotes or escapes, so splitting on whitespace is
    enough for what is read here (server and bind lines).
    """
    keyword, name = "", ""
    for number, raw in enumerate(config_text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in _SECTION_KEYWORDS:
            keyword, name = words[0], (words[1] if len(words) > 1 else "")
            continue
        if keyword:
            yield number, keyword, name, words


def config_server_ports(config_text: str) -> dict[tuple[str, str], str]:
    """(backend, server) → the port HAProxy will use for that server, as state-file text.

    Only the shapes the renderer writes are understood: ``server <name> <ipv4|host>[:<port>]``
    inside ``backend``/``listen``; without a port HAProxy uses 0 (the client's destination
    port). Anything else (IPv6, unix@, port offsets, variables) is left out, and its state line
    is then dropped rather than risk restoring a wrong port.
    """
    ports: dict[tuple[str, str], str] = {}
    for _number, keyword, section, words in _config_lines(config_text):
        if keyword not in ("backend", "listen") or words[0] != "server" or len(words) < 3:
            continue
        address = words[2]
        match = _PORT_SUFFIX.search(address)
        host = address[: match.start()] if match else address
        if not _HOST_LIKE.fullmatch(host):
            continue  # IPv6, unix@, ${VAR}, …
        if match:
            port = int(match.group(1))
            if 0 < port <= 65535:
                ports[(section, words[1])] = str(port)
        else:
            ports[(section, words[1])] = "0"
    return ports


def server_state_for_config(dump: str, config_text: str) -> str:
    """Rewrite a ``show servers state`` dump so loading it under ``config_text`` only carries
    runtime state over.

    Measured in 2.6: on load, srv_port from the file replaces the configured port, and the
    optional columns (srv_use_ssl, check/agent address and port) replace the configured ones,
    so a port changed in the UI would silently not take effect. Each server line is cut to the
    20 mandatory columns and its srv_port is set to the new config's; lines for servers the
    new config lacks or whose port cannot be read are dropped.
    """
    ports = config_server_ports(config_text)
    out = []
    for line in dump.splitlines():
        fields = line.split()
        if not fields or line.startswith("#") or len(fields) < _STATE_V1_FIELDS:
            out.append(line)  # version line, header, blank
            continue
        port = ports.get((fields[1], fields[3]))
        if port is None:
            continue
        fields = fields[:_STATE_V1_FIELDS]
        fields[_STATE_PORT_COLUMN] = port
        out.append(" ".join(fields))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Bind check


# Errors a reload would hit on these binds. EACCES is left to HAProxy: a probe running
# without CAP_NET_BIND_SERVICE says nothing about the daemon.
_BIND_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE})
_MAX_RANGE_PROBES = 1024


def _bind_targets(spec: str) -> list[tuple[socket.AddressFamily, str, int]] | None:
    """Addresses of one ``bind`` item (``ip:port``, ``:port``, ``ipv6@…``, ``ip:a-b``), or
    None for what this check does not handle (unix sockets, fd@, QUIC, names, variables)."""
    family = None
    if spec.startswith(("ipv4@", "ipv6@")):
        family = socket.AF_INET if spec.startswith("ipv4@") else socket.AF_INET6
        spec = spec[5:]
    elif "@" in spec or spec.startswith("/") or "$" in spec:
        return None
    host, sep, ports = spec.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    first, _, last = ports.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    low, high = int(first), int(last or first)
    if not 0 < low <= high <= 65535 or high - low >= _MAX_RANGE_PROBES:
        return None
    if host in ("", "*"):
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"  # noqa: S104 (HAProxy's "any")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: HAProxy resolves it at start; not guessed here
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return [(family, str(address), port) for port in range(low, high + 1)]


def bound_specs(config_text: str) -> frozenset[str]:
    """The address specs of every ``bind`` line (``127.0.0.1:80``, ``[::1]:443`` …)."""
    return frozenset(
        spec
        for _number, keyword, _section, words in _config_lines(config_text)
        if keyword in ("frontend", "listen") and words[0] == "bind" and len(words) > 1
        for spec in words[1].split(",")
    )


def bind_problems(
    config_text: str, *, check_in_use: bool = True, already_bound: frozenset[str] = frozenset()
) -> list[str]:
    """Why some ``bind`` of the config would fail on this host, found by binding it.

    ``haproxy -c`` never binds, and a reload that fails to bind is not harmless: measured on
    2.6.12, the new process pauses the old worker's listeners (SIGTTOU) and retries for ~2 s,
    and every new connection to every VIP is refused meanwhile. So each address is bound here
    first: a plain bind() with SO_REUSEADDR and SO_REUSEPORT, as HAProxy sets them, and no
    listen(), so the probe never receives a connection. HAProxy's own listeners (same user,
    SO_REUSEPORT) do not conflict; a foreign listener or an address this host does not have
    does, with the same errno HAProxy would get. Binds marked ``transparent``/``freebind`` or
    in another ``namespace`` are skipped (they may bind what the host lacks), as are forms
    ``_bind_targets`` does not parse. ``check_in_use=False`` ignores EADDRINUSE (for
    ``noreuseport`` configs, where HAProxy's own listeners would trip it). Specs in
    ``already_bound`` (held by the serving worker, handed over on reload) are not probed.
    """
    problems = []
    for number, keyword, section, words in _config_lines(config_text):
        if keyword not in ("frontend", "listen") or words[0] != "bind" or len(words) < 2:
            continue
        if {"transparent", "freebind", "namespace"} & set(words[2:]):
            continue
        for spec in words[1].split(","):
            if spec in already_bound:
                continue
            for family, host, port in _bind_targets(spec) or []:
                error = _probe_bind(family, host, port)
                if error is None or (error.errno == errno.EADDRINUSE and not check_in_use):
                    continue
                shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
                problems.append(
                    f"cannot bind {shown} for {keyword} '{section}' (line {number}): "
                    f"{error.strerror}"
                    + (
                        " (this host has no such address)"
                        if error.errno == errno.EADDRNOTAVAIL
                        else " (another program holds that port)"
                    )
                )
                break  # one message per bind item, not per port of a range
    return problems


def _probe_bind(family: socket.AddressFamily, host: str, port: int) -> OSError | None:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in _BIND_ERRORS:
                return exc
    return None
