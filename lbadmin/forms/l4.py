"""Layer 4 virtual services and real servers: every field through an allowlist, every error
next to its field. Forms return model-ready values; lbadmin.services.l4 saves."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from lbadmin import allowlists
from lbadmin.forms.l7 import text
from lbadmin.models import L4RealServer, L4VirtualService
from lbadmin.render.snapshot import Forwarding, L4HealthCheck, L4Protocol, Scheduler
from lbadmin.services.ports import port_user

_field = L4VirtualService._meta.get_field
MAX_PERSISTENCE_S = 86_400  # a day: IPVS allows more, no deployment needs it
MAX_CONNECTIONS = 1_000_000


class L4VirtualServiceForm(forms.Form):
    """Add (the guide's short form: label, IP, ports, protocol, forwarding) or modify."""

    ADD_FIELDS = ("label", "ip", "ports", "protocol", "forwarding")

    label = text("Label", help_text="e.g. IntEdgeAccess5061")
    ip = text("IP Address", help_text="e.g. 192.168.10.10")
    ports = text("Ports", help_text="a port, a list or a range: 5061 · 80,443 · 5060-5062")
    protocol = forms.ChoiceField(label="Protocol", choices=_field("protocol").choices)
    forwarding = forms.ChoiceField(
        label="Forwarding Method",
        choices=_field("forwarding").choices,
        help_text="Lync needs NAT: Direct Routing is not supported for Lync.",
    )
    persistence = forms.BooleanField(label="Persistence", required=False)
    persistence_timeout = text("Persistence Timeout", help_text="seconds, e.g. 1800")
    scheduler = forms.ChoiceField(label="Balance mode", choices=_field("scheduler").choices)
    health_check = forms.ChoiceField(label="Health Checks", choices=_field("health_check").choices)
    check_port = text("Check Port", required=False, help_text="blank: each real server's port")
    check_path = text("Request to send", required=False, help_text="HTTP(S) checks, e.g. /")
    check_status = text("Response expected", required=False, help_text="HTTP status, e.g. 200")
    check_interval = text("Check Interval", help_text="seconds")
    check_timeout = text("Check Timeout", help_text="seconds")

    def __init__(
        self, data: Any = None, *, instance: L4VirtualService | None = None, add: bool = False
    ) -> None:
        self.instance = instance
        super().__init__(data, initial=self._initial(instance))
        if add:
            for name in list(self.fields):
                if name not in self.ADD_FIELDS:
                    del self.fields[name]

    @staticmethod
    def _initial(instance: L4VirtualService | None) -> dict[str, Any]:
        if instance is None:
            return {"protocol": L4Protocol.TCP, "forwarding": Forwarding.DR}
        return {
            "label": instance.label,
            "ip": instance.ip,
            "ports": allowlists.format_port_ranges(instance.port_list),
            "protocol": instance.protocol,
            "forwarding": instance.forwarding,
            "persistence": instance.persistence,
            "persistence_timeout": str(instance.persistence_timeout_s),
            "scheduler": instance.scheduler,
            "health_check": instance.health_check,
            "check_port": instance.check_port or "",
            "check_path": instance.check_path,
            "check_status": str(instance.check_status),
            "check_interval": str(instance.check_interval_s),
            "check_timeout": str(instance.check_timeout_s),
        }

    def clean_label(self) -> str:
        label = allowlists.clean_label(self.cleaned_data["label"])
        others = L4VirtualService.objects.filter(label=label)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError("A Layer 4 virtual service with this label already exists.")
        return label

    def clean_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["ip"])

    def clean_ports(self) -> tuple[int, ...]:
        return allowlists.clean_port_ranges(self.cleaned_data["ports"])

    def clean_persistence_timeout(self) -> int:
        return allowlists.clean_whole_number(
            self.cleaned_data["persistence_timeout"].removesuffix("s"),  # "1800" or "1800s"
            minimum=1,
            maximum=MAX_PERSISTENCE_S,
            what="Persistence timeout",
        )

    def clean_check_port(self) -> int | None:
        return allowlists.clean_optional_port(self.cleaned_data["check_port"])

    def clean_check_path(self) -> str:
        return allowlists.clean_check_path(self.cleaned_data["check_path"] or "/")

    def clean_check_status(self) -> int:
        return allowlists.clean_whole_number(
            self.cleaned_data["check_status"] or "200",
            minimum=100,
            maximum=599,
            what="The expected status",
        )

    def clean_check_interval(self) -> int:
        return allowlists.clean_whole_number(
            self.cleaned_data["check_interval"], minimum=1, maximum=3600, what="Check interval"
        )

    def clean_check_timeout(self) -> int:
        return allowlists.clean_whole_number(
            self.cleaned_data["check_timeout"], minimum=1, maximum=3600, what="Check timeout"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("ip") and data.get("ports") and data.get("protocol"):
            protocols = ("tcp", "udp") if data["protocol"] == L4Protocol.TCP_UDP else (
                str(data["protocol"]),
            )  # fmt: skip
            for port in data["ports"]:
                for protocol in protocols:
                    used_by = port_user(
                        data["ip"], port, protocol=protocol, exclude_l4=self.instance
                    )
                    if used_by:
                        self.add_error(
                            "ports",
                            f"{data['ip']}:{port}/{protocol.upper()} is already used by {used_by}.",
                        )
                        return data
        if self.instance is not None and data.get("ports"):
            self._check_servers_fit(data)
        return data

    def _check_servers_fit(self, data: dict[str, Any]) -> None:
        """A multi-port service forwards each port to the same port on the servers, and DR
        or tunnel forwarding cannot change the port at all."""
        fixed_port = [
            server.label for server in self.instance.real_servers.all() if server.port is not None
        ]
        if len(data["ports"]) > 1 and fixed_port:
            self.add_error(
                "ports",
                f"Real server {', '.join(fixed_port)} has its own port: clear it before giving "
                "this service several ports.",
            )
        forwarding = data.get("forwarding")
        if forwarding in (Forwarding.DR, Forwarding.TUNNEL):
            moved = [
                server.label
                for server in self.instance.real_servers.all()
                if server.port is not None and server.port not in data["ports"]
            ]
            if moved:
                self.add_error(
                    "forwarding",
                    f"Direct Routing and Tunnel cannot change the port: real server "
                    f"{', '.join(moved)} listens on another one.",
                )

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {
            "label": data["label"],
            "ip": data["ip"],
            "ports": ",".join(str(port) for port in data["ports"]),
            "protocol": L4Protocol(data["protocol"]),
            "forwarding": Forwarding(data["forwarding"]),
        }
        if "scheduler" not in data:  # the short add form: the model's defaults apply
            return values
        return values | {
            "persistence": data["persistence"],
            "persistence_timeout_s": data["persistence_timeout"],
            "scheduler": Scheduler(data["scheduler"]),
            "health_check": L4HealthCheck(data["health_check"]),
            "check_port": data["check_port"],
            "check_path": data["check_path"],
            "check_status": data["check_status"],
            "check_interval_s": data["check_interval"],
            "check_timeout_s": data["check_timeout"],
        }


class L4RealServerForm(forms.Form):
    label = text("Label", help_text="e.g. EDGE-1")
    ip = text("Real Server IP Address", help_text="e.g. 192.168.100.10")
    port = text("Real Server Port", required=False, help_text="blank: the virtual service's port")
    weight = text("Weight", help_text="0 to 256")
    min_connections = text("Minimum Connections", help_text="0: none")
    max_connections = text("Maximum Connections", help_text="0: unlimited")

    def __init__(
        self,
        data: Any = None,
        *,
        virtual_service: L4VirtualService,
        instance: L4RealServer | None = None,
    ) -> None:
        self.virtual_service = virtual_service
        self.instance = instance
        initial: dict[str, Any] = {"weight": "100", "min_connections": "0", "max_connections": "0"}
        if instance is not None:
            initial = {
                "label": instance.label,
                "ip": instance.ip,
                "port": instance.port or "",
                "weight": str(instance.weight),
                "min_connections": str(instance.min_connections),
                "max_connections": str(instance.max_connections),
            }
        super().__init__(data, initial=initial)

    def _siblings(self):
        siblings = L4RealServer.objects.filter(virtual_service=self.virtual_service)
        if self.instance is not None:
            siblings = siblings.exclude(pk=self.instance.pk)
        return siblings

    def clean_label(self) -> str:
        label = allowlists.clean_label(self.cleaned_data["label"])
        if self._siblings().filter(label=label).exists():
            raise ValidationError(
                f"{self.virtual_service.label} already has a real server with this label."
            )
        return label

    def clean_ip(self) -> str:
        ip = allowlists.clean_ip(self.cleaned_data["ip"])
        service = self.virtual_service
        if service.forwarding != Forwarding.TUNNEL and (":" in ip) != (":" in service.ip):
            raise ValidationError(
                "NAT and Direct Routing keep the address family: use an IPv"
                f"{6 if ':' in service.ip else 4} address like the virtual service's."
            )
        return ip

    def clean_port(self) -> int | None:
        port = allowlists.clean_optional_port(self.cleaned_data["port"])
        service = self.virtual_service
        if port is not None and len(service.port_list) > 1:
            raise ValidationError(
                "Leave it blank: a service with several ports forwards each to the same port."
            )
        if (
            port is not None
            and service.forwarding in (Forwarding.DR, Forwarding.TUNNEL)
            and port not in service.port_list
        ):
            raise ValidationError(
                "Direct Routing and Tunnel cannot change the port: leave it blank or use "
                "the virtual service's port."
            )
        return port

    def clean_weight(self) -> int:
        return allowlists.clean_weight(self.cleaned_data["weight"])

    def clean_min_connections(self) -> int:
        return allowlists.clean_whole_number(
            self.cleaned_data["min_connections"],
            minimum=0,
            maximum=MAX_CONNECTIONS,
            what="Minimum connections",
        )

    def clean_max_connections(self) -> int:
        return allowlists.clean_whole_number(
            self.cleaned_data["max_connections"],
            minimum=0,
            maximum=MAX_CONNECTIONS,
            what="Maximum connections",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("min_connections"), data.get("max_connections")
        if low is not None and high and low > high:
            self.add_error("min_connections", "Must not be more than the maximum connections.")
        if "ip" in data and "port" in data:
            same = self._siblings().filter(ip=data["ip"], port=data["port"])
            if same.exists():
                self.add_error(
                    "ip", "This virtual service already has a real server at this address."
                )
        return data

    def values(self) -> dict[str, Any]:
        names = ("label", "ip", "port", "weight", "min_connections", "max_connections")
        return {name: self.cleaned_data[name] for name in names}
