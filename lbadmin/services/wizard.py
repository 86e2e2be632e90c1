"""The Setup Wizard for Lync as an owned deployment: what the planner makes is merged into the
configuration in one transaction, through the same import (and so the same forms and
allowlists) as everything else, then applied; the deployment records what it made, so that
running the wizard again changes only what differs, the deployment can be removed whole, and
objects edited by hand since are flagged before the wizard overwrites them."""

import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import transaction

from lbadmin.models import (
    AuditEntry,
    ConfigRevision,
    ConfigState,
    HaNode,
    LyncDeployment,
    SslCertificate,
    User,
)
from lbadmin.services.audit import audit_record
from lbadmin.services.certificates import certificate_delete, certificate_usage
from lbadmin.services.changes import config_write_lock
from lbadmin.services.config import (
    config_apply_request,
    config_export,
    config_merge,
    current_states,
    render_current,
    render_document,
    text_diff,
)
from lbadmin.wizard.answers import answers_to_document
from lbadmin.wizard.lync import (
    STEP1_SETTINGS,
    LyncAnswers,
    Plan,
    address_users,
    plan,
    validate,
)

# The document's sections the wizard makes objects in, and what the WebUI calls them.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("layer7", "virtual service"),
    ("terminations", "SSL termination"),
    ("layer4", "Layer 4 virtual service"),
)
_SECTION_OF = {kind: section for section, kind in SECTIONS}
SETTINGS_LABEL = "Layer 7 timeouts (STEP 1)"

Action = Literal["create", "change", "keep", "remove"]


@dataclass(frozen=True)
class Change:
    """What the wizard does to one object. ``hand_edit``: "" or how the object differs from
    what the wizard made ("edited by hand", "deleted by hand")."""

    kind: str
    label: str
    action: Action
    hand_edit: str = ""

    @property
    def overwrites_hand_edit(self) -> bool:
        return bool(self.hand_edit) and self.action != "keep"


@dataclass(frozen=True)
class Preview:
    plan: Plan | None  # None when removing, or when the answers have problems
    problems: list[str]  # the answers' own: nothing is planned
    conflicts: list[str] = field(default_factory=list)  # with what exists: blocking
    changes: list[Change] = field(default_factory=list)
    diff: str = ""  # haproxy.cfg, stunnel and keepalived.conf, now → after
    generation: int = 0  # the configuration this preview was made from
    answers_digest: str = ""  # and the answers (answers_digest)
    document: dict[str, Any] | None = None  # the configuration after: what Create imports
    # STEP 1's settings as they are now (restored when the deployment is removed).
    settings_before: dict[str, Any] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return bool(self.problems or self.conflicts)

    @property
    def overwrites(self) -> list[Change]:
        return [change for change in self.changes if change.overwrites_hand_edit]


class WizardRefused(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def answers_digest(answers: LyncAnswers | None) -> str:
    """Names the answers a preview showed, so that Create applies those and no others."""
    if answers is None:
        return "remove"
    text = json.dumps(answers_to_document(answers), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def deployment_current() -> LyncDeployment | None:
    """The appliance's Lync deployment (the wizard makes at most one), or None."""
    return LyncDeployment.objects.order_by("pk").first()


def _sections(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "layer7": document["layer7"]["virtual_services"],
        "terminations": document["ssl"]["terminations"],
        "layer4": document["layer4"]["virtual_services"],
    }


def _planned(planned: Plan | None) -> dict[str, dict[str, dict[str, Any]]]:
    if planned is None:
        return {section: {} for section, _ in SECTIONS}
    return {
        "layer7": {item["label"]: item for item in planned.layer7_services},
        "terminations": {item["label"]: item for item in planned.terminations},
        "layer4": {item["label"]: item for item in planned.layer4_services},
    }


def wizard_preview(answers: LyncAnswers | None) -> Preview:
    """What the wizard would do with these answers (None: remove the deployment), against
    the configuration as it is now."""
    generation = ConfigState.load().generation
    deployment = deployment_current()
    if answers is None:
        if deployment is None:
            return Preview(plan=None, problems=["There is no Lync deployment to remove."])
        planned = None
    else:
        problems = validate(answers)
        if problems:
            return Preview(plan=None, problems=problems)
        planned = plan(answers)
    current = config_export()
    owned: dict[str, dict[str, Any]] = (
        deployment.created_items if deployment else {section: {} for section, _ in SECTIONS}
    )
    wanted = _planned(planned)
    conflicts: list[str] = []
    changes: list[Change] = []
    after = copy.deepcopy(current)
    for section, kind in SECTIONS:
        existing = {item["label"]: item for item in _sections(current)[section]}
        mine, new = owned.get(section, {}), wanted[section]
        for label in sorted(set(mine) | set(new)):
            now = existing.get(label)
            if label not in mine and now is not None:
                conflicts.append(f"{kind} {label} exists already and was not made by the wizard.")
                continue
            hand_edit = ""
            if label in mine and not _same(now, mine[label]):
                hand_edit = "deleted by hand" if now is None else "edited by hand"
            if label not in new:
                if now is not None:
                    changes.append(Change(kind, label, "remove", hand_edit))
                continue
            action: Action = (
                "keep" if _same(now, new[label]) else "create" if now is None else "change"
            )
            changes.append(Change(kind, label, action, hand_edit))
        kept = [item for item in _sections(current)[section] if item["label"] not in mine]
        _sections(after)[section][:] = sorted(
            kept + list(new.values()), key=lambda item: item["label"]
        )
    settings_change = _settings_after(current, after, deployment, planned)
    if settings_change is not None:
        changes.append(settings_change)
    conflicts += _address_conflicts(after, wanted)
    conflicts += _certificate_conflicts(current, wanted)
    return Preview(
        plan=planned,
        problems=[],
        conflicts=conflicts,
        changes=changes,
        diff=_diff(after),
        generation=generation,
        answers_digest=answers_digest(answers),
        document=after,
        settings_before={name: current["layer7"]["settings"][name] for name in STEP1_SETTINGS},
    )


def _same(item: dict[str, Any] | None, other: dict[str, Any] | None) -> bool:
    """Two document items are the same object, whatever order their real servers are listed
    in (the export orders them by the database's collation, the planner by Python's)."""
    if item is None or other is None:
        return item is other

    def servers(value: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(value.get("real_servers", []), key=lambda server: server["label"])

    rest = {key: value for key, value in item.items() if key != "real_servers"}
    other_rest = {key: value for key, value in other.items() if key != "real_servers"}
    return rest == other_rest and servers(item) == servers(other)


def _settings_after(
    current: dict[str, Any],
    after: dict[str, Any],
    deployment: LyncDeployment | None,
    planned: Plan | None,
) -> Change | None:
    """STEP 1 sets the Layer 7 client and server timeouts (only those); removing the
    deployment restores what they were before, unless they were changed by hand since."""
    now = current["layer7"]["settings"]
    mine = {name: now[name] for name in STEP1_SETTINGS}
    hand_edit = ""
    if deployment is not None and mine != deployment.layer7_settings:
        hand_edit = "edited by hand"
    if planned is not None:
        target = {**now, **planned.layer7_settings}
    elif hand_edit or deployment is None:
        target = now  # the administrator's own values stay
    else:
        target = {**now, **deployment.layer7_settings_before}
    after["layer7"]["settings"] = target
    if target == now:
        return Change("settings", SETTINGS_LABEL, "keep", hand_edit) if deployment else None
    return Change("settings", SETTINGS_LABEL, "change", hand_edit)


def _address_conflicts(
    after: dict[str, Any],
    wanted: dict[str, dict[str, dict[str, Any]]],
) -> list[str]:
    """The wizard's new objects against the objects it does not own, by ip:port:protocol;
    and terminations it does not own that would lose their virtual service."""
    sections = _sections(after)
    theirs = {
        section: [item for item in sections[section] if item["label"] not in wanted[section]]
        for section, _ in SECTIONS
    }
    taken = {
        address: user
        for address, user in address_users(
            sections["layer7"], theirs["terminations"], theirs["layer4"]
        )
        if not user.startswith("virtual service ")
        or user.removeprefix("virtual service ") not in wanted["layer7"]
    }
    conflicts = []
    ours = address_users(
        wanted["layer7"].values(), wanted["terminations"].values(), wanted["layer4"].values()
    )
    for (ip, port, protocol), user in ours:
        other = taken.get((ip, port, protocol))
        if other is not None:
            conflicts.append(f"{user} on {ip}:{port}/{protocol.upper()}: {other} is there already.")
    services_after = {item["label"] for item in sections["layer7"]}
    for item in theirs["terminations"]:
        if item["virtual_service"] not in services_after:
            conflicts.append(
                f"SSL termination {item['label']} (not made by the wizard) uses virtual service "
                f"{item['virtual_service']}, which the wizard would remove."
            )
    return conflicts


def _certificate_conflicts(
    current: dict[str, Any], wanted: dict[str, dict[str, dict[str, Any]]]
) -> list[str]:
    """The wizard's SSL terminations need a certificate that is here, signed (not a CSR
    still waiting for its certificate): the answers only name it."""
    usable = {item["label"] for item in current["ssl"]["certificates"] if item["certificate_pem"]}
    missing = sorted(
        {item["certificate"] for item in wanted["terminations"].values()} - usable, key=str
    )
    return [
        f"certificate_label: there is no usable certificate “{label}” (with its signed "
        "certificate) for the SSL terminations: upload the Front End certificate under SSL "
        "Certificate, or choose another."
        for label in missing
    ]


def _diff(after: dict[str, Any]) -> str:
    """The rendered configuration now and after, as the View Configuration page shows it."""
    before = render_current()
    try:
        rendered = render_document(after, current_states())
    except ValueError as error:  # the import would refuse it too, with field messages
        return f"(the resulting configuration cannot be rendered: {error})"
    except LookupError:  # a termination without its service or certificate: a conflict says so
        return "(the resulting configuration cannot be rendered until the conflicts are resolved)"
    return "".join(
        text_diff(old, new, old_name=f"{name} now", new_name=f"{name} after the wizard")
        for name, old, new in (
            ("haproxy.cfg", before.haproxy, rendered.haproxy),
            ("stunnel configuration", before.stunnel_text, rendered.stunnel_text),
            ("keepalived.conf", before.keepalived, rendered.keepalived),
        )
    )


def _refuse_on_the_slave() -> None:
    """The slave's configuration comes from the master (the WebUI's middleware refuses the
    pages; this covers every caller, `manage.py lync_wizard` included)."""
    node = HaNode.load()
    if node.role == HaNode.Role.SLAVE:
        raise WizardRefused(
            [
                "This appliance is the slave of a clustered pair: run the wizard on the "
                f"master {node.peer_ip}."
            ]
        )


def _refuse_unless_allowed(
    preview: Preview,
    *,
    overwrite_hand_edits: bool,
    expected_generation: int | None,
    expected_answers: str | None,
) -> dict[str, Any]:
    """The configuration document to import, if the preview allows it."""
    if preview.blocked or preview.document is None:
        raise WizardRefused(preview.problems + preview.conflicts)
    if expected_generation is not None and expected_generation != preview.generation:
        raise WizardRefused(
            ["The configuration changed since the preview: look at the preview again."]
        )
    if expected_answers is not None and expected_answers != preview.answers_digest:
        raise WizardRefused(
            [
                "The answers changed since the preview (in another window?): look at the "
                "preview again."
            ]
        )
    if preview.overwrites and not overwrite_hand_edits:
        raise WizardRefused(
            [
                f"{change.kind} {change.label} was {change.hand_edit} since the wizard made it: "
                "confirm that the wizard may overwrite it."
                for change in preview.overwrites
            ]
        )
    return preview.document


def wizard_apply(
    *,
    actor: User | None,
    answers: LyncAnswers,
    overwrite_hand_edits: bool = False,
    expected_generation: int | None = None,
    expected_answers: str | None = None,
    certificates_uploaded: Sequence[dict[str, str]] = (),
) -> ConfigRevision:
    """Create the deployment, or change it to these answers (all or nothing), then apply.
    WizardRefused (or the import's ImportRejected) when nothing was changed.
    ``certificates_uploaded``: what the wizard's own step uploaded (``upload_record``)."""
    with transaction.atomic():
        config_write_lock()  # no other write between the preview and the import
        _refuse_on_the_slave()
        preview = wizard_preview(answers)
        document = _refuse_unless_allowed(
            preview,
            overwrite_hand_edits=overwrite_hand_edits,
            expected_generation=expected_generation,
            expected_answers=expected_answers,
        )
        planned = plan(answers)
        deployment = deployment_current()
        # A re-run that changes no object writes none: the configuration does not become
        # pending (the answers may still differ, say a pool's FQDNs, and are recorded).
        _merge(actor=actor, reason="Setup Wizard for Lync", preview=preview, document=document)
        if deployment is None:
            deployment = LyncDeployment(layer7_settings_before=preview.settings_before)
        deployment.answers = answers_to_document(answers)
        deployment.created_items = _planned(planned)
        deployment.layer7_settings = dict(planned.layer7_settings)
        deployment.certificates_uploaded = [
            *deployment.certificates_uploaded,
            *(
                record
                for record in certificates_uploaded
                if record not in deployment.certificates_uploaded
            ),
        ]
        deployment.updated_by = actor if actor is not None and actor.pk else None
        deployment.save()
        audit_record(
            action=AuditEntry.Action.CONFIG_UPDATED,
            actor=actor,
            target=f"Lync {answers.version} deployment (Setup Wizard)",
            detail=_audit_detail(preview),
        )
    return config_apply_request(actor=actor)


def wizard_remove(
    *,
    actor: User | None,
    overwrite_hand_edits: bool = False,
    expected_generation: int | None = None,
    expected_answers: str | None = None,
) -> ConfigRevision:
    """Remove everything the deployment made (and only that), restore the Layer 7 timeouts
    it changed, delete the certificate its step uploaded if nothing else uses it, then
    apply."""
    with transaction.atomic():
        config_write_lock()
        _refuse_on_the_slave()
        preview = wizard_preview(None)
        document = _refuse_unless_allowed(
            preview,
            overwrite_hand_edits=overwrite_hand_edits,
            expected_generation=expected_generation,
            expected_answers=expected_answers,
        )
        deployment = deployment_current()
        if deployment is None:  # the preview said so already; for the type checker
            raise WizardRefused(["There is no Lync deployment to remove."])
        _merge(
            actor=actor,
            reason="Setup Wizard for Lync: remove the deployment",
            preview=preview,
            document=document,
        )
        uploaded = deployment.certificates_uploaded
        deployment.delete()
        wizard_forget_uploads(actor=actor, uploads=uploaded)
        audit_record(
            action=AuditEntry.Action.CONFIG_DELETED,
            actor=actor,
            target="Lync deployment (Setup Wizard)",
            detail=_audit_detail(preview),
        )
    return config_apply_request(actor=actor)


def _merge(*, actor: User | None, reason: str, preview: Preview, document: dict[str, Any]) -> None:
    """Write what the preview shows and nothing else: the objects it creates, changes or
    removes (a change replaces the object), and STEP 1's settings. The administrator's own
    objects are not touched, and the cost follows the deployment, not the configuration."""
    wanted = _planned(preview.plan)
    remove: dict[str, list[str]] = {}
    add: dict[str, list[dict[str, Any]]] = {}
    settings = None
    for change in preview.changes:
        if change.kind == "settings":
            if change.action == "change":
                after = document["layer7"]["settings"]
                settings = {name: after[name] for name in STEP1_SETTINGS}
            continue
        section = _SECTION_OF[change.kind]
        if change.action in ("change", "remove"):
            remove.setdefault(section, []).append(change.label)
        if change.action in ("create", "change"):
            add.setdefault(section, []).append(wanted[section][change.label])
    if remove or add or settings:
        config_merge(actor=actor, reason=reason, remove=remove, add=add, settings=settings)


def upload_record(certificate: SslCertificate) -> dict[str, str]:
    """How the wizard remembers a certificate its step uploaded: the label and the
    fingerprint, so that a later certificate under the same label is never taken for it."""
    return {"label": certificate.label, "fingerprint": certificate.fingerprint_sha256}


def wizard_forget_uploads(*, actor: User | None, uploads: Iterable[dict[str, str]]) -> None:
    """Delete the certificates the wizard uploaded that nothing uses (the deployment is
    removed, or the answers they were uploaded for were abandoned)."""
    for record in uploads:
        certificate = SslCertificate.objects.filter(
            label=record["label"], fingerprint_sha256=record["fingerprint"]
        ).first()
        if certificate is not None and not certificate_usage(certificate):
            certificate_delete(actor=actor, certificate=certificate)


def _audit_detail(preview: Preview) -> dict[str, Any]:
    detail: dict[str, list[str]] = {}
    for change in preview.changes:
        if change.action != "keep":
            detail.setdefault(change.action, []).append(f"{change.kind} {change.label}")
    return detail
