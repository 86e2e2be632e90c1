"""docs/config-schema.json is what the models say, and says what they check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lbadmin.document.schema import config_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "config-schema.json"


def test_the_schema_file_is_up_to_date() -> None:
    assert SCHEMA.read_text() == schema_text(), (
        "docs/config-schema.json is stale: python -m lbadmin.document.schema > "
        "docs/config-schema.json"
    )


def test_the_command_writes_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lbadmin.document.schema"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert result.stdout == schema_text()
    assert schema_text().endswith("}\n")
    assert schema_text() == schema_text()  # deterministic


def test_the_schema_states_the_rules_it_can() -> None:
    schema = config_schema()
    defs = schema["$defs"]
    assert schema["required"] == ["format", "version"]
    assert schema["properties"]["version"]["const"] == 3
    assert schema["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in defs.values() if "properties" in d)
    service = defs["L7VirtualService"]
    assert service["required"] == ["label", "ip", "ports"]
    assert service["properties"]["label"]["pattern"] == "^(?:[A-Za-z0-9_.:-]{1,64})$"
    ports = service["properties"]["ports"]
    assert (ports["minItems"], ports["maxItems"]) == (1, 64)
    assert (ports["items"]["minimum"], ports["items"]["maximum"]) == (1, 65535)
    assert defs["L7Settings"]["properties"]["redispatch"]["default"] is True
    assert defs["L4VirtualService"]["properties"]["persistence"]["default"] is True
    assert defs["L4VirtualService"]["properties"]["forwarding"]["default"] == "dr"
    assert defs["HaSettings"]["properties"]["advert_interval_ms"]["multipleOf"] == 10
    assert defs["Termination"]["required"] == ["virtual_service", "port"]
    assert json.loads(SCHEMA.read_text())["$schema"].startswith("https://json-schema.org/")
