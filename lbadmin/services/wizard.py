"""The Setup Wizard for Lync: the planner's services merged into the configuration in one
transaction, through the same import (and so the same forms and allowlists) as everything
else, then applied."""

from dataclasses import dataclass
from typing import Any

from lbadmin.models import AuditEntry, ConfigRevision, LyncDeployment, User
from lbadmin.services.audit import audit_record
from lbadmin.services.config import config_apply_request, config_export, config_import
from lbadmin.services.ports import port_user
from lbadmin.wizard.lync import LyncAnswers, Plan, conflicts, plan, validate


def deployment_current() -> LyncDeployment | None:
    """The appliance's Lync deployment (the wizard makes at most one), or None."""
    return LyncDeployment.objects.order_by("pk").first()


@dataclass(frozen=True)
class Preview:
    plan: Plan | None
    problems: list[str]  # the answers' own (shown at the wizard's step, nothing planned)
    conflicts: list[str]  # with what already exists: blocking


def wizard_preview(answers: LyncAnswers) -> Preview:
    problems = validate(answers)
    if problems:
        return Preview(plan=None, problems=problems, conflicts=[])
    planned = plan(answers)
    clashes = conflicts(planned)
    for (ip, port, protocol), user in planned.address_users():
        existing = port_user(ip, port, protocol=protocol)
        if existing:
            clashes.append(f"{user} on {ip}:{port}/{protocol.upper()}: {existing} is there already")
    document = config_export()
    labels = {
        "virtual service": {item["label"] for item in document["layer7"]["virtual_services"]},
        "Layer 4 virtual service": {
            item["label"] for item in document["layer4"]["virtual_services"]
        },
        "SSL termination": {item["label"] for item in document["ssl"]["terminations"]},
    }
    for kind, items in (
        ("virtual service", planned.layer7_services),
        ("Layer 4 virtual service", planned.layer4_services),
        ("SSL termination", planned.terminations),
    ):
        clashes += [
            f"{kind} {item['label']} exists already"
            for item in items
            if item["label"] in labels[kind]
        ]
    return Preview(plan=planned, problems=[], conflicts=clashes)


def wizard_create(*, actor: User | None, answers: LyncAnswers) -> ConfigRevision:
    """Create everything the plan holds (all or nothing), then apply. ValueError (or the
    import's ImportRejected) when the preview would not allow it."""
    preview = wizard_preview(answers)
    if preview.problems or preview.conflicts or preview.plan is None:
        raise ValueError("; ".join(preview.problems + preview.conflicts))
    planned = preview.plan
    document: dict[str, Any] = config_export()
    document["layer7"]["settings"] = planned.layer7_settings
    document["layer7"]["virtual_services"] += list(planned.layer7_services)
    document["ssl"]["terminations"] += list(planned.terminations)
    document["layer4"]["virtual_services"] += list(planned.layer4_services)
    config_import(
        actor=actor, document=document, reason="Setup Wizard for Lync", keep_other_certificates=True
    )
    audit_record(
        action=AuditEntry.Action.CONFIG_CREATED,
        actor=actor,
        target=f"Lync {answers.version} deployment (Setup Wizard)",
        detail={
            "layer7": [item["label"] for item in planned.layer7_services],
            "layer4": [item["label"] for item in planned.layer4_services],
            "terminations": [item["label"] for item in planned.terminations],
        },
    )
    return config_apply_request(actor=actor)
