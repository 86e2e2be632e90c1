"""`make run`'s own entry point, `manage.py serve`, on the embedded defaults: an SQLite file and
a filesystem broker under var/, no database or broker server — with the real daemons."""

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, https_get, wait_until
from tests.test_config_apply import GUIDE

pytestmark = pytest.mark.daemons


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "LBADMIN_", "DJANGO_"))
    }
    env.update(
        LBADMIN_VAR_DIR=str(tmp_path / "var"),
        LBADMIN_HTTPS_BIND="127.0.0.1",
        LBADMIN_HTTPS_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    return env


def one_service_document(port: int) -> dict:
    """The guide's document with one Layer 7 service moved onto loopback."""
    document = copy.deepcopy(GUIDE)
    service = document["layer7"]["virtual_services"][0]
    service.update(ip="127.0.10.30", ports=[port])
    for number, server in enumerate(service["real_servers"], start=31):
        server["ip"] = f"127.0.10.{number}"
    document["layer7"]["virtual_services"] = [service]
    return document


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def test_serve_runs_the_whole_appliance_without_servers(embedded_env, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{embedded_env['LBADMIN_HTTPS_PORT']}"
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve"], cwd=ROOT, env=embedded_env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,  # its group: it and its children
    )  # fmt: skip
    var = Path(embedded_env["LBADMIN_VAR_DIR"])
    var.mkdir(mode=0o755)
    var.chmod(0o755)  # as an appliance of a version before the umask left it
    try:

        def login_page_served() -> bool:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return https_get(f"{url}/lbadmin/login/", timeout=1).status == 200
            except OSError:
                return False

        wait_until(login_page_served, 60, "the login page on the HTTPS port")
        # First start made the database, the factory user's home and the TLS certificate.
        assert (var / "lbadmin.sqlite3").exists()
        assert (var / "tls" / "webui.crt").exists()
        assert oct((var / "tls" / "webui.key").stat().st_mode & 0o777) == "0o600"
        # The daemons run from var/, and the health endpoint sees them.
        health = json.loads(https_get(f"{url}/lbadmin/health/").read())
        assert health["daemons"] == {"haproxy": True, "stunnel": True, "keepalived": True}
        # The Celery worker takes tasks through the server-less filesystem broker.
        probe = subprocess.run(
            [
                sys.executable, "-c",
                "import django, json; django.setup(); "
                "from lbadmin.tasks import daemons_status_report as t; "
                "print(json.dumps(t.delay().get(timeout=45)))",
            ],
            cwd=ROOT, env={**embedded_env, "DJANGO_SETTINGS_MODULE": "appliance.settings"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        assert json.loads(probe.stdout)["haproxy"]["running"] is True
        # An apply through the worker writes haproxy.cfg, its last good copy, the revision.
        document = tmp_path / "config.json"
        document.write_text(json.dumps(one_service_document(free_port("127.0.10.30"))))
        imported = manage(embedded_env, "lbconfig", "import", str(document))
        assert imported.returncode == 0, imported.stderr
        applied = manage(embedded_env, "lbconfig", "apply", "--wait", "--timeout", "45")
        assert "Applied" in applied.stdout, applied.stdout + applied.stderr
        # Nothing under var/ is for other users: not the database, not a key, not a socket.
        assert oct(var.stat().st_mode & 0o777) == "0o700"
        exposed = [
            f"{path} {oct(path.lstat().st_mode & 0o777)}"
            for path in [var, *var.rglob("*")]
            if not path.is_symlink() and path.lstat().st_mode & 0o007
        ]
        assert not exposed, exposed

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        with pytest.raises(OSError):
            https_get(f"{url}/lbadmin/login/", timeout=1)
        # Stopping the WebUI leaves the data plane serving.
        status = manage(embedded_env, "daemons", "status")
        assert "haproxy     running (pid" in status.stdout, status.stdout + status.stderr
    finally:
        # On a failure serve is killed with its WebUI and worker (SIGKILL would orphan them);
        # the daemons run in sessions of their own and are stopped below.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        serve.wait()
        manage(embedded_env, "daemons", "stop")
        log.close()
    status = manage(embedded_env, "daemons", "status")
    assert status.stdout.count("stopped") == 3, status.stdout
