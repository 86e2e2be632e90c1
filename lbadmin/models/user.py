from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """An administrator of the appliance's WebUI."""

    # True while the account still has the factory password: nothing can be saved until it
    # is changed (see lbadmin.middleware.DefaultPasswordGuard).
    must_change_password = models.BooleanField(default=False)
    # "Would you like to run the Setup Wizard?" on an empty System Overview: Dismiss is kept.
    setup_wizard_dismissed = models.BooleanField(default=False)

    class Meta:
        db_table = "lbadmin_user"
