"""A real Celery worker, on Redis, runs the appliance's tasks."""

import pytest

from lbadmin.tasks import daemons_status_report

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def test_worker_reports_the_nodes_daemons(celery_worker_process) -> None:
    result = daemons_status_report.delay()
    report = result.get(timeout=20)
    assert set(report) == {"haproxy", "stunnel", "keepalived"}
    for status in report.values():
        assert isinstance(status["running"], bool)
        assert isinstance(status["detail"], str)
    assert celery_worker_process.poll() is None
