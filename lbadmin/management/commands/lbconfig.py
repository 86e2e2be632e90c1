"""`manage.py lbconfig apply|export|import`: the cluster configuration from the command line."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lbadmin.models import ConfigRevision
from lbadmin.services.config import (
    ImportRejected,
    config_apply_request,
    config_export,
    config_import,
    revision_wait,
)


def wait_for_apply(revision: ConfigRevision, timeout: float) -> ConfigRevision:
    """The revision once finished; CommandError if it failed or took too long."""
    if not revision_wait(revision, timeout):
        raise CommandError(
            f"revision {revision.pk} is still {revision.status} after {timeout:.0f}s: "
            "is the Celery worker running?"
        )
    if revision.status == ConfigRevision.Status.FAILED:
        raise CommandError(f"revision {revision.pk} failed:\n{revision.error}")
    return revision


class Command(BaseCommand):
    help = "Apply, export or import the cluster configuration."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        apply = sub.add_parser("apply", help="queue an apply on the node's Celery worker")
        apply.add_argument("--wait", action="store_true", help="wait for the outcome")
        apply.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
        export = sub.add_parser("export", help="write the configuration as JSON")
        export.add_argument("-o", "--output", help="file to write (default: standard output)")
        imported = sub.add_parser("import", help="replace the configuration from a JSON file")
        imported.add_argument("file", help="a document written by `lbconfig export` (- = stdin)")

    def handle(self, *args: object, action: str, **options: object) -> None:
        getattr(self, f"_{action}")(**options)

    def _apply(self, *, wait: bool, timeout: float, **options: object) -> None:
        revision = config_apply_request(actor=None)
        self.stdout.write(f"apply queued as revision {revision.pk}")
        if not wait:
            return
        revision = wait_for_apply(revision, timeout)
        self.stdout.write(f"revision {revision.pk}: {revision.get_status_display()}")

    def _export(self, *, output: str | None, **options: object) -> None:
        text = json.dumps(config_export(), indent=2, sort_keys=True) + "\n"
        if output:
            Path(output).write_text(text)
        else:
            self.stdout.write(text, ending="")

    def _import(self, *, file: str, **options: object) -> None:
        raw = sys.stdin.read() if file == "-" else Path(file).read_text()
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as error:
            raise CommandError(f"{file} is not JSON: {error}") from error
        try:
            config_import(actor=None, document=document, reason=f"lbconfig import {file}")
        except ImportRejected as rejected:
            raise CommandError(
                "nothing was changed:\n" + "\n".join(f"  {p}" for p in rejected.problems)
            ) from rejected
        self.stdout.write("configuration imported; run `lbconfig apply` to use it")
