from django.core.management.base import BaseCommand, CommandError

from lbadmin.engines.daemons import DaemonError, missing_binaries
from lbadmin.services.daemons import daemons_start, daemons_status, daemons_stop


class Command(BaseCommand):
    help = "Start, stop or show HAProxy, stunnel and keepalived run by this appliance."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args: object, action: str, **options: object) -> None:
        if action == "start":
            missing = missing_binaries()
            if missing:
                raise CommandError(
                    "Missing load-balancer programs: "
                    + ", ".join(missing)
                    + ". Install them with: apt-get install haproxy stunnel4 keepalived"
                )
            try:
                daemons_start()
            except DaemonError as error:
                raise CommandError(str(error)) from error
        elif action == "stop":
            daemons_stop()
        for name, status in daemons_status().items():
            if not status.running:
                state = "stopped"
            elif status.pid is None:  # stunnel with no SSL terminations: nothing to run
                state = "running"
            else:
                state = f"running (pid {status.pid})"
            self.stdout.write(f"{name:<11} {state} {status.detail}".rstrip())
