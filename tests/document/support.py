"""Shared by the document tests: the version-2 fixtures, the key their private keys are
encrypted under, and small documents."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from lbadmin.document import document_problems, upgrade

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The Fernet key the fixtures' certificate keys are encrypted under (LBADMIN_SECRETS_KEY_FILE
# when they were made): written here, so a test can always decrypt them.
FIXTURE_SECRETS_KEY = base64.urlsafe_b64encode(b"lbadmin document fixtures key 32")
V2_FIXTURES = ("config-v2-guide.json", "config-v2-guide-ssl.json", "config-v2-webui.json")


def v2_fixture(name: str) -> dict[str, Any]:
    """A real version-2 export (tests/document/make_v2_fixtures.py made them)."""
    return json.loads((FIXTURES / name).read_text())


def copied(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)


def upgraded(name: str = "config-v2-guide-ssl.json") -> dict[str, Any]:
    """A fixture as a version-3 document (a fresh copy each time, to change freely)."""
    return copied(upgrade(v2_fixture(name)))


def minimal(**sections: Any) -> dict[str, Any]:
    """A version-3 document with only what is given."""
    return {"format": "lbadmin-cluster-config", "version": 3, **sections}


def l7_service(label: str, ip: str, ports: list[int], **fields: Any) -> dict[str, Any]:
    return {"label": label, "ip": ip, "ports": ports, **fields}


def l4_service(label: str, ip: str, ports: list[int], **fields: Any) -> dict[str, Any]:
    return {"label": label, "ip": ip, "ports": ports, **fields}


def problems(document: Any) -> list[str]:
    """document_problems, checked to be a list of "<path>: <message>" lines."""
    found = document_problems(document)
    assert isinstance(found, list)
    assert all(isinstance(line, str) and ": " in line for line in found), found
    return found
