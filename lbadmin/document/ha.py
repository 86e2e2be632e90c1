"""The HA pair's heartbeat: the part of High-Availability Configuration an HA peer shares.
Which node is master, and the node addresses, are per node and never in the document."""

from __future__ import annotations

from pydantic import Field

from lbadmin.document.base import DocumentModel
from lbadmin.document.fields import AdvertIntervalMs


class HaSettings(DocumentModel):
    """VRRPv3 adverts (the backup takes over after about three missed ones) and preemption."""

    advert_interval_ms: AdvertIntervalMs = 100
    preempt: bool = Field(
        False, description="false: a node that comes back does not take the addresses back"
    )
