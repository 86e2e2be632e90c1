"""The whole document: its envelope, its sections, and the rules that relate sections."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from lbadmin.document import layer4, layer7
from lbadmin.document.addresses import Listener, report_collisions
from lbadmin.document.base import DocumentModel, Rules, items_of, shown
from lbadmin.document.ha import HaSettings
from lbadmin.document.layer4 import L4VirtualService, Layer4
from lbadmin.document.layer7 import L7VirtualService, Layer7
from lbadmin.document.ssl import Ssl, Termination
from lbadmin.render.snapshot import L7Protocol

FORMAT = "lbadmin-cluster-config"
VERSION = 3


def _exact_version(value: Any) -> Any:
    # Literal[3] alone would take 3.0 (equal, and hashed alike) and keep the float.
    if type(value) is not int or value != VERSION:
        raise PydanticCustomError(
            "version",
            "{value} is not version {version} (a version 2 document is upgraded first)",
            {"value": shown(value), "version": VERSION},
        )
    return value


class ClusterConfig(DocumentModel):
    """The cluster configuration: everything an HA peer replicates (docs/config-format.md).
    A section or field left out takes the WebUI's own default."""

    format: Literal["lbadmin-cluster-config"]
    version: Annotated[Literal[3], BeforeValidator(_exact_version)]
    layer7: Layer7 = Layer7()
    ssl: Ssl = Ssl()
    layer4: Layer4 = Layer4()
    ha: HaSettings = HaSettings()

    @staticmethod
    def _check(rules: Rules, config: ClusterConfig | None, data: Any) -> None:
        """Terminations name an HTTP-mode Layer 7 service and listen on its address; no
        address, port and protocol is taken twice across sections."""
        layer7_path, layer4_path = ("layer7", "virtual_services"), ("layer4", "virtual_services")
        services, every_one = items_of(config, data, layer7_path, L7VirtualService)
        terminations, _ = items_of(config, data, ("ssl", "terminations"), Termination)
        l4_services, _ = items_of(config, data, layer4_path, L4VirtualService)
        by_label = {service.label: service for _, service in services}
        termination_listeners: list[Listener] = []
        for index, termination in terminations:
            where = ("ssl", "terminations", index)
            service = by_label.get(termination.virtual_service)
            if service is None:
                if every_one:  # else it may be one of the invalid ones
                    rules.add(
                        (*where, "virtual_service"),
                        f"no Layer 7 virtual service is labelled “{termination.virtual_service}”",
                        termination.virtual_service,
                    )
                continue
            if service.protocol is not L7Protocol.HTTP:
                rules.add(
                    (*where, "virtual_service"),
                    f"“{service.label}” is in TCP mode: a termination sends it HTTP, so it "
                    "needs an HTTP-mode service",
                    termination.virtual_service,
                )
            termination_listeners.append(
                Listener(
                    loc=(*where, "port"),
                    ip=service.ip,
                    port=termination.port,
                    protocol="tcp",
                    owner=f"SSL termination {termination.label}",
                    section="ssl",
                )
            )
        listeners = [
            *layer7.listeners_of(services, ("layer7",)),
            *termination_listeners,
            *layer4.listeners_of(l4_services, ("layer4",)),
        ]
        report_collisions(listeners, rules, across_sections=True)
