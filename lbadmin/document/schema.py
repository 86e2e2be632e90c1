"""The JSON Schema of the document, generated from the models: docs/config-schema.json.

    python -m lbadmin.document.schema > docs/config-schema.json

Deterministic (sorted keys, a final newline), so the file in the repository can be compared
with what the models say (tests/document/test_schema.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from lbadmin.document.cluster import VERSION, ClusterConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    schema = ClusterConfig.model_json_schema()
    schema["$schema"] = SCHEMA_DIALECT
    schema["title"] = f"lbadmin cluster configuration, version {VERSION}"
    return schema


def schema_text() -> str:
    return json.dumps(config_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_text())
