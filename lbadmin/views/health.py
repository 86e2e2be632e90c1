from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from lbadmin.services.daemons import daemons_status
from lbadmin.services.ha import ha_pair_state
from lbadmin.services.network_state import network_problem


@login_not_required  # read by monitoring and container health checks; reveals only up/down
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = True
    except Exception:
        database = False
    daemons = {name: status.running for name, status in daemons_status().items()}
    body: dict[str, object] = {"database": database, "daemons": daemons}
    status = "ok" if database else "error"  # the WebUI works without daemons: reported only
    pair = ha_pair_state() if database else None
    if pair is not None:
        # Two masters is an outage in the making (clients split between two configurations).
        body["ha"] = {"vrrp_state": pair.local, "peer_answers": pair.peer is not None,
                      "dual_master": pair.dual_master}  # fmt: skip
        if pair.dual_master:
            status = "dual-master"
    problem = network_problem() if database else ""
    if problem:
        # A missing interface or an unfinished revert: the node serves, but not as configured.
        body["network"] = {"problem": problem}
        if status == "ok":
            status = "degraded"
    code = 200 if status in ("ok", "degraded") else 503
    return JsonResponse({"status": status, **body}, status=code)
