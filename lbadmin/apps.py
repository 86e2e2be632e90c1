from django.apps import AppConfig


class LbadminConfig(AppConfig):
    name = "lbadmin"
    verbose_name = "Load balancer administration"

    def ready(self) -> None:
        # Connects login/logout signals to the audit log.
        from . import signals  # noqa: F401
