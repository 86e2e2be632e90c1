#!/usr/bin/env python3
"""Local Configuration: how long an unconfirmed network change stays live, over its window.

One node (tests/network_support.py's harness: `manage.py serve --components daemons,worker`
managing the namespace lbrv-node, a 5 s window) gets the route 198.51.100.0/24 via 192.0.2.1
from its worker, as the web sends it, and nobody confirms it. For three cases, `--rounds` times
each, it prints the median and max of the revert time (from the change, i.e. the worker's answer,
until the route is gone from the kernel) in seconds and as a ratio of the window (the floor,
measured in the same round as the stored deadline minus the change time):
- worker alive: serve's timer (every 0.5 s) at the deadline; target ≈ 1;
- worker SIGKILLed right after the change: serve's timer still, while serve restarts the worker;
  target ≈ 1;
- serve (the node) SIGKILLed right after the change and started again: its start restores the
  confirmed configuration at once; below 1 when the start takes less than the window.

Its own throw-away SQLite database and filesystem broker under a temp var/ (as bench/ha.py's
nodes: nothing of DATABASE_URL or CELERY_BROKER_URL is used). Needs root. Every loop is bounded
in count and time; leaving (also on an error, Ctrl-C or SIGTERM) kills serve's process group,
deletes the namespaces and the temp directory. Prints figures and asserts nothing about speed;
a round whose revert does not bring the confirmed configuration back stops it with an error.

Usage: make bench   (or .venv/bin/python bench/network_revert.py [--rounds N])
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUEUE = "lbrv-bench"
VAR_DIR = Path(tempfile.mkdtemp(prefix="lbrv-bench", dir="/tmp"))
for _name in [k for k in os.environ if k.startswith(("DATABASE_URL", "CELERY_", "LBADMIN_"))]:
    del os.environ[_name]  # the node's own embedded database and broker, as bench/ha.py's nodes
os.environ.update(
    DJANGO_SETTINGS_MODULE="appliance.settings",
    LBADMIN_MANAGE_NETWORK="1",
    LBADMIN_NETWORK_NETNS="lbrv-node",
    LBADMIN_MANAGE_DAEMONS="0",
    LBADMIN_NETWORK_CONFIRM_SECONDS="5",
    CELERY_TASK_DEFAULT_QUEUE=QUEUE,
    LBADMIN_VAR_DIR=str(VAR_DIR),
    LBADMIN_ETC_DIR=str(VAR_DIR / "etc"),
    LBADMIN_LOG_LEVEL="WARNING",  # not an audit line for each change among the figures
)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from tests.network_support import (  # noqa: E402
    NODE_NS,
    WINDOW_S,
    Change,
    Serve,
    add_confirmed_address,
    add_unconfirmed_route,
    namespaces,
    node_env,
    summary,
    wait_confirmed_state,
    wait_route_gone,
)

SLACK_S = 15.0  # a round whose route is still live this long after its deadline fails
PING_TIMEOUT_S = 2.0  # the filesystem broker polls its folders every second
MAX_ROUNDS = 10


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # the finally blocks clean up, as on Ctrl-C


def _revert(change: Change) -> tuple[float, float]:
    """(seconds from the change until the route is gone, the window) for one round; the
    confirmed configuration must be back (RuntimeError otherwise: the figure would be wrong)."""
    seen = wait_route_gone(change.deadline + SLACK_S, interval=0.02)
    problems = wait_confirmed_state()
    if problems:
        raise RuntimeError(f"the revert did not restore the confirmed configuration: {problems}")
    return seen.gone - change.changed_at, change.window


def worker_alive(serve: Serve) -> tuple[float, float]:
    return _revert(add_unconfirmed_route(QUEUE))


def worker_killed(serve: Serve) -> tuple[float, float]:
    serve.wait_ready()  # the worker the previous round's kill made serve start again
    pid = serve.worker_pid()
    if pid is None:
        raise RuntimeError("serve's worker is not running")
    change = add_unconfirmed_route(QUEUE)
    os.kill(pid, signal.SIGKILL)
    return _revert(change)


def serve_restarted(serve: Serve) -> tuple[float, float]:
    serve.wait_ready()
    change = add_unconfirmed_route(QUEUE)
    serve.kill()
    serve.launch()
    return _revert(change)


CASES = (
    ("worker alive", worker_alive),
    ("worker SIGKILLed right after the change", worker_killed),
    ("serve SIGKILLed and started again inside the window", serve_restarted),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help=f"per case (max {MAX_ROUNDS})")
    parser.add_argument(
        "--budget", type=float, default=90.0, help="seconds per case (at least one round)"
    )
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, MAX_ROUNDS))
    signal.signal(signal.SIGTERM, _stop)
    try:
        call_command("migrate", verbosity=0)
        env = node_env(dict(os.environ), queue=QUEUE, var_dir=VAR_DIR)
        with namespaces(), Serve(env, VAR_DIR / "serve.log", PING_TIMEOUT_S) as serve:
            serve.start()
            add_confirmed_address(QUEUE)
            print(f"unconfirmed route on {NODE_NS}, window {WINDOW_S} s (serve's timer: 0.5 s)")
            for label, case in CASES:
                taken: list[float] = []
                windows: list[float] = []
                began = time.monotonic()
                for _ in range(rounds):
                    took, window = case(serve)
                    taken.append(took)
                    windows.append(window)
                    if time.monotonic() - began > args.budget:
                        break
                ratios = [took / window for took, window in zip(taken, windows, strict=True)]
                (median, longest), (ratio, worst) = summary(taken), summary(ratios)
                print(
                    f"{label}: revert median {median:.2f} s, max {longest:.2f} s over "
                    f"{len(taken)} rounds; window (deadline - change) median "
                    f"{summary(windows)[0]:.2f} s: ratio median {ratio:.2f}, max {worst:.2f}"
                )
    finally:
        shutil.rmtree(VAR_DIR, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
