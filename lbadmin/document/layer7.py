"""Layer 7 (HAProxy): the advanced settings, the virtual services and their real servers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from lbadmin.document import addresses
from lbadmin.document.addresses import Listener
from lbadmin.document.base import (
    DocumentModel,
    Indexed,
    Loc,
    Rules,
    items_of,
    repeats,
    report_repeated_labels,
)
from lbadmin.document.fields import (
    CheckIntervalMs,
    CookieName,
    IpAddress,
    Label,
    Lax,
    ManualText,
    PersistenceTimeoutS,
    Port,
    Ports,
    TimeoutMs,
    Weight,
)
from lbadmin.document.values import manual_text_problems
from lbadmin.render.haproxy import FALLBACK_SERVER
from lbadmin.render.snapshot import Balance, HealthCheck, L7Protocol, Persistence


class L7Settings(DocumentModel):
    """Layer 7 – Advanced Configuration: HAProxy's logging, redispatch and timeouts."""

    logging: bool = False
    log_only_errors: bool = False
    redispatch: bool = True
    connect_timeout_ms: TimeoutMs = 4000
    client_timeout_ms: TimeoutMs = 43000
    server_timeout_ms: TimeoutMs = 45000


class L7RealServer(DocumentModel):
    """A real server of a Layer 7 virtual service: one HAProxy server line."""

    label: Label
    ip: IpAddress
    port: Port | None = Field(None, description="null: the port the client connected to")
    weight: Weight = 100
    reencrypt: bool = Field(False, description="TLS to the server (HTTP mode only)")

    @field_validator("label")
    @classmethod
    def _not_fallback(cls, label: str) -> str:
        if label == FALLBACK_SERVER:  # haproxy.cfg's name for the fallback server
            raise PydanticCustomError("value", "“fallback” is reserved for the fallback server")
        return label


class L7VirtualService(DocumentModel):
    """A Layer 7 virtual service: one HAProxy listen section on its address and each port."""

    label: Label
    ip: IpAddress
    ports: Ports
    protocol: Annotated[L7Protocol, Lax] = L7Protocol.HTTP
    balance: Annotated[Balance, Lax] = Balance.LEASTCONN
    persistence: Annotated[Persistence, Lax] = Field(
        Persistence.HTTP_COOKIE,
        description="left out: http_cookie in HTTP mode, source_ip in TCP mode (as the WebUI)",
    )
    cookie_name: CookieName = "SERVERID"
    persistence_timeout_s: PersistenceTimeoutS = 1800
    health_check: Annotated[HealthCheck, Lax] = HealthCheck.CONNECT
    check_port: Port | None = Field(
        None, description="null: the real server's port, else the first port of the service"
    )
    check_interval_ms: CheckIntervalMs = 4000
    fallback_ip: IpAddress | None = None
    fallback_port: Port | None = None
    manual_config: bool = False
    manual_text: ManualText = ""
    real_servers: list[L7RealServer] = []

    @property
    def protocols(self) -> tuple[str, ...]:
        """The transport protocols it takes: HAProxy listens on TCP."""
        return ("tcp",)

    @model_validator(mode="before")
    @classmethod
    def _mode_default(cls, data: Any) -> Any:
        """A new TCP-mode service sticks on the source address, an HTTP one inserts a cookie
        (lbadmin.services.l7): a document that leaves persistence out means the same."""
        if isinstance(data, dict) and "persistence" not in data and data.get("protocol") == "tcp":
            return {**data, "persistence": Persistence.SOURCE_IP.value}
        return data

    @staticmethod
    def _check(rules: Rules, service: L7VirtualService | None, data: Any) -> None:
        servers, _ = items_of(service, data, ("real_servers",), L7RealServer)
        report_repeated_labels(rules, ("real_servers",), servers)
        for index, first in repeats(servers, lambda server: (server.ip, server.port)):
            rules.add(
                ("real_servers", index, "ip"),
                f"real_servers[{first}] has the same address and port already",
            )
        if service is None:
            return
        http = service.protocol is L7Protocol.HTTP
        if service.persistence is Persistence.HTTP_COOKIE and not http:
            rules.add(("persistence",), "HTTP cookie persistence needs HTTP mode", "http_cookie")
        if service.fallback_port is not None and service.fallback_ip is None:
            rules.add(("fallback_ip",), "must be given with fallback_port (the fallback server)")
        if service.manual_config:
            for problem in manual_text_problems(service.manual_text):
                rules.add(("manual_text",), problem)
        for index, server in servers:
            if server.reencrypt and not http:
                # In TCP mode the client's own TLS passes through: encrypting it again breaks it.
                rules.add(("real_servers", index, "reencrypt"), "re-encrypt needs HTTP mode")


class Layer7(DocumentModel):
    """Layer 7: the advanced settings and the virtual services (labels unique)."""

    settings: L7Settings = L7Settings()
    virtual_services: list[L7VirtualService] = []

    @staticmethod
    def _check(rules: Rules, layer7: Layer7 | None, data: Any) -> None:
        services, _ = items_of(layer7, data, ("virtual_services",), L7VirtualService)
        addresses.check_services(rules, services, listeners_of)


def listeners_of(services: Indexed[Any], prefix: Loc = ()) -> list[Listener]:
    return addresses.listeners_of(services, prefix, section="layer7", owner="virtual service")
