"""Live server state over HAProxy's runtime API: drain / halt / online, and System Overview.

No reload ever: every action is one or two ``set …`` commands on the admin stats socket
(``HaproxyControl.runtime_command``), ~0.1 ms each. Names are the rendered labels: the proxy
is the virtual service label (``listen <label>``) and the server is the real server label
(``fallback`` for a fallback server), see lbadmin.render.haproxy.

Measured on HAProxy 2.6.12 (tests/engines/test_haproxy_runtime.py and by hand):
- A successful ``set server``, ``set weight`` or ``shutdown sessions server`` answers an empty
  line; errors answer text and nothing else tells them apart (no status code), e.g.
  "No such server.", "No such backend.", "Absolute weight can only be between 0 and 256
  inclusive.", "Permission denied." (socket not at level admin).
- ``show stat`` is a CSV whose header line starts with "# ". The ``status`` column of a server
  row (``type`` 2) takes these forms (``%d/%d`` while checks are changing its state):
  "UP", "UP 2/3", "UP 1/3" (up, failing checks), "DOWN", "DOWN 1/2" (down, passing checks),
  "DOWN (agent)", "NOLB" / "NOLB 1/3" (http-check disable-on-404 or agent "stopping"),
  "DRAIN", "DRAIN 2/3" (drained and failing checks), "DRAIN (agent)", "MAINT",
  "MAINT (via <proxy>/<server>)" (tracks a server in maintenance), "MAINT (resolution)" (DNS
  failed), "no check" (checks disabled). A drained server whose checks fail shows "DOWN", not
  "DRAIN". ``check_status`` gets a "* " prefix while a check is running ("* L4OK").
- Leaving maintenance (``state ready``) a checked server is UP at once ("UP 1/3", one passing
  check to full health); it does not wait for ``rise`` checks.
- ``weight`` is the effective weight on the configured scale (what ``set weight`` sets; lower
  only during slowstart); a DOWN or MAINT server keeps its weight.
- ``show stat <proxy> 4 -1`` returns the header and that proxy's server rows only ("No such
  proxy." otherwise): the cheap form used by ``server_connections``.
- A server may be labelled "FRONTEND" or "BACKEND", so rows are told apart by ``type``
  (0 frontend, 1 backend, 2 server, 3 listener), not by ``svname``.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lbadmin.engines.daemons import DaemonError, HaproxyControl

# fullmatch, not ^...$ with match: "$" also matches before a trailing newline.
NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_WEIGHT = 256  # HAProxy: "Absolute weight can only be between 0 and 256 inclusive."
SNAPSHOT_TIMEOUT = 2.0  # System Overview must answer even if HAProxy hangs
_CHECK_TEXT_MAX = 120  # "short": one table cell
_STAT_HEADER_PREFIX = "# pxname,"

# show stat ``type`` column
_TYPE_FRONTEND = "0"
_TYPE_BACKEND = "1"
_TYPE_SERVER = "2"
# Without a ``type`` column (older HAProxy) only the svname tells; a server named FRONTEND
# would then be misread, which is why ``type`` wins whenever it is there.
_KIND_BY_NAME = {"FRONTEND": _TYPE_FRONTEND, "BACKEND": _TYPE_BACKEND}
_STAT_TYPE_SERVERS = 4  # ``show stat <proxy> <type mask> <sid>``: 4 = servers


class ServerState(StrEnum):
    """What an administrator asks for."""

    ONLINE = "online"
    DRAIN = "drain"
    HALT = "halt"


class LiveStatus(StrEnum):
    """What System Overview shows, with the appliance's colours."""

    UP = "up"  # green
    DRAINING = "draining"  # yellow: admin drain, NOLB, or weight 0
    DOWN = "down"  # red: failed health check (or DNS resolution)
    HALTED = "halted"  # blue: maintenance
    UNKNOWN = "unknown"  # grey: not in HAProxy / HAProxy not answering


@dataclass(frozen=True)
class ServerStats:
    status: LiveStatus
    raw_status: str  # HAProxy's own text, e.g. "UP 1/3", "MAINT (via vs/rs1)"
    connections: int  # scur: sessions open to this server now
    weight: int  # effective weight (0 = takes no new connections)
    check: str  # e.g. "L4OK Layer4 check passed", "L4CON Layer4 connection problem: …"


@dataclass(frozen=True)
class ProxyStats:
    connections: int  # FRONTEND scur: client connections open on the virtual service
    servers: dict[str, ServerStats]


@dataclass(frozen=True)
class RuntimeSnapshot:
    ok: bool
    error: str  # "" when ok
    proxies: dict[str, ProxyStats]

    def server(self, proxy: str, server: str) -> ServerStats | None:
        stats = self.proxies.get(proxy)
        return None if stats is None else stats.servers.get(server)

    def status(self, proxy: str, server: str) -> LiveStatus:
        """UNKNOWN when HAProxy did not answer or does not know the server."""
        stats = self.server(proxy, server)
        return LiveStatus.UNKNOWN if stats is None else stats.status


# ---------------------------------------------------------------------------------------------
# Status mapping


def live_status(raw_status: str, weight: int) -> LiveStatus:
    """Map HAProxy's ``status`` text (and the weight) to the five colours.

    Decisions:
    - any MAINT, "MAINT (via …)" included, is HALTED: an administrator put this server (or the
      one it tracks) in maintenance; except "MAINT (resolution)", which is DOWN: DNS failed,
      nobody halted it and "online" would not bring it back (lbadmin renders IPs only, so it
      appears only with hand-made configs);
    - DOWN, "DOWN 1/2" (still down until ``rise`` checks pass), "DOWN (agent)" are DOWN;
    - DRAIN in any form and NOLB (up, but takes no new load-balanced connections) are DRAINING;
    - UP, "UP 1/3" (still up until ``fall`` checks fail) and "no check" are UP, or DRAINING
      when the weight is 0 (the renderer writes ``weight 0`` for a drained server);
    - anything else (a future HAProxy's new word) is UNKNOWN rather than a guess.
    """
    word = raw_status.split(" ", 1)[0]
    if word == "MAINT":
        return LiveStatus.DOWN if raw_status == "MAINT (resolution)" else LiveStatus.HALTED
    if word == "DOWN":
        return LiveStatus.DOWN
    if word in ("DRAIN", "NOLB"):
        return LiveStatus.DRAINING
    if word == "UP" or raw_status == "no check":
        return LiveStatus.DRAINING if weight == 0 else LiveStatus.UP
    return LiveStatus.UNKNOWN


# ---------------------------------------------------------------------------------------------
# show stat parsing


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0  # empty cell: HAProxy leaves counters that do not apply blank


@functools.lru_cache(maxsize=4096)  # a few distinct texts recur across thousands of servers
def _check_text(check_status: str, check_desc: str, last_chk: str) -> str:
    # "* " marks a check in progress; the result shown is the previous one either way.
    parts = [check_status.removeprefix("* ").strip(), check_desc.strip()]
    text = " ".join(part for part in parts if part)
    detail = last_chk.strip()
    if detail and detail not in text:
        text = f"{text}: {detail}" if text else detail
    return text if len(text) <= _CHECK_TEXT_MAX else text[: _CHECK_TEXT_MAX - 1] + "…"


def parse_show_stat(text: str) -> dict[str, ProxyStats]:
    """Parse ``show stat`` CSV into proxies; columns found by header name, not position.

    Raises ValueError when ``text`` is not a ``show stat`` reply (HAProxy's error text).
    """
    if not text.startswith(_STAT_HEADER_PREFIX):
        raise ValueError(f"unexpected 'show stat' reply: {text.strip()[:300]!r}")
    body = text[2:]
    header_line, _, _ = body.partition("\n")
    header = header_line.split(",")  # header names never need quoting
    column = {name: index for index, name in enumerate(header) if name}
    missing = {"pxname", "svname", "scur", "status"} - column.keys()
    if missing:
        raise ValueError(f"'show stat' header lacks {sorted(missing)}")
    i_px, i_sv, i_scur, i_status = (column[n] for n in ("pxname", "svname", "scur", "status"))
    # Optional columns: a missing one points one past the last column, a cell that short
    # rows are padded with as blank.
    blank = len(header)
    i_type, i_weight, i_chk, i_desc, i_last = (
        column.get(name, blank)
        for name in ("type", "weight", "check_status", "check_desc", "last_chk")
    )
    top = max(i_px, i_sv, i_scur, i_status, i_type, i_weight, i_chk, i_desc, i_last)
    required = max(i_px, i_sv, i_scur, i_status)

    rows: Iterable[list[str]]
    if '"' in body:
        # HAProxy quotes a field holding a comma or a quote (check texts can): real CSV.
        rows = csv.reader(io.StringIO(body))
        next(rows)
    else:
        # Nothing quoted: a plain split, stopped after the last column needed (the rest of
        # ~100 columns is never looked at). ~3x faster than csv for 500x10 servers.
        rows = (line.split(",", top + 1) for line in body.split("\n")[1:])

    frontend_scur: dict[str, int] = {}
    servers: dict[str, dict[str, ServerStats]] = {}
    for row in rows:
        if len(row) <= top:
            if len(row) <= required:
                continue  # the blank line ending the reply
            row += [""] * (top + 1 - len(row))
        proxy, name = row[i_px], row[i_sv]
        kind = row[i_type] or _KIND_BY_NAME.get(name, _TYPE_SERVER)
        per_proxy = servers.setdefault(proxy, {})
        if kind == _TYPE_FRONTEND:
            frontend_scur[proxy] = _int(row[i_scur])
        elif kind == _TYPE_SERVER:
            raw = row[i_status]
            weight = _int(row[i_weight])
            per_proxy[name] = ServerStats(
                status=live_status(raw, weight),
                raw_status=raw,
                connections=_int(row[i_scur]),
                weight=weight,
                check=_check_text(row[i_chk], row[i_desc], row[i_last]),
            )
    return {
        proxy: ProxyStats(connections=frontend_scur.get(proxy, 0), servers=per_proxy)
        for proxy, per_proxy in servers.items()
    }


# ---------------------------------------------------------------------------------------------
# Queries


def _unreachable(control: HaproxyControl, exc: Exception) -> str:
    # Looked up only after a failure, so a good snapshot stays one socket round trip.
    if control.pid() is None:
        return "HAProxy is not running"
    return f"HAProxy is running but its admin socket does not answer: {exc}"


def runtime_snapshot(
    control: HaproxyControl,
    *,
    proxies: Sequence[str] | None = None,
    timeout: float = SNAPSHOT_TIMEOUT,
) -> RuntimeSnapshot:
    """Statistics in ONE runtime-API round trip. Never raises.

    All proxies by default (`show stat`); with ``proxies`` (e.g. one page of System
    Overview) only those, as `show stat <proxy> -1 -1` commands joined into the same single
    round trip, so the cost follows the page, not the whole configuration. When HAProxy is
    not running, does not answer within ``timeout`` or answers nonsense, ``ok`` is False and
    ``error`` says so in plain words.
    """
    if proxies is not None:
        for proxy in proxies:
            _check_name(proxy, "proxy")
        if not proxies:
            return RuntimeSnapshot(ok=True, error="", proxies={})
    try:
        if proxies is None:
            text = control.runtime_command("show stat", timeout=timeout)
        else:
            batch = control.runtime_batch(
                [f"show stat {proxy} -1 -1" for proxy in proxies], timeout=timeout
            )
            text = _one_header(batch)
    except (DaemonError, OSError) as exc:
        return RuntimeSnapshot(ok=False, error=_unreachable(control, exc), proxies={})
    except Exception as exc:  # System Overview must get an answer, not a traceback
        return RuntimeSnapshot(ok=False, error=f"HAProxy query failed: {exc}", proxies={})
    try:
        parsed = parse_show_stat(text)
    except Exception as exc:
        return RuntimeSnapshot(ok=False, error=f"HAProxy statistics unreadable: {exc}", proxies={})
    return RuntimeSnapshot(ok=True, error="", proxies=parsed)


def _one_header(batch: str) -> str:
    """Batched `show stat` replies each start with the CSV header: keep the first, drop the
    repeats and any "No such proxy." for a service not applied yet."""
    lines = batch.splitlines()
    if not lines or not lines[0].startswith(_STAT_HEADER_PREFIX):
        return batch  # let the parser report the error reply
    header = lines[0]
    kept = [line for line in lines[1:] if line != header and "," in line]
    return "\n".join([header, *kept]) + "\n"


def server_connections(
    control: HaproxyControl, proxy: str, server: str, *, timeout: float = SNAPSHOT_TIMEOUT
) -> int | None:
    """Open connections of one server (for "drain, then halt" polling), or None if unknown.

    ``show stat <proxy> 4 -1`` returns only that proxy's server rows, so polling stays cheap
    however many services there are. Never raises for HAProxy trouble (None); ValueError for
    a bad name.
    """
    _check_name(proxy, "proxy")
    _check_name(server, "server")
    try:
        text = control.runtime_command(f"show stat {proxy} {_STAT_TYPE_SERVERS} -1", timeout)
        stats = parse_show_stat(text)
    except (DaemonError, OSError, ValueError):
        return None  # not running, not answering, or "No such proxy."
    found = stats.get(proxy)
    if found is None or server not in found.servers:
        return None
    return found.servers[server].connections


# ---------------------------------------------------------------------------------------------
# Actions


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ValueError(f"invalid {what} name: {value!r}")


def _command(control: HaproxyControl, cmd: str) -> None:
    """Run one runtime command; HAProxy's error text becomes a DaemonError."""
    reply = control.runtime_command(cmd).strip()
    if reply:  # success is an empty line; anything else is HAProxy explaining a refusal
        raise DaemonError(f"HAProxy refused '{cmd}': {reply}")


def server_set_state(
    control: HaproxyControl,
    proxy: str,
    server: str,
    state: ServerState,
    *,
    weight: int | None = None,
) -> None:
    """Drain, halt or bring back one real server at runtime (no reload).

    - DRAIN: no new connections; existing ones continue.
    - HALT: maintenance, then the server's open sessions are shut down at once.
    - ONLINE: ready again; with ``weight`` also ``set weight`` (0..256), for a server the
      config rendered with ``weight 0``. DRAIN and HALT leave the weight alone (a caller may
      pass the configured weight whatever the state; it is only applied with ONLINE).

    ValueError for bad names, state or weight (checked before any command is sent);
    DaemonError with HAProxy's message when it refuses (e.g. "No such server.").
    """
    _check_name(proxy, "proxy")
    _check_name(server, "server")
    state = ServerState(state)
    # bool is an int too; validated whatever the state, so a bad caller fails every time.
    if weight is not None and (type(weight) is not int or not 0 <= weight <= MAX_WEIGHT):
        raise ValueError(f"weight must be an integer from 0 to {MAX_WEIGHT}: {weight!r}")
    target = f"{proxy}/{server}"
    if state is ServerState.DRAIN:
        _command(control, f"set server {target} state drain")
    elif state is ServerState.HALT:
        # maint first, so nothing new arrives between the two commands.
        _command(control, f"set server {target} state maint")
        _command(control, f"shutdown sessions server {target}")
    else:
        _command(control, f"set server {target} state ready")
        if weight is not None:
            _command(control, f"set weight {target} {weight}")
