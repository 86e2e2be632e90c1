"""Manual HAProxy lines cannot reach files, sockets or programs (security review, finding 1).

HAProxy parses its configuration as root, so a manual line that names a file reads it (and its
parse error quotes it back), and one that binds a unix socket replaces any file. Every line of
the table below is refused — with the offending token named at the field — through each door a
configuration comes in by: the WebUI, `lbconfig import` and an HA sync from the master. A
benign manual section of the guide's kind still applies, and HAProxy's workers serve it as an
unprivileged user in an empty chroot.
"""

import html
import json
import os
import pwd
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from lbadmin.models import ConfigRevision, VirtualService
from lbadmin.render.manual_lines import manual_line_problem
from lbadmin.services import ha
from lbadmin.services.config import config_apply_request, config_export, config_import
from lbadmin.services.daemons import daemon_controllers, runtime_layout
from tests.conftest import free_port
from tests.support import ha_node_paired
from tests.test_config_apply import RIPS, VIP, backends, haproxy_stopped_after, spread, wait_for
from tests.test_l7_validation import SERVICE, post_refused

__all__ = ["backends", "haproxy_stopped_after"]  # fixtures used here

# Directives from HAProxy's configuration manual that read a file, open or replace a socket,
# run a program, load Lua, SPOE or a map — each as (line, the token the message must name).
REACHING = [
    ("acl a src -f /var/lib/lbadmin/secrets/certificates.key", "-f"),
    ("acl a hdr(host) -M -f /etc/shadow", "-M"),
    ("acl a src -n -f /etc/shadow", "-f"),
    ("http-request deny if { src -f /etc/shadow }", "-f"),
    ("http-request set-header X %[src,map_ip(/etc/shadow)]", "map_ip"),
    ("http-request set-header X %[req.hdr(host),map(/etc/shadow)]", "map"),
    ("http-request set-var(txn.x) req.hdr(host),map_str(/etc/shadow)", "map_str"),
    ("use_backend %[req.hdr(host),map_beg(/etc/shadow)]", "map_beg"),
    ("http-request set-header X %[src,map_ip_int(/etc/shadow,0)]", "map_ip_int"),
    ("filter spoe engine x config /etc/shadow", "filter"),
    ("filter cache c", "filter"),
    ("filter trace name t", "filter"),
    ("bind unix@/etc/passwd mode 666", "unix@/etc/passwd"),
    ("bind abns@lbadmin", "abns@lbadmin"),
    ("bind fd@3", "fd@3"),
    ("bind 127.0.0.1:9443", "bind"),
    ("server s1 unix@/run/docker.sock", "unix@/run/docker.sock"),
    ("server s1 abns@x", "abns@x"),
    ("server s1 sockpair@4", "sockpair@4"),
    ("errorfile 503 /etc/shadow", "errorfile"),
    ("errorfiles myerrors", "errorfiles"),
    ("http-error status 503 errorfile /etc/shadow", "errorfile"),
    ("http-request return status 200 file /etc/shadow", "file"),
    ("http-request return status 200 lf-file /etc/shadow", "lf-file"),
    ("http-request return status 200 errorfile /etc/shadow", "errorfile"),
    ("http-request set-map(/etc/lbadmin.map) a b", "set-map"),
    ("http-request add-acl(/etc/lbadmin.acl) a", "add-acl"),
    ("http-request del-acl(/etc/lbadmin.acl) a", "del-acl"),
    ("http-response del-map(/etc/lbadmin.map) a", "del-map"),
    ("http-request lua.exec", "lua.exec"),
    ("http-request use-service lua.x", "use-service"),
    ("tcp-request content use-service lua.x", "use-service"),
    ("http-request send-spoe-group a b", "send-spoe-group"),
    ("http-request set-header X %[lua.secret]", "lua.secret"),
    ("external-check command /bin/sh", "external-check"),
    ("external-check path /bin", "external-check"),
    ("option external-check", "external-check"),
    ("server s1 192.0.2.1:443 ssl crt /etc/shadow", "crt"),
    ("server s1 192.0.2.1:443 ssl ca-file /etc/shadow verify required", "ca-file"),
    ("server s1 192.0.2.1:443 ssl crl-file /etc/shadow", "crl-file"),
    ("default-server ssl crt /etc/shadow", "crt"),
    ("stats enable", "stats"),
    ("stats admin if TRUE", "stats"),
    ("log /dev/log local0", "log"),
    ("log /run/lbadmin/any.sock local0", "log"),
    ("http-request set-header X %[env(DJANGO_SECRET_KEY)]", "env"),
    ("http-request set-var(txn.k) env(HOME)", "env"),
    ("acl a req.hdr(x),jwt_verify(RS256,/etc/shadow) -m found", "jwt_verify"),
    ("server-state-file-name /etc/shadow", "server-state-file-name"),
    ("load-server-state-from-file local", "load-server-state-from-file"),
    ("http-request do-resolve(txn.ip,dns) hdr(host)", "do-resolve"),
    ("http-request set-header X %[str(a),debug(ring)]", "debug"),
    ("http-request cache-use c", "cache-use"),
    ("http-check connect addr unix@/run/x.sock", "unix@/run/x.sock"),
    ("dispatch 192.0.2.1:80", "dispatch"),
    ("server-template s 1-3 unix@/x", "unix@/x"),
    ("email-alert mailers m", "email-alert"),
    ("http-request set-header X %[51d.all(IsMobile)]", "51d.all"),
    ("source 0.0.0.0 usesrc clientip", "source"),
    ("ssl-engine rdrand", "ssl-engine"),
]
LINES = [line for line, _ in REACHING]

# The guide's kind of manual section: cookie persistence, a health check, header rules.
BENIGN = [
    "mode http",
    "balance roundrobin",
    "option httpchk GET /",
    "http-check expect status 200",
    "option forwardfor",
    "timeout server 30m",
    "acl secure dst_port 443",
    "http-request set-header X-Forwarded-Proto https if secure",
    "http-request deny if { path_beg -i /admin }",
    "stick-table type ip size 1m expire 30m",
    "stick on src",
]


def test_the_table_is_the_size_the_review_asked_for() -> None:
    assert len(REACHING) >= 30 and len(set(LINES)) == len(LINES)


@pytest.mark.parametrize(("line", "token"), REACHING, ids=LINES)
def test_each_line_is_refused_naming_its_token(line: str, token: str) -> None:
    problem = manual_line_problem(line)
    assert problem is not None, f"{line!r} was accepted"
    assert token in problem, problem


def test_benign_lines_pass() -> None:
    for line in [*BENIGN, "server FE-1 192.0.2.31:80 check inter 4s rise 2 fall 3 weight 100"]:
        assert manual_line_problem(line) is None, line


@pytest.mark.django_db
@pytest.mark.parametrize(("line", "token"), REACHING, ids=LINES)
def test_the_webui_refuses_it_at_the_field(admin, line: str, token: str) -> None:
    service = VirtualService.objects.create(label="Manual", ip="127.0.10.30", ports="443")
    data = {**SERVICE, "manual_config": "on", "manual_text": f"mode http\n{line}"}
    url = f"/lbadmin/cluster/l7/services/{service.pk}/modify/"
    post_refused(admin, url, data, "manual_text", reason="Line 2 ")
    page = admin.post(f"/lbadmin/cluster/l7/services/{service.pk}/modify/", data).content.decode()
    message = re.search(r'id="errors-manual_text">(.*?)</div>', page, re.DOTALL)
    assert message and "Line 2 " in message[1] and html.escape(token) in message[1], page


def manual_document(line: str) -> dict:
    document = config_export()
    document["layer7"]["virtual_services"] = [
        {
            "label": "Manual", "ip": "127.0.10.30", "ports": [443], "protocol": "http",
            "balance": "leastconn", "persistence": "none", "cookie_name": "SERVERID",
            "persistence_timeout_s": 1800, "health_check": "connect", "check_port": None,
            "check_interval_ms": 4000, "fallback_ip": None, "fallback_port": None,
            "manual_config": True, "manual_text": f"mode http\n{line}", "real_servers": [],
        }
    ]  # fmt: skip
    return document


@pytest.mark.django_db
@pytest.mark.parametrize(("line", "token"), REACHING, ids=LINES)
def test_lbconfig_import_refuses_it(tmp_path: Path, line: str, token: str) -> None:
    before = config_export()
    path = tmp_path / "manual.json"
    path.write_text(json.dumps(manual_document(line)))
    with pytest.raises(CommandError) as refused:
        call_command("lbconfig", "import", str(path))
    assert "manual_text" in str(refused.value) and token in str(refused.value)
    assert config_export() == before


@pytest.mark.django_db
@pytest.mark.parametrize(("line", "token"), REACHING, ids=LINES)
def test_an_ha_sync_refuses_it(line: str, token: str) -> None:
    ha_node_paired("slave")
    before = config_export()
    answer = ha.ha_accept_sync(
        {"generation": 7, "document": manual_document(line)}, source_ip="192.0.2.1"
    )
    assert answer["status"] == "refused" and token in answer["error"], answer
    assert config_export() == before


@pytest.mark.daemons
@pytest.mark.django_db(transaction=True)
def test_a_benign_manual_section_applies_and_serves_unprivileged(
    celery_worker_process, haproxy_stopped_after, backends: int
) -> None:
    port = free_port(VIP)
    servers = [f"server FE-{n} {ip}:{backends} check inter 1s" for n, ip in enumerate(RIPS, 1)]
    document = config_export()
    document["layer7"]["virtual_services"] = [
        {
            **manual_document("")["layer7"]["virtual_services"][0],
            "ip": VIP, "ports": [port], "manual_text": "\n".join([*BENIGN, *servers]),
        }
    ]  # fmt: skip
    config_import(actor=None, document=document)

    revision = wait_for(config_apply_request(actor=None))

    assert revision.status == ConfigRevision.Status.APPLIED, revision.error
    assert sum(spread(port, 10).values()) == 10  # served (stick on src keeps one server)
    assert set(spread(port, 4)) <= {"FE-1", "FE-2"}
    # The master (root) parsed and bound; each worker serves as `haproxy`, chrooted empty.
    layout = runtime_layout()
    assert layout.haproxy_account is not None, "the test suite runs as root"
    workers = daemon_controllers()["haproxy"].show_proc().workers
    assert workers
    for pid in workers:
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert set(uids) == {str(pwd.getpwnam("haproxy").pw_uid)}, status  # real to saved
        assert os.readlink(f"/proc/{pid}/root") == str(layout.haproxy_chroot)
    assert not any(layout.haproxy_chroot.iterdir())
