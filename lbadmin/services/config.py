"""The cluster configuration as a whole: pending changes, snapshot, apply, revisions, rollback,
export and import.

Apply pipeline (run by the node's Celery worker, one at a time per node):
snapshot the database → render haproxy.cfg and the stunnel files (pure) →
lbadmin.engines.haproxy_apply (validate with `haproxy -c -dW`, atomic swap keeping the last good
file, save server states, reload, verify, restore on failure) → lbadmin.engines.stunnel_apply
(validate each changed file with a throw-away stunnel, swap, SIGHUP) → record a revision (who,
when, outcome, texts, hash, diff).
"""

import difflib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from lbadmin import allowlists
from lbadmin.engines.daemons import RuntimeLayout
from lbadmin.engines.haproxy_apply import apply_haproxy_config
from lbadmin.engines.stunnel_apply import StunnelInstance, apply_stunnel
from lbadmin.models import (
    AuditEntry,
    ConfigRevision,
    ConfigState,
    L7Settings,
    RealServer,
    SslCertificate,
    SslTermination,
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
    SslMode,
    StunnelSnapshot,
)
from lbadmin.render.snapshot import (
    SslTermination as SslTerminationSnapshot,
)
from lbadmin.render.stunnel import render_stunnel, stunnel_document, termination_instance
from lbadmin.services.audit import audit_record
from lbadmin.services.certificates import (
    certificate_bundle,
    certificate_import,
    certificates_export,
)
from lbadmin.services.changes import HAPROXY, STUNNEL, config_changed
from lbadmin.services.daemons import daemon_controllers, runtime_layout
from lbadmin.services.locks import node_lock

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "lbadmin-cluster-config"
EXPORT_VERSION = 2  # 2: SSL certificates and terminations


# --- Snapshot -----------------------------------------------------------------------------------

# (service label, server label) -> drain/halt
AdminStates = dict[tuple[str, str], str]


@dataclass(frozen=True)
class RenderedConfig:
    """Everything an apply writes: haproxy.cfg, one stunnel file per SSL termination, and the
    certificate files those reference (name → key + certificate + chain, written 0600)."""

    haproxy: str
    stunnel: tuple[StunnelInstance, ...]
    certificate_files: dict[str, bytes]

    @property
    def stunnel_text(self) -> str:
        return stunnel_document({instance.name: instance.config for instance in self.stunnel})

    @property
    def sha256(self) -> str:
        return hashlib.sha256((self.haproxy + "\0" + self.stunnel_text).encode()).hexdigest()


def render_document(document: dict[str, Any], states: AdminStates) -> RenderedConfig:
    """Render an export document (see snapshot_from_document) for this node's layout."""
    layout = runtime_layout()
    terminations, files = _termination_snapshots(document, layout)
    haproxy = render_haproxy(snapshot_from_document(document, states, terminations), layout)
    configs = render_stunnel(StunnelSnapshot(terminations=terminations), layout)
    instances = tuple(
        StunnelInstance(name=t.instance, config=configs[t.instance], host=t.ip, port=t.port)
        for t in terminations
    )
    return RenderedConfig(haproxy=haproxy, stunnel=instances, certificate_files=files)


def _termination_snapshots(
    document: dict[str, Any], layout: RuntimeLayout
) -> tuple[tuple[SslTerminationSnapshot, ...], dict[str, bytes]]:
    ssl = document["ssl"]
    services = {item["label"]: item for item in document["layer7"]["virtual_services"]}
    certificates = {item["label"]: item for item in ssl["certificates"]}
    files: dict[str, bytes] = {}
    file_of: dict[str, str] = {}  # certificate label → file name
    terminations = []
    for item in ssl["terminations"]:
        label = item["certificate"]
        if label not in file_of:
            bundle = certificate_bundle(certificates[label])
            name = hashlib.sha256(bundle).hexdigest()[:32] + ".pem"
            files[name] = bundle
            file_of[label] = name
        instance = termination_instance(item["label"])
        terminations.append(
            SslTerminationSnapshot(
                label=item["label"],
                instance=instance,
                ip=services[item["virtual_service"]]["ip"],
                port=item["port"],
                target_socket=str(layout.termination_socket(instance)),
                certificate_file=str(layout.stunnel_cert_dir / file_of[label]),
                mode=SslMode(item["mode"]),
                ciphers=item["ciphers"],
            )
        )
    return tuple(terminations), files


def admin_states() -> AdminStates:
    """(service label, server label) -> drain/halt, for servers not online (one query)."""
    return {
        (service, server): state
        for service, server, state in RealServer.objects.exclude(
            admin_state=AdminState.ONLINE
        ).values_list("virtual_service__label", "label", "admin_state")
    }


def snapshot_from_document(
    document: dict[str, Any],
    states: AdminStates,
    terminations: tuple[SslTerminationSnapshot, ...] = (),
) -> HaproxySnapshot:
    """The renderer's input from an export document (already validated: it is read from the
    database, or went through config_import), so one database read serves both the revision's
    document and the render. `states` adds System Overview's drain/halt, which are operational
    state and so not part of the document; `terminations` the unix sockets of the SSL
    terminations in front of each service."""
    layer7 = document["layer7"]
    sockets: dict[str, list[str]] = {}
    services_of = {
        item["label"]: item["virtual_service"] for item in document["ssl"]["terminations"]
    }
    for termination in terminations:
        sockets.setdefault(services_of[termination.label], []).append(termination.target_socket)
    return HaproxySnapshot(
        globals=L7Globals(**layer7["settings"]),
        services=tuple(
            _service_snapshot(item, states, tuple(sockets.get(item["label"], ())))
            for item in layer7["virtual_services"]
        ),
    )


def _service_snapshot(
    item: dict[str, Any], states: AdminStates, proxy_sockets: tuple[str, ...]
) -> L7VirtualService:
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
        proxy_sockets=proxy_sockets,
    )


def _manual_lines(item: dict[str, Any]) -> tuple[str, ...] | None:
    """A manual service's lines; none entered yet (just added) renders its binds alone."""
    if not item["manual_config"]:
        return None
    if not item["manual_text"].strip():
        return ()
    return allowlists.clean_manual_lines(item["manual_text"])


def render_current() -> RenderedConfig:
    return render_document(config_export(), admin_states())


def haproxy_running_text() -> str:
    """The configuration file HAProxy was last given ('' before the first start)."""
    path = daemon_controllers()[HAPROXY].config_path
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def stunnel_running_text() -> str:
    """Every SSL termination's running stunnel file, in label order (as stunnel_document)."""
    texts = []
    for path in runtime_layout().stunnel_dir.glob("*.conf"):
        try:
            texts.append(path.read_text())
        except FileNotFoundError:
            continue  # removed by an apply meanwhile
    # Each file starts with the same header and then "; SSL termination <label>".
    return stunnel_document({str(n): text for n, text in enumerate(sorted(texts))})


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
    """What Apply would change in the running haproxy.cfg and stunnel configuration."""
    rendered = render_current()
    return text_diff(
        haproxy_running_text(),
        rendered.haproxy,
        old_name="running haproxy.cfg",
        new_name="pending haproxy.cfg",
    ) + text_diff(
        stunnel_running_text(),
        rendered.stunnel_text,
        old_name="running stunnel configuration",
        new_name="pending stunnel configuration",
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
    """HAProxy first (it must listen on a termination's unix socket before stunnel sends to
    it), then stunnel. If stunnel refuses its new files, HAProxy goes back to its previous
    file too, so the node keeps running one whole, earlier configuration."""
    started = time.monotonic()
    generation, document, states = _consistent_snapshot()
    snapshot_done = time.monotonic()
    rendered = render_document(document, states)
    render_done = time.monotonic()
    previous_haproxy = haproxy_running_text()
    previous_stunnel = stunnel_running_text()
    controls = daemon_controllers()
    result = apply_haproxy_config(controls[HAPROXY], rendered.haproxy)
    haproxy_done = time.monotonic()
    revision.timings = {
        "snapshot": snapshot_done - started,
        "render": render_done - snapshot_done,
        **{f"engine_{phase}": seconds for phase, seconds in result.timings.items()},
    }
    ok, changed, error = result.ok, result.changed, result.error
    if ok:
        tls = apply_stunnel(controls[STUNNEL], rendered.stunnel, rendered.certificate_files)
        revision.timings.update({f"stunnel_{k}": v for k, v in tls.timings.items()})
        changed = changed or tls.changed
        if not tls.ok:
            ok, error = False, f"stunnel: {tls.error}"
            if result.changed and previous_haproxy:
                back = apply_haproxy_config(controls[HAPROXY], previous_haproxy)
                if not back.ok:
                    error += f"\nHAProxy could not go back to its previous file: {back.error}"
    revision.timings["to_serving"] = haproxy_done - started
    revision.generation = generation
    revision.document = document
    revision.text = rendered.haproxy
    revision.stunnel_text = rendered.stunnel_text
    revision.sha256 = rendered.sha256
    revision.diff = text_diff(
        previous_haproxy,
        rendered.haproxy,
        old_name="previous haproxy.cfg",
        new_name=f"revision {revision.pk} haproxy.cfg",
    ) + text_diff(
        previous_stunnel,
        rendered.stunnel_text,
        old_name="previous stunnel configuration",
        new_name=f"revision {revision.pk} stunnel configuration",
    )
    revision.error = error
    revision.timings["total"] = time.monotonic() - started
    revision.duration_ms = round(revision.timings["total"] * 1000)
    revision.finished_at = timezone.now()
    if ok:
        revision.status = (
            ConfigRevision.Status.APPLIED if changed else ConfigRevision.Status.UNCHANGED
        )
        ConfigState.objects.filter(pk=1, applied_generation__lt=generation).update(
            applied_generation=generation
        )
        # Nothing was written since this apply read the database: nothing is pending.
        ConfigState.objects.filter(pk=1, generation=generation).update(pending_engines=[])
    else:
        revision.status = ConfigRevision.Status.FAILED
    revision.save()


def _consistent_snapshot() -> tuple[int, dict[str, Any], AdminStates]:
    """Database state read while no write landed in between (the generation did not move)."""
    for _ in range(20):
        before = ConfigState.load().generation
        document = config_export()
        states = admin_states()
        if ConfigState.load().generation == before:
            return before, document, states
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
        "ssl": {"certificates": certificates_export(), "terminations": _terminations_export()},
    }


def _terminations_export() -> list[dict[str, Any]]:
    rows = SslTermination.objects.values(
        *_TERMINATION_FIELDS_IN_ORDER[:-2], "virtual_service__label", "certificate__label"
    )
    items = [
        {
            **{name: row[name] for name in _TERMINATION_FIELDS_IN_ORDER[:-2]},
            "virtual_service": row["virtual_service__label"],
            "certificate": row["certificate__label"],
        }
        for row in rows
    ]
    # Sorted here, not by the database: the stunnel files are rendered in this order, and it
    # must not depend on the database's collation.
    return sorted(items, key=lambda item: item["label"])


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
_TERMINATION_FIELDS_IN_ORDER = (
    "label", "port", "mode", "ciphers", "virtual_service", "certificate",
)  # fmt: skip


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
        SslTermination.objects.all().delete()
        RealServer.objects.all().delete()
        VirtualService.objects.all().delete()
        SslCertificate.objects.all().delete()
        for index, item in enumerate(document["ssl"]["certificates"]):
            problems += certificate_import(item, where=f"ssl.certificates[{index}]")
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
                problems += _form_problems(f"{where} ({_label_of(item)})", service_form)
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
        if not problems:  # terminations refer to services and certificates by label
            problems += _import_terminations(document["ssl"]["terminations"])
        if problems:
            transaction.set_rollback(True)
        else:
            config_changed((HAPROXY, STUNNEL))
            audit_record(
                action=AuditEntry.Action.CONFIG_IMPORTED,
                actor=actor,
                target=reason,
                detail={"virtual_services": len(layer7["virtual_services"])},
            )
    if problems:
        raise ImportRejected(problems)


def _import_terminations(items: list[Any]) -> list[str]:
    from lbadmin.forms.terminations import TerminationForm

    problems: list[str] = []
    services = dict(VirtualService.objects.values_list("label", "pk"))
    certificates = dict(SslCertificate.objects.values_list("label", "pk"))
    for index, item in enumerate(items):
        where = f"ssl.terminations[{index}]"
        data = _form_data(item, set(_TERMINATION_FIELDS_IN_ORDER), where, problems)
        # The form takes the WebUI's choices (primary keys); the document names labels.
        data["virtual_service"] = services.get(data.get("virtual_service", ""), "")
        data["certificate"] = certificates.get(data.get("certificate", ""), "")
        form = TerminationForm(data)
        if form.is_valid():
            SslTermination.objects.create(**form.values())
        else:
            problems += _form_problems(f"{where} ({_label_of(item)})", form)
    return problems


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
    unknown = set(document) - {"format", "version", "layer7", "ssl"}
    layer7 = document.get("layer7")
    if unknown:
        raise ImportRejected([f"unknown keys: {', '.join(sorted(unknown))}"])
    if not isinstance(layer7, dict) or set(layer7) != {"settings", "virtual_services"}:
        raise ImportRejected(["layer7 must hold exactly 'settings' and 'virtual_services'"])
    if not isinstance(layer7["settings"], dict) or not isinstance(layer7["virtual_services"], list):
        raise ImportRejected(["layer7.settings must be an object, virtual_services a list"])
    ssl = document.get("ssl")
    if (
        not isinstance(ssl, dict)
        or set(ssl) != {"certificates", "terminations"}
        or not all(isinstance(ssl[key], list) for key in ssl)
    ):
        raise ImportRejected(["ssl must hold exactly the lists 'certificates' and 'terminations'"])


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


def _label_of(item: Any) -> str:
    return str(item.get("label", "?")) if isinstance(item, dict) else "?"


def _form_problems(where: str, form: Any) -> list[str]:
    return [
        f"{where}.{field}: {message}"
        for field, messages in form.errors.items()
        for message in messages
    ]
