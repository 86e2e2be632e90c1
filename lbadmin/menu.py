"""The left-hand menu, modelled on the appliance's. Only entries that work are listed:
each later feature adds its entry here."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MenuItem:
    title: str
    url_name: str


@dataclass(frozen=True)
class MenuSection:
    title: str
    url_name: str | None = None  # a section that is itself a page (System Overview)
    items: tuple[MenuItem, ...] = field(default_factory=tuple)


MENU: tuple[MenuSection, ...] = (
    MenuSection("System Overview", url_name="lbadmin:overview"),
    MenuSection("Setup Wizard for Lync", url_name="lbadmin:wizard_lync"),
    MenuSection(
        "Cluster Configuration",
        items=(
            MenuItem("Layer 4 – Virtual Services", "lbadmin:l4_services"),
            MenuItem("Layer 4 – Real Servers", "lbadmin:l4_servers"),
            MenuItem("Layer 7 – Virtual Services", "lbadmin:l7_services"),
            MenuItem("Layer 7 – Real Servers", "lbadmin:l7_servers"),
            MenuItem("Layer 7 – Advanced Configuration", "lbadmin:l7_advanced"),
            MenuItem("SSL Certificate", "lbadmin:certificates"),
            MenuItem("SSL Termination", "lbadmin:terminations"),
            MenuItem("High-Availability Configuration", "lbadmin:ha"),
        ),
    ),
    MenuSection(
        "Local Configuration",
        items=(
            MenuItem("Hostname & DNS", "lbadmin:network_identity"),
            MenuItem("Network Interface Configuration", "lbadmin:network_interfaces"),
            MenuItem("Routing", "lbadmin:network_routing"),
        ),
    ),
    MenuSection(
        "Maintenance",
        items=(
            MenuItem("Restart Services", "lbadmin:restart_services"),
            MenuItem("Passwords", "lbadmin:passwords"),
        ),
    ),
    MenuSection(
        "View Configuration",
        items=(
            MenuItem("Layer 4 (keepalived.conf)", "lbadmin:view_keepalived"),
            MenuItem("Layer 7 (haproxy.cfg)", "lbadmin:view_haproxy"),
            MenuItem("SSL Termination (stunnel)", "lbadmin:view_stunnel"),
            MenuItem("Pending Changes", "lbadmin:view_pending"),
            MenuItem("Revisions", "lbadmin:view_revisions"),
        ),
    ),
    MenuSection("Reports", items=(MenuItem("Service Status", "lbadmin:service_status"),)),
    MenuSection("Logs", items=(MenuItem("Audit Log", "lbadmin:audit_log"),)),
)
