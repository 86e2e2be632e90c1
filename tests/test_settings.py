"""Settings come from the environment, with defaults that need no server."""

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "from django.conf import settings as s; import django; django.setup(); "
    "print(s.DATABASES['default']['ENGINE']); print(s.DATABASES['default']['NAME']); "
    "print(s.CELERY_BROKER_URL); print(s.CELERY_RESULT_BACKEND); print(s.DEBUG)"
)


def run_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "LBADMIN_", "DJANGO_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="appliance.settings", LBADMIN_VAR_DIR=str(tmp_path))
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_defaults_need_no_server(tmp_path: Path) -> None:
    result = run_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    engine, name, broker, backend, debug = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert name == str(tmp_path / "lbadmin.sqlite3")
    assert broker == "filesystem://"
    assert backend == f"file://{tmp_path / 'broker' / 'results'}"
    assert debug == "False"
    key = tmp_path / "secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text().strip()) >= 50
    # The key persists: sessions survive a restart.
    first = key.read_text()
    assert run_settings(tmp_path).returncode == 0
    assert key.read_text() == first


def test_servers_come_from_the_environment(tmp_path: Path) -> None:
    result = run_settings(
        tmp_path,
        DATABASE_URL="postgres://lb:pw@127.0.0.1:5432/lbadmin",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
    )
    assert result.returncode == 0, result.stderr
    engine, name, broker, backend, _ = result.stdout.split()
    assert engine == "django.db.backends.postgresql"
    assert name == "lbadmin"
    assert broker == backend == "redis://127.0.0.1:6379/3"


def test_bad_values_are_refused_with_the_variable_named(tmp_path: Path) -> None:
    result = run_settings(tmp_path, LBADMIN_HTTPS_PORT="94x3")
    assert result.returncode != 0
    assert "LBADMIN_HTTPS_PORT must be a whole number" in result.stderr
    result = run_settings(tmp_path, DJANGO_DEBUG="maybe")
    assert "DJANGO_DEBUG must be true or false" in result.stderr


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LBADMIN_"))}
    clean.update(LBADMIN_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="appliance.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
