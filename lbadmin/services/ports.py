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
