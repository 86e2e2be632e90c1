"""The Setup Wizard's answers. Servers are entered one per line ("FE-1 192.168.10.31", the
external Edge ones with their external address too); the planner checks every value with the
WebUI's own allowlists."""

from typing import Any

from django import forms

from lbadmin.forms.terminations import usable_certificates
from lbadmin.wizard.lync import (
    DirectorPart,
    EdgePart,
    ExternalEdgePart,
    FrontEndPart,
    LyncAnswers,
    ReverseProxyPart,
    Server,
)


def _lines(label: str, initial: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        initial=initial,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40, "spellcheck": "false"}),
    )


def _text(label: str, initial: str) -> forms.CharField:
    return forms.CharField(label=label, required=False, initial=initial, max_length=100)


class LyncWizardForm(forms.Form):
    version = forms.ChoiceField(label="Lync version", choices=[("2013", "2013"), ("2010", "2010")])
    web_persistence = forms.ChoiceField(
        label="Web services persistence",
        choices=[("none", "None (Lync 2013 only)"), ("cookie", "Cookie (Lync 2010, or mobility)")],
        help_text="Cookie builds the SSL termination on 4443 with the Front End certificate.",
    )
    certificate = forms.ModelChoiceField(
        label="Front End certificate", queryset=None, required=False, to_field_name="label"
    )
    front_end = forms.BooleanField(label="Front End pool", required=False, initial=True)
    fe_vip = _text("Front End pool VIP", "192.168.10.30")
    fe_web_vip = _text("Front End external web services VIP", "192.168.20.30")
    fe_servers = _lines(
        "Front End servers", "FE-1 192.168.10.31\nFE-2 192.168.10.32", "label IP, one per line"
    )
    director = forms.BooleanField(label="Director pool", required=False, initial=True)
    dir_vip = _text("Director pool VIP", "192.168.10.20")
    dir_web_vip = _text("Director external web services VIP", "192.168.20.20")
    dir_servers = _lines("Director servers", "DIR-1 192.168.10.21\nDIR-2 192.168.10.22", "label IP")
    internal_edge = forms.BooleanField(label="Internal Edge", required=False, initial=True)
    edge_vip = _text("Internal Edge VIP", "192.168.10.10")
    edge_servers = _lines(
        "Edge servers",
        "EDGE-1 192.168.100.10 10.20.1.10\nEDGE-2 192.168.100.11 10.20.1.11",
        "label internal-IP external-IP",
    )
    external_edge = forms.BooleanField(label="External Edge", required=False, initial=True)
    access_vip = _text("External Access VIP", "10.25.1.10")
    webconf_vip = _text("External Web Conferencing VIP", "10.25.1.11")
    av_vip = _text("External A/V VIP", "10.25.1.12")
    reverse_proxy = forms.BooleanField(label="Reverse-proxy VIPs", required=False)
    rp_vip = _text("Reverse-proxy VIP", "10.12.1.150")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["certificate"].queryset = usable_certificates()

    @staticmethod
    def _servers(text: str) -> tuple[Server, ...]:
        """One server per line: "label ip [external-ip]". A malformed line becomes a server
        the planner refuses with its own message (an empty address)."""
        servers = []
        for line in text.splitlines():
            words = line.split()
            if not words:
                continue
            if len(words) in (2, 3):
                servers.append(Server(*words))
            else:
                servers.append(Server(label=words[0], ip=" ".join(words[1:])))
        return tuple(servers)

    def answers(self) -> LyncAnswers:
        data = self.cleaned_data
        edge_servers = self._servers(data["edge_servers"])
        return LyncAnswers(
            version=data["version"],
            front_end=FrontEndPart(
                vip=data["fe_vip"], external_web_vip=data["fe_web_vip"],
                servers=self._servers(data["fe_servers"]),
            ) if data["front_end"] else None,
            director=DirectorPart(
                vip=data["dir_vip"], external_web_vip=data["dir_web_vip"],
                servers=self._servers(data["dir_servers"]),
            ) if data["director"] else None,
            internal_edge=EdgePart(
                vip=data["edge_vip"],
                servers=tuple(Server(s.label, s.ip) for s in edge_servers),
            ) if data["internal_edge"] else None,
            external_edge=ExternalEdgePart(
                access_vip=data["access_vip"], webconf_vip=data["webconf_vip"],
                av_vip=data["av_vip"], servers=edge_servers,
            ) if data["external_edge"] else None,
            reverse_proxy=ReverseProxyPart(front_end_vip=data["rp_vip"])
            if data["reverse_proxy"] else None,
            web_persistence=data["web_persistence"],
            certificate_label=data["certificate"].label if data["certificate"] else None,
        )  # fmt: skip
