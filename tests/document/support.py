"""Shared by the document tests: the version-2 fixtures and the key their private keys are
encrypted under."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

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
