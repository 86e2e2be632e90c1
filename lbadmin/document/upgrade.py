"""Older documents brought to the version the models describe.

Version 3 keeps version 2's shape, key for key: export, the HA sync, revisions, the renderers
and the wizard all read that shape, and nothing in it is wrong, so a structural change would
cost every reader a change for no new meaning. What changes is what a document means:

- JSON types are exact: 0 and "no" are not booleans, "81" is not a port (version 2's import,
  through the WebUI's forms, read them as the forms' text);
- a field left out takes the WebUI's default (version 2 read a missing boolean as false,
  where the WebUI's redispatch and Layer 4 persistence default to true); a termination's
  label and certificate may be left out too (SSL-<service>, the default certificate);
- a manual service with no lines yet is valid (the WebUI makes one; version 2 refused it);
- a Layer 4 service whose real servers all have weight 0 is refused (version 2 took it and
  its apply failed), as are two real servers sent to one address and port.

The number changes so an appliance that knows only version 2 refuses a version 3 document
instead of reading it by the old rules. Every version 2 export is a valid version 3 document
once its number is changed (tests/document/test_upgrade.py, on real exports).
"""

from __future__ import annotations

from typing import Any

from lbadmin.document.cluster import FORMAT, VERSION


def upgrade(data: Any) -> Any:
    """``data`` as a version-3 document if it is an older version this code knows; anything
    else (another format, an unknown version, not an object) as it is, for document_problems
    to explain. Never changes ``data`` itself, never raises."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return data
    version = data.get("version")
    if type(version) is int and version == 2:
        return _version_2_to_3(data)
    return data


def _version_2_to_3(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "version": VERSION}
