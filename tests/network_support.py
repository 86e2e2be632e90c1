"""Local Configuration's confirmation window with real processes, for
tests/test_network_revert_process.py and bench/network_revert.py.

Topology (network namespaces this module makes; the root namespace's network is never
touched)::

    lbrv-node   lbr0 (192.0.2.10/24, added by the appliance) ── lbr1 192.0.2.1/24   lbrv-client

`manage.py serve --components daemons,worker` runs in the root namespace (it reaches the
database and broker on 127.0.0.1) and manages ``lbrv-node`` through ``LBADMIN_NETWORK_NETNS``.
The change under test is the one every route change is: ``198.51.100.0/24 via 192.0.2.1``,
sent to serve's worker the way the web sends it (``network_apply_task`` on the node's queue),
after the address that puts the gateway on-link was added and confirmed.

Django must be set up before this module is imported (pytest-django does it; the bench calls
``django.setup()`` first). The namespace names are fixed: a lock file serialises runs, and
whatever a killed earlier run left is removed before the namespaces are made again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from celery.utils.nodenames import host_format

from appliance.celery import app
from lbadmin.engines.files import file_lock
from lbadmin.models import HostSettings, NetworkAddress, StaticRoute
from lbadmin.services import network
from lbadmin.services.network_edit import NetworkEdit
from lbadmin.tasks import network_apply_task
from tests.ha_support import wait_for

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "lbrv-"
NODE_NS = "lbrv-node"
CLIENT_NS = "lbrv-client"
NIC, PEER = "lbr0", "lbr1"
NODE_ADDRESS = "192.0.2.10/24"
GATEWAY = "192.0.2.1"
ROUTE = "198.51.100.0/24"
WINDOW_S = 5  # LBADMIN_NETWORK_CONFIRM_SECONDS (its minimum)
LOCK_FILE = Path(tempfile.gettempdir()) / "lbrv.lock"
# serve's node worker (`--hostname lbadmin@%h`), the one that consumes the node's queue.
WORKER_NODE = host_format("lbadmin@%h")

ADDRESS_EDIT = NetworkEdit("address-add", interface=NIC, address=NODE_ADDRESS)
ROUTE_EDIT = NetworkEdit("route-add", destination=ROUTE, gateway=GATEWAY)


# --- Namespaces --------------------------------------------------------------------------------


def ip(*args: str, check: bool = True) -> str:
    """`ip ARGS` (never a shell); its stdout, or AssertionError with its output."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=20, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def ip_json(*args: str, netns: str = NODE_NS) -> list[dict]:
    return json.loads(ip("-n", netns, "-j", *args) or "[]")


def route_live() -> bool:
    """The route under test is in the node namespace's main table."""
    return any(route.get("dst") == ROUTE for route in ip_json("route", "show"))


def node_addresses() -> set[str]:
    """The global addresses on the node's interface."""
    return {
        f"{item['local']}/{item['prefixlen']}"
        for link in ip_json("addr", "show", "dev", NIC)
        for item in link.get("addr_info", [])
        if item.get("scope") == "global"
    }


def _netns_list() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def _remove_namespaces() -> None:
    for name in _netns_list():
        if name.startswith(PREFIX):
            ip("netns", "delete", name, check=False)


def _run_lock(timeout: float = 300.0) -> contextlib.AbstractContextManager[None]:
    """One lbrv topology per machine (a test run and a bench run wait for each other); a
    killed holder releases it (flock)."""
    return file_lock(LOCK_FILE, timeout)


@contextlib.contextmanager
def namespaces() -> Iterator[None]:
    """The node and client namespaces joined by a veth pair (both ends up, the client's end
    holding the gateway's address); deleted on leaving, whatever happened."""
    with _run_lock():
        _remove_namespaces()  # a killed earlier run's
        try:
            for name in (NODE_NS, CLIENT_NS):
                ip("netns", "add", name)
                ip("-n", name, "link", "set", "lo", "up")
            # Made inside the node namespace, the peer moved straight to the client's.
            ip("-n", NODE_NS, "link", "add", NIC, "type", "veth", "peer", "name", PEER,
               "netns", CLIENT_NS)  # fmt: skip
            ip("-n", CLIENT_NS, "addr", "add", f"{GATEWAY}/24", "dev", PEER)
            ip("-n", CLIENT_NS, "link", "set", PEER, "up")
            ip("-n", NODE_NS, "link", "set", NIC, "up")
            yield
        finally:
            _remove_namespaces()


def node_env(base: dict[str, str], *, queue: str, var_dir: Path) -> dict[str, str]:
    """``base`` plus what makes a process this node: it manages the node namespace's network
    (not the daemons), with a 5 s window, on its own queue and var/ directory."""
    return {
        **base,
        "LBADMIN_MANAGE_NETWORK": "1",
        "LBADMIN_NETWORK_NETNS": NODE_NS,
        "LBADMIN_MANAGE_DAEMONS": "0",
        "LBADMIN_NETWORK_CONFIRM_SECONDS": str(WINDOW_S),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "LBADMIN_VAR_DIR": str(var_dir),
        "LBADMIN_ETC_DIR": str(var_dir / "etc"),
        "PYTHONUNBUFFERED": "1",
    }


# --- serve -------------------------------------------------------------------------------------


def _children(parent: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of the live children of ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[1]) == parent:
            found.append((int(entry), argv.split("\0")))
    return found


class Serve:
    """`manage.py serve --components daemons,worker` in a process group of its own (its
    workers are in it too), output to ``log_path``. ``with Serve(...) as serve:`` SIGKILLs
    the whole group on leaving, whatever happened. ``ping_timeout``: how long a ping waits
    for its answer (the filesystem broker polls every second)."""

    def __init__(self, env: dict[str, str], log_path: Path, ping_timeout: float = 0.5) -> None:
        self.env = env
        self.ping_timeout = ping_timeout
        self.queue = env["CELERY_TASK_DEFAULT_QUEUE"]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def launch(self) -> float:
        """Start serve (returns at once); the wall-clock time it was started."""
        assert self.process is None or self.process.poll() is not None, "serve is running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"==== serve start {self.starts}\n".encode())
            log.flush()
            started = time.time()
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--components", "daemons,worker"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its group: it and its workers; Ctrl-C spares it
            )  # fmt: skip
        return started

    def worker_pid(self) -> int | None:
        """The pid of serve's node worker (the one on the node's queue), if it runs."""
        if self.process is None:
            return None
        for pid, argv in _children(self.process.pid):
            if "--queues" in argv[:-1] and argv[argv.index("--queues") + 1] == self.queue:
                return pid
        return None

    def worker_answers(self) -> bool:
        """serve is running and its node worker answers a remote-control request (a ping
        that also names the pid, so another serve on the same broker cannot answer for it)."""
        assert self.process is not None and self.process.poll() is None, (
            f"serve exited with {self.process and self.process.returncode}:\n{self.log_tail()}"
        )
        pid = self.worker_pid()
        if pid is None:
            return False
        replies = app.control.broadcast(
            "stats", destination=[WORKER_NODE], reply=True, timeout=self.ping_timeout
        )
        return any(answer.get("pid") == pid for reply in replies or [] for answer in reply.values())

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until the node worker answers; seconds it took."""
        try:
            return wait_for(self.worker_answers, timeout, "serve's worker to answer", 0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- serve log:\n{self.log_tail()}") from None

    def start(self, timeout: float = 60.0) -> float:
        self.launch()
        return self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL serve's whole group (serve and its workers: the node dies)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        # A worker's pool child that outlived its parent is still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


# --- The change --------------------------------------------------------------------------------


def send_change(edit: NetworkEdit, queue: str, timeout: float = 60.0) -> dict:
    """``edit`` made by the node's worker on ``queue``, as the web asks for it; its outcome."""
    task = network_apply_task.apply_async(
        kwargs={
            "edit": edit.to_json(),
            "client_address": None,
            "host_address": None,
            "actor_id": None,
            "source_ip": None,
        },
        queue=queue,
    )
    return task.get(timeout=timeout, interval=0.01)


def add_confirmed_address(queue: str) -> None:
    """The node's address (the gateway's subnet), added and confirmed, so that only the route
    waits for confirmation afterwards."""
    outcome = send_change(ADDRESS_EDIT, queue)
    assert outcome["ok"], outcome
    if outcome["confirm"]:
        assert network.network_confirm(actor=None, source_ip=None), "the address was reverted"
    assert NODE_ADDRESS in node_addresses()


@dataclass(frozen=True)
class Change:
    changed_at: float  # wall clock when the worker's answer came (the change live and stored)
    deadline: float  # HostSettings.confirm_until, as a wall-clock time

    @property
    def window(self) -> float:
        """The floor: how long the change may stay unconfirmed, measured in this run."""
        return self.deadline - self.changed_at


def add_unconfirmed_route(queue: str) -> Change:
    """The route, made by the node's worker; it waits for confirmation."""
    outcome = send_change(ROUTE_EDIT, queue)
    changed_at = time.time()
    assert outcome == {"ok": True, "problems": [], "fields": [], "confirm": True}, outcome
    deadline = HostSettings.load().confirm_until
    assert deadline is not None, "the route change does not wait for confirmation"
    assert route_live(), "the route is not live after the change"
    return Change(changed_at=changed_at, deadline=deadline.timestamp())


@dataclass(frozen=True)
class Vanish:
    last_seen: float  # wall clock at the start of the last poll that still saw the route
    gone: float  # wall clock at the end of the first poll that no longer saw it


def wait_route_gone(
    until: float, *, interval: float = 0.05, during: Callable[[], None] | None = None
) -> Vanish:
    """Poll the node's routes until the route under test is gone; AssertionError if it is
    still there at wall-clock time ``until``. ``during`` runs between polls."""
    last_seen = time.time()
    while True:
        began = time.time()
        if not route_live():
            return Vanish(last_seen=last_seen, gone=time.time())
        last_seen = began
        if began > until:
            raise AssertionError(f"the route {ROUTE} is still live {began - until:.1f}s late")
        if during is not None:
            during()
        time.sleep(interval)


def confirmed_state_problems() -> list[str]:
    """What differs from the confirmed configuration (the address, no route), in the database
    and live; [] when everything is back."""
    problems = []
    state = HostSettings.load()
    if state.confirm_until is not None or state.revert_to is not None:
        problems.append(f"still waiting for confirmation until {state.confirm_until}")
    if state.network_problem:
        problems.append(f"network_problem: {state.network_problem}")
    routes = list(StaticRoute.objects.values_list("destination", "gateway"))
    if routes:
        problems.append(f"stored routes: {routes}")
    stored = set(NetworkAddress.objects.values_list("interface__name", "address"))
    if stored != {(NIC, NODE_ADDRESS)}:
        problems.append(f"stored addresses: {sorted(stored)}")
    applied = state.applied or {}
    if applied.get("routes"):
        problems.append(f"applied record still has routes: {applied['routes']}")
    if route_live():
        problems.append(f"{ROUTE} is live")
    if NODE_ADDRESS not in node_addresses():
        problems.append(f"{NODE_ADDRESS} is not live on {NIC}")
    return problems


def wait_confirmed_state(timeout: float = 10.0) -> list[str]:
    """Wait (bounded) until the revert is recorded; what still differs then ([] when all
    is back). The route goes before the database transaction commits."""
    deadline = time.monotonic() + timeout
    while True:
        problems = confirmed_state_problems()
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.1)


def summary(values: list[float]) -> tuple[float, float]:
    """(median, max)."""
    return statistics.median(values), max(values)
