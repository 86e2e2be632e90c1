from django.conf import settings
from django.core.management.base import BaseCommand

from lbadmin.services.auth import default_user_ensure
from lbadmin.services.certificates import certificate_default_ensure
from lbadmin.services.tls import webui_certificate_ensure


class Command(BaseCommand):
    help = "First-start set-up: the factory user and the WebUI's self-signed TLS certificate."

    def handle(self, *args: object, **options: object) -> None:
        user = default_user_ensure()
        certificate_default_ensure()
        self.stdout.write(f"WebUI user: {user.get_username()}")
        created = webui_certificate_ensure(
            cert_path=settings.LBADMIN_TLS_CERT, key_path=settings.LBADMIN_TLS_KEY
        )
        state = "created" if created else "present"
        self.stdout.write(f"WebUI TLS certificate {state}: {settings.LBADMIN_TLS_CERT}")
