"""Login and password forms."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm

from lbadmin.services.auth import login_attempt


class LoginForm(AuthenticationForm):
    """Django's login form, behind the throttle: a locked-out attempt never checks a password."""

    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))

    def clean(self) -> dict:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not (username and password):
            return super().clean()
        attempt = login_attempt(request=self.request, username=username, password=password)
        if not attempt.gate.allowed:
            raise forms.ValidationError(attempt.gate.message, code="locked_out")
        # The rest as AuthenticationForm.clean(), whose password check login_attempt made.
        self.user_cache = attempt.user
        if self.user_cache is None:
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class PasswordForm(PasswordChangeForm):
    """Maintenance > Passwords: old password, new password twice, strength rules."""

    field_order = ["old_password", "new_password1", "new_password2"]
