from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from lbadmin.models import HaNode

# Requests that must work while the factory password is still set.
_ALLOWED_WITH_DEFAULT_PASSWORD = ("lbadmin:passwords", "lbadmin:logout")


class DefaultPasswordGuard:
    """While the factory password is unchanged, nothing can be saved: every state-changing
    request except changing the password (or logging out) is turned back to Passwords."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and user.is_authenticated
            and user.must_change_password
            and request.path not in {reverse(name) for name in _ALLOWED_WITH_DEFAULT_PASSWORD}
        ):
            messages.error(
                request,
                "Nothing was saved: change the default password before making changes.",
            )
            response = redirect("lbadmin:passwords")
            if getattr(request, "htmx", False):
                response = HttpResponse(status=403, headers={"HX-Redirect": response.url})
            return response
        return self.get_response(request)


class IdleTimeout:
    """Each request from the administrator extends the session by SESSION_COOKIE_AGE; the
    pages' own htmx polling (System Overview's table, the blue box) does not, or a page left
    open would keep its session alive for ever."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        polling = request.method == "GET" and getattr(request, "htmx", False)
        if request.user.is_authenticated and not polling:
            request.session.modified = True  # saved with a fresh expiry
        return response


# What a slave may not change: its cluster configuration comes from the master.
_CLUSTER_CONFIGURATION = (
    "lbadmin:l7_",
    "lbadmin:l4_",
    "lbadmin:certificate",
    "lbadmin:termination",
    "lbadmin:wizard_lync",  # its steps upload certificates, its Create changes everything
)
_CLUSTER_ACTIONS = ("lbadmin:apply", "lbadmin:revision_rollback")


class SlaveReadOnly:
    """On the slave of an HA pair the cluster configuration pages are read-only: every
    change made there would be overwritten by the master's next push."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: object, args: object, kwargs: object):
        if request.method in ("GET", "HEAD", "OPTIONS") or not request.user.is_authenticated:
            return None
        match = request.resolver_match
        name = f"{match.namespace}:{match.url_name}" if match else ""
        if not (name.startswith(_CLUSTER_CONFIGURATION) or name in _CLUSTER_ACTIONS):
            return None
        node = HaNode.load()
        if node.role != HaNode.Role.SLAVE:
            return None
        messages.error(
            request,
            f"Nothing was saved: this appliance is the slave; change the configuration on the "
            f"master {node.peer_ip}.",
        )
        return HttpResponse(
            "This appliance is the slave of a clustered pair: its cluster configuration is "
            f"changed on the master {node.peer_ip}.",
            status=403,
            content_type="text/plain",
        )


# Bounds on a request's body, by who is asking: checked against Content-Length before anything
# (CSRF, the form parser, a view) reads the body, so a large body costs neither memory nor disk.
ANONYMOUS_BODY_BYTES = 16 * 1024  # the login form, the HA pairing request
SIGNED_IN_BODY_BYTES = 1024 * 1024  # forms, certificate and wizard uploads (certificates ≤ 256 KB)
PEER_BODY_BYTES = 16 * 1024 * 1024  # a signed push of the whole configuration to the HA slave
PEER_API_PREFIX = "/lbadmin/api/ha/"
PEER_PAIRING_PATH = "/lbadmin/api/ha/pair/"  # password-checked, so anonymous-sized


def body_limit(request: HttpRequest) -> int:
    """How many body bytes this request may carry."""
    path = request.path
    if path.startswith(PEER_API_PREFIX) and path != PEER_PAIRING_PATH:
        return PEER_BODY_BYTES  # the signature covers the body: the view checks it
    if request.user.is_authenticated:
        return SIGNED_IN_BODY_BYTES
    return ANONYMOUS_BODY_BYTES


class RequestBodyLimit:
    """Refuses a body over its bound (413) from Content-Length alone, before it is read: an
    anonymous request may carry 16 KB, so uploads need a signed-in session. A chunked body
    with no Content-Length is never read by Django. Uploads that pass stay in memory
    (FILE_UPLOAD_MAX_MEMORY_SIZE is above every bound): no request writes to disk."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        if not raw.isascii() or not raw.isdigit():
            return _body_refused(request, 400, "The request's Content-Length is not a number.")
        length, limit = int(raw), body_limit(request)
        if length > limit:
            return _body_refused(
                request, 413, f"The request's body is larger than {limit // 1024} KB."
            )
        return self.get_response(request)


def _body_refused(request: HttpRequest, status: int, message: str) -> HttpResponse:
    # The unread body is gunicorn's to discard as it arrives (never stored) on keep-alive.
    if request.path.startswith(PEER_API_PREFIX):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain")
