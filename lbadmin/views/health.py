from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from lbadmin.services.daemons import daemons_status


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
    healthy = database  # the WebUI works without daemons; they are reported, not required
    return JsonResponse(
        {"status": "ok" if healthy else "error", "database": database, "daemons": daemons},
        status=200 if healthy else 503,
    )
