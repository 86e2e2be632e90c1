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
    MenuSection("Maintenance", items=(MenuItem("Passwords", "lbadmin:passwords"),)),
    MenuSection("Reports", items=(MenuItem("Service Status", "lbadmin:service_status"),)),
    MenuSection("Logs", items=(MenuItem("Audit Log", "lbadmin:audit_log"),)),
)
