from .audit import AuditEntry
from .user import User

__all__ = ["AuditEntry", "User"]
