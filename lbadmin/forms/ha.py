"""Cluster Configuration > High-Availability Configuration: adding the peer."""

import re
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

    # Step two: the peer's certificate fingerprint, which the administrator compared with
    # the one the peer's own High-Availability page shows.
    peer_fingerprint = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def clean_peer_fingerprint(self) -> str:
        value = self.cleaned_data["peer_fingerprint"]
        if value and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise forms.ValidationError("Not a SHA-256 fingerprint.")
        return value

    def clean_local_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["local_ip"])

    def clean_peer_ip(self) -> str:
        return allowlists.clean_ip(self.cleaned_data["peer_ip"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("local_ip") and data.get("local_ip") == data.get("peer_ip"):
            self.add_error("peer_ip", "That is this appliance's own address.")
        elif (
            data.get("local_ip")
            and data.get("peer_ip")
            and ((":" in data["local_ip"]) != (":" in data["peer_ip"]))
        ):
            self.add_error("peer_ip", "Use an address of the same IP family as the local one.")
        return data


class HaSettingsForm(forms.Form):
    advert_interval = text(
        "Heartbeat interval",
        help_text="ms between VRRP adverts, 10-40950 in steps of 10; the backup takes over "
        "after about three missed ones",
    )
    preempt = forms.BooleanField(
        label="Master takes the floating IPs back when it returns",
        required=False,
        help_text="Off (the default): a node that comes back stays backup, so addresses never "
        "move twice.",
    )

    def clean_advert_interval(self) -> int:
        value = allowlists.clean_whole_number(
            self.cleaned_data["advert_interval"], minimum=10, maximum=40950,
            what="The heartbeat interval",
        )  # fmt: skip
        if value % 10:
            raise forms.ValidationError("Use a multiple of 10 ms (VRRPv3 counts centiseconds).")
        return value

    def values(self) -> dict[str, Any]:
        return {
            "advert_interval_ms": self.cleaned_data["advert_interval"],
            "preempt": self.cleaned_data["preempt"],
        }
