"""Layer 4 (keepalived driving the kernel's IPVS) virtual services and their real servers."""

from django.db import models

from lbadmin.render.snapshot import AdminState, Forwarding, L4HealthCheck, L4Protocol, Scheduler


class L4VirtualService(models.Model):
    """A Layer 4 virtual service: one IPVS service per port and protocol."""

    label = models.CharField(max_length=64, unique=True)
    ip = models.GenericIPAddressField("Virtual Service IP address")
    # Canonical comma-separated list, sorted, ranges expanded: "5061" or "5000,5001,5002".
    ports = models.CharField(max_length=400)
    protocol = models.CharField(
        max_length=8,
        choices=[(L4Protocol.TCP, "TCP"), (L4Protocol.UDP, "UDP"), (L4Protocol.TCP_UDP, "TCP/UDP")],
        default=L4Protocol.TCP,
    )
    # The appliance's default is DR; the guide changes every Edge service to NAT.
    forwarding = models.CharField(
        "Forwarding method",
        max_length=4,
        choices=[
            (Forwarding.DR, "Direct Routing"),
            (Forwarding.NAT, "NAT"),
            (Forwarding.TUNNEL, "Tunnel"),
        ],
        default=Forwarding.DR,
    )
    persistence = models.BooleanField(default=True)
    persistence_timeout_s = models.PositiveIntegerField("Persistence timeout", default=300)
    scheduler = models.CharField(
        "Balance mode",
        max_length=4,
        choices=[
            (Scheduler.WLC, "Weighted Least Connections"),
            (Scheduler.WRR, "Weighted Round Robin"),
            (Scheduler.RR, "Round Robin"),
            (Scheduler.SH, "Source Hashing"),
        ],
        default=Scheduler.WLC,
    )
    health_check = models.CharField(
        max_length=8,
        choices=[
            (L4HealthCheck.CONNECT, "Connect to port"),
            (L4HealthCheck.HTTP, "HTTP negotiate"),
            (L4HealthCheck.HTTPS, "HTTPS negotiate"),
            (L4HealthCheck.NONE, "No checks, always on"),
        ],
        default=L4HealthCheck.CONNECT,
    )
    check_port = models.PositiveIntegerField(null=True, blank=True)
    check_path = models.CharField("Check request path", max_length=255, default="/")
    check_status = models.PositiveSmallIntegerField("Expected response status", default=200)
    check_interval_s = models.PositiveIntegerField("Check interval", default=10)
    check_timeout_s = models.PositiveIntegerField("Check timeout", default=5)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]
        verbose_name = "Layer 4 virtual service"

    def __str__(self) -> str:
        return self.label

    @property
    def port_list(self) -> tuple[int, ...]:
        return tuple(int(port) for port in self.ports.split(",") if port)

    @property
    def protocols(self) -> tuple[str, ...]:
        """The transport protocols it takes ("tcp", "udp"), for address conflicts."""
        if self.protocol == L4Protocol.TCP_UDP:
            return ("tcp", "udp")
        return (str(self.protocol),)


class L4RealServer(models.Model):
    virtual_service = models.ForeignKey(
        L4VirtualService, on_delete=models.CASCADE, related_name="real_servers"
    )
    label = models.CharField(max_length=64)
    ip = models.GenericIPAddressField("Real Server IP address")
    # Blank: the virtual service's port (the only choice for a multi-port service).
    port = models.PositiveIntegerField("Real Server port", null=True, blank=True)
    weight = models.PositiveSmallIntegerField(default=100)
    min_connections = models.PositiveIntegerField("Minimum connections", default=0)
    max_connections = models.PositiveIntegerField("Maximum connections", default=0)
    # System Overview's drain / halt / online: operational state, survives applies/restarts.
    admin_state = models.CharField(
        max_length=8,
        choices=[
            (AdminState.ONLINE, "Online"),
            (AdminState.DRAIN, "Drain"),
            (AdminState.HALT, "Halt"),
        ],
        default=AdminState.ONLINE,
    )

    class Meta:
        ordering = ["virtual_service__label", "label"]
        verbose_name = "Layer 4 real server"
        constraints = [
            models.UniqueConstraint(
                fields=["virtual_service", "label"], name="l4_realserver_label_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.virtual_service.label}/{self.label}"
