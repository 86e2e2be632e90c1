"""lbadmin.document stays Django-free: it can check a document anywhere (a worker, the peer, a
command line) without settings or a database."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lbadmin" / "document"
FORBIDDEN = ("django", "lbadmin.models", "lbadmin.services", "lbadmin.forms", "lbadmin.views",
             "lbadmin.tasks", "lbadmin.allowlists", "lbadmin.validators")  # fmt: skip


def test_importing_it_loads_no_django() -> None:
    code = (
        "import sys, lbadmin.document, lbadmin.document.schema\n"
        "lbadmin.document.document_problems({})\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_no_module_imports_django_or_the_webui() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.startswith(FORBIDDEN)], (path.name, names)


def test_modules_stay_small() -> None:
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path.name
