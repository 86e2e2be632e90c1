"""Two writes checked at the same moment: each form finds the address free, and the second
write to reach the configuration's write lock is refused with the reason, nothing saved."""

import threading

import pytest
from django.db import connection, transaction

from lbadmin.models import VirtualService
from lbadmin.services import l7
from lbadmin.services.ports import AddressTaken

VALUES = {"ip": "127.5.5.5", "ports": "80", "protocol": "http"}


@pytest.mark.django_db(transaction=True)
def test_the_second_of_two_concurrent_writers_is_refused() -> None:
    """Real PostgreSQL, two connections: A holds the write lock with its service written
    but not committed; B (whose form could not see A's row) waits for the lock, then sees A's
    committed service and is refused."""
    b_waiting = threading.Event()
    outcome: dict[str, object] = {}

    def writer_b() -> None:
        try:
            b_waiting.set()
            l7.virtualservice_create(actor=None, values={"label": "B", **VALUES})
            outcome["b"] = "saved"
        except AddressTaken as taken:
            outcome["b"] = taken.problems
        finally:
            connection.close()

    with transaction.atomic():
        l7.virtualservice_create(actor=None, values={"label": "A", **VALUES})  # holds the lock
        thread = threading.Thread(target=writer_b)
        thread.start()
        b_waiting.wait(5)
        thread.join(0.5)
        assert thread.is_alive()  # B is waiting for A's lock
    thread.join(10)
    assert outcome["b"] == [
        "127.5.5.5:80/TCP is taken by both virtual service A and virtual service B: the other "
        "change was saved first; choose another address or port."
    ]
    assert list(VirtualService.objects.values_list("label", flat=True)) == ["A"]


@pytest.mark.django_db
def test_the_page_shows_the_refusal_next_to_the_form(admin, monkeypatch) -> None:
    """The form's own check found the address free (it ran while the other write was not
    committed yet: simulated here, a race cannot be timed through one test client)."""
    VirtualService.objects.create(label="Other", **VALUES)
    monkeypatch.setattr("lbadmin.forms.l7.port_user", lambda *args, **kwargs: None)
    response = admin.post("/lbadmin/cluster/l7/services/add/", {"label": "Mine", **VALUES})
    page = response.content.decode()
    assert response.status_code == 200
    taken = "127.5.5.5:80/TCP is taken by both virtual service Mine and virtual service Other"
    assert taken in page
    assert not VirtualService.objects.filter(label="Mine").exists()
