"""What has been changed, what is applied, and every apply that happened."""

from django.conf import settings
from django.db import models


class ConfigState(models.Model):
    """One row (pk=1): a counter bumped by every cluster configuration change, and the value
    of that counter the running configuration was rendered from."""

    generation = models.PositiveBigIntegerField(default=0)
    applied_generation = models.PositiveBigIntegerField(default=0)
    # Daemons whose configuration changed since the last apply ("haproxy", "stunnel"): the
    # blue box offers "Reload HAProxy" / "Restart Stunnel" for them. One Apply covers all.
    pending_engines = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self._meta.verbose_name

    @classmethod
    def load(cls) -> "ConfigState":
        state, _ = cls.objects.get_or_create(pk=1)
        return state

    @property
    def pending(self) -> bool:
        return bool(self.pending_engines)


class ConfigRevision(models.Model):
    """One apply of the configuration (HAProxy, stunnel, keepalived): who, when, what, and how it
    went."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Applying"
        APPLIED = "applied", "Applied"
        UNCHANGED = "unchanged", "No change"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    class Kind(models.TextChoices):
        APPLY = "apply", "Apply"
        ROLLBACK = "rollback", "Rollback"
        IMPORT = "import", "Import"
        SYNC = "sync", "Sync from the master"

    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.APPLY)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    generation = models.PositiveBigIntegerField(null=True, blank=True)
    # The cluster configuration as an export document: what a rollback restores.
    document = models.JSONField(null=True, blank=True)
    text = models.TextField(blank=True)  # the rendered haproxy.cfg
    stunnel_text = models.TextField(blank=True)  # every SSL termination's stunnel config
    keepalived_text = models.TextField(blank=True)  # keepalived.conf (Layer 4)
    sha256 = models.CharField(max_length=64, blank=True)
    diff = models.TextField(blank=True)  # against the configuration that was running before
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Seconds per phase: snapshot, render, the engine's lock/check/write/save_state/reload,
    # to_serving (request picked up → new worker serving) and total.
    timings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status"], name="revision_status")]

    def __str__(self) -> str:
        return f"revision {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in (self.Status.QUEUED, self.Status.RUNNING)
