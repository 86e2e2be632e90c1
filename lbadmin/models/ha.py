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
    # Since when the configuration this master runs has not been confirmed by the slave: set
    # when a push is queued, cleared when the slave answers it runs that generation.
    unconfirmed_since = models.DateTimeField(null=True, blank=True)

    # Standalone side: this node held the floating addresses when its pair was broken, and
    # keeps holding them without VRRP (keepalived's static_ipaddress) until it pairs again.
    holds_addresses_standalone = models.BooleanField(default=False)

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


class HaSettings(models.Model):
    """How the pair's floating addresses behave: part of the replicated configuration (the
    slave gets the master's). One row (pk=1)."""

    # VRRPv3 adverts: sub-second by default; the backup takes over after about 3 of them.
    advert_interval_ms = models.PositiveIntegerField("Heartbeat interval", default=100)
    # Off: a node that comes back does not take the addresses back (no flapping, no fight).
    preempt = models.BooleanField("Master takes the addresses back", default=False)

    class Meta:
        verbose_name = "HA settings"

    def __str__(self) -> str:
        return self._meta.verbose_name

    @classmethod
    def load(cls) -> "HaSettings":
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings


class PeerNonce(models.Model):
    """A nonce of a signed call the peer made, remembered so the call cannot be replayed
    (lbadmin.services.ha.verify_peer_call). Local to the node; rows older than the calls'
    accepted age are purged as new ones come."""

    # 128 random bits as hex; unique: a second insert of the same nonce is the replay.
    nonce = models.CharField(max_length=32, unique=True)
    # The call's own (signed) time, not the arrival: the purge then never forgets a nonce
    # whose call would still pass the time check.
    signed_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "HA peer nonce"

    def __str__(self) -> str:
        return self.nonce
