"""lbadmin.engines.haproxy_runtime: drain / halt / online and System Overview's live status.

Parsing tests run on ``show stat`` text captured from HAProxy 2.6.12. Live tests start a real
HAProxy (HaproxyControl, sockets in a short /tmp/lb* directory) in front of real backends
in threads, all on a random 127.x.y.0/24 of loopback (VIP .30, real servers .31 and .32).
Most services are TCP mode with line-echo backends that greet with their own name, so a test
can hold one connection open on a known server and keep talking over it. Every HAProxy is
stopped by a fixture; a safety net SIGKILLs (and reports) anything of ours left behind.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import random
import re
import socket
import socketserver
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import DaemonError, HaproxyControl, RuntimeLayout
from lbadmin.engines.haproxy_runtime import (
    LiveStatus,
    ProxyStats,
    RuntimeSnapshot,
    ServerState,
    live_status,
    parse_show_stat,
    runtime_snapshot,
    server_connections,
    server_set_state,
)
from lbadmin.render.haproxy import render_haproxy
from lbadmin.render.snapshot import (
    Balance,
    HaproxySnapshot,
    L7Protocol,
    L7RealServer,
    L7VirtualService,
)
from tests.daemon_support import Backends, free_port, http_get, random_block, wait_until

TIMEOUT = 3.0

# ---------------------------------------------------------------------------------------------
# Captured `show stat` (HAProxy 2.6.12). vs1/vs2/be_only/fe_only verbatim; the vs3 rows are
# one server captured while its checks failed and recovered, renamed after each status seen.
# vs1: up, down (port closed), nocheck, drain/maint (admin), w0 (weight 0, checked), w0nc
# (weight 0, no check), viasrc (track vs1/maint), drainnc/maintnc (admin, no check),
# res (unresolvable name, resolvers), fallback (backup); vs2: http-check disable-on-404.

CAPTURED = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
vs1,FRONTEND,,,0,0,9974,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
vs1,up,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,2,1,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,down,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,2,2,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:41221,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,nocheck,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,2,,,1,2,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,drain,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,2,0,,1,2,4,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,maint,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,1,2,2,,1,2,5,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,w0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,0,1,0,0,0,2,0,,1,2,6,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,w0nc,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,0,1,0,,,2,,,1,2,7,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,viasrc,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (via vs1/maint),1,1,0,,,2,,,1,2,8,,0,vs1/maint,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,drainnc,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,,,2,,,1,2,9,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,maintnc,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,,,2,,,1,2,10,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,going_down,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,2,11,,0,,2,0,,0,L4OK,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,4,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,going_up,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,1,1,,1,2,12,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:41221,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,res,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (resolution),1,1,0,0,1,2,2,,1,2,13,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,fallback,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,0,1,,,2,,,1,2,14,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs1,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,UP,3,3,1,,0,2,0,,1,2,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,3,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
vs2,FRONTEND,,,0,0,9974,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,3,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
vs2,nolb,0,0,0,0,,0,0,0,,0,,0,0,0,0,NOLB,1,1,0,0,0,1,0,,1,3,1,,0,,2,0,,0,L7OKC,404,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check conditionally passed,,2,3,4,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs2,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,1,1,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,4,4,480,84,0,0,
be_only,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,2,,,1,4,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:41125,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
be_only,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,2,0,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
fe_only,FRONTEND,,,0,0,9974,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,5,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
vs3,up_2of3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 2/3,1,1,0,1,0,1,0,,1,2,1,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,3,,,,127.0.0.1:42325,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs3,drain_2of3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN 2/3,1,1,0,1,0,1,0,,1,2,2,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,3,,,,127.0.0.1:42325,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs3,up_1of3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/3,1,1,0,2,0,1,0,,1,2,1,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,2,,,,127.0.0.1:42325,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs3,drain_1of3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN 1/3,1,1,0,2,0,1,0,,1,2,2,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,2,,,,127.0.0.1:42325,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs3,down,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,3,1,0,0,,1,2,1,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:42325,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
vs3,down_1of2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/2,1,1,0,3,1,1,1,,1,2,1,,0,,2,0,,0,L4OK,,0,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,3,1,,,,127.0.0.1:42325,,tcp,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,

"""  # noqa: E501

# server -> (raw status, expected colour) for every server row in CAPTURED.
EXPECTED = {
    ("vs1", "up"): ("UP", LiveStatus.UP),
    ("vs1", "down"): ("DOWN", LiveStatus.DOWN),
    ("vs1", "nocheck"): ("no check", LiveStatus.UP),
    ("vs1", "drain"): ("DRAIN", LiveStatus.DRAINING),
    ("vs1", "maint"): ("MAINT", LiveStatus.HALTED),
    ("vs1", "w0"): ("UP", LiveStatus.DRAINING),
    ("vs1", "w0nc"): ("no check", LiveStatus.DRAINING),
    ("vs1", "viasrc"): ("MAINT (via vs1/maint)", LiveStatus.HALTED),
    ("vs1", "drainnc"): ("DRAIN", LiveStatus.DRAINING),
    ("vs1", "maintnc"): ("MAINT", LiveStatus.HALTED),
    ("vs1", "going_down"): ("UP", LiveStatus.UP),
    ("vs1", "going_up"): ("DOWN", LiveStatus.DOWN),
    ("vs1", "res"): ("MAINT (resolution)", LiveStatus.DOWN),
    ("vs1", "fallback"): ("no check", LiveStatus.UP),
    ("vs2", "nolb"): ("NOLB", LiveStatus.DRAINING),
    ("be_only", "s1"): ("no check", LiveStatus.UP),
    ("vs3", "up_2of3"): ("UP 2/3", LiveStatus.UP),
    ("vs3", "drain_2of3"): ("DRAIN 2/3", LiveStatus.DRAINING),
    ("vs3", "up_1of3"): ("UP 1/3", LiveStatus.UP),
    ("vs3", "drain_1of3"): ("DRAIN 1/3", LiveStatus.DRAINING),
    ("vs3", "down"): ("DOWN", LiveStatus.DOWN),
    ("vs3", "down_1of2"): ("DOWN 1/2", LiveStatus.DOWN),
}


# ---------------------------------------------------------------------------------------------
# Parsing (no daemon)


def test_every_captured_status_maps_to_its_colour() -> None:
    proxies = parse_show_stat(CAPTURED)
    assert set(proxies) == {"vs1", "vs2", "vs3", "be_only", "fe_only"}
    seen = {(px, sv): (s.raw_status, s.status) for px, p in proxies.items() for sv, s in p.servers.items()}  # fmt: skip  # noqa: E501
    assert seen == EXPECTED
    assert proxies["fe_only"].servers == {}  # a frontend alone is a proxy without servers
    assert "FRONTEND" not in proxies["vs1"].servers
    assert "BACKEND" not in proxies["vs1"].servers


def test_captured_details() -> None:
    proxies = parse_show_stat(CAPTURED)
    vs1 = proxies["vs1"].servers
    assert vs1["down"].check == "L4CON Layer4 connection problem: Connection refused"
    assert vs1["up"].check == "L4OK Layer4 check passed"
    assert vs1["nocheck"].check == ""
    assert vs1["w0"].weight == 0
    assert vs1["up"].weight == 1
    assert proxies["vs2"].servers["nolb"].check == "L7OKC Layer7 check conditionally passed"
    assert all(s.connections == 0 for p in proxies.values() for s in p.servers.values())
    assert proxies["vs1"].connections == 0


@pytest.mark.parametrize(
    ("raw", "weight", "expected"),
    [
        ("UP", 100, LiveStatus.UP),
        ("UP 1/3", 100, LiveStatus.UP),  # still up until `fall` checks have failed
        ("UP 2/3", 0, LiveStatus.DRAINING),
        ("no check", 100, LiveStatus.UP),
        ("no check", 0, LiveStatus.DRAINING),
        ("DOWN", 100, LiveStatus.DOWN),
        ("DOWN", 0, LiveStatus.DOWN),  # red beats yellow: it takes nothing at all
        ("DOWN 1/2", 100, LiveStatus.DOWN),  # still down until `rise` checks have passed
        ("DOWN (agent)", 100, LiveStatus.DOWN),
        ("NOLB", 100, LiveStatus.DRAINING),
        ("NOLB 1/3", 100, LiveStatus.DRAINING),
        ("DRAIN", 100, LiveStatus.DRAINING),
        ("DRAIN 2/3", 100, LiveStatus.DRAINING),
        ("DRAIN (agent)", 100, LiveStatus.DRAINING),
        ("MAINT", 100, LiveStatus.HALTED),
        ("MAINT", 0, LiveStatus.HALTED),
        ("MAINT (via web/rs1)", 100, LiveStatus.HALTED),
        ("MAINT (resolution)", 100, LiveStatus.DOWN),  # DNS failed: nobody halted it
        ("", 100, LiveStatus.UNKNOWN),
        ("SOMETHING NEW", 100, LiveStatus.UNKNOWN),
    ],
)
def test_live_status_mapping(raw: str, weight: int, expected: LiveStatus) -> None:
    assert live_status(raw, weight) is expected


def _rewrite_csv(text: str, transform: Callable[[list[list[str]]], list[list[str]]]) -> str:
    rows = [row for row in csv.reader(io.StringIO(text.removeprefix("# "))) if row]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(transform(rows))
    return "# " + out.getvalue() + "\n"


def test_columns_are_found_by_name_not_position() -> None:
    def shuffle(rows: list[list[str]]) -> list[list[str]]:
        order = list(range(len(rows[0])))
        random.Random(7).shuffle(order)
        return [[row[i] for i in order] for row in rows]

    shuffled = _rewrite_csv(CAPTURED, shuffle)
    assert not shuffled.startswith("# pxname,svname,")
    # The parser wants pxname first only as a sign of a stat reply; keep that one in front.
    header = shuffled.removeprefix("# ").split("\n", 1)[0].split(",")
    first = header.index("pxname")

    def pxname_first(rows: list[list[str]]) -> list[list[str]]:
        return [[row[first], *row[:first], *row[first + 1 :]] for row in rows]

    reordered = _rewrite_csv(shuffled.removeprefix("# "), pxname_first)
    assert parse_show_stat(reordered) == parse_show_stat(CAPTURED)


def test_type_column_wins_over_server_names_and_quotes_are_csv() -> None:
    # A real server may be labelled FRONTEND; and HAProxy quotes fields holding commas.
    def edit(rows: list[list[str]]) -> list[list[str]]:
        head = rows[0]
        px, sv, desc, scur = (head.index(n) for n in ("pxname", "svname", "check_desc", "scur"))
        out = [head]
        for row in rows[1:]:
            if row[px] == "vs3" and row[sv] == "down":
                row = list(row)
                row[sv], row[desc], row[scur] = "FRONTEND", 'Layer4 "x", y', "7"
            out.append(row)
        return out

    text = _rewrite_csv(CAPTURED, edit)
    assert '"Layer4 ""x"", y"' in text
    vs3 = parse_show_stat(text)["vs3"]
    assert vs3.servers["FRONTEND"].status is LiveStatus.DOWN
    assert vs3.servers["FRONTEND"].connections == 7
    assert vs3.servers["FRONTEND"].check.startswith('L4CON Layer4 "x", y')
    assert vs3.connections == 0  # no FRONTEND row of type 0 for vs3 in the capture


def test_quoted_and_plain_parsers_agree() -> None:
    # Any '"' switches to the csv module; a field quoted without need must read the same.
    quoted = CAPTURED.replace(",Layer4 check passed,", ',"Layer4 check passed",')
    assert quoted != CAPTURED
    assert parse_show_stat(quoted) == parse_show_stat(CAPTURED)


def test_error_replies_are_not_stats() -> None:
    for reply in ("No such proxy.\n\n", "Permission denied.\n\n", "", "Unknown command\n"):
        with pytest.raises(ValueError, match="unexpected 'show stat' reply"):
            parse_show_stat(reply)


class FakeControl(HaproxyControl):
    """Answers runtime commands from a function; no socket."""

    def __init__(self, answer: Callable[[str], str]) -> None:
        super().__init__(RuntimeLayout.under(Path("/nonexistent/lbadmin-test")))
        self.answer = answer
        self.commands: list[str] = []

    def runtime_command(self, cmd: str, timeout: float = 3.0) -> str:
        self.commands.append(cmd)
        return self.answer(cmd)


def test_snapshot_never_raises_and_is_one_round_trip() -> None:
    good = FakeControl(lambda cmd: CAPTURED)
    snap = runtime_snapshot(good)
    assert snap.ok and snap.error == ""
    assert good.commands == ["show stat"]
    assert snap.status("vs1", "maint") is LiveStatus.HALTED
    assert snap.status("vs1", "nosuch") is LiveStatus.UNKNOWN
    assert snap.status("nosuch", "up") is LiveStatus.UNKNOWN

    junk = runtime_snapshot(FakeControl(lambda cmd: "Permission denied.\n\n"))
    assert not junk.ok and "Permission denied" in junk.error and junk.proxies == {}

    def explode(cmd: str) -> str:
        raise RuntimeError("boom")

    broken = runtime_snapshot(FakeControl(explode))
    assert not broken.ok and "boom" in broken.error


def synthetic_stat(proxies: int, servers: int) -> str:
    """A `show stat` of proxies × servers built from captured rows (FRONTEND, servers, BACKEND)."""
    lines = CAPTURED.splitlines()
    header = lines[0]
    by_name = {tuple(line.split(",", 2)[:2]): line for line in lines[1:] if line}
    frontend = by_name[("vs1", "FRONTEND")].split(",", 1)[1]
    backend = by_name[("vs1", "BACKEND")].split(",", 1)[1]
    server_rows = [by_name[key].split(",", 2)[2] for key in EXPECTED if key[0] == "vs1"]
    out = [header]
    for p in range(proxies):
        name = f"VIP_{p:04d}"
        out.append(f"{name},{frontend}")
        out += [f"{name},RS_{s:02d},{server_rows[s % len(server_rows)]}" for s in range(servers)]
        out.append(f"{name},{backend}")
    return "\n".join(out) + "\n\n"


def test_parse_500_proxies_by_10_servers() -> None:
    # Its speed is measured by bench/overview.py, never asserted here.
    text = synthetic_stat(500, 10)
    assert text.count("\n") >= 6000  # 500 × (FRONTEND + 10 servers + BACKEND) + header
    proxies = parse_show_stat(text)
    assert len(proxies) == 500
    assert sum(len(p.servers) for p in proxies.values()) == 5000


def test_bad_names_and_arguments_are_refused_before_any_command() -> None:
    control = FakeControl(lambda cmd: "")
    bad = ["", "a b", "a;b", "a/b", "a\nb", "web\n", "x" * 65, "é", "a#b", "$x", None, 5]
    for name in bad:
        with pytest.raises(ValueError, match=re.escape(f"invalid proxy name: {name!r}")):
            server_set_state(control, name, "rs", ServerState.DRAIN)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=re.escape(f"invalid server name: {name!r}")):
            server_set_state(control, "vs", name, ServerState.HALT)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=re.escape(f"invalid server name: {name!r}")):
            server_connections(control, "vs", name)  # type: ignore[arg-type]
    for weight in (-1, 257, True, 1.5, "100"):
        refusal = re.escape(f"weight must be an integer from 0 to 256: {weight!r}")
        with pytest.raises(ValueError, match=refusal):
            server_set_state(control, "vs", "rs", ServerState.ONLINE, weight=weight)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight must be an integer from 0 to 256: 300"):
        server_set_state(control, "vs", "rs", ServerState.HALT, weight=300)
    with pytest.raises(ValueError, match="'reboot' is not a valid ServerState"):
        server_set_state(control, "vs", "rs", "reboot")  # type: ignore[arg-type]
    assert control.commands == []
    # The longest allowed names and every allowed character pass.
    server_set_state(control, "A" * 64, "a-b_c.d:9", ServerState.ONLINE, weight=0)
    assert control.commands == [
        f"set server {'A' * 64}/a-b_c.d:9 state ready",
        f"set weight {'A' * 64}/a-b_c.d:9 0",
    ]


def test_commands_sent_for_each_state() -> None:
    control = FakeControl(lambda cmd: "\n")
    server_set_state(control, "FE", "rs1", ServerState.DRAIN)
    server_set_state(control, "FE", "rs1", ServerState.HALT)
    server_set_state(control, "FE", "rs1", ServerState.ONLINE)
    server_set_state(control, "FE", "rs1", "online", weight=100)  # type: ignore[arg-type]
    # The configured weight may come along with every state; only ONLINE applies it.
    server_set_state(control, "FE", "rs1", ServerState.DRAIN, weight=100)
    server_set_state(control, "FE", "rs1", ServerState.HALT, weight=100)
    assert control.commands == [
        "set server FE/rs1 state drain",
        "set server FE/rs1 state maint",
        "shutdown sessions server FE/rs1",
        "set server FE/rs1 state ready",
        "set server FE/rs1 state ready",
        "set weight FE/rs1 100",
        "set server FE/rs1 state drain",
        "set server FE/rs1 state maint",
        "shutdown sessions server FE/rs1",
    ]
    refusing = FakeControl(lambda cmd: "No such server.\n\n")
    with pytest.raises(DaemonError, match=r"No such server\.$"):
        server_set_state(refusing, "FE", "rs1", ServerState.HALT)
    assert refusing.commands == ["set server FE/rs1 state maint"]  # stops at the first refusal


# ---------------------------------------------------------------------------------------------
# Live HAProxy: helpers and fixtures (layout, haproxy and backends: tests/engines/conftest.py)


class EchoHandler(socketserver.StreamRequestHandler):
    """Greets with the server's name, then answers each line with "<name>:<line>"."""

    def handle(self) -> None:
        name = self.server.name  # type: ignore[attr-defined]
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.wfile.write(f"{name}\n".encode())
            for line in self.rfile:
                self.wfile.write(f"{name}:{line.decode().strip()}\n".encode())
        except OSError:
            pass  # health checks and halted sessions hang up on us


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        super().__init__((host, 0), EchoHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def haproxy(haproxy: HaproxyControl, layout: RuntimeLayout) -> Callable[[str], HaproxyControl]:
    """Overrides conftest's: write a config and start HAProxy on it (stopped afterwards)."""

    def start(config: str) -> HaproxyControl:
        layout.haproxy_config.write_text(config)
        haproxy.start()
        return haproxy

    return start


PROXY = "FE_Pool"  # labels as the renderer writes them: listen <service>, server <real server>
A, B = "RS-A", "RS-B"


def tcp_service(layout: RuntimeLayout, vip: str, port: int, servers: dict[str, str]) -> str:
    """A TCP-mode `listen` section as lbadmin renders one; ``servers``: name -> "ip:port"."""
    lines = "".join(
        f"    server {name} {addr} weight 100 check inter 200ms rise 1 fall 1\n"
        for name, addr in servers.items()
    )
    return (
        textwrap.dedent(f"""\
        global
            master-worker
            stats socket {layout.haproxy_admin_socket} mode 600 level admin
            stats timeout 30s
            hard-stop-after 5s
            server-state-file {layout.haproxy_state_file}

        defaults
            mode tcp
            timeout connect 2s
            timeout client 20s
            timeout server 20s
            load-server-state-from-file global

        listen {PROXY}
            bind {vip}:{port}
            balance roundrobin
        """)
        + lines
    )


class Client:
    """One TCP connection through the VIP to an echo backend."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.reader = self.sock.makefile("rb")
        self.server = self.reader.readline().decode().strip()  # the backend's greeting

    def ask(self, text: str) -> str:
        self.sock.sendall(f"{text}\n".encode())
        return self.reader.readline().decode().strip()

    def closed_by_peer(self, timeout: float) -> bool:
        """True once the far end closes (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def tcp_pool(
    haproxy: Callable[[str], HaproxyControl], layout: RuntimeLayout, backends: Backends
) -> Iterator[tuple[HaproxyControl, Callable[[], Client], dict[str, EchoServer]]]:
    """FE_Pool at <block>.30 over echo servers RS-A (.31) and RS-B (.32), both UP."""
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    echo = {A: EchoServer(A, f"{block}31"), B: EchoServer(B, f"{block}32")}
    addrs = {
        name: f"{srv.server_address[0]}:{backends.start(srv).server_address[1]}"
        for name, srv in echo.items()
    }
    control = haproxy(tcp_service(layout, vip, port, addrs))
    wait_until(
        lambda: all(runtime_snapshot(control).status(PROXY, n) is LiveStatus.UP for n in echo),
        TIMEOUT,
        "both servers UP",
    )
    clients: list[Client] = []

    def connect() -> Client:
        client = Client(vip, port)
        clients.append(client)
        return client

    yield control, connect, echo
    for client in clients:
        client.close()


def connect_to(connect: Callable[[], Client], server: str) -> Client:
    """A connection that landed on ``server`` (round robin: within a few tries)."""
    for _ in range(6):
        client = connect()
        if client.server == server:
            return client
        client.close()
    raise AssertionError(f"no connection reached {server}")


def new_connections(connect: Callable[[], Client], count: int) -> list[str]:
    """Which server each of ``count`` fresh connections reached (each closed afterwards)."""
    served = []
    for _ in range(count):
        client = connect()
        served.append(client.server)
        client.close()
    return served


# ---------------------------------------------------------------------------------------------
# Live HAProxy: tests


@pytest.mark.daemons
def test_drain_keeps_open_connections_and_sends_new_ones_elsewhere(tcp_pool) -> None:  # type: ignore[no-untyped-def]
    control, connect, _ = tcp_pool
    held = connect_to(connect, A)
    assert held.ask("before") == f"{A}:before"

    started = time.perf_counter()
    server_set_state(control, PROXY, A, ServerState.DRAIN)
    print(f"\ndrain took {(time.perf_counter() - started) * 1000:.2f} ms")

    assert new_connections(connect, 6) == [B] * 6
    assert held.ask("after drain") == f"{A}:after drain"  # the old connection goes on
    snap = runtime_snapshot(control)
    assert snap.ok, snap.error
    a = snap.proxies[PROXY].servers[A]
    assert a.status is LiveStatus.DRAINING
    assert a.raw_status == "DRAIN"
    assert a.connections >= 1
    assert snap.proxies[PROXY].servers[B].status is LiveStatus.UP
    assert snap.proxies[PROXY].connections >= 1  # FRONTEND scur: the held client
    assert server_connections(control, PROXY, A) == 1
    assert held.ask("still") == f"{A}:still"

    # "Drain, then halt" polling sees the count fall once the client leaves.
    held.close()
    wait_until(lambda: server_connections(control, PROXY, A) == 0, TIMEOUT, "A idle")
    assert server_connections(control, PROXY, "nosuch") is None
    assert server_connections(control, "nosuch", A) is None


@pytest.mark.daemons
def test_halt_closes_open_connections_then_online_balances_again(tcp_pool) -> None:  # type: ignore[no-untyped-def]
    control, connect, _ = tcp_pool
    held = connect_to(connect, A)
    assert held.ask("hello") == f"{A}:hello"
    assert server_connections(control, PROXY, A) == 1

    started = time.monotonic()
    server_set_state(control, PROXY, A, ServerState.HALT)
    assert held.closed_by_peer(timeout=2.0), "HAProxy did not close the halted server's session"
    print(f"\nhalt: held connection closed after {(time.monotonic() - started) * 1000:.1f} ms")

    assert new_connections(connect, 6) == [B] * 6
    # scur is decremented as the killed session is freed: allow it a moment.
    wait_until(lambda: server_connections(control, PROXY, A) == 0, TIMEOUT, "A at 0")
    a = runtime_snapshot(control).proxies[PROXY].servers[A]
    assert (a.status, a.raw_status, a.connections) == (LiveStatus.HALTED, "MAINT", 0)

    # Online: A is back in the round robin.
    server_set_state(control, PROXY, A, ServerState.ONLINE)
    took = wait_until(
        lambda: runtime_snapshot(control).status(PROXY, A) is LiveStatus.UP, TIMEOUT, "A UP"
    )
    print(f"online: A UP after {took * 1000:.1f} ms")
    served = new_connections(connect, 8)
    assert served.count(A) == served.count(B) == 4, served
    assert all(x != y for x, y in itertools.pairwise(served)), served


@pytest.mark.daemons
def test_a_stopped_backend_is_down_within_the_check_interval(tcp_pool, backends) -> None:  # type: ignore[no-untyped-def]
    control, connect, echo = tcp_pool
    backends.stop(echo[A])
    took = wait_until(
        lambda: runtime_snapshot(control).status(PROXY, A) is LiveStatus.DOWN,
        1.0,  # inter 200ms fall 1
        "A DOWN",
    )
    print(f"\nstopped backend DOWN after {took * 1000:.0f} ms")
    snap = runtime_snapshot(control)
    a = snap.proxies[PROXY].servers[A]
    assert a.raw_status == "DOWN"
    assert a.check.startswith("L4CON"), a.check
    assert snap.status(PROXY, B) is LiveStatus.UP
    assert new_connections(connect, 4) == [B] * 4


@pytest.mark.daemons
def test_rendered_weight_zero_is_draining_until_online_with_weight(
    haproxy: Callable[[str], HaproxyControl], layout: RuntimeLayout, backends: Backends
) -> None:
    block = random_block()
    vip, port = f"{block}30", free_port(f"{block}30")
    servers = []
    for name, host, weight in ((A, f"{block}31", 0), (B, f"{block}32", 100)):
        backend_port = backends.http(name, host).server_address[1]
        servers.append(L7RealServer(name, host, backend_port, weight=weight))
    service = L7VirtualService(
        "WEB",
        vip,
        (port,),
        protocol=L7Protocol.HTTP,
        balance=Balance.ROUNDROBIN,
        check_interval_ms=200,
        real_servers=tuple(servers),
    )
    control = haproxy(render_haproxy(HaproxySnapshot(services=(service,)), layout))

    def served() -> str:
        return http_get(vip, port).decode()

    wait_until(lambda: runtime_snapshot(control).status("WEB", B) is LiveStatus.UP, TIMEOUT, "B UP")
    a = runtime_snapshot(control).proxies["WEB"].servers[A]
    assert (a.status, a.weight) == (LiveStatus.DRAINING, 0)
    assert a.raw_status.startswith("UP")  # HAProxy itself calls it UP: the weight decides
    assert [served() for _ in range(4)] == [B] * 4

    server_set_state(control, "WEB", A, ServerState.ONLINE, weight=100)
    a = runtime_snapshot(control).proxies["WEB"].servers[A]
    assert (a.status, a.weight) == (LiveStatus.UP, 100)
    assert sorted(served() for _ in range(6)) == [A] * 3 + [B] * 3


@pytest.mark.daemons
def test_haproxy_errors_and_a_stopped_haproxy(tcp_pool, layout: RuntimeLayout) -> None:  # type: ignore[no-untyped-def]
    control, _, _ = tcp_pool
    with pytest.raises(DaemonError, match=r"No such server\."):
        server_set_state(control, PROXY, "RS-C", ServerState.DRAIN)
    with pytest.raises(DaemonError, match=r"No such server\."):
        server_set_state(control, PROXY, "RS-C", ServerState.HALT)
    with pytest.raises(DaemonError, match=r"No such backend\."):
        server_set_state(control, "Nowhere", A, ServerState.ONLINE, weight=10)
    with pytest.raises(ValueError, match=r"invalid server name: '.*;disable server "):
        server_set_state(control, PROXY, f"{A};disable server {PROXY}/{B}", ServerState.DRAIN)
    snap = runtime_snapshot(control)
    assert snap.status(PROXY, A) is LiveStatus.UP  # nothing was changed by the refusals
    assert snap.status(PROXY, B) is LiveStatus.UP

    # The cost of one round trip on this small config (the report has the 500×10 figure).
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        runtime_snapshot(control)
        timings.append(time.perf_counter() - start)
    print(f"\nruntime_snapshot round trip (1 proxy): {min(timings) * 1000:.2f} ms best")

    control.stop(timeout=2.0)
    down = runtime_snapshot(control)
    assert down == RuntimeSnapshot(ok=False, error="HAProxy is not running", proxies={})
    assert server_connections(control, PROXY, A) is None
    with pytest.raises(DaemonError, match=r"^haproxy admin socket \S+: \[Errno \d+\]"):
        server_set_state(control, PROXY, A, ServerState.DRAIN)


def test_a_socket_that_never_answers_is_bounded(layout: RuntimeLayout) -> None:
    control = HaproxyControl(layout)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(os.fspath(layout.haproxy_admin_socket))
        silent.listen(1)  # accepts (in the backlog) and never answers
        start = time.monotonic()
        snap = runtime_snapshot(control, timeout=0.3)
        took = time.monotonic() - start
    assert not snap.ok and snap.error == "HAProxy is not running"
    assert took < 1.0, took
    assert runtime_snapshot(control) == RuntimeSnapshot(
        ok=False, error="HAProxy is not running", proxies={}
    )


def test_snapshot_is_empty_but_ok_without_services() -> None:
    header = CAPTURED.split("\n", 1)[0]
    assert runtime_snapshot(FakeControl(lambda cmd: header + "\n\n")) == RuntimeSnapshot(
        ok=True, error="", proxies={}
    )
    assert ProxyStats(connections=0, servers={}) == ProxyStats(0, {})


def test_a_page_of_proxies_in_one_batched_round_trip() -> None:
    header = "# pxname,svname,scur,status,weight,type,"
    replies = {
        "show stat a -1 -1; show stat missing -1 -1; show stat b -1 -1": (
            f"{header}\na,FRONTEND,3,OPEN,,0,\na,s1,2,UP,100,2,\na,BACKEND,2,UP,100,1,\n\n"
            "No such proxy.\n\n"
            f"{header}\nb,FRONTEND,0,OPEN,,0,\nb,s1,0,MAINT,100,2,\nb,BACKEND,0,DOWN,0,1,\n\n"
        )
    }
    sent: list[str] = []

    class Batch:
        def runtime_batch(self, cmds: list[str], timeout: float = 2.0) -> str:
            sent.append("; ".join(cmds))
            return replies[sent[-1]]

    snapshot = runtime_snapshot(Batch(), proxies=["a", "missing", "b"])  # type: ignore[arg-type]
    assert len(sent) == 1  # one round trip for the whole page
    assert snapshot.ok, snapshot.error
    assert snapshot.proxies["a"].connections == 3
    assert snapshot.proxies["a"].servers["s1"].status is LiveStatus.UP
    assert snapshot.proxies["b"].servers["s1"].status is LiveStatus.HALTED
    assert "missing" not in snapshot.proxies
    with pytest.raises(ValueError, match=re.escape("invalid proxy name: 'a;shutdown sessions'")):
        runtime_snapshot(Batch(), proxies=["a;shutdown sessions"])  # type: ignore[arg-type]
