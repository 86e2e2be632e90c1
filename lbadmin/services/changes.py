"""Marking the cluster configuration changed: the counter every write bumps, and the daemons
whose configuration the write touched (named in the blue box until the next apply)."""

from collections.abc import Iterable

from django.db.models import F

from lbadmin.models import ConfigState
from lbadmin.services.ports import AddressTaken, address_collisions

HAPROXY = "haproxy"
STUNNEL = "stunnel"
KEEPALIVED = "keepalived"  # Layer 4 (IPVS) services; VRRP with the HA pair


def config_write_lock() -> ConfigState:
    """Hold the configuration's write lock until the transaction ends (call inside
    transaction.atomic): the writers are serialised on the ConfigState row."""
    ConfigState.load()
    return ConfigState.objects.select_for_update().get(pk=1)


def config_changed(engines: Iterable[str] = (HAPROXY,)) -> None:
    """Mark the cluster configuration changed (called inside each write's transaction).
    ``engines``: the daemons whose configuration the write touched; () for changes that only
    the export document sees (say a certificate no termination uses yet)."""
    engines = tuple(engines)
    state = config_write_lock()
    if engines:
        # The forms check addresses before this lock: two writes checked at the same moment
        # both pass, and the second one to get here sees the first one's service.
        collisions = address_collisions()
        if collisions:
            raise AddressTaken(collisions)
    pending = sorted(set(state.pending_engines) | set(engines))
    ConfigState.objects.filter(pk=1).update(generation=F("generation") + 1, pending_engines=pending)
