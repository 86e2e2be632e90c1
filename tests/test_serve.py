"""`make run`'s own entry point, `manage.py serve`, on the embedded defaults: an SQLite file and
a filesystem broker under var/, no database or broker server — with the real daemons."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, https_get, wait_until

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
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    var = Path(embedded_env["LBADMIN_VAR_DIR"])
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

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        with pytest.raises(OSError):
            https_get(f"{url}/lbadmin/login/", timeout=1)
        # Stopping the WebUI leaves the data plane serving.
        status = manage(embedded_env, "daemons", "status")
        assert "haproxy     running (pid" in status.stdout, status.stdout + status.stderr
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        manage(embedded_env, "daemons", "stop")
        log.close()
    status = manage(embedded_env, "daemons", "status")
    assert status.stdout.count("stopped") == 3, status.stdout
