"""Where this appliance keeps the daemons' files: lbadmin.engines.daemons.RuntimeLayout under
settings.LBADMIN_VAR_DIR. The daemons, their configurations and the node's locks all live
there."""

import dataclasses

from django.conf import settings

from lbadmin.engines.daemons import RuntimeLayout, haproxy_account


def runtime_layout() -> RuntimeLayout:
    layout = RuntimeLayout.under(settings.LBADMIN_VAR_DIR)
    return dataclasses.replace(layout, haproxy_account=haproxy_account())
