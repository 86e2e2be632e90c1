from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_http_methods

from lbadmin.forms.auth import LoginForm, PasswordForm
from lbadmin.services.audit import request_source_ip
from lbadmin.services.auth import login_succeeded, password_change


@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "lbadmin/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form: LoginForm) -> HttpResponse:
        login_succeeded(user=form.get_user(), raw_password=form.cleaned_data["password"])
        return super().form_valid(form)

    def get_success_url(self) -> str:
        if self.request.user.must_change_password:
            return reverse("lbadmin:passwords")
        return super().get_success_url()


class LogoutView(auth_views.LogoutView):
    pass


@require_http_methods(["GET", "POST"])
def passwords(request: HttpRequest) -> HttpResponse:
    """Maintenance > Passwords."""
    form = PasswordForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        password_change(
            user=request.user,
            new_password=form.cleaned_data["new_password1"],
            source_ip=request_source_ip(request),
        )
        update_session_auth_hash(request, request.user)
        messages.success(request, "Password changed.")
        return redirect("lbadmin:passwords")
    return render(request, "lbadmin/passwords.html", {"form": form})
