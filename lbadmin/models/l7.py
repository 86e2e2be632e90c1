"""Layer 7 (HAProxy) virtual services, their real servers, and the global Layer 7 settings."""

from django.db import models

from lbadmin.render.snapshot import AdminState, Balance, HealthCheck, L7Protocol, Persistence


class L7Settings(models.Model):
    """Configuration > Layer 7 – Advanced Configuration. One row (pk=1)."""

    logging = models.BooleanField(default=False)
    log_only_errors = models.BooleanField(default=False)
    redispatch = models.BooleanField(default=True)
    connect_timeout_ms = models.PositiveIntegerField(default=4000)
    client_timeout_ms = models.PositiveIntegerField(default=43000)
    server_timeout_ms = models.PositiveIntegerField(default=45000)

    class Meta:
        verbose_name = "Layer 7 advanced configuration"

    def __str__(self) -> str:
        return self._meta.verbose_name

    @classmethod
    def load(cls) -> "L7Settings":
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings


class VirtualService(models.Model):
    """A Layer 7 virtual service (VIP): one HAProxy `listen` section."""

    label = models.CharField(max_length=64, unique=True)
    ip = models.GenericIPAddressField("Virtual Service IP address")
    # Canonical comma-separated list, sorted: "135,443,444,5061,5065,5069".
    ports = models.CharField(max_length=400)
    protocol = models.CharField(
        "Layer 7 protocol", max_length=8, choices=[
            (L7Protocol.HTTP, "HTTP Mode"), (L7Protocol.TCP, "TCP Mode")
        ], default=L7Protocol.HTTP,
    )  # fmt: skip
    balance = models.CharField(
        "Balance mode", max_length=16, choices=[
            (Balance.LEASTCONN, "Weighted Least Connections"),
            (Balance.ROUNDROBIN, "Weighted Round Robin"),
            (Balance.SOURCE, "Source IP hash"),
        ], default=Balance.LEASTCONN,
    )  # fmt: skip
    persistence = models.CharField(
        "Persistence mode", max_length=16, choices=[
            (Persistence.NONE, "None"),
            (Persistence.SOURCE_IP, "Source IP address"),
            (Persistence.HTTP_COOKIE, "HTTP Cookie"),
        ], default=Persistence.HTTP_COOKIE,
    )  # fmt: skip
    cookie_name = models.CharField("HTTP cookie name", max_length=64, default="SERVERID")
    persistence_timeout_s = models.PositiveIntegerField("Persistence timeout", default=1800)
    health_check = models.CharField(
        max_length=16, choices=[
            (HealthCheck.CONNECT, "Connect to port"), (HealthCheck.NONE, "No checks, always on")
        ], default=HealthCheck.CONNECT,
    )  # fmt: skip
    check_port = models.PositiveIntegerField(null=True, blank=True)
    check_interval_ms = models.PositiveIntegerField("Check interval", default=4000)
    fallback_ip = models.GenericIPAddressField("Fallback server IP address", null=True, blank=True)
    fallback_port = models.PositiveIntegerField(null=True, blank=True)
    manual_config = models.BooleanField("Manual configuration", default=False)
    manual_text = models.TextField("Manual HAProxy lines", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    @property
    def port_list(self) -> tuple[int, ...]:
        return tuple(int(port) for port in self.ports.split(",") if port)


class RealServer(models.Model):
    """A Layer 7 real server (RIP) of one virtual service: an HAProxy `server` line."""

    virtual_service = models.ForeignKey(
        VirtualService, on_delete=models.CASCADE, related_name="real_servers"
    )
    label = models.CharField(max_length=64)
    ip = models.GenericIPAddressField("Real Server IP address")
    # Blank: the port the client connected to (the guide's FrontEndPool needs this).
    port = models.PositiveIntegerField("Real Server port", null=True, blank=True)
    weight = models.PositiveSmallIntegerField(default=100)
    reencrypt = models.BooleanField("Re-encrypt to backend", default=False)
    # Set from System Overview (drain / halt / online): operational state, not configuration,
    # so changing it never marks the configuration pending or needs a reload.
    admin_state = models.CharField(
        max_length=8,
        choices=[
            (AdminState.ONLINE, "Online"),
            (AdminState.DRAIN, "Drain"),
            (AdminState.HALT, "Halt"),
        ],
        default=AdminState.ONLINE,
    )
    # "Drain, then halt": halt at this time at the latest (sooner once idle).
    halt_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["virtual_service__label", "label"]
        constraints = [
            models.UniqueConstraint(
                fields=["virtual_service", "label"], name="l7_realserver_label_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.virtual_service.label}/{self.label}"
