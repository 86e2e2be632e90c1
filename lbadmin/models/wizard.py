"""What the Setup Wizard for Lync created: one deployment per appliance."""

from django.conf import settings
from django.db import models


class LyncDeployment(models.Model):
    """The wizard's answers and every object it made, as it made it (items of the export
    document, docs/config-format.md). Re-running the wizard changes what differs; an object
    that no longer equals its recorded item was edited by hand since, and is flagged before
    the wizard overwrites it. Local to the node, like the wizard itself."""

    # The answers document (lbadmin.wizard.answers; docs/lync-wizard.md).
    answers = models.JSONField()
    # {"layer7": {label: item}, "terminations": {label: item}, "layer4": {label: item}}
    created_items = models.JSONField()
    # The Layer 7 settings STEP 1 set (the client and server timeouts), and what they were
    # before (restored on removal if unchanged since).
    layer7_settings = models.JSONField()
    layer7_settings_before = models.JSONField()
    # Labels of the certificates the wizard's step uploaded (the Front End PFX, once per
    # re-run that uploads one): deleted with the deployment when nothing else uses them.
    certificates_uploaded = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    def __str__(self) -> str:
        return f"Lync {self.answers.get('version', '?')} deployment"
