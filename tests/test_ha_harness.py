"""The HA test harness itself (tests/ha_support.py): two appliances in their own network
namespaces behind a switch namespace, reached from a client namespace over their real HTTPS
WebUIs; and nothing of it left behind."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.ha_support import (
    CLIENT_IP,
    HaCluster,
    Topology,
    describe_pids,
    ha_lock,
    netns_list,
    netns_pids,
    pid_alive,
    wait_for,
)

pytest_plugins = ["tests.ha_support"]  # the two_nodes fixture; marks these tests `ha`
pytestmark = pytest.mark.daemons

ROOT_NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")


def lbha_namespaces() -> list[str]:
    return [name for name in netns_list() if name.startswith("lbha-")]


def sysctl_in(netns: str, name: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-n", name],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_leftovers_of_a_killed_run_are_removed_and_nothing_is_left_behind(tmp_path) -> None:
    root_nonlocal_bind = ROOT_NONLOCAL_BIND.read_text()
    with ha_lock():
        # What a killed run leaves: its namespace, with a process of it still inside.
        Topology.remove_leftovers()
        subprocess.run(["ip", "netns", "add", "lbha-a"], check=True, timeout=10)
        stale = subprocess.Popen(
            ["ip", "netns", "exec", "lbha-a", "sleep", "600"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(lambda: netns_pids("lbha-a"), 10, "the stale process", interval=0.05)
            with HaCluster(tmp_path, take_lock=False) as cluster:
                assert stale.wait(timeout=10) < 0  # SIGKILLed before the topology was made
                assert sorted(lbha_namespaces()) == ["lbha-a", "lbha-b", "lbha-c", "lbha-sw"]
                for netns in ("lbha-a", "lbha-b"):
                    assert sysctl_in(netns, "net.ipv4.ip_nonlocal_bind") == "1"
                assert sysctl_in("lbha-c", "net.ipv4.ip_nonlocal_bind") == "0"

                cluster.start()
                a, b, client = cluster
                node_pids = {a.name: a.pids(), b.name: b.pids()}
                for name, pids in node_pids.items():
                    commands = "\n".join(describe_pids(pids))
                    for program in (
                        "manage.py serve",
                        "gunicorn",
                        "celery",
                        "haproxy",
                        "keepalived",
                    ):
                        assert program in commands, f"node {name} runs no {program}:\n{commands}"
                everything = {*node_pids["a"], *node_pids["b"], client.pid}

                # The master dies: nothing of A answers any more; B is untouched.
                a.kill()
                assert a.pids() == []
                assert client.health(a, timeout=2).status == 0
                assert client.health(b).status == 200
        finally:
            if stale.poll() is None:
                stale.kill()
            stale.wait(timeout=10)
        assert lbha_namespaces() == []
        assert [pid for pid in everything if pid_alive(pid)] == []
        assert cluster.leftovers == {"a": [], "b": []}  # B stopped cleanly, without SIGKILL
    assert ROOT_NONLOCAL_BIND.read_text() == root_nonlocal_bind


def test_both_nodes_answer_from_the_client_namespace(two_nodes) -> None:
    client = two_nodes.client
    for node in two_nodes.nodes:
        health = client.health(node)
        assert health.status == 200, health
        assert health.json() == {
            "status": "ok",
            "database": True,
            "daemons": {"haproxy": True, "stunnel": True, "keepalived": True},
        }
        # Logged in as the administrator; each WebUI names its own node.
        page = client.get(node, "/lbadmin/")
        assert page.status == 200, page
        assert f"lbha-{node.name}<span" in page.text  # LBADMIN_APPLIANCE_NAME
        assert f"· lbha-{node.name}</title>" in page.text  # its own hostname
        assert "change the default password" not in page.text.lower()


def test_each_node_keeps_its_own_data(two_nodes) -> None:
    a, b, client = two_nodes
    assert a.var_dir != b.var_dir
    added = client.post(
        a,
        "/lbadmin/cluster/l7/services/add/",
        {"label": "HarnessOnlyOnA", "ip": "198.51.100.10", "ports": "443", "protocol": "tcp"},
    )
    assert added.status == 302, added
    assert added.location == "/lbadmin/cluster/l7/services/"
    on_a = client.get(a, "/lbadmin/cluster/l7/services/")
    on_b = client.get(b, "/lbadmin/cluster/l7/services/")
    assert on_a.status == on_b.status == 200
    assert "HarnessOnlyOnA" in on_a.text
    assert "HarnessOnlyOnA" not in on_b.text
    export = json.loads(b.manage("lbconfig", "export"))
    assert "HarnessOnlyOnA" not in json.dumps(export)
    assert "HarnessOnlyOnA" in a.manage("lbconfig", "export")


def test_a_post_without_the_csrf_token_is_refused(two_nodes) -> None:
    a, client = two_nodes.a, two_nodes.client
    forged = client.request(
        a, "POST", "/lbadmin/cluster/l7/services/add/",
        {"label": "Forged", "ip": "198.51.100.11", "ports": "80", "protocol": "tcp"},
        {"Referer": a.url + "/lbadmin/cluster/l7/services/add/"},
    )  # fmt: skip
    assert forged.status == 403
    assert "Forged" not in client.get(a, "/lbadmin/cluster/l7/services/").text


def test_a_node_reaches_the_other_over_https(two_nodes) -> None:
    a, b = two_nodes.a, two_nodes.b
    for source, target in ((a, b), (b, a)):
        status, body = source.https_get(f"{target.url}/lbadmin/health/")
        assert status == 200, body
        assert json.loads(body)["database"] is True
    # B saw the request come from A's own address, and the client's from 192.0.2.100.
    log = b.log_tail(400)
    assert f"{a.address} - - " in log
    assert f"{CLIENT_IP} - - " in log


def test_stopping_and_restarting_a_node_keeps_its_data(two_nodes) -> None:
    a, b, client = two_nodes
    added = client.post(
        b,
        "/lbadmin/cluster/l7/services/add/",
        {"label": "SurvivesRestart", "ip": "198.51.100.20", "ports": "80", "protocol": "http"},
    )
    assert added.status == 302, added

    assert b.stop() == []  # nothing needed SIGKILL
    assert b.pids() == []
    assert client.health(b, timeout=2).status == 0
    assert client.health(a).status == 200

    b.start()  # same var/: same database, and the client logs in again
    page = client.get(b, "/lbadmin/cluster/l7/services/")
    assert page.status == 200, page
    assert "SurvivesRestart" in page.text
    assert client.health(b).json()["daemons"]["haproxy"] is True
