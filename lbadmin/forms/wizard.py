"""The Setup Wizard for Lync's steps. Each step's form reads and writes its part of the answers
document (lbadmin.wizard.answers; docs/lync-wizard.md), which the wizard keeps in the session
between steps. Servers are entered one per line ("FE-1 192.168.10.31"); the planner checks
every value with the WebUI's own allowlists, and its messages are shown next to the field
they are about."""

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from lbadmin.forms.certificates import clean_new_label, read_upload
from lbadmin.forms.terminations import usable_certificates
from lbadmin.wizard.answers import answers_from_document
from lbadmin.wizard.lync import InvalidAnswers, validate

PART_NAMES = ("front_end", "director", "internal_edge", "external_edge", "reverse_proxy")

# A new wizard starts from the guide's test environment (its tables' addresses; the second
# server of each pool is ours, as the guide says "repeat … to add your other servers").
GUIDE_DEFAULTS: dict[str, Any] = {
    "version": "2013",
    "web_persistence": "none",
    "certificate": None,
    "front_end": {
        "vip": "192.168.10.30",
        "external_web_vip": "192.168.20.30",
        "servers": [
            {"label": "FE-1", "ip": "192.168.10.31"},
            {"label": "FE-2", "ip": "192.168.10.32"},
        ],
        "fqdns": [],
    },
    "director": {
        "vip": "192.168.10.20",
        "external_web_vip": "192.168.20.20",
        "servers": [
            {"label": "DIR-1", "ip": "192.168.10.21"},
            {"label": "DIR-2", "ip": "192.168.10.22"},
        ],
        "fqdns": [],
    },
    "internal_edge": {
        "vip": "192.168.10.10",
        "servers": [
            {"label": "EDGE-1", "ip": "192.168.100.10"},
            {"label": "EDGE-2", "ip": "192.168.100.11"},
        ],
    },
    "external_edge": {
        "access_vip": "10.25.1.10",
        "webconf_vip": "10.25.1.11",
        "av_vip": "10.25.1.12",
        "servers": [
            {"label": "EDGE-1", "ip": "10.20.1.10", "external_ip": "10.20.1.10"},
            {"label": "EDGE-2", "ip": "10.20.1.11", "external_ip": "10.20.1.11"},
        ],
    },
    "reverse_proxy": None,
}
REVERSE_PROXY_DEFAULT: dict[str, Any] = {
    "front_end_vip": "10.12.1.150",
    "director_vip": None,
    "front_end_servers": [],
    "director_servers": [],
}


def parts_of(document: dict[str, Any]) -> list[str]:
    return [name for name in PART_NAMES if document.get(name) is not None]


# --- Step 1: version and parts ------------------------------------------------------------------


class PartsForm(forms.Form):
    version = forms.ChoiceField(
        label="Lync version", choices=[("2013", "Lync 2013"), ("2010", "Lync 2010")]
    )
    front_end = forms.BooleanField(label="Front End pool (STEP 2)", required=False)
    director = forms.BooleanField(label="Director pool (STEP 3)", required=False)
    internal_edge = forms.BooleanField(label="Internal Edge (STEP 4)", required=False)
    external_edge = forms.BooleanField(label="External Edge (STEP 5)", required=False)
    reverse_proxy = forms.BooleanField(
        label="Reverse-proxy VIPs (Appendix 2)",
        required=False,
        help_text="instead of a reverse proxy: 80 → 8080 and 443 → 4443 on the web services",
    )

    @classmethod
    def initial_from(cls, document: dict[str, Any]) -> dict[str, Any]:
        return {"version": document["version"], **{name: True for name in parts_of(document)}}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not any(data.get(name) for name in PART_NAMES):
            raise ValidationError("Choose at least one part of the deployment.")
        return data

    def update(self, document: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
        """The answers with this step's choices: a part switched on gets its last (or the
        guide's) answers back, a part switched off is dropped."""
        result = dict(document, version=self.cleaned_data["version"])
        for name in PART_NAMES:
            if not self.cleaned_data[name]:
                result[name] = None
            elif result.get(name) is None:
                fallback = GUIDE_DEFAULTS[name] or REVERSE_PROXY_DEFAULT
                result[name] = saved.get(name) or fallback
        return result


# --- Step 2: addresses and servers --------------------------------------------------------------


def _address(label: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(label=label, max_length=64, help_text=help_text, required=True)


def _lines(label: str, help_text: str, required: bool = True) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        help_text=help_text,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 44, "spellcheck": "false"}),
    )


# (part, form field, answers key, label, help)
_ADDRESS_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("front_end", "fe_vip", "vip", "Front End pool VIP", "e.g. 192.168.10.30"),
    ("front_end", "fe_web_vip", "external_web_vip", "Front End external web services VIP", ""),
    ("director", "dir_vip", "vip", "Director pool VIP", "e.g. 192.168.10.20"),
    ("director", "dir_web_vip", "external_web_vip", "Director external web services VIP", ""),
    ("internal_edge", "edge_vip", "vip", "Internal Edge VIP", "e.g. 192.168.10.10"),
    ("external_edge", "access_vip", "access_vip", "External Access Edge VIP", ""),
    ("external_edge", "webconf_vip", "webconf_vip", "External Web Conferencing Edge VIP", ""),
    ("external_edge", "av_vip", "av_vip", "External A/V Edge VIP", ""),
    ("reverse_proxy", "rp_fe_vip", "front_end_vip", "Reverse-proxy VIP for the Front End", ""),
    ("reverse_proxy", "rp_dir_vip", "director_vip", "Reverse-proxy VIP for the Director", ""),
)
# (part, form field, answers key, label, help, required)
_SERVER_FIELDS: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("front_end", "fe_servers", "servers", "Front End servers", "label IP, one per line", True),
    ("director", "dir_servers", "servers", "Director servers", "label IP, one per line", True),
    ("internal_edge", "int_edge_servers", "servers", "Edge servers (internal addresses)",
     "label internal-IP, one per line", True),
    ("external_edge", "ext_edge_servers", "servers", "Edge servers (external addresses)",
     "label Access-IP [Web-Conferencing-IP A/V-IP]: one address for all three, or one each",
     True),
    ("reverse_proxy", "rp_fe_servers", "front_end_servers", "Reverse-proxy Front End servers",
     "leave empty to use the Front End pool's servers", False),
    ("reverse_proxy", "rp_dir_servers", "director_servers", "Reverse-proxy Director servers",
     "leave empty to use the Director pool's servers", False),
)  # fmt: skip
_FQDN_FIELDS = (
    ("front_end", "fe_fqdns", "Front End pool FQDNs"),
    ("director", "dir_fqdns", "Director pool FQDNs"),
)
# Where the planner's messages go: its path prefix ("front_end.servers[1].ip") → field.
_PROBLEM_FIELDS: dict[str, str] = {
    **{f"{part}.{key}": name for part, name, key, _, _ in _ADDRESS_FIELDS},
    **{f"{part}.{key}": name for part, name, key, _, _, _ in _SERVER_FIELDS},
    "front_end.fqdns": "fe_fqdns",
    "director.fqdns": "dir_fqdns",
}
_PATH = re.compile(r"(?P<field>[a-z_]+\.[a-z_]+)(?:\[(?P<index>\d+)\](?:\.(?P<key>[a-z_]+))?)?: ")


def _server_line(server: dict[str, Any], *, external: bool) -> str:
    if external:
        extra = [server.get("external_webconf_ip"), server.get("external_av_ip")]
        words = [server["label"], server.get("external_ip") or "", *[w for w in extra if w]]
    else:
        words = [server["label"], server["ip"]]
    return " ".join(words)


def _servers_from_lines(text: str, *, external: bool) -> list[dict[str, Any]]:
    """One server per line. Malformed lines become servers the planner refuses with a
    message about the line (a missing address, or the extra words as the address)."""
    servers = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        label, addresses = words[0], words[1:]
        if not external:
            servers.append({"label": label, "ip": " ".join(addresses)})
            continue
        server: dict[str, Any] = {"label": label, "ip": addresses[0] if addresses else ""}
        server["external_ip"] = server["ip"]
        if len(addresses) == 3:
            server["external_webconf_ip"], server["external_av_ip"] = addresses[1:]
        elif len(addresses) != 1:
            server["external_ip"] = server["ip"] = " ".join(addresses)
        servers.append(server)
    return servers


class AddressesForm(forms.Form):
    """Step 2: only the fields of the parts chosen at step 1."""

    def __init__(self, *args: Any, document: dict[str, Any], **kwargs: Any) -> None:
        self.document = document
        parts = set(parts_of(document))
        initial = kwargs.pop("initial", None) or self._initial(document)
        super().__init__(*args, initial=initial, **kwargs)
        for part, name, _key, label, help_text in _ADDRESS_FIELDS:
            if part in parts:
                self.fields[name] = _address(label, help_text)
        for part, name, _key, label, help_text, required in _SERVER_FIELDS:
            if part in parts:
                self.fields[name] = _lines(label, help_text, required)
        for part, name, label in _FQDN_FIELDS:
            if part in parts:
                self.fields[name] = forms.CharField(
                    label=label,
                    required=False,
                    max_length=2000,
                    help_text="optional, comma-separated: the post-apply checks say whether "
                    "the certificate covers them",
                )
        if "reverse_proxy" in parts:
            self.fields["rp_fe_vip"].required = False
            self.fields["rp_dir_vip"].required = False
        self._order()

    def _order(self) -> None:
        order = [name for _, name, *_ in (*_ADDRESS_FIELDS, *_SERVER_FIELDS, *_FQDN_FIELDS)]
        by_part = {name: part for part, name, *_ in (*_ADDRESS_FIELDS, *_SERVER_FIELDS)}
        by_part.update({name: part for part, name, _ in _FQDN_FIELDS})
        ranked = sorted(
            self.fields,
            key=lambda name: (PART_NAMES.index(by_part[name]), order.index(name)),
        )
        self.fields = {name: self.fields[name] for name in ranked}

    @staticmethod
    def _initial(document: dict[str, Any]) -> dict[str, Any]:
        initial: dict[str, Any] = {}
        for part, name, key, _, _ in _ADDRESS_FIELDS:
            if document.get(part):
                initial[name] = document[part].get(key) or ""
        for part, name, key, _, _, _ in _SERVER_FIELDS:
            if document.get(part):
                external = part == "external_edge"
                initial[name] = "\n".join(
                    _server_line(server, external=external)
                    for server in document[part].get(key) or []
                )
        for part, name, _ in _FQDN_FIELDS:
            if document.get(part):
                initial[name] = ", ".join(document[part].get("fqdns") or [])
        return initial

    def part_of(self, name: str) -> str:
        for part, field, *_ in (*_ADDRESS_FIELDS, *_SERVER_FIELDS, *_FQDN_FIELDS):
            if field == name:
                return part
        raise KeyError(name)

    def updated_document(self) -> dict[str, Any]:
        """The answers with this step's values (valid or not: the planner judges them)."""
        data = self.cleaned_data
        result = {name: value for name, value in self.document.items()}
        for part in parts_of(self.document):
            result[part] = dict(self.document[part])
        for part, name, key, _, _ in _ADDRESS_FIELDS:
            if name in data:
                result[part][key] = data[name].strip() or None
        for part, name, key, _, _, _ in _SERVER_FIELDS:
            if name in data:
                external = part == "external_edge"
                result[part][key] = _servers_from_lines(data[name], external=external)
        for part, name, _ in _FQDN_FIELDS:
            if name in data:
                result[part]["fqdns"] = [
                    word.strip() for word in data[name].split(",") if word.strip()
                ]
        return result

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        document = self.updated_document()
        # This step's values only: the persistence and certificate come at step 3.
        trial = dict(document, version="2013", web_persistence="none", certificate=None)
        try:
            problems = validate(answers_from_document(trial))
        except InvalidAnswers as invalid:
            problems = invalid.problems
        for problem in problems:
            self._place(problem)
        return data

    def _place(self, problem: str) -> None:
        """Show a planner message next to its field: "front_end.servers[1].ip: …" goes to
        the Front End servers as "line 2 (ip): …"."""
        match = _PATH.match(problem)
        field = _PROBLEM_FIELDS.get(match["field"]) if match else None
        if match is None or field is None or field not in self.fields:
            self.add_error(None, problem)
            return
        message = problem[match.end() :]
        if match["index"] is not None:
            where = f"line {int(match['index']) + 1}"
            if match["key"]:
                where += f" ({match['key'].replace('_', ' ')})"
            message = f"{where}: {message}"
        self.add_error(field, message)


# --- Step 3: web services persistence and the Front End certificate ----------------------------


class PersistenceForm(forms.Form):
    web_persistence = forms.ChoiceField(
        label="Web services persistence",
        widget=forms.RadioSelect,
        choices=[
            ("none", "None (Lync 2013 only)"),
            ("cookie", "Cookie: Lync 2010, or Lync 2013 with mobility"),
        ],
        help_text="Cookie decrypts port 4443 on the load balancer (SSL termination) and "
        "re-encrypts to the servers: it needs the Front End certificate.",
    )
    certificate = forms.ModelChoiceField(
        label="Front End certificate",
        queryset=None,
        required=False,
        to_field_name="label",
        empty_label="(upload one below)",
    )
    certificate_label = forms.CharField(
        label="New certificate label", required=False, max_length=64, initial="Lync-FrontEnd"
    )
    certificate_file = forms.FileField(
        label="Front End certificate (PFX or PEM)", required=False, allow_empty_file=False
    )
    certificate_password = forms.CharField(
        label="PFX password",
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False),
    )

    def __init__(self, *args: Any, version: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = version
        self.fields["certificate"].queryset = usable_certificates()

    def clean_certificate_file(self) -> bytes | None:
        upload = self.cleaned_data["certificate_file"]
        return read_upload(upload) if upload else None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("web_persistence") == "none" and self.version == "2010":
            self.add_error(
                "web_persistence",
                "Lync 2010 web services need cookie persistence (the guide: “If 2010 "
                "front-end servers are used, then cookie persistence is required”).",
            )
        if data.get("web_persistence") != "cookie":
            return data
        if data.get("certificate_file"):
            try:
                data["certificate_label"] = clean_new_label(data.get("certificate_label") or "")
            except ValidationError as error:
                self.add_error("certificate_label", error)
        elif not data.get("certificate"):
            self.add_error(
                "certificate_file",
                "Upload the Front End certificate (PFX with its private key), or choose one.",
            )
        return data
