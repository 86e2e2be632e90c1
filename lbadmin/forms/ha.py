"""Cluster Configuration > High-Availability Configuration: adding the peer."""

from typing import Any

from django import forms

from lbadmin import allowlists
from lbadmin.forms.l7 import text


class PairForm(forms.Form):
    local_ip = text("Local IP address", help_text="this appliance's address the peer can reach")
    peer_ip = text("IP address of new peer", help_text="e.g. 192.168.10.2")
    password = forms.CharField(
        label="Password for loadbalancer user on peer",
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False),
    )

    def clean_local_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["local_ip"])

    def clean_peer_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["peer_ip"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("local_ip") and data.get("local_ip") == data.get("peer_ip"):
            self.add_error("peer_ip", "That is this appliance's own address.")
        return data
