"""Password strength rules beyond Django's own (length, common, numeric, similarity)."""

from django.conf import settings
from django.core.exceptions import ValidationError


class CharacterClassValidator:
    """At least three of: lower-case letters, upper-case letters, digits, other characters."""

    required = 3

    def validate(self, password: str, user: object = None) -> None:
        classes = (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
        if sum(classes) < self.required:
            raise ValidationError(self.get_help_text(), code="password_too_simple")

    def get_help_text(self) -> str:
        return (
            "Your password must contain at least three of: lower-case letters, upper-case "
            "letters, digits and symbols."
        )


class NotFactoryDefaultValidator:
    def validate(self, password: str, user: object = None) -> None:
        if password == settings.LBADMIN_DEFAULT_PASSWORD:
            raise ValidationError(
                "Your password cannot be the factory default.", code="password_is_default"
            )

    def get_help_text(self) -> str:
        return "Your password cannot be the factory default."
