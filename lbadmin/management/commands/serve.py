"""`manage.py serve`: the appliance in one command (what `make run` and the containers run)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from lbadmin.engines.daemons import DaemonError, missing_binaries
from lbadmin.services.daemons import daemon_revive, daemons_start
from lbadmin.services.network_revert import network_reapply, network_watch
from lbadmin.services.network_state import management_off_reason
from lbadmin.services.overview import admin_states_reassert

COMPONENTS = ("daemons", "web", "worker")
GUNICORN_CONF = Path(settings.BASE_DIR) / "appliance" / "gunicorn.conf.py"
# How often keepalived is checked: the peer takes over ~0.35 s after it dies, and until a new
# keepalived removes them this node's interfaces still carry the floating addresses too.
DAEMON_WATCH_INTERVAL_S = 0.5
RESTARTED = ("worker", "ha-worker")  # started again when they die; the web server is not
WORKER_RESTART_PAUSE_S = 1.0


class Command(BaseCommand):
    help = (
        "Run the appliance: prepare the database, start HAProxy/stunnel/keepalived, serve the "
        "WebUI over HTTPS with gunicorn and run the Celery worker, until interrupted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--components",
            default=",".join(COMPONENTS),
            help="comma-separated subset of: daemons, web, worker (default: all)",
        )

    def handle(self, *args: object, components: str, **options: object) -> None:
        wanted = {c.strip() for c in components.split(",") if c.strip()}
        unknown = wanted - set(COMPONENTS)
        if unknown or not wanted:
            raise CommandError(f"--components takes {', '.join(COMPONENTS)}")

        # An appliance upgraded from a version without the umask may have a var/ others read.
        settings.LBADMIN_VAR_DIR.mkdir(parents=True, exist_ok=True)
        settings.LBADMIN_VAR_DIR.chmod(settings.LBADMIN_VAR_DIR_MODE)
        if "web" in wanted:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("lbadmin_setup")
        if "daemons" in wanted:
            # The node's own addresses and routes first: a reboot forgot them, and the
            # virtual services bind on them. An unconfirmed change is undone here.
            problem = network_reapply()
            if problem:
                self.stderr.write(f"The network configuration could not be re-applied: {problem}")
        if "daemons" in wanted and settings.LBADMIN_MANAGE_DAEMONS:
            self._start_daemons()

        children: dict[str, subprocess.Popen] = {}
        if "web" in wanted:
            children["web"] = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
            )
            self.stdout.write(
                f"WebUI: https://localhost:{settings.LBADMIN_HTTPS_PORT}/lbadmin/", ending="\n"
            )
        if "worker" in wanted:
            # One task at a time per node: configuration applies never overlap. Pushes to the
            # HA slave run beside them in a worker of their own, so a slave that does not
            # answer never holds an apply up.
            for name, queue, host in (
                ("worker", settings.CELERY_TASK_DEFAULT_QUEUE, "lbadmin@%h"),
                ("ha-worker", settings.CELERY_HA_QUEUE, "lbadmin-ha@%h"),
            ):
                children[name] = subprocess.Popen(
                    [
                        sys.executable, "-m", "celery", "-A", "appliance", "worker",
                        "--loglevel", "INFO", "--queues", queue, "--hostname", host,
                        "--concurrency", "1",
                    ]
                )  # fmt: skip
        if children:
            watch = "daemons" in wanted and settings.LBADMIN_MANAGE_DAEMONS
            sys.exit(self._supervise(children, watch_daemons=watch))

    def _network_watch(self) -> None:
        """The confirmation timer of Local Configuration: here, not in the worker's queue, so
        a busy, crashed or restarting worker never delays a revert."""
        try:
            said = network_watch()
        except Exception as error:  # the database restarting, say: try again next time
            connection.close()
            said = f"The network confirmation timer could not check: {error}"
        if said:
            self.stderr.write(said)

    def _start_daemons(self) -> None:
        missing = missing_binaries()
        if missing:
            self.stderr.write(
                f"Not starting the load-balancer daemons: {', '.join(missing)} not installed. "
                "Install them with: apt-get install haproxy stunnel4 keepalived"
            )
            return
        try:
            daemons_start()
        except DaemonError as error:
            self.stderr.write(f"A load-balancer daemon failed to start: {error}")
            return
        for problem in admin_states_reassert():  # drain/halt set since the last apply
            self.stderr.write(f"Could not restore a real server's state: {problem}")

    def _supervise(self, children: dict[str, subprocess.Popen], *, watch_daemons: bool) -> int:
        """Wait until a signal arrives or the web server dies; then stop the others and
        return. Meanwhile start a dead worker again, start keepalived again whenever it dies
        (a dead keepalived leaves the floating addresses on this node's interfaces while the
        peer takes them over, and only a new keepalived removes them), and run the network
        confirmation timer."""
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        exit_code = 0
        next_watch = 0.0
        watch_network = not management_off_reason()
        while not stopping:
            for name, child in children.items():
                if child.poll() is None:
                    continue
                if name in RESTARTED and not stopping:
                    # The node's workers come back on their own: a worker killed by the OOM
                    # killer must not take the WebUI and the timers down with it.
                    self.stderr.write(f"{name} exited with status {child.returncode}: restarting")
                    time.sleep(WORKER_RESTART_PAUSE_S)
                    children[name] = subprocess.Popen(child.args)
                    continue
                self.stderr.write(f"{name} exited with status {child.returncode}")
                exit_code = child.returncode or 1
                stopping = True
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + DAEMON_WATCH_INTERVAL_S
                revived = daemon_revive("keepalived") if watch_daemons else ""
                if revived:
                    self.stderr.write(revived)
                if watch_network:
                    self._network_watch()
            time.sleep(0.2)
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        # The data plane is left running on purpose: stopping the WebUI must not stop traffic.
        return exit_code
