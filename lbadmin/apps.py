from django.apps import AppConfig


class LbadminConfig(AppConfig):
    name = "lbadmin"
    verbose_name = "Load balancer administration"

    def ready(self) -> None:
        # Imported here, not at the top: both import the models, which load after this module.
        from . import (
            signals,  # noqa: F401  connects login/logout signals to the audit log
            tasks,  # noqa: F401  registers the tasks the services enqueue (services.jobs)
        )
