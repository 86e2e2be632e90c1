"""Marking the cluster configuration changed: the counter every write bumps, and the daemons
whose configuration the write touched (named in the blue box until the next apply)."""

from collections.abc import Iterable

from django.db.models import F

from lbadmin.models import ConfigState

HAPROXY = "haproxy"
STUNNEL = "stunnel"
KEEPALIVED = "keepalived"  # Layer 4 (IPVS) services; VRRP with the HA pair


def config_changed(engines: Iterable[str] = (HAPROXY,)) -> None:
    """Mark the cluster configuration changed (called inside each write's transaction).
    ``engines``: the daemons whose configuration the write touched; () for changes that only
    the export document sees (say a certificate no termination uses yet)."""
    ConfigState.load()
    state = ConfigState.objects.select_for_update().get(pk=1)  # serialises the writers
    pending = sorted(set(state.pending_engines) | set(engines))
    ConfigState.objects.filter(pk=1).update(generation=F("generation") + 1, pending_engines=pending)
