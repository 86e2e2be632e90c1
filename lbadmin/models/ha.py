"""This node's place in an HA clustered pair (Cluster Configuration > High-Availability
Configuration). Local to the node: never part of the replicated configuration."""

import uuid

from django.db import models


class HaNode(models.Model):
    """One row (pk=1)."""

    class Role(models.TextChoices):
        STANDALONE = "standalone", "Standalone"
        MASTER = "master", "Master"
        SLAVE = "slave", "Slave"

    # This appliance's identity: pairing with itself is refused by comparing them.
    node_id = models.UUIDField(default=uuid.uuid4, editable=False)
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.STANDALONE)
    local_ip = models.GenericIPAddressField(null=True, blank=True)
    peer_ip = models.GenericIPAddressField(null=True, blank=True)
    peer_node_id = models.UUIDField(null=True, blank=True)
    # SHA-256 of the peer WebUI's certificate, pinned at pairing: later calls trust only it.
    peer_fingerprint = models.CharField(max_length=64, blank=True)
    # The pair's shared key (HMAC of every call between the nodes; wraps private keys in
    # synced configuration), encrypted at rest like certificate keys.
    pair_key_encrypted = models.BinaryField(blank=True, default=b"")
    paired_at = models.DateTimeField(null=True, blank=True)

    # Master side: how the slave follows.
    synced_generation = models.PositiveBigIntegerField(null=True, blank=True)
    synced_hash = models.CharField(max_length=64, blank=True)  # document hash the slave runs
    synced_at = models.DateTimeField(null=True, blank=True)
    out_of_sync_since = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "HA node"

    def __str__(self) -> str:
        return f"{self.get_role_display()} {self.local_ip or ''}".strip()

    @classmethod
    def load(cls) -> "HaNode":
        node, _ = cls.objects.get_or_create(pk=1)
        return node

    @property
    def paired(self) -> bool:
        return self.role != self.Role.STANDALONE
