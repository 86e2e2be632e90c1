"""Frozen snapshots of the cluster configuration: what the pure renderers take as input.

A snapshot is built from the database in one go (lbadmin.services.snapshot) and holds only
values that have already passed the allowlists in lbadmin.validators, so renderers format,
never decide or escape. Renderers never touch the database, files or processes.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class L7Protocol(StrEnum):
    HTTP = "http"  # "HTTP Mode"
    TCP = "tcp"  # "TCP Mode" (the guide's "Other TCP")


class Persistence(StrEnum):
    NONE = "none"
    SOURCE_IP = "source_ip"  # stick table on the client address
    HTTP_COOKIE = "http_cookie"  # inserted cookie (HTTP mode only), e.g. SERVERID, MS-WSMAN


class Balance(StrEnum):
    LEASTCONN = "leastconn"  # the appliance's default: weighted least connections
    ROUNDROBIN = "roundrobin"  # weighted round robin
    SOURCE = "source"  # hash of the client address


class AdminState(StrEnum):
    """What an administrator set on System Overview (survives reloads, restarts, reboots)."""

    ONLINE = "online"
    DRAIN = "drain"  # no new connections; existing ones finish (rendered as weight 0)
    HALT = "halt"  # out of service (rendered as `disabled`)


class HealthCheck(StrEnum):
    CONNECT = "connect"  # TCP connect to the check port (default)
    NONE = "none"  # always considered up


@dataclass(frozen=True)
class L7Globals:
    """Configuration > Layer 7 – Advanced Configuration."""

    logging: bool = False
    log_only_errors: bool = False
    redispatch: bool = True
    connect_timeout_ms: int = 4000
    client_timeout_ms: int = 43000
    server_timeout_ms: int = 45000


@dataclass(frozen=True)
class L7RealServer:
    label: str  # validated label: [A-Za-z0-9_.:-]{1,64}
    ip: str  # canonical text of an ipaddress.IPv4Address / IPv6Address
    port: int | None  # None: the port the client connected to
    weight: int = 100  # 0..256 (0 = no new connections)
    reencrypt: bool = False  # TLS to the backend (`ssl verify none`)
    state: AdminState = AdminState.ONLINE


@dataclass(frozen=True)
class L7Fallback:
    """Served when every real server is down (HAProxy `backup` server)."""

    ip: str
    port: int | None


@dataclass(frozen=True)
class L7VirtualService:
    label: str
    ip: str
    ports: tuple[int, ...]  # sorted, unique, 1..65535
    protocol: L7Protocol = L7Protocol.HTTP
    balance: Balance = Balance.LEASTCONN
    persistence: Persistence = Persistence.NONE
    cookie_name: str = "SERVERID"  # RFC 6265 token; used with HTTP_COOKIE
    persistence_timeout_s: int = 1800  # source-IP stick-table expiry
    health_check: HealthCheck = HealthCheck.CONNECT
    check_port: int | None = None  # None: the real server's port, else the first VIP port
    check_interval_ms: int = 4000
    fallback: L7Fallback | None = None
    # Manual Configuration: these already-validated lines replace the generated body of this
    # service's section (the section header and binds are still generated).
    manual_lines: tuple[str, ...] | None = None
    real_servers: tuple[L7RealServer, ...] = ()
    # Unix sockets the service also listens on, with the PROXY protocol: where the SSL
    # terminations (stunnel) that front this service hand over their decrypted connections.
    proxy_sockets: tuple[str, ...] = ()


@dataclass(frozen=True)
class HaproxySnapshot:
    globals: L7Globals = field(default_factory=L7Globals)
    services: tuple[L7VirtualService, ...] = ()  # sorted by label


class SslMode(StrEnum):
    """SSL Operation Mode of an SSL termination."""

    HIGH_SECURITY = "high_security"  # TLS 1.2+ with forward-secret AEAD ciphers (the default)
    COMPATIBILITY = "compatibility"  # TLS 1.0+ and CBC ciphers, for old clients
    CUSTOM = "custom"  # TLS 1.2+ with the administrator's (validated) cipher list


@dataclass(frozen=True)
class SslTermination:
    """One SSL termination: a stunnel instance of its own (see lbadmin.render.stunnel)."""

    label: str
    instance: str  # ^ssl-[0-9a-f]{12}$, derived from the label (file and socket names)
    ip: str  # the associated virtual service's address
    port: int
    target_socket: str  # the associated service's PROXY-protocol unix socket
    certificate_file: str  # key + certificate + chain, written by the engine (0600)
    mode: SslMode = SslMode.HIGH_SECURITY
    ciphers: str = ""  # CUSTOM only


@dataclass(frozen=True)
class StunnelSnapshot:
    terminations: tuple[SslTermination, ...] = ()  # sorted by label


# --- Layer 4 (keepalived driving IPVS) ----------------------------------------------------------


class L4Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    TCP_UDP = "tcp_udp"  # one IPVS service per protocol, same servers


class Forwarding(StrEnum):
    NAT = "nat"  # the guide's choice for the Lync Edge pools
    DR = "dr"  # direct routing: not supported for Lync (the guide)
    TUNNEL = "tun"  # IP-in-IP tunnel


class Scheduler(StrEnum):
    WLC = "wlc"  # weighted least connections (the default)
    RR = "rr"  # round robin
    WRR = "wrr"  # weighted round robin
    SH = "sh"  # source hashing


class L4HealthCheck(StrEnum):
    CONNECT = "connect"  # connect to the check port (TCP), or a UDP probe for UDP services
    HTTP = "http"  # HTTP GET of check_path, expecting check_status
    HTTPS = "https"  # the same over TLS
    NONE = "none"  # always considered up


@dataclass(frozen=True)
class L4RealServer:
    label: str
    ip: str
    port: int | None  # None: the virtual service's port (required for multi-port services)
    weight: int = 100  # 0..65535 for IPVS; the WebUI allows 0..256 like Layer 7
    min_connections: int = 0  # IPVS lower threshold (0 = none)
    max_connections: int = 0  # IPVS upper threshold (0 = unlimited)
    state: AdminState = AdminState.ONLINE  # drain: weight 0; halt: left out of the service


@dataclass(frozen=True)
class L4VirtualService:
    label: str
    ip: str
    ports: tuple[int, ...]  # sorted, unique (a list or range expanded), 1..65535
    protocol: L4Protocol = L4Protocol.TCP
    forwarding: Forwarding = Forwarding.NAT
    persistence: bool = True
    persistence_timeout_s: int = 300
    scheduler: Scheduler = Scheduler.WLC
    health_check: L4HealthCheck = L4HealthCheck.CONNECT
    check_port: int | None = None  # None: each real server's own port
    check_path: str = "/"  # HTTP/HTTPS checks
    check_status: int = 200  # HTTP/HTTPS checks: the expected status code
    check_interval_s: int = 10
    check_timeout_s: int = 5
    real_servers: tuple[L4RealServer, ...] = ()


@dataclass(frozen=True)
class VrrpInstance:
    """The floating addresses of an HA pair on one interface (keepalived vrrp_instance,
    VRRPv3, unicast to the peer, both nodes start as BACKUP)."""

    name: str  # [A-Za-z0-9_-]{1,32}, e.g. "VI_eth0"
    interface: str  # a real interface name of this node: [A-Za-z0-9_.-]{1,15}
    virtual_router_id: int  # 1..255, the same on both nodes
    priority: int  # 1..254: the master node higher than the slave
    local_ip: str  # this node's address on the interface (unicast_src_ip)
    peer_ip: str  # the other node's address (unicast_peer)
    addresses: tuple[str, ...]  # the floating VIPs, canonical, sorted
    # The interface each address goes on (same length as addresses); empty: all on
    # `interface`. One instance, on the interface of the node addresses, carries the VIPs of
    # every interface: adverts go unicast between the node addresses, so a second instance on
    # another interface would hear no peer and both nodes would take its addresses.
    devices: tuple[str, ...] = ()
    advert_interval_ms: int = 100  # sub-second adverts (VRRPv3 counts centiseconds)
    preempt: bool = False  # a node that comes back does not take the addresses back


@dataclass(frozen=True)
class KeepalivedSnapshot:
    services: tuple[L4VirtualService, ...] = ()  # sorted by label
    router_id: str = "lbadmin"
    vrrp: tuple[VrrpInstance, ...] = ()  # none on a node that is not in a pair
    # (address, device) a standalone node holds without VRRP: the floating addresses it held
    # when its pair was broken (keepalived's static_ipaddress: added at start and reload,
    # removed when it stops). Never together with ``vrrp``.
    static_addresses: tuple[tuple[str, str], ...] = ()
