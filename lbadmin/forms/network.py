"""Local Configuration forms: every value through an allowlist here, and the whole resulting
configuration through lbadmin.engines.netconfig.validate_network before anything changes."""

import ipaddress
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from lbadmin import allowlists
from lbadmin.forms.l7 import text

INTERFACE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")


def clean_interface(value: str, live_names: list[str]) -> str:
    if not INTERFACE_RE.fullmatch(value) or value not in live_names:
        raise ValidationError("Choose one of this host's interfaces.")
    return value


class AddressForm(forms.Form):
    interface = forms.ChoiceField(label="Interface")
    address = text(
        "Address", help_text="with its prefix length, e.g. 192.168.10.1/24 or 2001:db8::1/64"
    )

    def __init__(self, data: Any = None, *, live_names: list[str]) -> None:
        super().__init__(data)
        self.live_names = live_names
        self.fields["interface"].choices = [(name, name) for name in live_names]

    def clean_address(self) -> str:
        value = self.cleaned_data["address"]
        try:
            address = ipaddress.ip_interface(value)
        except ValueError:
            raise ValidationError(
                "Enter an address with its prefix length, e.g. 192.168.10.1/24."
            ) from None
        if "/" not in value or str(address) != value.lower():
            raise ValidationError(f"Write it as {address} (address/prefix, nothing else).")
        return str(address)


class InterfaceForm(forms.Form):
    interface = forms.ChoiceField(label="Interface")
    mtu = text(
        "MTU", required=False, help_text="68-65535 (1280 or more with IPv6); blank: unchanged"
    )
    up = forms.BooleanField(label="Up", required=False, initial=True)

    def __init__(self, data: Any = None, *, live_names: list[str]) -> None:
        super().__init__(data)
        self.fields["interface"].choices = [(name, name) for name in live_names]

    def clean_mtu(self) -> int | None:
        value = self.cleaned_data["mtu"]
        if not value:
            return None
        return allowlists.clean_whole_number(value, minimum=68, maximum=65535, what="MTU")


class RouteForm(forms.Form):
    destination = text("Destination", help_text='a network, e.g. 192.168.100.0/24, or "default"')
    gateway = text("Gateway", required=False, help_text="e.g. 192.168.20.2")
    interface = forms.ChoiceField(label="Interface", required=False)
    metric = text(
        "Metric",
        required=False,
        help_text="blank: the kernel's default; another one sits beside a route made elsewhere",
    )

    def __init__(self, data: Any = None, *, live_names: list[str]) -> None:
        super().__init__(data)
        self.fields["interface"].choices = [("", "(the gateway's)")] + [
            (name, name) for name in live_names
        ]

    def clean_destination(self) -> str:
        value = self.cleaned_data["destination"]
        if value == "default":
            return value
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValidationError(
                "Enter a network address with its prefix, e.g. 192.168.100.0/24 (no host bits), "
                'or "default".'
            ) from None
        return str(network)

    def clean_metric(self) -> int | None:
        value = self.cleaned_data["metric"]
        if not value:
            return None
        return allowlists.clean_whole_number(value, minimum=0, maximum=999_999_999, what="Metric")

    def clean_gateway(self) -> str:
        value = self.cleaned_data["gateway"]
        return allowlists.clean_ip(value) if value else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("gateway") and not data.get("interface"):
            self.add_error(
                "gateway", "Give a gateway, or an interface for a directly connected route."
            )
        return data


class IdentityForm(forms.Form):
    hostname = text("Hostname", help_text="e.g. lbmaster")
    dns_servers = text("DNS servers", required=False, help_text="up to three, comma-separated")
    search = text("Search domains", required=False, help_text="comma-separated, e.g. example.com")

    def clean_dns_servers(self) -> tuple[str, ...]:
        parts = [p.strip(" ") for p in self.cleaned_data["dns_servers"].split(",") if p.strip(" ")]
        return tuple(allowlists.clean_ip(part) for part in parts)

    def clean_search(self) -> tuple[str, ...]:
        return tuple(p.strip(" ") for p in self.cleaned_data["search"].split(",") if p.strip(" "))
