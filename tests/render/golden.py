"""Golden-file comparison shared by the renderer tests. UPDATE_GOLDEN=1 rewrites the files
(then review them); otherwise a mismatch fails with a unified diff."""

import difflib
import os
from pathlib import Path

import pytest

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def assert_golden(rendered: str, golden: Path) -> None:
    name = f"{golden.parent.name}/{golden.name}"
    if UPDATE:
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1 and review it"
    expected = golden.read_text()
    if rendered != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                name,
                "rendered",
            )
        )
        pytest.fail(f"rendered config differs from {name}:\n{diff}")
