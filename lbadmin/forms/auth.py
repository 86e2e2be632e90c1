"""Login and password forms."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.db import transaction

from lbadmin.models import AuditEntry, User
from lbadmin.services.audit import audit_record, request_source_ip
from lbadmin.services.auth import login_gate


class LoginForm(AuthenticationForm):
    """Django's login form, behind the throttle: a locked-out attempt never checks a password."""

    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))

    def clean(self) -> dict:
        username = self.cleaned_data.get("username")
        if not (username and self.cleaned_data.get("password")):
            return super().clean()
        source_ip = request_source_ip(self.request) if self.request else None
        refused: forms.ValidationError | None = None
        with transaction.atomic():
            # Attempts on one account run one at a time, so parallel guesses cannot all pass
            # the gate before any of their failures is counted.
            User.objects.select_for_update().filter(username=username).first()
            gate = login_gate(username=username, source_ip=source_ip)
            if not gate.allowed:
                audit_record(
                    action=AuditEntry.Action.LOGIN_REFUSED,
                    username=username,
                    source_ip=source_ip,
                    detail={"reason": gate.reason, "retry_after": gate.retry_after_seconds},
                )
                refused = forms.ValidationError(gate.message, code="locked_out")
            else:
                try:
                    super().clean()  # a failure is recorded (signal) inside this transaction
                except forms.ValidationError as error:
                    refused = error
        if refused is not None:
            raise refused
        return self.cleaned_data


class PasswordForm(PasswordChangeForm):
    """Maintenance > Passwords: old password, new password twice, strength rules."""

    field_order = ["old_password", "new_password1", "new_password2"]
