"""`manage.py lync_wizard --answers FILE [--dry-run]`: the Setup Wizard for Lync without the
WebUI. Same answers (docs/lync-wizard.md), same preview, same create/change/remove."""

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lbadmin.management.commands.lbconfig import wait_for_apply
from lbadmin.services.config import ImportRejected
from lbadmin.services.wizard import (
    Preview,
    WizardRefused,
    wizard_apply,
    wizard_preview,
    wizard_remove,
)
from lbadmin.wizard.answers import answers_from_document
from lbadmin.wizard.lync import InvalidAnswers, LyncAnswers


class Command(BaseCommand):
    help = "Create, change or remove the Lync deployment from a JSON answers file."

    def add_arguments(self, parser) -> None:
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--answers", help="the answers as JSON (- = standard input)")
        what.add_argument("--remove", action="store_true", help="remove the whole deployment")
        parser.add_argument("--dry-run", action="store_true", help="print the preview only")
        parser.add_argument(
            "--overwrite-hand-edits",
            action="store_true",
            help="replace objects edited by hand since the wizard made them",
        )
        parser.add_argument("--wait", action="store_true", help="wait for the apply")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")

    def handle(self, *args: object, **options: Any) -> None:
        answers = None if options["remove"] else self._answers(options["answers"])
        preview = wizard_preview(answers)
        self.stdout.write(preview_text(preview), ending="")
        if options["dry_run"]:
            if preview.blocked:
                raise CommandError("the wizard would refuse these answers (see above)")
            return
        try:
            if answers is None:
                revision = wizard_remove(
                    actor=None,
                    overwrite_hand_edits=options["overwrite_hand_edits"],
                    expected_generation=preview.generation,  # what was printed, or nothing
                )
            else:
                revision = wizard_apply(
                    actor=None,
                    answers=answers,
                    overwrite_hand_edits=options["overwrite_hand_edits"],
                    expected_generation=preview.generation,
                )
        except (WizardRefused, ImportRejected) as refused:
            raise CommandError(
                "nothing was changed:\n" + "\n".join(f"  {p}" for p in refused.problems)
            ) from refused
        self.stdout.write(f"apply queued as revision {revision.pk}")
        if options["wait"]:
            revision = wait_for_apply(revision, options["timeout"])
            self.stdout.write(f"revision {revision.pk}: {revision.get_status_display()}")

    def _answers(self, file: str) -> LyncAnswers:
        try:
            raw = sys.stdin.read() if file == "-" else Path(file).read_text()
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from error
        try:
            return answers_from_document(json.loads(raw))
        except json.JSONDecodeError as error:
            raise CommandError(f"{file} is not JSON: {error}") from error
        except InvalidAnswers as invalid:
            raise CommandError(
                f"{file}:\n" + "\n".join(f"  {p}" for p in invalid.problems)
            ) from invalid


def preview_text(preview: Preview) -> str:
    """The preview as the WebUI shows it, in plain text."""
    lines: list[str] = []
    if preview.problems:
        lines += ["Fix these answers:", *(f"  {problem}" for problem in preview.problems)]
        return "\n".join(lines) + "\n"
    if preview.conflicts:
        lines += ["Conflicts (nothing can be created):"]
        lines += [f"  {conflict}" for conflict in preview.conflicts]
    lines.append("Changes:")
    for change in preview.changes:
        flag = f"  [{change.hand_edit}]" if change.hand_edit else ""
        lines.append(f"  {change.action:<7} {change.kind} {change.label}{flag}")
    if preview.overwrites:
        lines.append("Objects edited by hand would be overwritten: pass --overwrite-hand-edits.")
    if preview.plan is not None:
        lines.append("Plan:")
        for item in preview.plan.layer7_services:
            servers = ", ".join(f"{s['label']} {s['ip']}" for s in item["real_servers"])
            lines.append(
                f"  L7 {item['label']} {item['ip']}:{','.join(map(str, item['ports']))} "
                f"{item['protocol']} {item['persistence']} -> {servers}"
            )
        for item in preview.plan.terminations:
            lines.append(
                f"  SSL {item['label']} port {item['port']} -> {item['virtual_service']} "
                f"({item['certificate']})"
            )
        for item in preview.plan.layer4_services:
            servers = ", ".join(f"{s['label']} {s['ip']}" for s in item["real_servers"])
            lines.append(
                f"  L4 {item['label']} {item['ip']}:{','.join(map(str, item['ports']))} "
                f"{item['protocol']} -> {servers}"
            )
    lines += ["Configuration diff:", preview.diff or "  (no change)"]
    return "\n".join(lines) + "\n"
