"""The wizard's answers as a JSON document: what ``manage.py lync_wizard --answers FILE``
reads, what the WebUI's steps keep between pages, and what a deployment records. Documented
in docs/lync-wizard.md.

Pure. ``answers_from_document`` checks the shape (known keys, the right types) and says where
anything is wrong; the values themselves are checked by ``lync.validate``.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from lbadmin.allowlists import shown
from lbadmin.wizard.lync import (
    DirectorPart,
    EdgePart,
    ExternalEdgePart,
    FrontEndPart,
    InvalidAnswers,
    LyncAnswers,
    ReverseProxyPart,
    Server,
)

PARTS: dict[str, type] = {
    "front_end": FrontEndPart,
    "director": DirectorPart,
    "internal_edge": EdgePart,
    "external_edge": ExternalEdgePart,
    "reverse_proxy": ReverseProxyPart,
}
_SERVER_LISTS = {"servers", "front_end_servers", "director_servers"}
# Keys a part must give: its addresses are never taken from the guide's lab by omission.
# (fqdns and the reverse proxy's own server lists are optional; its VIPs may be null.)
_REQUIRED: dict[str, tuple[str, ...]] = {
    "front_end": ("vip", "external_web_vip", "servers"),
    "director": ("vip", "external_web_vip", "servers"),
    "internal_edge": ("vip", "servers"),
    "external_edge": ("access_vip", "webconf_vip", "av_vip", "servers"),
    "reverse_proxy": ("front_end_vip", "director_vip"),
}
_TOP_KEYS = {"version", "web_persistence", "certificate", *PARTS}


def answers_to_document(answers: LyncAnswers) -> dict[str, Any]:
    """Plain JSON values; parts not deployed are null. Round-trips through
    answers_from_document."""
    document: dict[str, Any] = {
        "version": answers.version,
        "web_persistence": answers.web_persistence,
        "certificate": answers.certificate_label,
    }
    for name in PARTS:
        part = getattr(answers, name)
        document[name] = None if part is None else _plain(asdict(part))
    return document


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def answers_from_document(document: Any) -> LyncAnswers:
    """The answers of a document; InvalidAnswers lists every shape problem."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise InvalidAnswers(["answers: expected a JSON object."])
    for key in sorted(set(document) - _TOP_KEYS, key=str):
        problems.append(f"{shown(str(key))}: unknown key.")
    parts = {
        name: _part(name, part_type, document.get(name), problems)
        for name, part_type in PARTS.items()
    }
    version = _string("version", document.get("version"), problems)
    persistence = _string("web_persistence", document.get("web_persistence"), problems)
    certificate = document.get("certificate")
    if certificate is not None:
        certificate = _string("certificate", certificate, problems)
    if problems:
        raise InvalidAnswers(problems)
    return LyncAnswers(
        version=version,  # type: ignore[arg-type]  # validate() says if it is not one
        web_persistence=persistence,  # type: ignore[arg-type]
        certificate_label=certificate or None,
        **parts,
    )


def _part(name: str, part_type: type, value: Any, problems: list[str]) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{name}: expected an object, or null when the part is not deployed.")
        return None
    known = {field.name for field in fields(part_type)}
    for key in sorted(set(value) - known, key=str):
        problems.append(f"{name}.{shown(str(key))}: unknown key.")
    for key in _REQUIRED[name]:
        if key not in value:
            problems.append(
                f"{name}.{key}: missing (null for none)."
                if name == "reverse_proxy"
                else f"{name}.{key}: missing."
            )
    values: dict[str, Any] = {}
    for key in [field.name for field in fields(part_type) if field.name in value]:  # in order
        where = f"{name}.{key}"
        if key in _SERVER_LISTS:
            values[key] = _servers(where, value[key], problems)
        elif key == "fqdns":
            values[key] = _strings(where, value[key], problems)
        elif value[key] is None and key.endswith("_vip") and name == "reverse_proxy":
            values[key] = None
        else:
            values[key] = _string(where, value[key], problems)
    return part_type(**values)


def _servers(where: str, value: Any, problems: list[str]) -> tuple[Server, ...]:
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list of servers.")
        return ()
    order = [field.name for field in fields(Server)]  # problems in a stable order
    known = set(order)
    servers = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{at}: expected an object with label and ip.")
            continue
        for key in sorted(set(item) - known, key=str):
            problems.append(f"{at}.{shown(str(key))}: unknown key.")
        values = {}
        for key in order:
            if key in ("label", "ip") or item.get(key) is not None:
                values[key] = _string(f"{at}.{key}", item.get(key), problems)
        servers.append(Server(**values))
    return tuple(servers)


def _strings(where: str, value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list of names.")
        return ()
    return tuple(_string(f"{where}[{index}]", item, problems) for index, item in enumerate(value))


def _string(where: str, value: Any, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{where}: expected a string.")
        return ""
    return value
