"""The cluster configuration document as typed models (pydantic, strict, closed, frozen): what
export writes, import reads, the HA peer receives and the wizard plans. Django-free: it reads
no database and imports only the renderers' own patterns and checks, so every rule a document
must meet is written once and can be checked anywhere.

- ``fields``: every value type, with its bounds, allowlist and message;
- ``layer7``, ``ssl``, ``layer4``, ``ha``, ``cluster``: the models and the rules that relate
  their objects (labels unique, references, one listener per address, port and protocol...);
- ``problems.document_problems``: every problem of raw JSON as "<json path>: <message>";
- ``upgrade.upgrade``: older versions to this one (3);
- ``schema``: docs/config-schema.json.

Rules that lbadmin.allowlists and the WebUI's forms apply and that could not be imported (they
are Django's) are written here once (``fields``, ``values``); the forms should use them.
"""

from lbadmin.document.cluster import FORMAT, VERSION, ClusterConfig
from lbadmin.document.problems import document_problems
from lbadmin.document.upgrade import upgrade

__all__ = ["FORMAT", "VERSION", "ClusterConfig", "document_problems", "upgrade"]
