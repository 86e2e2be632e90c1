"""Every problem of a document, as "<json path>: <message>" lines a person can act on."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from lbadmin.document.base import Loc, shown
from lbadmin.document.cluster import ClusterConfig

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# pydantic's own errors (structure and JSON types), said as what the value must be. The value
# types' and the rules' messages (lbadmin.document.fields, the models) are already so.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known key",
    "bool_type": "{value} is not true or false",
    "int_type": "{value} is not a whole number",
    "string_type": "{value} is not text",
    "list_type": "input should be a list",
    "model_type": "input should be an object",
    "model_attributes_type": "input should be an object",
    "dict_type": "input should be an object",
    "enum": "{value} is not one of {expected}",
    "literal_error": "{value} is not {expected}",
    "too_short": "must hold at least {min_length}",
    "too_long": "must hold at most {max_length}",
    "string_too_long": "must be at most {max_length} characters",
    "greater_than_equal": "{value} is less than {ge}",
    "less_than_equal": "{value} is more than {le}",
    "multiple_of": "{value} is not a multiple of {multiple_of}",
}


def document_problems(data: object) -> list[str]:
    """Every problem of a version-3 document given as parsed JSON ([] if it is valid), each as
    "<json path>: <message>" (an object's rules after its fields). Never raises, whatever the
    input.

    Every field of every section is checked in one pass, and every rule that relates objects
    (labels unique, references, addresses) over the objects that are valid themselves: a
    service with a bad port is not compared with the others until its port is fixed, and a
    reference to an invalid object is not reported as missing (lbadmin.document.base).
    """
    try:
        ClusterConfig.model_validate(data)
    except ValidationError as error:
        return [
            f"{json_path(detail['loc'])}: {message(detail)}"
            for detail in error.errors(include_url=False)
        ]
    return []


def json_path(loc: Loc) -> str:
    """("layer7", "virtual_services", 3, "ports", 0) -> layer7.virtual_services[3].ports[0]."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _NAME.fullmatch(part) and len(part) <= 64:
            path += f".{part}" if path else part
        else:  # an unknown key may be anything: quoted, printable and short
            path += f"[{shown(part)}]"
    return path or "document"


def message(detail: ErrorDetails) -> str:
    """The house message of one pydantic error."""
    template = _MESSAGES.get(detail["type"])
    if template is None:
        return detail["msg"]  # the models' own messages, already in the house style
    context: dict[str, Any] = {"value": shown(detail["input"])}
    for key, value in (detail.get("ctx") or {}).items():
        context[key] = value if isinstance(value, int | float) else _plain(str(value))
    try:
        return template.format(**context)
    except (KeyError, IndexError, ValueError):
        return detail["msg"]


def _plain(text: str) -> str:
    """pydantic quotes choices Python-style ('http' or 'tcp'); the document is JSON."""
    return text.replace("'", '"')
