from .audit import AuditEntry
from .certificate import SslCertificate, SslTermination
from .config_state import ConfigRevision, ConfigState
from .l7 import L7Settings, RealServer, VirtualService
from .user import User

__all__ = [
    "AuditEntry",
    "ConfigRevision",
    "ConfigState",
    "L7Settings",
    "RealServer",
    "SslCertificate",
    "SslTermination",
    "User",
    "VirtualService",
]
