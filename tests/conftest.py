"""Shared fixtures: real gunicorn over HTTPS, a real Celery worker on Redis, real Chromium."""

import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.daemon_support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
# A test that uses one of these starts real gunicorn or Celery processes: marked "processes"
# (left out of `make test-fast`) without each module having to say so.
PROCESS_FIXTURES = frozenset({"appliance_server", "celery_worker_process"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)


# Playwright's sync API runs an event loop in the test thread; the ORM calls made by the same
# tests are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def insecure_context() -> ssl.SSLContext:
    """The WebUI's certificate is self-signed: tests check the server, not the chain."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def https_get(url: str, timeout: float = 5.0):
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=insecure_context()), NoRedirect()
    )
    return opener.open(url, timeout=timeout)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None

    def http_error_302(self, req, fp, code, msg, headers):
        return fp

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def shared_database_url() -> str:
    """The URL of the database pytest-django created, for servers the tests start."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = f"{db['USER']}:{db['PASSWORD']}@" if db["USER"] else ""
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class HttpsClient(Client):
    """Django's test client, speaking HTTPS like every real client of the WebUI."""

    def _base_environ(self, **request: object) -> dict:
        environ = super()._base_environ(**request)
        environ.update({"wsgi.url_scheme": "https", "SERVER_PORT": "443"})
        return environ


@pytest.fixture
def client() -> Client:
    return HttpsClient()


@pytest.fixture
def default_user(db):
    from lbadmin.services.auth import default_user_ensure

    return default_user_ensure()


@pytest.fixture
def admin_user(db):
    """The factory account with its password already changed (no slow password hashing)."""
    from lbadmin.models import User

    user = User(username="loadbalancer", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    return user


@pytest.fixture
def admin(client, admin_user):
    """The test client, logged in as the administrator."""
    client.force_login(admin_user)
    return client


@pytest.fixture(scope="session")
def server_env(django_db_setup, django_db_blocker, tmp_path_factory) -> dict[str, str]:
    """Environment for processes that must share the test database (gunicorn, celery)."""
    with django_db_blocker.unblock():
        url = shared_database_url()
    env = dict(os.environ)
    env["DATABASE_URL"] = url
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def gunicorn_server(
    server_env: dict[str, str], tmp_path_factory, **extra_env: str
) -> Iterator[str]:
    """The real WebUI: gunicorn with TLS on a free loopback port, against the test database;
    yields its base URL."""
    from lbadmin.services.tls import webui_certificate_ensure

    tls = tmp_path_factory.mktemp("tls")
    cert, key = tls / "webui.crt", tls / "webui.key"
    webui_certificate_ensure(cert_path=cert, key_path=key)
    port = free_port()
    env = dict(server_env)
    env.update(
        LBADMIN_HTTPS_BIND="127.0.0.1",
        LBADMIN_HTTPS_PORT=str(port),
        LBADMIN_TLS_CERT=str(cert),
        LBADMIN_TLS_KEY=str(key),
        LBADMIN_WEB_WORKERS="1",
        **extra_env,
    )
    log = (tmp_path_factory.mktemp("gunicorn") / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "appliance" / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"https://127.0.0.1:{port}"

    def answering() -> bool:
        assert process.poll() is None, f"gunicorn exited; see {log.name}"
        try:
            return https_get(f"{base_url}/lbadmin/health/", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_until(answering, 30, "gunicorn to serve /lbadmin/health/")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def appliance_server(server_env, tmp_path_factory) -> Iterator[str]:
    with gunicorn_server(server_env, tmp_path_factory) as base_url:
        yield base_url


@contextmanager
def celery_worker(
    server_env: dict[str, str], tmp_path_factory, queue: str, **extra_env: str
) -> Iterator[subprocess.Popen]:
    """A real Celery worker process consuming ``queue`` on Redis."""
    from appliance.celery import app

    assert settings.CELERY_BROKER_URL.startswith("redis://"), "tests need the Redis broker"
    log = (tmp_path_factory.mktemp("celery") / "worker.log").open("w")
    node = f"test-{os.getpid()}-{queue}@%h"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "appliance", "worker",
            "--loglevel", "INFO", "--concurrency", "1", "--hostname", node,
            # The default queue and the HA pushes' (settings.CELERY_HA_QUEUE).
            "--queues", f"{queue},{queue}-ha", "--without-gossip", "--without-mingle",
        ],
        cwd=ROOT,
        env={**server_env, "CELERY_TASK_DEFAULT_QUEUE": queue, **extra_env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip

    def ready() -> bool:
        assert process.poll() is None, f"celery worker exited; see {log.name}"
        replies = app.control.ping(timeout=0.5) or []
        return any(node.split("@")[0] in name for reply in replies for name in reply)

    try:
        wait_until(ready, 60, "the Celery worker to answer a ping", interval=0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def celery_worker_process(server_env, tmp_path_factory) -> Iterator[subprocess.Popen]:
    """A real Celery worker process consuming the test queue on Redis."""
    with celery_worker(server_env, tmp_path_factory, settings.CELERY_TASK_DEFAULT_QUEUE) as worker:
        yield worker


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does this)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def sign_in(page, password: str) -> None:
    """The factory account with its password changed (so saving is allowed), signed in on
    ``page`` through the login form; ends on System Overview."""
    from playwright.sync_api import expect

    from lbadmin.models import User

    user = User.objects.get(username="loadbalancer")
    user.set_password(password)
    user.must_change_password = False
    user.save()
    page.goto("/lbadmin/login/")
    page.fill("#id_username", "loadbalancer")
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("System Overview")


@pytest.fixture
def page(browser, appliance_server, transactional_db) -> Iterator[object]:
    """A fresh browser tab on the real WebUI, with an empty database and the factory user."""
    from lbadmin.services.auth import default_user_ensure

    default_user_ensure()
    context = browser.new_context(base_url=appliance_server, ignore_https_errors=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session", autouse=True)
def daemons_stopped_at_the_end() -> Iterator[None]:
    """Applies start keepalived and stunnel as well as HAProxy; whatever a test left running
    in the test var dir is stopped when the session ends, so no daemon outlives the run."""
    yield
    from lbadmin.services.daemons import daemons_stop

    daemons_stop()
