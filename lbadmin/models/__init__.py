from .audit import AuditEntry
from .certificate import SslCertificate, SslTermination
from .config_state import ConfigRevision, ConfigState
from .ha import HaNode, HaSettings, PeerNonce
from .l4 import L4RealServer, L4VirtualService
from .l7 import L7Settings, RealServer, VirtualService
from .network import HostSettings, NetworkAddress, NetworkInterface, StaticRoute
from .user import User
from .wizard import LyncDeployment

__all__ = [
    "AuditEntry",
    "ConfigRevision",
    "ConfigState",
    "HaNode",
    "HaSettings",
    "HostSettings",
    "L4RealServer",
    "L4VirtualService",
    "L7Settings",
    "LyncDeployment",
    "NetworkAddress",
    "NetworkInterface",
    "PeerNonce",
    "RealServer",
    "SslCertificate",
    "SslTermination",
    "StaticRoute",
    "User",
    "VirtualService",
]
