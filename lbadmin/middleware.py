from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

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
