"""Who listens where: no IP address, port and protocol may be taken twice across Layer 7
virtual services (TCP), SSL terminations (TCP, on their Layer 7 service's address) and Layer 4
virtual services (TCP, UDP or both), as lbadmin.services.ports checks in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lbadmin.document.base import Indexed, Loc, Rules, report_repeated_labels


@dataclass(frozen=True)
class Listener:
    loc: Loc  # the port's place in the document, from the object whose rule reports
    ip: str  # canonical text
    port: int
    protocol: str  # "tcp" or "udp"
    owner: str  # "virtual service X", "SSL termination Y", "Layer 4 virtual service Z"
    section: str  # "layer7", "ssl" or "layer4"


def report_collisions(
    listeners: Iterable[Listener], rules: Rules, *, across_sections: bool = False
) -> None:
    """Report each listener whose ip:port/protocol an earlier one took. ``across_sections``:
    only pairs from two sections, or of two terminations (Layer 7 and Layer 4 report their
    own pairs, so a document with a problem elsewhere still hears of them)."""
    first: dict[tuple[str, int, str], Listener] = {}
    for listener in listeners:
        other = first.setdefault((listener.ip, listener.port, listener.protocol), listener)
        if other is listener:
            continue
        if across_sections and other.section == listener.section != "ssl":
            continue
        host = f"[{listener.ip}]" if ":" in listener.ip else listener.ip
        where = f"{host}:{listener.port}/{listener.protocol.upper()}"
        rules.add(listener.loc, f"{where} is already used by {other.owner}", listener.port)


def listeners_of(
    services: Indexed[Any], prefix: Loc, *, section: str, owner: str
) -> list[Listener]:
    """Where virtual services listen: their address, each port, each of their protocols."""
    return [
        Listener(
            loc=(*prefix, "virtual_services", index, "ports", number),
            ip=service.ip,
            port=port,
            protocol=protocol,
            owner=f"{owner} {service.label}",
            section=section,
        )
        for index, service in services
        for number, port in enumerate(service.ports)
        for protocol in service.protocols
    ]


def check_services(
    rules: Rules, services: Indexed[Any], listeners: Callable[[Indexed[Any]], list[Listener]]
) -> None:
    """A layer's own rules over its services: labels unique, no address taken twice."""
    report_repeated_labels(rules, ("virtual_services",), services)
    report_collisions(listeners(services), rules)
