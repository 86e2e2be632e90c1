"""The cluster configuration as a whole: pending changes, snapshot, apply, revisions, rollback,
export and import.

Apply pipeline (run by the node's Celery worker, one at a time per node):
snapshot the database → render haproxy.cfg and the stunnel files (pure) →
lbadmin.engines.haproxy_apply (validate with `haproxy -c -dW`, atomic swap keeping the last good
file, save server states, reload, verify, restore on failure) → lbadmin.engines.stunnel_apply
(validate each changed file with a throw-away stunnel, swap, SIGHUP) → record a revision (who,
when, outcome, texts, hash, diff).
"""

import dataclasses
import difflib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from lbadmin import allowlists
from lbadmin.engines.daemons import RuntimeLayout
from lbadmin.engines.haproxy_apply import apply_haproxy_config
from lbadmin.engines.keepalived_apply import apply_keepalived_config
from lbadmin.engines.stunnel_apply import StunnelInstance, apply_stunnel
from lbadmin.forms.l7 import (  # checks imported documents, until issue 19 part 1
    L7SettingsForm,
    RealServerForm,
    VirtualServiceForm,
)
from lbadmin.forms.terminations import (
    TerminationForm,  # checks imported documents, until issue 19 part 1
)
from lbadmin.models import (
    AuditEntry,
    ConfigRevision,
    ConfigState,
    L4VirtualService,
    L7Settings,
    RealServer,
    SslCertificate,
    SslTermination,
    User,
    VirtualService,
)
from lbadmin.render.haproxy import render_haproxy
from lbadmin.render.keepalived import render_keepalived
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
from lbadmin.services import jobs
from lbadmin.services.audit import audit_record
from lbadmin.services.certificates import (
    certificate_bundle,
    certificate_import,
    certificates_export,
)
from lbadmin.services.changes import HAPROXY, KEEPALIVED, STUNNEL, config_changed
from lbadmin.services.daemons import daemon_controllers
from lbadmin.services.document_forms import form_data, form_problems, label_of
from lbadmin.services.ha_node import (
    floating_binds_allow,
    ha_settings_export,
    ha_settings_import,
    ha_sync_request,
    standalone_addresses,
    vrrp_instances,
)
from lbadmin.services.l4 import keepalived_snapshot, l4_admin_states, l4_export, l4_import
from lbadmin.services.layout import runtime_layout
from lbadmin.services.locks import node_lock
from lbadmin.services.ports import AddressTaken

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "lbadmin-cluster-config"
EXPORT_VERSION = 2  # 2: SSL certificates and terminations


# --- Snapshot -----------------------------------------------------------------------------------

# (service label, server label) -> drain/halt
AdminStates = dict[tuple[str, str], str]


@dataclass(frozen=True)
class States:
    """System Overview's drain/halt per layer: operational state, not in the document."""

    layer7: AdminStates
    layer4: AdminStates


def current_states() -> States:
    return States(layer7=admin_states(), layer4=l4_admin_states())


@dataclass(frozen=True)
class RenderedConfig:
    """Everything an apply writes: haproxy.cfg, one stunnel file per SSL termination, the
    certificate files those reference (name → key + certificate + chain, written 0600), and
    keepalived.conf (the Layer 4 services)."""

    haproxy: str
    stunnel: tuple[StunnelInstance, ...]
    certificate_files: dict[str, bytes]
    keepalived: str

    @property
    def stunnel_text(self) -> str:
        return stunnel_document({instance.name: instance.config for instance in self.stunnel})

    @property
    def sha256(self) -> str:
        texts = (self.haproxy, self.stunnel_text, self.keepalived)
        return hashlib.sha256("\0".join(texts).encode()).hexdigest()


def render_document(document: dict[str, Any], states: States) -> RenderedConfig:
    """Render an export document (see snapshot_from_document) for this node's layout."""
    layout = runtime_layout()
    terminations, files = _termination_snapshots(document, layout)
    haproxy = render_haproxy(snapshot_from_document(document, states.layer7, terminations), layout)
    configs = render_stunnel(StunnelSnapshot(terminations=terminations), layout)
    instances = tuple(
        StunnelInstance(name=t.instance, config=configs[t.instance], host=t.ip, port=t.port)
        for t in terminations
    )
    keepalived = keepalived_text(document, states.layer4)
    return RenderedConfig(
        haproxy=haproxy, stunnel=instances, certificate_files=files, keepalived=keepalived
    )


def keepalived_text(document: dict[str, Any], layer4_states: AdminStates) -> str:
    """keepalived.conf for a document: its Layer 4 services, and the VRRP instances that
    float its addresses when this node is in an HA pair."""
    snapshot = keepalived_snapshot(document, layer4_states)
    snapshot = dataclasses.replace(
        snapshot,
        vrrp=vrrp_instances(document),
        static_addresses=standalone_addresses(document),
    )
    return render_keepalived(snapshot, runtime_layout())


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
    return render_document(config_export(), current_states())


def haproxy_running_text() -> str:
    """The configuration file HAProxy was last given ('' before the first start)."""
    path = daemon_controllers()[HAPROXY].config_path
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def keepalived_running_text() -> str:
    """The keepalived.conf keepalived was last given ('' before the first start)."""
    try:
        return daemon_controllers()[KEEPALIVED].config_path.read_text()
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
    return (
        text_diff(
            haproxy_running_text(),
            rendered.haproxy,
            old_name="running haproxy.cfg",
            new_name="pending haproxy.cfg",
        )
        + text_diff(
            stunnel_running_text(),
            rendered.stunnel_text,
            old_name="running stunnel configuration",
            new_name="pending stunnel configuration",
        )
        + text_diff(
            keepalived_running_text(),
            rendered.keepalived,
            old_name="running keepalived.conf",
            new_name="pending keepalived.conf",
        )
    )


# --- Apply --------------------------------------------------------------------------------------


def revision_wait(revision: ConfigRevision, timeout: float) -> bool:
    """Wait (polling the database) until ``revision`` has finished; whether it did in time."""
    deadline = time.monotonic() + timeout
    while not revision.finished:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
        revision.refresh_from_db(fields=["status", "error"])
    return True


def config_apply_request(
    *, actor: User | None, kind: ConfigRevision.Kind = ConfigRevision.Kind.APPLY
) -> ConfigRevision:
    """Queue an apply. Clicks while one is already queued join it: the queued apply renders
    the database as it is when it starts, so it includes every change made before then."""
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
        jobs.enqueue_on_commit("config_apply_task", revision.pk)
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
        if ok:
            # The slave of an HA pair follows what the master runs.
            transaction.on_commit(ha_sync_request)
        audit_record(
            action=AuditEntry.Action.APPLY_SUCCEEDED if ok else AuditEntry.Action.APPLY_FAILED,
            actor=revision.actor,
            target=f"revision {revision.pk}",
            detail={"error": revision.error[:2000]} if revision.error else {},
        )
        return revision


def _apply_revision(revision: ConfigRevision) -> None:
    """keepalived (Layer 4, independent of the rest), then HAProxy (it must listen on a
    termination's unix socket before stunnel sends to it), then stunnel. If one refuses its
    new file, those already changed go back to their previous files, so the node keeps
    running one whole, earlier configuration."""
    started = time.monotonic()
    floating_binds_allow()  # a node just paired binds addresses it does not hold yet
    generation, document, states = _consistent_snapshot()
    snapshot_done = time.monotonic()
    rendered = render_document(document, states)
    render_done = time.monotonic()
    previous = {
        KEEPALIVED: keepalived_running_text(),
        HAPROXY: haproxy_running_text(),
        STUNNEL: stunnel_running_text(),
    }
    controls = daemon_controllers()
    revision.timings = {"snapshot": snapshot_done - started, "render": render_done - snapshot_done}
    undo: list[tuple[str, Callable[[], Any]]] = []  # how to put back what was changed

    try:
        changed, error = _apply_engines(
            rendered, previous, controls, revision.timings, undo, started
        )
    except Exception as exc:  # an engine bug must not leave half a configuration running
        logger.exception("apply of revision %s failed in an engine", revision.pk)
        changed, error = False, f"Internal error: {exc}"
    if error:
        for name, put_back in reversed(undo):
            back = put_back()
            if not back.ok:
                error += f"\n{name} could not go back to its previous file: {back.error}"
    revision.generation = generation
    revision.document = document
    revision.text = rendered.haproxy
    revision.stunnel_text = rendered.stunnel_text
    revision.keepalived_text = rendered.keepalived
    revision.sha256 = rendered.sha256
    revision.diff = "".join(
        text_diff(
            previous[name],
            text,
            old_name=f"previous {what}",
            new_name=f"revision {revision.pk} {what}",
        )
        for name, what, text in (
            (HAPROXY, "haproxy.cfg", rendered.haproxy),
            (STUNNEL, "stunnel configuration", rendered.stunnel_text),
            (KEEPALIVED, "keepalived.conf", rendered.keepalived),
        )
    )
    revision.error = error
    revision.timings["total"] = time.monotonic() - started
    revision.duration_ms = round(revision.timings["total"] * 1000)
    revision.finished_at = timezone.now()
    if not error:
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


def _apply_engines(
    rendered: RenderedConfig,
    previous: dict[str, str],
    controls: dict[str, Any],
    timings: dict[str, float],
    undo: list[tuple[str, Callable[[], Any]]],
    started: float,
) -> tuple[bool, str]:
    """Apply keepalived, HAProxy, stunnel in turn; stop at the first refusal. Returns
    (changed, error) and pushes onto ``undo`` how to put back each daemon it changed."""
    changed = False
    layer4 = apply_keepalived_config(controls[KEEPALIVED], rendered.keepalived)
    timings.update({f"keepalived_{k}": v for k, v in layer4.timings.items()})
    if not layer4.ok:
        return False, f"keepalived: {layer4.error}"
    changed = layer4.changed
    if layer4.changed and previous[KEEPALIVED]:
        undo.append(
            (
                KEEPALIVED,
                partial(apply_keepalived_config, controls[KEEPALIVED], previous[KEEPALIVED]),
            )
        )
    result = apply_haproxy_config(controls[HAPROXY], rendered.haproxy)
    timings.update({f"engine_{k}": v for k, v in result.timings.items()})
    timings["to_serving"] = time.monotonic() - started  # the Layer 7 services' new worker
    if not result.ok:
        return changed, result.error
    changed = changed or result.changed
    if result.changed and previous[HAPROXY]:
        undo.append((HAPROXY, partial(apply_haproxy_config, controls[HAPROXY], previous[HAPROXY])))
    tls = apply_stunnel(controls[STUNNEL], rendered.stunnel, rendered.certificate_files)
    timings.update({f"stunnel_{k}": v for k, v in tls.timings.items()})
    if not tls.ok:
        return changed, f"stunnel: {tls.error}"
    return changed or tls.changed, ""


def _consistent_snapshot() -> tuple[int, dict[str, Any], States]:
    """Database state read while no write landed in between (the generation did not move)."""
    for _ in range(20):
        before = ConfigState.load().generation
        document = config_export()
        states = current_states()
        if ConfigState.load().generation == before:
            return before, document, states
        time.sleep(0.05)
    raise RuntimeError("the configuration kept changing while it was being read")


def config_rollback(*, actor: User | None, revision: ConfigRevision) -> ConfigRevision:
    """Restore the database to what an earlier revision applied, then apply it."""
    if not revision.document:
        raise ValueError(f"revision {revision.pk} has no configuration to restore")
    config_import(
        actor=actor,
        document=revision.document,
        reason=f"rollback to {revision.pk}",
        keep_other_certificates=True,
    )
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
        "layer4": {"virtual_services": l4_export()},
        "ha": ha_settings_export(),
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


def config_import(
    *,
    actor: User | None,
    document: Any,
    reason: str = "import",
    keep_other_certificates: bool = False,
) -> None:
    """Replace the cluster configuration with a document, in one transaction.

    ``keep_other_certificates`` (rollbacks): certificates the document does not hold are
    kept, so going back to an older revision never loses a certificate uploaded since, nor
    a CSR's private key that exists only here.

    Every value goes through the same forms (and so the same allowlists) as the WebUI; if
    anything is wrong the transaction is rolled back and ImportRejected lists every problem.
    """
    _check_envelope(document)
    layer7 = document["layer7"]
    problems: list[str] = []
    with transaction.atomic():
        kept = _kept_states()
        SslTermination.objects.all().delete()
        L4VirtualService.objects.all().delete()  # and their real servers
        RealServer.objects.all().delete()
        VirtualService.objects.all().delete()
        replaced = SslCertificate.objects.all()
        if keep_other_certificates:
            replaced = replaced.filter(
                label__in=[label_of(item) for item in document["ssl"]["certificates"]]
            )
        replaced.delete()
        for index, item in enumerate(document["ssl"]["certificates"]):
            problems += certificate_import(item, where=f"ssl.certificates[{index}]")
        problems += _import_settings(layer7["settings"])
        problems += _import_layer7(layer7["virtual_services"], kept)
        if not problems:  # terminations refer to services and certificates by label
            problems += _import_terminations(document["ssl"]["terminations"])
        if not problems:  # Layer 4 addresses are checked against Layer 7 and terminations
            problems += l4_import(document["layer4"]["virtual_services"], kept.layer4)
        problems += ha_settings_import(document["ha"])
        if not problems:
            problems += _config_changed_problems((HAPROXY, STUNNEL, KEEPALIVED))
        if problems:
            transaction.set_rollback(True)
        else:
            audit_record(
                action=AuditEntry.Action.CONFIG_IMPORTED,
                actor=actor,
                target=reason,
                detail={"virtual_services": len(layer7["virtual_services"])},
            )
    if problems:
        raise ImportRejected(problems)


# The sections config_merge changes, by the export document's items.
MergeSections = Mapping[str, Sequence[Any]]  # "layer7" | "terminations" | "layer4" -> ...


def config_merge(
    *,
    actor: User | None,
    reason: str,
    remove: MergeSections,
    add: MergeSections,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Change part of the cluster configuration in one transaction: delete the objects
    ``remove`` names (labels per section: "layer7", "terminations", "layer4"), then create
    ``add``'s items and change the named Layer 7 ``settings``, through the same forms as
    config_import. Everything else stays as it is, ids included, and the cost follows the
    objects changed, not the size of the configuration. A termination that is kept but
    points at a service being replaced is re-created on the new one. ImportRejected lists
    every problem; nothing changes then."""
    problems: list[str] = []
    gone = {
        section: set(remove.get(section, ())) for section in ("layer7", "terminations", "layer4")
    }
    with transaction.atomic():
        kept = _kept_states()
        carried = [
            item
            for item in _terminations_export()
            if item["virtual_service"] in gone["layer7"]
            and item["label"] not in gone["terminations"]
        ]
        SslTermination.objects.filter(
            label__in=gone["terminations"] | {item["label"] for item in carried}
        ).delete()
        L4VirtualService.objects.filter(label__in=gone["layer4"]).delete()
        RealServer.objects.filter(virtual_service__label__in=gone["layer7"]).delete()
        VirtualService.objects.filter(label__in=gone["layer7"]).delete()
        if settings:
            current = L7Settings.load()
            values = {name: getattr(current, name) for name in _SETTINGS_KEYS_IN_ORDER}
            problems += _import_settings({**values, **settings})
        problems += _import_layer7(add.get("layer7", ()), kept)
        if not problems:
            problems += _import_terminations([*carried, *add.get("terminations", ())])
        if not problems:
            problems += l4_import(list(add.get("layer4", ())), kept.layer4)
        touched = {
            HAPROXY: bool(gone["layer7"] or add.get("layer7") or settings)
            or bool(gone["terminations"] or add.get("terminations")),
            STUNNEL: bool(gone["terminations"] or add.get("terminations") or carried),
            KEEPALIVED: bool(gone["layer4"] or add.get("layer4")),
        }
        if not problems:
            problems += _config_changed_problems(
                [engine for engine, changed in touched.items() if changed]
            )
        if problems:
            transaction.set_rollback(True)
        else:
            audit_record(
                action=AuditEntry.Action.CONFIG_UPDATED,
                actor=actor,
                target=reason,
                detail={
                    "removed": {section: sorted(labels) for section, labels in gone.items()},
                    "added": {
                        section: [label_of(item) for item in items]
                        for section, items in add.items()
                    },
                },
            )
    if problems:
        raise ImportRejected(problems)


def _config_changed_problems(engines: Sequence[str]) -> list[str]:
    """config_changed, with a collision found under the write lock as an import problem."""
    try:
        config_changed(engines)
    except AddressTaken as taken:
        return taken.problems
    return []


@dataclass(frozen=True)
class _KeptStates:
    """What an import keeps from the objects it replaces: drain/halt set on System Overview,
    and the deadline of a "drain, then halt" (a rollback must not undo nor cancel them)."""

    layer7: AdminStates
    layer4: AdminStates
    halt_after: dict[tuple[str, str], Any]


def _kept_states() -> _KeptStates:
    return _KeptStates(
        layer7=admin_states(),
        layer4=l4_admin_states(),
        halt_after={
            (service, server): when
            for service, server, when in RealServer.objects.filter(
                halt_after__isnull=False
            ).values_list("virtual_service__label", "label", "halt_after")
        },
    )


def _import_settings(item: Any) -> list[str]:
    problems: list[str] = []
    settings = L7Settings.load()
    form = L7SettingsForm(form_data(item, _SETTINGS_KEYS, "settings", problems), instance=settings)
    if form.is_valid():
        for name, value in form.values().items():
            setattr(settings, name, value)
        settings.save()
    else:
        problems += form_problems("settings", form)
    return problems


def _import_layer7(items: Sequence[Any], kept: _KeptStates) -> list[str]:
    """Create Layer 7 services and their real servers through the WebUI's forms."""
    problems: list[str] = []
    for index, item in enumerate(items):
        where = f"virtual_services[{index}]"
        data = form_data(item, _SERVICE_KEYS, where, problems)
        service_form = VirtualServiceForm(data)
        if not service_form.is_valid():
            problems += form_problems(f"{where} ({label_of(item)})", service_form)
            continue
        service = VirtualService.objects.create(**service_form.values())
        for number, server in enumerate(item.get("real_servers") or []):
            server_where = f"{where}.real_servers[{number}]"
            server_form = RealServerForm(
                form_data(server, _SERVER_KEYS, server_where, problems),
                virtual_service=service,
            )
            if server_form.is_valid():
                values = server_form.values()
                key = (service.label, values["label"])
                values["admin_state"] = kept.layer7.get(key, AdminState.ONLINE)
                values["halt_after"] = kept.halt_after.get(key)
                server = RealServer.objects.create(virtual_service=service, **values)
                if server.halt_after is not None:
                    _resume_drain_then_halt(server.pk)
            else:
                problems += form_problems(server_where, server_form)
    return problems


def _import_terminations(items: list[Any]) -> list[str]:
    problems: list[str] = []
    services = dict(VirtualService.objects.values_list("label", "pk"))
    certificates = dict(SslCertificate.objects.values_list("label", "pk"))
    for index, item in enumerate(items):
        where = f"ssl.terminations[{index}]"
        data = form_data(item, set(_TERMINATION_FIELDS_IN_ORDER), where, problems)
        # The form takes the WebUI's choices (primary keys); the document names labels.
        data["virtual_service"] = services.get(data.get("virtual_service", ""), "")
        data["certificate"] = certificates.get(data.get("certificate", ""), "")
        form = TerminationForm(data)
        if form.is_valid():
            SslTermination.objects.create(**form.values())
        else:
            problems += form_problems(f"{where} ({label_of(item)})", form)
    return problems


def _resume_drain_then_halt(server_id: int) -> None:
    jobs.enqueue_on_commit("drain_then_halt_task", server_id)


def _check_envelope(document: Any) -> None:
    if not isinstance(document, dict):
        raise ImportRejected(["the document is not a JSON object"])
    if document.get("format") != EXPORT_FORMAT:
        raise ImportRejected([f"format must be {EXPORT_FORMAT!r}"])
    if document.get("version") != EXPORT_VERSION:
        raise ImportRejected([f"version {document.get('version')!r} is not supported"])
    unknown = set(document) - {"format", "version", "layer7", "ssl", "layer4", "ha"}
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
    layer4 = document.get("layer4")
    if (
        not isinstance(layer4, dict)
        or set(layer4) != {"virtual_services"}
        or not isinstance(layer4["virtual_services"], list)
    ):
        raise ImportRejected(["layer4 must hold exactly the list 'virtual_services'"])
    if not isinstance(document.get("ha"), dict):
        raise ImportRejected(["ha must be an object"])
