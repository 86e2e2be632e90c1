"""An unconfirmed network change is undone by real processes, on real kernel state in a network
namespace (tests/network_support.py): by `manage.py serve`'s timer at the deadline, with the
worker alive or SIGKILLed (serve starts it again), by the node's start when the node died inside
the window, and by a Celery worker's start alone once the deadline has passed. Each time the
confirmed configuration (the address, no route) comes back, in the database and live."""

import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from lbadmin.models import HostSettings
from lbadmin.services import network
from tests.conftest import celery_worker
from tests.network_support import (
    ADDRESS_EDIT,
    NODE_NS,
    ROUTE_EDIT,
    WINDOW_S,
    Serve,
    add_confirmed_address,
    add_unconfirmed_route,
    namespaces,
    node_env,
    route_live,
    wait_confirmed_state,
    wait_for,
    wait_route_gone,
)

# The subprocesses see the rows; real serve and Celery processes.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]
QUEUE = f"lbadmin-rv-revert-{os.getpid()}"
SLACK_S = 10.0  # a functional bound on shared machines, not a speed target
TIMER_SAID = "An unconfirmed network change was undone (its time was up)."


@pytest.fixture
def env(settings, server_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The node namespaces, this process reading them through the services, and the node's
    environment for the processes the test starts."""
    settings.LBADMIN_MANAGE_NETWORK = True
    settings.LBADMIN_NETWORK_NETNS = NODE_NS
    settings.LBADMIN_NETWORK_CONFIRM_SECONDS = WINDOW_S
    with namespaces():
        yield node_env(server_env, queue=QUEUE, var_dir=tmp_path / "var")


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[Serve]:
    """serve running with its worker answering, and the node's address confirmed."""
    with Serve(env, tmp_path / "serve.log") as node:
        node.start()
        add_confirmed_address(QUEUE)
        yield node


def test_the_timer_reverts_at_the_deadline_with_the_worker_alive(serve: Serve) -> None:
    """Proves serve's timer undoes the route once its time is up, not before, and within a
    functional bound, while the worker stays as it was."""
    worker = serve.worker_pid()
    change = add_unconfirmed_route(QUEUE)
    assert WINDOW_S - 2 <= change.window <= WINDOW_S + 0.5, change  # 5 s, not the default

    time.sleep(max(0.0, change.deadline - 1.0 - time.time()))
    checked = time.time()
    assert route_live() or checked >= change.deadline, "the route went a second early"
    seen = wait_route_gone(change.deadline + SLACK_S)
    assert seen.gone >= change.deadline, f"undone {change.deadline - seen.gone:.2f}s early"

    assert wait_confirmed_state() == []
    assert TIMER_SAID in serve.log_text()
    assert serve.worker_pid() == worker and serve.worker_answers()


def test_the_timer_reverts_with_the_worker_killed_and_serve_restarts_it(serve: Serve) -> None:
    """Proves the revert does not depend on the worker: it is SIGKILLed right after the change,
    and every worker serve starts again is killed too until the route is gone, so only serve's
    timer can undo it; then serve brings a new worker up that answers."""
    first = serve.worker_pid()
    assert first is not None
    change = add_unconfirmed_route(QUEUE)
    os.kill(first, signal.SIGKILL)
    killed = {first}

    def kill_restarted_workers() -> None:
        pid = serve.worker_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)

    seen = wait_route_gone(change.deadline + SLACK_S, during=kill_restarted_workers)
    assert seen.gone >= change.deadline, f"undone {change.deadline - seen.gone:.2f}s early"
    assert wait_confirmed_state() == []
    assert TIMER_SAID in serve.log_text()

    serve.wait_ready()
    assert serve.worker_pid() not in killed
    assert "worker exited with status -9: restarting" in serve.log_text()


def test_the_nodes_start_reverts_a_change_left_by_a_dead_node(serve: Serve) -> None:
    """Proves the node's start (network_reapply) undoes an unconfirmed change at once and
    restores the confirmed configuration, not the unconfirmed one: the node dies right after
    the change and its deadline is pushed an hour away, so neither the timer nor a worker's
    start may undo it."""
    add_unconfirmed_route(QUEUE)
    serve.kill()
    assert route_live(), "the dead node's change should still be live"
    HostSettings.objects.update(confirm_until=timezone.now() + timedelta(hours=1))

    started = serve.launch()
    seen = wait_route_gone(started + SLACK_S)
    assert wait_confirmed_state() == []
    assert TIMER_SAID not in serve.log_text()
    serve.wait_ready()
    assert seen.gone - started <= SLACK_S


def test_a_workers_start_alone_reverts_a_change_past_its_deadline(
    env: dict[str, str], server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Proves the worker_ready hook undoes an unconfirmed change whose time is up with no serve
    running. The change is made by the worker's own function (network_edit_apply) in this
    process, then its deadline is put in the past."""
    for edit in (ADDRESS_EDIT, ROUTE_EDIT):
        outcome = network.network_edit_apply(
            edit=edit.to_json(), client_address=None, host_address=None, actor_id=None,
            source_ip=None,
        )  # fmt: skip
        assert outcome["ok"] and outcome["confirm"], outcome
        if edit is ADDRESS_EDIT:
            assert network.network_confirm(actor=None, source_ip=None)
    HostSettings.objects.update(confirm_until=timezone.now() - timedelta(seconds=1))
    assert route_live()

    queue = f"{QUEUE}-bare"
    worker_env = node_env({}, queue=queue, var_dir=Path(env["LBADMIN_VAR_DIR"]))
    with celery_worker(server_env, tmp_path_factory, queue, **worker_env):
        wait_for(lambda: not route_live(), SLACK_S, "the worker's start to undo the route")
        assert wait_confirmed_state() == []
