"""Who listens where: the one check that no two services of any kind (Layer 7 virtual
services, SSL terminations) take the same IP address and port."""

from lbadmin.models import SslTermination, VirtualService


def port_user(
    ip: str,
    port: int,
    *,
    exclude_service: VirtualService | None = None,
    exclude_termination: SslTermination | None = None,
) -> str | None:
    """What already listens on ip:port ("virtual service X", "SSL termination Y"), or None."""
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
    return f"SSL termination {termination.label}" if termination else None
