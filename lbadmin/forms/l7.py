"""Layer 7 virtual services, real servers and advanced settings: every field through an
allowlist, every error next to its field. Forms return model-ready values; services save."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from lbadmin import allowlists
from lbadmin.models import L7Settings, RealServer, VirtualService
from lbadmin.render.snapshot import Balance, HealthCheck, L7Protocol, Persistence
from lbadmin.services.ports import port_user

PROTOCOL_CHOICES = VirtualService._meta.get_field("protocol").choices
BALANCE_CHOICES = VirtualService._meta.get_field("balance").choices
PERSISTENCE_CHOICES = VirtualService._meta.get_field("persistence").choices
CHECK_CHOICES = VirtualService._meta.get_field("health_check").choices


def text(label: str, *, required: bool = True, help_text: str = "", **attrs: str) -> forms.Field:
    """A text field whose raw value goes to an allowlist (no coercion by Django first)."""
    return forms.CharField(
        label=label,
        required=required,
        strip=False,  # surrounding spaces are an error, not silently dropped
        max_length=4000,
        help_text=help_text,
        widget=forms.TextInput(attrs=attrs),
    )


class VirtualServiceForm(forms.Form):
    """Add (the guide's short form) or modify (every field) a Layer 7 virtual service."""

    ADD_FIELDS = ("label", "ip", "ports", "protocol", "manual_config")

    label = text("Label", help_text="e.g. FrontEndPool")
    ip = text("IP Address", help_text="e.g. 192.168.10.30")
    ports = text("Ports", help_text="comma-separated, e.g. 135,443,444,5061,5065,5069")
    protocol = forms.ChoiceField(label="Layer 7 Protocol", choices=PROTOCOL_CHOICES)
    manual_config = forms.BooleanField(label="Manual Configuration", required=False)
    manual_text = forms.CharField(
        label="Manual HAProxy lines",
        required=False,
        strip=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 70, "spellcheck": "false"}),
        help_text="Used instead of the settings below; one directive per line.",
    )
    balance = forms.ChoiceField(label="Balance mode", choices=BALANCE_CHOICES)
    persistence = forms.ChoiceField(label="Persistence Mode", choices=PERSISTENCE_CHOICES)
    cookie_name = text("HTTP Cookie Name", required=False)
    persistence_timeout = text("Persistence Timeout", help_text="e.g. 30m or 1800s")
    health_check = forms.ChoiceField(label="Health Checks", choices=CHECK_CHOICES)
    check_port = text("Check Port", required=False, help_text="blank: the real server's port")
    check_interval = text("Check Interval", help_text="e.g. 4s")
    fallback_ip = text("Fallback Server IP Address", required=False)
    fallback_port = text("Fallback Server Port", required=False)

    def __init__(
        self, data: Any = None, *, instance: VirtualService | None = None, add: bool = False
    ) -> None:
        self.instance = instance
        super().__init__(data, initial=self._initial(instance))
        if add:
            for name in list(self.fields):
                if name not in self.ADD_FIELDS:
                    del self.fields[name]

    @staticmethod
    def _initial(instance: VirtualService | None) -> dict[str, Any]:
        if instance is None:
            return {"protocol": L7Protocol.HTTP, "cookie_name": "SERVERID"}
        return {
            "label": instance.label,
            "ip": instance.ip,
            "ports": instance.ports,
            "protocol": instance.protocol,
            "manual_config": instance.manual_config,
            "manual_text": instance.manual_text,
            "balance": instance.balance,
            "persistence": instance.persistence,
            "cookie_name": instance.cookie_name,
            "persistence_timeout": allowlists.format_duration_ms(
                instance.persistence_timeout_s * 1000
            ),
            "health_check": instance.health_check,
            "check_port": instance.check_port or "",
            "check_interval": allowlists.format_duration_ms(instance.check_interval_ms),
            "fallback_ip": instance.fallback_ip or "",
            "fallback_port": instance.fallback_port or "",
        }

    def clean_label(self) -> str:
        label = allowlists.clean_label(self.cleaned_data["label"])
        others = VirtualService.objects.filter(label=label)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError("A virtual service with this label already exists.")
        return label

    def clean_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["ip"])

    def clean_ports(self) -> tuple[int, ...]:
        return allowlists.clean_port_list(self.cleaned_data["ports"])

    def clean_cookie_name(self) -> str:
        value = self.cleaned_data["cookie_name"]
        return allowlists.clean_cookie_name(value) if value else "SERVERID"

    def clean_persistence_timeout(self) -> int:
        milliseconds = allowlists.clean_duration_ms(
            self.cleaned_data["persistence_timeout"], minimum_ms=1000
        )
        if milliseconds % 1000:
            raise ValidationError("Use whole seconds.")
        return milliseconds // 1000

    def clean_check_port(self) -> int | None:
        return allowlists.clean_optional_port(self.cleaned_data["check_port"])

    def clean_check_interval(self) -> int:
        return allowlists.clean_duration_ms(
            self.cleaned_data["check_interval"], minimum_ms=100, maximum_ms=3_600_000
        )

    def clean_fallback_ip(self) -> str | None:
        value = self.cleaned_data["fallback_ip"]
        return allowlists.clean_ip(value) if value else None

    def clean_fallback_port(self) -> int | None:
        return allowlists.clean_optional_port(self.cleaned_data["fallback_port"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("manual_config") and "manual_text" in self.fields:
            try:
                allowlists.clean_manual_lines(data.get("manual_text", ""))
            except ValidationError as error:
                self.add_error("manual_text", error)
        if (
            data.get("persistence") == Persistence.HTTP_COOKIE
            and data.get("protocol") == L7Protocol.TCP
        ):
            self.add_error(
                "persistence", "HTTP cookie persistence needs HTTP mode: choose another mode."
            )
        if self.instance is not None and data.get("protocol") == L7Protocol.TCP:
            terminations = list(self.instance.ssl_terminations.values_list("label", flat=True))
            reencrypted = list(
                self.instance.real_servers.filter(reencrypt=True).values_list("label", flat=True)
            )
            if terminations:
                self.add_error(
                    "protocol",
                    f"SSL termination {', '.join(terminations)} sends HTTP to this service: "
                    "it must stay in HTTP mode.",
                )
            elif reencrypted:
                self.add_error(
                    "protocol",
                    f"Real server {', '.join(reencrypted)} has Re-Encrypt to Backend, which "
                    "needs HTTP mode: untick it first.",
                )
        if data.get("fallback_port") and not data.get("fallback_ip"):
            self.add_error("fallback_ip", "Enter the fallback server's address for its port.")
        if data.get("ip") and data.get("ports"):
            self._check_ports_free(data["ip"], data["ports"])
        return data

    def _check_ports_free(self, ip: str, ports: tuple[int, ...]) -> None:
        """No two services of any kind may listen on the same address and port; a service
        with SSL terminations keeps their address, so it cannot move onto their ports."""
        for port in ports:
            used_by = port_user(ip, port, exclude_service=self.instance)
            if used_by:
                self.add_error("ports", f"{ip}:{port} is already used by {used_by}.")
                return
        if self.instance is None:
            return
        for termination in self.instance.ssl_terminations.all():
            if termination.port in ports:
                self.add_error(
                    "ports",
                    f"Port {termination.port} is used by SSL termination {termination.label}.",
                )
                return
            used_by = port_user(
                ip, termination.port, exclude_service=self.instance, exclude_termination=termination
            )
            if used_by:  # the terminations move with the service's address
                self.add_error(
                    "ip",
                    f"SSL termination {termination.label} would listen on {ip}:"
                    f"{termination.port}, which is already used by {used_by}.",
                )
                return

    def values(self) -> dict[str, Any]:
        """Model field values from a valid form (add forms get the protocol's defaults)."""
        data = self.cleaned_data
        values = {
            "label": data["label"],
            "ip": data["ip"],
            "ports": ",".join(str(port) for port in data["ports"]),
            "protocol": data["protocol"],
            "manual_config": data["manual_config"],
        }
        if "balance" not in data:  # the short add form: the service applies the defaults
            return values
        values.update(
            manual_text=(
                "\n".join(allowlists.clean_manual_lines(data["manual_text"]))
                if data["manual_config"]
                else data["manual_text"]
            ),
            balance=Balance(data["balance"]),
            persistence=Persistence(data["persistence"]),
            cookie_name=data["cookie_name"],
            persistence_timeout_s=data["persistence_timeout"],
            health_check=HealthCheck(data["health_check"]),
            check_port=data["check_port"],
            check_interval_ms=data["check_interval"],
            fallback_ip=data["fallback_ip"],
            fallback_port=data["fallback_port"],
        )
        return values


class RealServerForm(forms.Form):
    label = text("Label", help_text="e.g. FE-1")
    ip = text("Real Server IP Address", help_text="e.g. 192.168.10.31")
    port = text("Real Server Port", required=False, help_text="blank: the port the client used")
    reencrypt = forms.BooleanField(label="Re-Encrypt to Backend", required=False)
    weight = text("Weight", help_text="0 to 256")

    def __init__(
        self,
        data: Any = None,
        *,
        virtual_service: VirtualService,
        instance: RealServer | None = None,
    ) -> None:
        self.virtual_service = virtual_service
        self.instance = instance
        initial: dict[str, Any] = {"weight": "100"}
        if instance is not None:
            initial = {
                "label": instance.label,
                "ip": instance.ip,
                "port": instance.port or "",
                "reencrypt": instance.reencrypt,
                "weight": str(instance.weight),
            }
        super().__init__(data, initial=initial)

    def _siblings(self):
        siblings = RealServer.objects.filter(virtual_service=self.virtual_service)
        if self.instance is not None:
            siblings = siblings.exclude(pk=self.instance.pk)
        return siblings

    def clean_label(self) -> str:
        label = allowlists.clean_label(self.cleaned_data["label"])
        if label == "fallback":  # the name of the fallback server in haproxy.cfg
            raise ValidationError("“fallback” is reserved for the fallback server.")
        if self._siblings().filter(label=label).exists():
            raise ValidationError(
                f"{self.virtual_service.label} already has a real server with this label."
            )
        return label

    def clean_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["ip"])

    def clean_port(self) -> int | None:
        return allowlists.clean_optional_port(self.cleaned_data["port"])

    def clean_weight(self) -> int:
        return allowlists.clean_weight(self.cleaned_data["weight"])

    def clean_reencrypt(self) -> bool:
        reencrypt = self.cleaned_data["reencrypt"]
        if reencrypt and self.virtual_service.protocol == L7Protocol.TCP:
            # In TCP mode the client's own TLS passes through: encrypting it again breaks it.
            raise ValidationError(
                "Re-Encrypt to Backend is for HTTP-mode services (behind an SSL termination); "
                "in TCP mode the client's own TLS already reaches the server."
            )
        return reencrypt

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (
            "ip" in data
            and "port" in data
            and self._siblings().filter(ip=data["ip"], port=data["port"]).exists()
        ):
            self.add_error("ip", "This virtual service already has a real server at this address.")
        return data

    def values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("label", "ip", "port", "weight")} | {
            "reencrypt": self.cleaned_data["reencrypt"]
        }


class L7SettingsForm(forms.Form):
    """Configuration > Layer 7 – Advanced Configuration."""

    logging = forms.BooleanField(label="Logging", required=False)
    log_only_errors = forms.BooleanField(label="Log Only Errors", required=False)
    redispatch = forms.BooleanField(label="Redispatch", required=False)
    connect_timeout = text("Connection Timeout", help_text="ms, or with a unit: 4s")
    client_timeout = text("Client Timeout", help_text="ms, or with a unit: 30m")
    server_timeout = text("Real Server Timeout", help_text="ms, or with a unit: 30m")

    def __init__(self, data: Any = None, *, instance: L7Settings) -> None:
        super().__init__(
            data,
            initial={
                "logging": instance.logging,
                "log_only_errors": instance.log_only_errors,
                "redispatch": instance.redispatch,
                "connect_timeout": str(instance.connect_timeout_ms),
                "client_timeout": str(instance.client_timeout_ms),
                "server_timeout": str(instance.server_timeout_ms),
            },
        )

    def clean_connect_timeout(self) -> int:
        return allowlists.clean_duration_ms(self.cleaned_data["connect_timeout"])

    def clean_client_timeout(self) -> int:
        return allowlists.clean_duration_ms(self.cleaned_data["client_timeout"])

    def clean_server_timeout(self) -> int:
        return allowlists.clean_duration_ms(self.cleaned_data["server_timeout"])

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "logging": data["logging"],
            "log_only_errors": data["log_only_errors"],
            "redispatch": data["redispatch"],
            "connect_timeout_ms": data["connect_timeout"],
            "client_timeout_ms": data["client_timeout"],
            "server_timeout_ms": data["server_timeout"],
        }
