"""Who listens where: the one check that no two services of any kind (Layer 7 virtual
services, SSL terminations, Layer 4 virtual services) take the same IP address, port and
protocol. Layer 7 and SSL terminations are TCP."""

from lbadmin.models import L4VirtualService, SslTermination, VirtualService


def port_user(
    ip: str,
    port: int,
    *,
    protocol: str = "tcp",
    exclude_service: VirtualService | None = None,
    exclude_termination: SslTermination | None = None,
    exclude_l4: L4VirtualService | None = None,
) -> str | None:
    """What already listens on ip:port/protocol ("virtual service X", "SSL termination Y",
    "Layer 4 virtual service Z"), or None."""
    if protocol == "tcp":
        services = VirtualService.objects.filter(ip=ip).only("label", "ports")
        if exclude_service is not None:
            services = services.exclude(pk=exclude_service.pk)
        for service in services:
            if port in service.port_list:
                return f"virtual service {service.label}"
        terminations = SslTermination.objects.filter(virtual_service__ip=ip, port=port)
        if exclude_termination is not None:
            terminations = terminations.exclude(pk=exclude_termination.pk)
        termination = terminations.only("label").first()
        if termination:
            return f"SSL termination {termination.label}"
    layer4 = L4VirtualService.objects.filter(ip=ip).only("label", "ports", "protocol")
    if exclude_l4 is not None:
        layer4 = layer4.exclude(pk=exclude_l4.pk)
    for service in layer4:
        if protocol in service.protocols and port in service.port_list:
            return f"Layer 4 virtual service {service.label}"
    return None


class AddressTaken(ValueError):
    """Two services would listen on one ip:port:protocol: found under the configuration's
    write lock, where a write that passed its form's check at the same moment as another one
    is caught."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


def address_collisions() -> list[str]:
    """Every ip:port:protocol two services of the configuration take (three queries)."""
    users: dict[tuple[str, int, str], list[str]] = {}
    for label, ip, ports in VirtualService.objects.values_list("label", "ip", "ports"):
        for port in ports.split(","):
            if port:
                users.setdefault((ip, int(port), "tcp"), []).append(f"virtual service {label}")
    for label, ip, port in SslTermination.objects.values_list(
        "label", "virtual_service__ip", "port"
    ):
        users.setdefault((ip, port, "tcp"), []).append(f"SSL termination {label}")
    for service in L4VirtualService.objects.only("label", "ip", "ports", "protocol"):
        for port in service.port_list:
            for protocol in service.protocols:
                users.setdefault((service.ip, port, protocol), []).append(
                    f"Layer 4 virtual service {service.label}"
                )
    return [
        f"{ip}:{port}/{protocol.upper()} is taken by both {' and '.join(sorted(names))}: the other "
        "change was saved first; choose another address or port."
        for (ip, port, protocol), names in sorted(users.items())
        if len(names) > 1
    ]
