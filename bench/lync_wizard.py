#!/usr/bin/env python3
"""Setup Wizard for Lync benchmarks: what the wizard costs beyond the work it cannot avoid.

1. Preview (plan, changes, conflicts, configuration diff) ÷ one render of the configuration
   (`render_current`, which the View Configuration page does): the preview exports, plans and
   renders before and after, so ~2–3 is its floor.
2. Create (wizard_apply up to the queued apply: preview, validation, config_merge of the
   wizard's objects, the deployment record) ÷ `config_import` of the same resulting document
   (the whole-configuration import the wizard does not need: it writes only its own objects).
3. Remove ÷ `config_import` of the document without the deployment.

Each with the appliance otherwise empty and beside 1,000 other services × 10 servers: the
writes follow the deployment's size; only the preview (export, render before and after)
follows the configuration's. The database is a throw-away SQLite file
unless DATABASE_URL is set; the queued applies are never run. Prints figures; asserts nothing.

Usage: .venv/bin/python bench/lync_wizard.py [--rounds N]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_VAR = Path(tempfile.mkdtemp(prefix="lbw", dir="/tmp"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")
os.environ["LBADMIN_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.l7 import generated_document  # noqa: E402
from lbadmin.services.config import config_export, config_import, render_current  # noqa: E402
from lbadmin.services.wizard import wizard_apply, wizard_preview, wizard_remove  # noqa: E402
from lbadmin.wizard.answers import answers_from_document  # noqa: E402

GUIDE = ROOT / "docs" / "examples" / "lync-2013-guide.json"


def median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(label: str, rounds: int) -> None:
    answers = answers_from_document(json.loads(GUIDE.read_text()))
    preview_ms = median_ms(lambda: wizard_preview(answers), rounds)
    render_ms = median_ms(render_current, rounds)
    create, create_floor, remove, remove_floor = [], [], [], []
    for _ in range(rounds):
        without = config_export()
        started = time.perf_counter()
        wizard_apply(actor=None, answers=answers)
        create.append((time.perf_counter() - started) * 1000)
        with_deployment = config_export()
        started = time.perf_counter()
        wizard_remove(actor=None)
        remove.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        config_import(actor=None, document=with_deployment, keep_other_certificates=True)
        create_floor.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        config_import(actor=None, document=without, keep_other_certificates=True)
        remove_floor.append((time.perf_counter() - started) * 1000)
    create_ms, create_floor_ms = statistics.median(create), statistics.median(create_floor)
    remove_ms, remove_floor_ms = statistics.median(remove), statistics.median(remove_floor)
    print(f"{label}:")
    print(
        f"  preview {preview_ms:8.1f} ms ÷ render_current {render_ms:8.1f} ms "
        f"= {preview_ms / render_ms:5.2f}"
    )
    print(
        f"  create  {create_ms:8.1f} ms ÷ config_import {create_floor_ms:8.1f} ms "
        f"= {create_ms / create_floor_ms:5.2f}"
    )
    print(
        f"  remove  {remove_ms:8.1f} ms ÷ config_import {remove_floor_ms:8.1f} ms "
        f"= {remove_ms / remove_floor_ms:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    measure("Lync 2013 guide deployment, nothing else configured", args.rounds)
    config_import(actor=None, document=generated_document(1000, 10))
    measure("Lync 2013 guide deployment beside 1,000 services × 10 servers", args.rounds)


if __name__ == "__main__":
    main()
