"""Local Configuration: this node's own network and identity. Never replicated to the HA peer
(the guide: network, routing, hostname and DNS are per node)."""

from django.db import models


class NetworkInterface(models.Model):
    """An interface the appliance manages (its addresses, MTU, up/down)."""

    name = models.CharField(max_length=15, unique=True)
    up = models.BooleanField(default=True)
    mtu = models.PositiveIntegerField(null=True, blank=True)  # None: left as it is

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NetworkAddress(models.Model):
    interface = models.ForeignKey(
        NetworkInterface, on_delete=models.CASCADE, related_name="addresses"
    )
    address = models.CharField(max_length=50, unique=True)  # "192.0.2.5/24", "2001:db8::5/64"

    class Meta:
        # In the order added: an interface's first IPv4 address is its primary one, after a
        # reboot too.
        ordering = ["interface__name", "id"]

    def __str__(self) -> str:
        return f"{self.address} on {self.interface.name}"


class StaticRoute(models.Model):
    """A static route; the default gateways are routes to "default" (IPv4 and IPv6)."""

    destination = models.CharField(max_length=50)  # "192.168.100.0/24" or "default"
    gateway = models.CharField(max_length=45, blank=True)
    interface = models.CharField(max_length=15, blank=True)
    # None: the kernel's default (0 for IPv4, 1024 for IPv6). Another metric lets a route sit
    # beside one the appliance did not make (the installer's default gateway).
    metric = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["destination", "gateway"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "gateway"], name="static_route_unique")
        ]

    def __str__(self) -> str:
        return f"{self.destination} via {self.gateway or self.interface}"


class HostSettings(models.Model):
    """Hostname and DNS, and what the network apply needs to remember. One row (pk=1)."""

    hostname = models.CharField(max_length=253, blank=True)
    dns_servers = models.JSONField(default=list, blank=True)
    search = models.JSONField(default=list, blank=True)
    # The NetworkConfig last applied (the engine's `previous`: what the appliance owns).
    applied = models.JSONField(null=True, blank=True)
    # A change that touched the administrator's own connection waits for confirmation until
    # this time, then the configuration in `revert_to` is restored.
    confirm_until = models.DateTimeField(null=True, blank=True)
    # {"config": the configuration confirmed last, "snapshot": the live network before the
    # first unconfirmed change (netconfig.LiveSnapshot), "touched": interface names}.
    revert_to = models.JSONField(null=True, blank=True)
    # What is wrong with the node's network now (a missing interface, a revert that could not
    # be completed), shown in red on Local Configuration and System Overview; '' when nothing.
    network_problem = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "host settings"

    def __str__(self) -> str:
        return self.hostname or "host settings"

    @classmethod
    def load(cls) -> "HostSettings":
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings
