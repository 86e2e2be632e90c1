from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """Who did what, and when: one row per security event or configuration change."""

    class Action(models.TextChoices):
        LOGIN = "login", "Logged in"
        LOGOUT = "logout", "Logged out"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOGIN_REFUSED = "login_refused", "Login refused (locked out or throttled)"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        CONFIG_CREATED = "config_created", "Configuration added"
        CONFIG_UPDATED = "config_updated", "Configuration modified"
        CONFIG_DELETED = "config_deleted", "Configuration deleted"
        CONFIG_IMPORTED = "config_imported", "Configuration imported"
        APPLY_REQUESTED = "apply_requested", "Apply requested"
        APPLY_SUCCEEDED = "apply_succeeded", "Configuration applied"
        APPLY_FAILED = "apply_failed", "Apply failed"
        ROLLBACK_REQUESTED = "rollback_requested", "Rollback requested"
        SERVICE_RESTARTED = "service_restarted", "Service restarted"
        SERVER_STATE_CHANGED = "server_state_changed", "Real server state changed"
        CERTIFICATE_ADDED = "certificate_added", "SSL certificate added"
        CERTIFICATE_DELETED = "certificate_deleted", "SSL certificate deleted"
        HA_PAIRED = "ha_paired", "HA pair formed"
        HA_BROKEN = "ha_broken", "HA pair broken"
        HA_SYNCED = "ha_synced", "Configuration received from the master"
        HA_TAKEOVER = "ha_takeover", "Floating IPs handed over"

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The name as given: failed logins are recorded even for accounts that do not exist.
    username = models.CharField(max_length=150, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # Login throttling counts recent failures per user and per address.
            models.Index(fields=["action", "username", "at"], name="audit_action_user_at"),
            models.Index(fields=["action", "source_ip", "at"], name="audit_action_ip_at"),
            models.Index(fields=["-at"], name="audit_at_desc"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action}"
