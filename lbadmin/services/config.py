"""The cluster configuration as a whole: pending changes, snapshot, apply, revisions, rollback,
export and import.

Apply pipeline (run by the node's Celery worker, one at a time per node):
snapshot the database → render haproxy.cfg (pure) → lbadmin.engines.haproxy_apply (validate
with `haproxy -c -dW`, atomic swap keeping the last good file, save server states, reload,
verify, restore on failure) → record a revision (who, when, outcome, text, hash, diff).
"""

import difflib
import hashlib
import logging
import time
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from lbadmin import allowlists
from lbadmin.engines.haproxy_apply import apply_haproxy_config
from lbadmin.models import (
    AuditEntry,
    ConfigRevision,
    ConfigState,
    L7Settings,
    RealServer,
    User,
    VirtualService,
)
from lbadmin.render.haproxy import render_haproxy
from lbadmin.render.snapshot import (
    AdminState,
    Balance,
    HaproxySnapshot,
    HealthCheck,
    L7Fallback,
    L7Globals,
    L7Protocol,
    L7RealServer,
    L7VirtualService,
    Persistence,
)
from lbadmin.services.audit import audit_record
from lbadmin.services.daemons import daemon_controllers, runtime_layout
from lbadmin.services.locks import node_lock

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "lbadmin-cluster-config"
EXPORT_VERSION = 1


# --- Pending changes ----------------------------------------------------------------------------


def config_changed() -> None:
    """Mark the cluster configuration changed (called inside each write's transaction)."""
    ConfigState.load()
    ConfigState.objects.filter(pk=1).update(generation=F("generation") + 1)


# --- Snapshot -----------------------------------------------------------------------------------


def haproxy_snapshot() -> HaproxySnapshot:
    """The Layer 7 configuration as the renderer's frozen input."""
    return snapshot_from_document(config_export(), admin_states())


AdminStates = dict[tuple[str, str], str]


def admin_states() -> AdminStates:
    """(service label, server label) -> drain/halt, for servers not online (one query)."""
    return {
        (service, server): state
        for service, server, state in RealServer.objects.exclude(
            admin_state=AdminState.ONLINE
        ).values_list("virtual_service__label", "label", "admin_state")
    }


def snapshot_from_document(document: dict[str, Any], states: AdminStates) -> HaproxySnapshot:
    """The renderer's input from an export document (already validated: it is read from the
    database, or went through config_import), so one database read serves both the revision's
    document and the render. `states` adds System Overview's drain/halt, which are operational
    state and so not part of the document."""
    layer7 = document["layer7"]
    return HaproxySnapshot(
        globals=L7Globals(**layer7["settings"]),
        services=tuple(_service_snapshot(item, states) for item in layer7["virtual_services"]),
    )


def _service_snapshot(item: dict[str, Any], states: AdminStates) -> L7VirtualService:
    return L7VirtualService(
        label=item["label"],
        ip=item["ip"],
        ports=tuple(item["ports"]),
        protocol=L7Protocol(item["protocol"]),
        balance=Balance(item["balance"]),
        persistence=Persistence(item["persistence"]),
        cookie_name=item["cookie_name"],
        persistence_timeout_s=item["persistence_timeout_s"],
        health_check=HealthCheck(item["health_check"]),
        check_port=item["check_port"],
        check_interval_ms=item["check_interval_ms"],
        fallback=(
            L7Fallback(ip=item["fallback_ip"], port=item["fallback_port"])
            if item["fallback_ip"]
            else None
        ),
        manual_lines=_manual_lines(item),
        real_servers=tuple(
            L7RealServer(
                **server,
                state=AdminState(states.get((item["label"], server["label"]), AdminState.ONLINE)),
            )
            for server in item["real_servers"]
        ),
    )


def _manual_lines(item: dict[str, Any]) -> tuple[str, ...] | None:
    """A manual service's lines; none entered yet (just added) renders its binds alone."""
    if not item["manual_config"]:
        return None
    if not item["manual_text"].strip():
        return ()
    return allowlists.clean_manual_lines(item["manual_text"])


def haproxy_render_current() -> str:
    return render_haproxy(haproxy_snapshot(), runtime_layout())


def haproxy_running_text() -> str:
    """The configuration file HAProxy was last given ('' before the first start)."""
    path = daemon_controllers()["haproxy"].config_path
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def text_diff(old: str, new: str, *, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


def pending_diff() -> str:
    """What Apply would change in the running haproxy.cfg."""
    return text_diff(
        haproxy_running_text(),
        haproxy_render_current(),
        old_name="running haproxy.cfg",
        new_name="pending haproxy.cfg",
    )


# --- Apply --------------------------------------------------------------------------------------


def config_apply_request(
    *, actor: User | None, kind: ConfigRevision.Kind = ConfigRevision.Kind.APPLY
) -> ConfigRevision:
    """Queue an apply. Clicks while one is already queued join it: the queued apply renders
    the database as it is when it starts, so it includes every change made before then."""
    from lbadmin.tasks import config_apply_task  # tasks import services

    interrupt_orphaned_applies()
    with transaction.atomic():
        ConfigState.load()
        ConfigState.objects.select_for_update().get(pk=1)  # serialises concurrent requests
        revision = ConfigRevision.objects.filter(status=ConfigRevision.Status.QUEUED).first()
        if revision is None:
            revision = ConfigRevision.objects.create(actor=actor, kind=kind)
            audit_record(
                action=AuditEntry.Action.APPLY_REQUESTED,
                actor=actor,
                target=f"revision {revision.pk}",
            )
        # Sent again when joining too: if the first message was lost (broker down at that
        # click), the queued revision would otherwise wait forever. A duplicate is harmless:
        # only a QUEUED revision is ever run.
        pk = revision.pk
        transaction.on_commit(lambda: config_apply_task.delay(pk), robust=True)
    return revision


def interrupt_orphaned_applies() -> int:
    """Mark RUNNING revisions whose worker died as INTERRUPTED. While an apply really runs it
    holds the node's apply lock, so a free lock means nothing is running."""
    try:
        with node_lock("config-apply", timeout=0):
            return ConfigRevision.objects.filter(status=ConfigRevision.Status.RUNNING).update(
                status=ConfigRevision.Status.INTERRUPTED, finished_at=timezone.now()
            )
    except TimeoutError:
        return 0


def config_apply_run(revision_id: int) -> ConfigRevision:
    """Run one queued apply (the Celery task's body). Applies on a node never overlap."""
    with node_lock("config-apply"):
        # Whoever held the lock before us has finished; a revision still marked running was
        # cut short (its worker was killed), and the engine kept the old or the new file.
        ConfigRevision.objects.filter(status=ConfigRevision.Status.RUNNING).update(
            status=ConfigRevision.Status.INTERRUPTED, finished_at=timezone.now()
        )
        updated = ConfigRevision.objects.filter(
            pk=revision_id, status=ConfigRevision.Status.QUEUED
        ).update(status=ConfigRevision.Status.RUNNING)
        revision = ConfigRevision.objects.get(pk=revision_id)
        if not updated:
            return revision  # already run by another delivery of the same task
        try:
            _apply_revision(revision)
        except Exception as error:  # the box must never poll a revision that will not finish
            logger.exception("apply of revision %s failed", revision.pk)
            revision.status = ConfigRevision.Status.FAILED
            revision.error = f"Internal error, nothing was changed: {error}"
            revision.finished_at = timezone.now()
            revision.save()
        ok = revision.status != ConfigRevision.Status.FAILED
        audit_record(
            action=AuditEntry.Action.APPLY_SUCCEEDED if ok else AuditEntry.Action.APPLY_FAILED,
            actor=revision.actor,
            target=f"revision {revision.pk}",
            detail={"error": revision.error[:2000]} if revision.error else {},
        )
        return revision


def _apply_revision(revision: ConfigRevision) -> None:
    started = time.monotonic()
    generation, document, snapshot = _consistent_snapshot()
    snapshot_done = time.monotonic()
    text = render_haproxy(snapshot, runtime_layout())
    render_done = time.monotonic()
    previous = haproxy_running_text()
    result = apply_haproxy_config(daemon_controllers()["haproxy"], text)
    serving = time.monotonic()
    revision.timings = {
        "snapshot": snapshot_done - started,
        "render": render_done - snapshot_done,
        **{f"engine_{phase}": seconds for phase, seconds in result.timings.items()},
        "to_serving": serving - started,
    }
    revision.generation = generation
    revision.document = document
    revision.text = text
    revision.sha256 = hashlib.sha256(text.encode()).hexdigest()
    revision.diff = text_diff(
        previous, text, old_name="previous haproxy.cfg", new_name=f"revision {revision.pk}"
    )
    revision.error = result.error
    revision.timings["total"] = time.monotonic() - started
    revision.duration_ms = round(revision.timings["total"] * 1000)
    revision.finished_at = timezone.now()
    if result.ok:
        revision.status = (
            ConfigRevision.Status.APPLIED if result.changed else ConfigRevision.Status.UNCHANGED
        )
        ConfigState.objects.filter(pk=1, applied_generation__lt=generation).update(
            applied_generation=generation
        )
    else:
        revision.status = ConfigRevision.Status.FAILED
    revision.save()


def _consistent_snapshot() -> tuple[int, dict[str, Any], HaproxySnapshot]:
    """Database state read while no write landed in between (the generation did not move)."""
    for _ in range(20):
        before = ConfigState.load().generation
        document = config_export()
        states = admin_states()
        if ConfigState.load().generation == before:
            return before, document, snapshot_from_document(document, states)
        time.sleep(0.05)
    raise RuntimeError("the configuration kept changing while it was being read")


def config_rollback(*, actor: User | None, revision: ConfigRevision) -> ConfigRevision:
    """Restore the database to what an earlier revision applied, then apply it."""
    if not revision.document:
        raise ValueError(f"revision {revision.pk} has no configuration to restore")
    config_import(actor=actor, document=revision.document, reason=f"rollback to {revision.pk}")
    return config_apply_request(actor=actor, kind=ConfigRevision.Kind.ROLLBACK)


# --- Export / import ----------------------------------------------------------------------------


def config_export() -> dict[str, Any]:
    """The cluster configuration: everything an HA peer replicates (format documented in
    docs/config-format.md). Deterministic: the same database gives the same document."""
    settings = L7Settings.load()
    # Plain values, not model instances: an apply reads the whole configuration (10,000 real
    # servers in the benchmark), and building model objects would dominate its cost.
    servers: dict[int, list[dict[str, Any]]] = {}
    for server in RealServer.objects.order_by("virtual_service_id", "label").values(
        "virtual_service_id", *_SERVER_KEYS_IN_ORDER
    ):
        servers.setdefault(server.pop("virtual_service_id"), []).append(server)
    services = []
    for service in VirtualService.objects.order_by("label").values("id", *_SERVICE_FIELDS):
        service_id = service.pop("id")
        service["ports"] = [int(port) for port in service["ports"].split(",") if port]
        service["real_servers"] = servers.get(service_id, [])
        services.append(service)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "layer7": {
            "settings": {name: getattr(settings, name) for name in _SETTINGS_KEYS_IN_ORDER},
            "virtual_services": services,
        },
    }


_SETTINGS_KEYS_IN_ORDER = (
    "logging", "log_only_errors", "redispatch",
    "connect_timeout_ms", "client_timeout_ms", "server_timeout_ms",
)  # fmt: skip
_SERVICE_FIELDS = (
    "label", "ip", "ports", "protocol", "balance", "persistence", "cookie_name",
    "persistence_timeout_s", "health_check", "check_port", "check_interval_ms",
    "fallback_ip", "fallback_port", "manual_config", "manual_text",
)  # fmt: skip
_SERVER_KEYS_IN_ORDER = ("label", "ip", "port", "weight", "reencrypt")


class ImportRejected(ValueError):
    """The document is not a valid configuration; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_SETTINGS_KEYS = set(_SETTINGS_KEYS_IN_ORDER)
_SERVICE_KEYS = {*_SERVICE_FIELDS, "real_servers"}
_SERVER_KEYS = set(_SERVER_KEYS_IN_ORDER)


def config_import(*, actor: User | None, document: Any, reason: str = "import") -> None:
    """Replace the cluster configuration with a document, in one transaction.

    Every value goes through the same forms (and so the same allowlists) as the WebUI; if
    anything is wrong the transaction is rolled back and ImportRejected lists every problem.
    """
    from lbadmin.forms.l7 import L7SettingsForm, RealServerForm, VirtualServiceForm

    _check_envelope(document)
    layer7 = document["layer7"]
    problems: list[str] = []
    with transaction.atomic():
        # A rollback must not undo a drain or a halt, nor cancel a "drain, then halt".
        kept_states = admin_states()
        halt_after = {
            (service, server): when
            for service, server, when in RealServer.objects.filter(
                halt_after__isnull=False
            ).values_list("virtual_service__label", "label", "halt_after")
        }
        RealServer.objects.all().delete()
        VirtualService.objects.all().delete()
        settings = L7Settings.load()
        form = L7SettingsForm(
            _form_data(layer7["settings"], _SETTINGS_KEYS, "settings", problems),
            instance=settings,
        )
        if form.is_valid():
            for name, value in form.values().items():
                setattr(settings, name, value)
            settings.save()
        else:
            problems += _form_problems("settings", form)
        for index, item in enumerate(layer7["virtual_services"]):
            where = f"virtual_services[{index}]"
            data = _form_data(item, _SERVICE_KEYS, where, problems)
            service_form = VirtualServiceForm(data)
            if not service_form.is_valid():
                problems += _form_problems(f"{where} ({item.get('label', '?')})", service_form)
                continue
            service = VirtualService.objects.create(**service_form.values())
            for number, server in enumerate(item.get("real_servers") or []):
                server_where = f"{where}.real_servers[{number}]"
                server_form = RealServerForm(
                    _form_data(server, _SERVER_KEYS, server_where, problems),
                    virtual_service=service,
                )
                if server_form.is_valid():
                    values = server_form.values()
                    key = (service.label, values["label"])
                    values["admin_state"] = kept_states.get(key, AdminState.ONLINE)
                    values["halt_after"] = halt_after.get(key)
                    server = RealServer.objects.create(virtual_service=service, **values)
                    if server.halt_after is not None:
                        _resume_drain_then_halt(server.pk)
                else:
                    problems += _form_problems(server_where, server_form)
        if problems:
            transaction.set_rollback(True)
        else:
            config_changed()
            audit_record(
                action=AuditEntry.Action.CONFIG_IMPORTED,
                actor=actor,
                target=reason,
                detail={"virtual_services": len(layer7["virtual_services"])},
            )
    if problems:
        raise ImportRejected(problems)


def _resume_drain_then_halt(server_id: int) -> None:
    from lbadmin.tasks import drain_then_halt_task  # tasks import services

    transaction.on_commit(lambda: drain_then_halt_task.delay(server_id), robust=True)


def _check_envelope(document: Any) -> None:
    if not isinstance(document, dict):
        raise ImportRejected(["the document is not a JSON object"])
    if document.get("format") != EXPORT_FORMAT:
        raise ImportRejected([f"format must be {EXPORT_FORMAT!r}"])
    if document.get("version") != EXPORT_VERSION:
        raise ImportRejected([f"version {document.get('version')!r} is not supported"])
    unknown = set(document) - {"format", "version", "layer7"}
    layer7 = document.get("layer7")
    if unknown:
        raise ImportRejected([f"unknown keys: {', '.join(sorted(unknown))}"])
    if not isinstance(layer7, dict) or set(layer7) != {"settings", "virtual_services"}:
        raise ImportRejected(["layer7 must hold exactly 'settings' and 'virtual_services'"])
    if not isinstance(layer7["settings"], dict) or not isinstance(layer7["virtual_services"], list):
        raise ImportRejected(["layer7.settings must be an object, virtual_services a list"])


def _form_data(item: Any, allowed: set[str], where: str, problems: list[str]) -> dict[str, Any]:
    """Turn a document object into what the WebUI's form would have posted."""
    if not isinstance(item, dict):
        problems.append(f"{where}: not an object")
        return {}
    unknown = set(item) - allowed
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    data: dict[str, Any] = {}
    for key, value in item.items():
        if key not in allowed or key == "real_servers":
            continue
        # connect_timeout_ms -> the form's connect_timeout, which takes plain milliseconds
        name = key.removesuffix("_ms").removesuffix("_s")
        if key == "persistence_timeout_s" and isinstance(value, int):
            value = f"{value}s"
        if isinstance(value, bool):
            data[name] = "on" if value else ""
        elif value is None:
            data[name] = ""
        elif isinstance(value, list):
            data[name] = ",".join(str(part) for part in value)
        elif isinstance(value, int | str):
            data[name] = str(value)
        else:
            problems.append(f"{where}.{key}: unsupported value")
    return data


def _form_problems(where: str, form: Any) -> list[str]:
    return [
        f"{where}.{field}: {message}"
        for field, messages in form.errors.items()
        for message in messages
    ]
