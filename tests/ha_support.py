"""Two appliances on one machine, for the HA clustered-pair tests (issue 7).

Topology (network namespaces; the root namespace's addresses, routes and sysctls are never
touched)::

    lbha-a  eth0 192.0.2.1/24  ─┐
    lbha-b  eth0 192.0.2.2/24  ─┼─ sw-a / sw-b / sw-c ── br0   (namespace lbha-sw: the switch)
    lbha-c  eth0 192.0.2.100/24 ┘                              (the client)

Each node runs the whole appliance (`manage.py serve`: gunicorn on https://<ip>:9443, the Celery
worker on the filesystem broker, HAProxy, stunnel and keepalived) inside its own namespace with
its own var/ directory and SQLite database, under ``env -i`` (nothing of the test process's
environment leaks in: no DATABASE_URL, no CELERY_BROKER_URL, whose servers on 127.0.0.1 cannot be
reached from a namespace). ``net.ipv4.ip_nonlocal_bind=1`` in the node namespaces lets HAProxy
bind floating addresses the node does not hold.

The test process cannot enter a namespace, so HTTPS requests go through one long-lived helper
process in ``lbha-c`` that reads JSON commands on stdin and answers JSON lines (``Client``).

Use::

    pytest_plugins = ["tests.ha_support"]     # in the test module: fixtures and the `ha` mark

    def test_something(two_nodes):
        a, b, client = two_nodes.a, two_nodes.b, two_nodes.client
        client.post(a, "/lbadmin/cluster/l7/services/add/", {...})   # logged in as admin
        assert "Label" in client.get(b, "/lbadmin/cluster/l7/services/").text
        a.manage("lbconfig", "export")            # management command inside lbha-a
        b.kill()                                  # the master dies: SIGKILL, link down
        b.start()                                 # it comes back, same var/ (and logs in again)

or, outside pytest (bench/), ``with HaCluster() as cluster: cluster.start()``.

Only one HA topology can exist on a machine (the names are fixed): a lock file serialises runs,
and whatever a killed earlier run left (namespaces, their processes, stale run directories)
is removed before a new topology is made.

(PYTEST_DONT_REWRITE: test modules import this before pytest_plugins loads it; its asserts
carry their own messages.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable

PREFIX = "lbha-"
SWITCH_NS = "lbha-sw"
BRIDGE = "br0"
PREFIX_LEN = 24
CLIENT_NS = "lbha-c"
CLIENT_IP = "192.0.2.100"
NODE_ADDRESSES = {"a": "192.0.2.1", "b": "192.0.2.2"}
WEBUI_PORT = 9443
LOCK_FILE = Path(tempfile.gettempdir()) / "lbha.lock"

ADMIN_USERNAME = "loadbalancer"
# Passes the appliance's validators (length, classes, not common, not the factory default).
ADMIN_PASSWORD = "Ha-Pair-Test-7x!"
CSRF_COOKIE = "lbadmin_csrftoken"

START_TIMEOUT = 120.0  # a fresh node migrates, hashes a password, makes keys: slow on 2 cores
STOP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 120.0
REQUEST_TIMEOUT = 15.0
LOCK_TIMEOUT = 90.0

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# ---------------------------------------------------------------------------------------------
# Commands and processes


def _run(argv: list[str], *, timeout: float = 20.0, check: bool = True) -> str:
    """Run a command (never a shell); its stdout, or AssertionError with its output."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"{argv} did not finish within {timeout}s") from error
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _ip(*args: str, check: bool = True) -> str:
    return _run(["ip", *args], check=check)


def netns_list() -> list[str]:
    """Names of the network namespaces `ip netns` knows."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    """Live (not zombie) pids whose network namespace is ``name`` (as `ip netns pids`)."""
    try:
        target = os.stat(f"/run/netns/{name}")
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry}/ns/net")
            if (ns.st_dev, ns.st_ino) != (target.st_dev, target.st_ino):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def describe_pids(pids: Iterable[int]) -> list[str]:
    """'pid: command line' for each pid still there."""
    described = []
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        described.append(f"{pid}: {command}")
    return described


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_netns_processes(name: str, timeout: float = 10.0) -> list[str]:
    """SIGKILL every process in namespace ``name`` until none is left (a dying HAProxy master
    may still fork); returns what was killed. AssertionError if something survives."""
    killed: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(name)
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise AssertionError(f"processes in {name} survive SIGKILL: {describe_pids(pids)}")
        killed.extend(d for d in describe_pids(pids) if d not in killed)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval=0.2) -> float:
    """Poll ``predicate`` until true (asked once more after the deadline); seconds taken."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start >= timeout:
            if predicate():
                break
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


@contextlib.contextmanager
def ha_lock(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Only one HA topology per machine: hold this while it exists. A killed holder releases
    it (flock), so whatever lbha-* exists once it is held is a leftover."""
    handle = LOCK_FILE.open("a+")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "?"
                    raise AssertionError(
                        f"another HA test run (pid {holder}) holds {LOCK_FILE} for over {timeout}s"
                    ) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


# ---------------------------------------------------------------------------------------------
# Topology


class Topology:
    """The switch, the two node namespaces and the client namespace."""

    names = (SWITCH_NS, "lbha-a", "lbha-b", CLIENT_NS)

    @staticmethod
    def remove_leftovers() -> list[str]:
        """Delete every lbha-* namespace after killing its processes (a killed earlier run);
        returns the namespaces removed."""
        removed = []
        for name in netns_list():
            if name.startswith(PREFIX):
                kill_netns_processes(name)
                _ip("netns", "delete", name)
                removed.append(name)
        return removed

    def create(self) -> None:
        for name in self.names:
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        sw = ("-n", SWITCH_NS)
        _ip(*sw, "link", "add", BRIDGE, "type", "bridge", "forward_delay", "0",
            "mcast_snooping", "0")  # fmt: skip
        _ip(*sw, "link", "set", BRIDGE, "up")
        for ns, address in (
            ("lbha-a", NODE_ADDRESSES["a"]),
            ("lbha-b", NODE_ADDRESSES["b"]),
            (CLIENT_NS, CLIENT_IP),
        ):
            port = self.switch_port(ns)
            _ip(*sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip(*sw, "link", "set", port, "master", BRIDGE, "up")
            _ip("-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        for ns in ("lbha-a", "lbha-b"):
            # Floating VIPs: HAProxy binds addresses the node does not hold (yet).
            _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"])

    @staticmethod
    def switch_port(ns: str) -> str:
        return "sw-" + ns.removeprefix(PREFIX)

    def destroy(self) -> None:
        for name in reversed(self.names):
            if name in netns_list():
                kill_netns_processes(name)
                _ip("netns", "delete", name)


# ---------------------------------------------------------------------------------------------
# The client: a JSON-lines HTTPS helper living in lbha-c

_HELPER = r"""
import http.cookiejar, json, ssl, sys, urllib.error, urllib.parse, urllib.request

context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE  # the WebUI's certificate is self-signed


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx comes back as the answer


jars, openers = {}, {}


def opener(jar, follow):
    if (jar, follow) not in openers:
        handlers = [
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(jars.setdefault(jar, http.cookiejar.CookieJar())),
        ]
        if not follow:
            handlers.append(NoRedirect())
        openers[jar, follow] = urllib.request.build_opener(*handlers)
    return openers[jar, follow]


def handle(cmd):
    jar = cmd.get("jar") or urllib.parse.urlsplit(cmd["url"]).netloc
    if cmd.get("method") == "RESET":
        jars.pop(jar, None)
        for key in [k for k in openers if k[0] == jar]:
            del openers[key]
        return {"status": 0}
    data = cmd.get("data")
    body = None
    if data is not None:
        body = urllib.parse.urlencode([tuple(pair) for pair in data], doseq=True).encode()
    headers = dict(cmd.get("headers") or {})
    if body is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(
        cmd["url"], data=body, headers=headers, method=cmd.get("method", "GET")
    )
    try:
        response = opener(jar, bool(cmd.get("follow"))).open(
            request, timeout=cmd.get("timeout", 15)
        )
    except urllib.error.HTTPError as error:
        response = error
    with response:
        content = response.read()
        status = response.status if hasattr(response, "status") else response.code
        return {
            "status": status,
            "headers": [[k, v] for k, v in response.headers.items()],
            "body": content.decode("utf-8", "replace"),
            "url": response.geturl(),
            "cookies": {c.name: c.value for c in jars.get(jar, [])},
        }


for line in sys.stdin:
    try:
        answer = handle(json.loads(line))
    except Exception as error:
        answer = {"status": 0, "error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    url: str = ""
    error: str = ""  # connection-level failure (status 0): refused, timed out, TLS

    @property
    def text(self) -> str:
        return self.body

    def header(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    @property
    def location(self) -> str | None:
        return self.header("Location")

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path

    def json(self) -> object:
        return json.loads(self.body)

    def form_token(self) -> str | None:
        match = _TOKEN_RE.search(self.body)
        return match.group(1) if match else None

    def __repr__(self) -> str:
        if self.error:
            return f"<Response {self.error}>"
        return f"<Response {self.status} {self.url} {self.body[:300]!r}>"


class Client:
    """HTTPS requests from lbha-c (192.0.2.100), one cookie jar per node (its WebUI session)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            ["ip", "netns", "exec", CLIENT_NS, "env", "-i", f"PATH={BASE_PATH}",
             "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", PYTHON, "-I", "-c", _HELPER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True,  # Ctrl-C in the terminal reaches pytest, not the helper
        )  # fmt: skip
        self._buffer = b""
        self._cookies: dict[str, dict[str, str]] = {}
        self._tokens: dict[str, str] = {}

    @property
    def pid(self) -> int:
        return self._process.pid

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self._log.close()

    # --- the wire ----------------------------------------------------------------------------

    def _exchange(self, command: dict, timeout: float) -> dict:
        if self._process.poll() is not None:
            raise AssertionError(
                f"the client helper exited ({self._process.returncode}): "
                f"{self.log_path.read_text(errors='replace')[-2000:]}"
            )
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        self._process.stdin.flush()
        deadline = time.monotonic() + timeout + 10
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"the client helper did not answer {command.get('url')}")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise AssertionError(
                    f"the client helper died: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def request(
        self,
        node: Node | str,
        method: str,
        path: str,
        data: dict | list | None = None,
        headers: dict[str, str] | None = None,
        *,
        follow: bool = False,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Response:
        """One request to ``node`` (a Node, or a base URL such as https://192.0.2.1:9443) with
        that node's cookies. Connection failures come back as status 0 with ``error`` set."""
        base = node.url if isinstance(node, Node) else node.rstrip("/")
        jar = node.name if isinstance(node, Node) else urllib.parse.urlsplit(base).netloc
        pairs = list(data.items()) if isinstance(data, dict) else data
        answer = self._exchange(
            {"jar": jar, "method": method, "url": base + path, "data": pairs,
             "headers": headers or {}, "follow": follow, "timeout": timeout},
            timeout,
        )  # fmt: skip
        response = Response(
            status=answer["status"],
            headers=[tuple(h) for h in answer.get("headers", [])],
            body=answer.get("body", ""),
            url=answer.get("url", base + path),
            error=answer.get("error", ""),
        )
        if "cookies" in answer:
            self._cookies[jar] = answer["cookies"]
        token = response.form_token()
        if token:
            self._tokens[jar] = token
        return response

    def forget(self, node: Node) -> None:
        """Drop the node's cookies (a new browser)."""
        self._exchange({"jar": node.name, "method": "RESET", "url": node.url}, 5)
        self._cookies.pop(node.name, None)
        self._tokens.pop(node.name, None)

    def cookies(self, node: Node) -> dict[str, str]:
        return dict(self._cookies.get(node.name, {}))

    # --- what a browser does ------------------------------------------------------------------

    def get(self, node: Node | str, path: str, *, follow: bool = False, **kwargs) -> Response:
        return self.request(node, "GET", path, follow=follow, **kwargs)

    def post(
        self,
        node: Node,
        path: str,
        data: dict | None = None,
        *,
        follow: bool = False,
        headers: dict[str, str] | None = None,
        referer_path: str | None = None,
        **kwargs,
    ) -> Response:
        """A form POST as the WebUI's pages make it: the CSRF token (the CSRF cookie's
        value, else the last form page's token, else the token of a fresh GET of ``path``)
        and a same-origin Referer and Origin (Django checks the Referer over HTTPS)."""
        fields = dict(data or {})
        if "csrfmiddlewaretoken" not in fields:
            token = self._cookies.get(node.name, {}).get(CSRF_COOKIE) or self._tokens.get(node.name)
            if token is None:
                token = self.get(node, path).form_token() or self._tokens.get(node.name)
            if token is not None:
                fields["csrfmiddlewaretoken"] = token
        sent = {"Referer": node.url + (referer_path or path), "Origin": node.url}
        sent.update(headers or {})
        return self.request(node, "POST", path, fields, sent, follow=follow, **kwargs)

    def login(
        self, node: Node, username: str = ADMIN_USERNAME, password: str | None = None
    ) -> Response:
        """Log in to the node's WebUI (a fresh session); AssertionError if refused."""
        password = password if password is not None else node.admin_password
        self.forget(node)
        page = self.get(node, "/lbadmin/login/")
        token = page.form_token()
        assert page.status == 200 and token, f"no login form on {node.name}: {page!r}"
        response = self.post(
            node,
            "/lbadmin/login/",
            {"username": username, "password": password, "next": "", "csrfmiddlewaretoken": token},
            follow=True,
        )
        assert response.status == 200 and response.path != "/lbadmin/login/", (
            f"login to node {node.name} as {username} refused: {response!r}"
        )
        return response

    def health(self, node: Node, timeout: float = 3.0) -> Response:
        return self.get(node, "/lbadmin/health/", timeout=timeout)


# ---------------------------------------------------------------------------------------------
# A node: the whole appliance in its namespace

_FETCH = r"""
import ssl, sys, urllib.error, urllib.request
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]), context=context)
except urllib.error.HTTPError as error:
    response = error
sys.stdout.write(f"{response.status if hasattr(response, 'status') else response.code}\n")
sys.stdout.write(response.read().decode("utf-8", "replace"))
"""


# Sets the hostname (in the UTS namespace `unshare --uts` made), then becomes the command.
_SET_HOSTNAME = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
)


class Node:
    """One appliance (``name`` 'a' or 'b') in namespace lbha-<name>, listening on
    https://<address>:9443, with its state in ``home``/var."""

    def __init__(self, name: str, home: Path, client: Client) -> None:
        self.name = name
        self.netns = PREFIX + name
        self.address = NODE_ADDRESSES[name]
        self.port = WEBUI_PORT
        self.url = f"https://{self.address}:{self.port}"
        self.home = home
        self.var_dir = home / "var"
        self.log_path = home / "serve.log"
        self.client = client
        self.admin_password = ADMIN_PASSWORD
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._log_offset = 0
        home.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.url}>"

    @property
    def env(self) -> dict[str, str]:
        """The node's whole environment (``env -i``): SQLite and the filesystem broker."""
        return {
            "PATH": BASE_PATH,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "DJANGO_SETTINGS_MODULE": "appliance.settings",
            "LBADMIN_VAR_DIR": str(self.var_dir),
            "LBADMIN_HTTPS_BIND": self.address,
            "LBADMIN_HTTPS_PORT": str(self.port),
            "LBADMIN_APPLIANCE_NAME": f"lbha-{self.name}",
            "LBADMIN_WEB_WORKERS": "1",  # two appliances share two cores
            "LBADMIN_WEB_THREADS": "4",
        }

    @property
    def hostname(self) -> str:
        return self.netns

    def _argv(self, *command: str) -> list[str]:
        """``command`` in the node's network namespace, in a UTS namespace of its own with
        the node's hostname (Celery's worker name, keepalived's router_id, the page title),
        with nothing but the node's environment."""
        env = [f"{key}={value}" for key, value in self.env.items()]
        return [
            "ip", "netns", "exec", self.netns, "unshare", "--uts", "env", "-i", *env,
            PYTHON, "-I", "-S", "-c", _SET_HOSTNAME, self.hostname, *command,
        ]  # fmt: skip

    # --- commands inside the namespace --------------------------------------------------------

    def run(
        self, *command: str, timeout: float = COMMAND_TIMEOUT, check: bool = False
    ) -> subprocess.CompletedProcess:
        """Any command inside the node's namespace, with the node's environment, from the
        project directory."""
        try:
            done = subprocess.run(
                self._argv(*command), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"node {self.name}: {command} ran over {timeout}s") from error
        if check and done.returncode != 0:
            raise AssertionError(
                f"node {self.name}: {command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def manage(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """`manage.py <args>` as this node; its stdout (AssertionError if it fails)."""
        return self.run(PYTHON, "manage.py", *args, timeout=timeout, check=True).stdout

    def shell(self, code: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Python run by `manage.py shell -c` as this node (Django set up); its stdout."""
        return self.manage("shell", "--no-imports", "-c", code, timeout=timeout)

    def https_get(self, url: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``url`` from inside this node's namespace: (status, body), or (0, the error)."""
        done = self.run(PYTHON, "-I", "-c", _FETCH, url, str(timeout), timeout=timeout + 30)
        if done.returncode != 0:
            return 0, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        status, _, body = done.stdout.partition("\n")
        return int(status), body

    def set_admin_password(self, password: str = ADMIN_PASSWORD) -> None:
        """Change the factory user's password the appliance's way (validators, audit entry,
        must_change_password cleared), so that POSTs are allowed."""
        code = (
            "from lbadmin.models import User\n"
            "from lbadmin.services.auth import password_change\n"
            f"user = User.objects.get(username={ADMIN_USERNAME!r})\n"
            f"password_change(user=user, new_password={password!r}, source_ip=None)\n"
        )
        self.shell(code)
        self.admin_password = password
        self.mark_admin_password_set()

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """Every process of this node (everything in its namespace)."""
        return netns_pids(self.netns)

    def launch(self) -> None:
        """Start `manage.py serve` in the namespace (returns at once; see wait_ready)."""
        assert not self.running, f"node {self.name} is already running"
        self.link_up()
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"==== lbha start {self.starts} at {time.ctime()}\n".encode())
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                self._argv(PYTHON, "manage.py", "serve"), cwd=ROOT, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group; Ctrl-C reaches pytest only
            )  # fmt: skip

    def _log_since_launch(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def ready(self) -> bool:
        """The WebUI answers /lbadmin/health/ (database up, every daemon running) and the
        Celery worker said it is ready."""
        if not self.running:
            raise AssertionError(
                f"node {self.name}'s serve exited with {self.process.returncode}:\n"
                f"{self.log_tail()}"
            )
        response = self.client.health(self)
        if response.status != 200:
            return False
        health = response.json()
        return (
            health.get("database") is True
            and all(health.get("daemons", {}).values())
            and re.search(r"\bready\.", self._log_since_launch()) is not None
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        start = time.monotonic()
        try:
            wait_for(self.ready, timeout, f"node {self.name} ({self.url}) to be ready")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- node {self.name} log:\n{self.log_tail()}") from None
        return time.monotonic() - start

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start (or restart, on the same var/) and wait until ready; seconds it took. The
        client is logged in again if the admin password was already set."""
        self.launch()
        took = self.wait_ready(timeout)
        if self.admin_password_set():
            self.client.login(self)
        return took

    def admin_password_set(self) -> bool:
        return (self.home / ".admin-password-set").exists()

    def mark_admin_password_set(self) -> None:
        (self.home / ".admin-password-set").touch()

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """SIGTERM the serve process group (WebUI, worker), stop the daemons (`manage.py
        daemons stop` in the namespace), then SIGKILL anything of the node still running.
        Returns what had to be killed ([] for a clean stop); AssertionError if anything
        survives."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.netns in netns_list():
            self.run(PYTHON, "manage.py", "daemons", "stop", timeout=60)
            leftovers = kill_netns_processes(self.netns)
        else:
            leftovers = []
        self.process = None
        return leftovers

    def kill(self) -> None:
        """The node dies: its link goes down and every process of it is SIGKILLed (pid files,
        sockets and the database are left as they were)."""
        self.link_down()
        kill_netns_processes(self.netns)
        if self.process is not None:
            self.process.wait(timeout=10)
            self.process = None

    def link_down(self) -> None:
        """Pull the cable: the node's switch port goes down (its eth0 loses carrier)."""
        _ip("-n", SWITCH_NS, "link", "set", Topology.switch_port(self.netns), "down")

    def link_up(self) -> None:
        _ip("-n", SWITCH_NS, "link", "set", Topology.switch_port(self.netns), "up")

    def wipe(self) -> None:
        """A factory-fresh node: its state is removed (the node must be stopped)."""
        assert not self.running, f"stop node {self.name} before wiping it"
        shutil.rmtree(self.var_dir, ignore_errors=True)
        (self.home / ".admin-password-set").unlink(missing_ok=True)
        self.admin_password = ADMIN_PASSWORD
        self.client.forget(self)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# The pair


class HaCluster:
    """Topology + client + nodes a and b. ``with HaCluster() as c: c.start()``.

    Leaving (normally, on an exception or on Ctrl-C) stops both nodes, stops the client and
    removes the namespaces; ``base_dir`` (logs, var/) is removed only if it was made here.
    """

    def __init__(self, base_dir: Path | None = None, *, take_lock: bool = True) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.take_lock = take_lock
        self.topology = Topology()
        self.client: Client | None = None
        self.a: Node | None = None
        self.b: Node | None = None
        self.leftovers: dict[str, list[str]] = {}
        self._stack = contextlib.ExitStack()

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b

    def __iter__(self) -> Iterator[object]:  # a, b, client = cluster
        return iter((self.a, self.b, self.client))

    def __enter__(self) -> HaCluster:
        try:
            if self.take_lock:
                self._stack.enter_context(ha_lock())
            self._stack.callback(self.topology.destroy)
            Topology.remove_leftovers()
            if self._own_dir:  # made under the lock: any other lbha-* dir is a leftover
                for stale in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
                    if stale.is_dir():
                        shutil.rmtree(stale, ignore_errors=True)
                self.base_dir = Path(tempfile.mkdtemp(prefix=PREFIX))
            self.topology.create()
            self.client = Client(self.base_dir / "client.log")
            self._stack.callback(self.client.close)
            self.a = Node("a", self.base_dir / "a", self.client)
            self.b = Node("b", self.base_dir / "b", self.client)
            self._stack.callback(self._stop_nodes)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._stack.close()
        finally:
            if self._own_dir and self.base_dir is not None:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def _stop_nodes(self) -> None:
        self.leftovers.update(zip("ab", self.each(Node.stop), strict=True))

    def each(self, action: Callable[[Node], object]) -> list[object]:
        """``action(node)`` for both nodes at once (threads; not for the client, which
        serves one request at a time); the results, or the first error once both ended."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(action, node) for node in self.nodes]
            concurrent.futures.wait(futures)
        return [future.result() for future in futures]

    def start(self, timeout: float = START_TIMEOUT) -> dict[str, float]:
        """Start whichever node is not running (both at once), make each usable: admin
        password set (first start) and the client logged in. Seconds each took to be ready."""
        todo = [node for node in self.nodes if not node.running]
        began = time.monotonic()
        for node in todo:
            node.launch()
        took = {}
        pending = list(todo)
        while pending:
            for node in list(pending):
                if node.ready():
                    took[node.name] = time.monotonic() - began
                    pending.remove(node)
            if pending and time.monotonic() - began > timeout:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for "
                    + ", ".join(f"node {n.name}:\n{n.log_tail()}" for n in pending)
                )
            if pending:
                time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(_first_password, node) for node in todo]
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()
        for node in todo:
            self.client.login(node)
        return took

    def ensure_running(self) -> None:
        """Both nodes up and answering (a test before may have stopped or killed one)."""
        for node in self.nodes:
            if node.running and self.client.health(node).status != 200:
                node.stop()
        self.start()

    def reset(self) -> dict[str, float]:
        """Both nodes factory-fresh (wiped var/) and started again."""
        self.each(Node.stop)
        for node in self.nodes:
            node.wipe()
        return self.start()


def _first_password(node: Node) -> None:
    if not node.admin_password_set():
        node.set_admin_password()


# ---------------------------------------------------------------------------------------------
# pytest: fixtures and the `ha` mark (load with pytest_plugins = ["tests.ha_support"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ha: runs two appliances in network namespaces (tests/ha_support.py)"
    )


@pytest.hookimpl(tryfirst=True)  # before -m selects on it
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of a module that loads this plugin, and every test using its fixtures,
    is marked `ha`: `pytest -m ha` selects them, `-m "not ha"` leaves them out."""
    for item in items:
        module = getattr(item, "module", None)
        if __name__ in getattr(module, "pytest_plugins", ()) or {"two_nodes", "ha_cluster"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker("ha")


@pytest.fixture(scope="module")
def ha_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaCluster]:
    """Both nodes running, admin password set, the client logged in to both: started once
    per test module (a node takes seconds to start). Logs and var/ under pytest's tmp dir."""
    with HaCluster(tmp_path_factory.mktemp("ha")) as cluster:
        cluster.start()
        yield cluster


@pytest.fixture
def two_nodes(ha_cluster: HaCluster) -> HaCluster:
    """The module's pair, with both nodes running (restarted if a test before stopped or
    killed one). State carries over between tests of a module: use distinct labels, or
    ``two_nodes.reset()`` for factory-fresh nodes."""
    ha_cluster.ensure_running()
    return ha_cluster
