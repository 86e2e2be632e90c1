"""The Setup Wizard for Lync in the browser, whole: from System Overview's first-run prompt
through the four steps (a bad answer refused next to its field, Back keeping the answers), the
preview, Create and apply on a real Celery worker with HAProxy and keepalived on loopback, then
changing the deployment (a third Front End server) and removing it."""

import re
import socket
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from lbadmin.services.daemons import daemons_stop
from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.daemons, pytest.mark.django_db(transaction=True)]

PASSWORD = "Lync-Setup-Wizard-2013"
APPLY_TIMEOUT = 30_000  # ms: an apply takes a second or two; the worker may be cold
PROGRESS_URL = re.compile(r"/lbadmin/wizard/lync/progress/(\d+)/$")

# Everything on loopback, so that the real apply can bind the VIPs.
ADDRESSES = {
    "#id_fe_vip": "127.10.10.30",
    "#id_fe_web_vip": "127.10.20.30",
    "#id_fe_servers": "FE-1 127.10.10.31\nFE-2 127.10.10.32",
    "#id_fe_fqdns": "pool1.robtest.com",
    "#id_dir_vip": "127.10.10.20",
    "#id_dir_web_vip": "127.10.20.20",
    "#id_dir_servers": "DIR-1 127.10.10.21\nDIR-2 127.10.10.22",
    "#id_edge_vip": "127.10.10.10",
    "#id_int_edge_servers": "EDGE-1 127.10.100.10\nEDGE-2 127.10.100.11",
    "#id_rp_fe_vip": "127.10.30.150",
    "#id_rp_dir_vip": "",
    "#id_rp_fe_servers": "",
    "#id_rp_dir_servers": "",
}
LAYER7 = (
    "FrontEndPool",
    "FePoolExtWebSvcs8080",
    "FePoolExtWebSvcs4443",
    "DirectorPool",
    "DirPoolExtWebSvcs8080",
    "DirPoolExtWebSvcs4443",
    "ReverseProxyFE-http",
    "ReverseProxyFE-https",
)
LAYER4 = ("IntEdgeAccess5061", "IntEdgeWebConf8057", "IntEdgeAv443", "IntEdgeAv3478")


@pytest.fixture
def signed_in(page: Page, celery_worker_process) -> Iterator[Page]:
    """Signed in with the factory password changed (so saving is allowed); whatever daemons
    the applies started in the test var dir are stopped afterwards."""
    sign_in(page, PASSWORD)
    try:
        yield page
    finally:
        daemons_stop()


def current_step(page: Page, title: str) -> None:
    expect(page.locator("#wizard-steps li.current")).to_contain_text(title)


def change_row(page: Page, label: str):
    return page.locator(f'#wizard-changes tr[data-label="{label}"]')


def listening(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=2).close()
    except OSError:
        return False
    return True


def applied(page: Page) -> None:
    """On the progress page: the blue box follows this revision's apply until it runs."""
    match = PROGRESS_URL.search(page.url)
    assert match, page.url
    result = page.locator("#apply-result")
    expect(result).to_contain_text("The new configuration is running", timeout=APPLY_TIMEOUT)
    expect(result).to_contain_text(f"(revision {match[1]})")
    expect(result).not_to_have_class(re.compile(r"\bfailed\b"))


def test_the_whole_wizard_create_change_and_remove(signed_in: Page) -> None:
    page = signed_in

    # System Overview offers the wizard on a fresh appliance; Accept starts at step 1.
    expect(page.locator("#setup-wizard-prompt")).to_contain_text("Setup Wizard")
    page.click("#wizard-accept")
    expect(page).to_have_url(re.compile(r"/lbadmin/wizard/lync/(step/1/)?$"))
    current_step(page, "Version and parts")
    expect(page.locator("#wizard-editing")).to_have_count(0)

    # Step 1: Lync 2013; Front End, Director, internal Edge and the reverse-proxy VIPs.
    page.select_option("#id_version", "2013")
    page.check("#id_front_end")
    page.check("#id_director")
    page.check("#id_internal_edge")
    page.uncheck("#id_external_edge")
    page.check("#id_reverse_proxy")
    page.click("#wizard-next")
    current_step(page, "Addresses and servers")
    expect(page.locator("#id_access_vip")).to_have_count(0)  # external Edge is off
    expect(page.locator("#id_rp_fe_vip")).to_be_visible()

    # Step 2: a bad server line is refused next to its field; the other answers stay.
    for selector, value in ADDRESSES.items():
        page.fill(selector, value)
    page.fill("#id_fe_servers", "FE-1 127.10.10.31\nFE-2 127.10.10.32; reboot")
    page.click("#wizard-next")
    current_step(page, "Addresses and servers")
    expect(page.locator("#errors-fe_servers")).to_contain_text("line 2 (ip)")
    expect(page.locator("#id_fe_servers")).to_have_value(
        "FE-1 127.10.10.31\nFE-2 127.10.10.32; reboot"
    )
    expect(page.locator("#id_dir_servers")).to_have_value(ADDRESSES["#id_dir_servers"])
    expect(page.locator("#id_rp_fe_vip")).to_have_value("127.10.30.150")
    page.fill("#id_fe_servers", ADDRESSES["#id_fe_servers"])
    page.click("#wizard-next")

    # Step 3, then Back: step 2 still holds the answers.
    current_step(page, "Web services persistence")
    page.click("#wizard-back")
    current_step(page, "Addresses and servers")
    expect(page.locator("#errors-fe_servers")).to_have_count(0)
    for selector, value in ADDRESSES.items():
        expect(page.locator(selector)).to_have_value(value)
    page.click("#wizard-next")

    # Step 3: no persistence (Lync 2013).
    current_step(page, "Web services persistence")
    page.check("input[name=web_persistence][value=none]")
    page.click("#wizard-next")

    # Step 4: the preview lists the services, what is created, and the configuration diff.
    current_step(page, "Preview")
    expect(page.locator("#wizard-problems")).to_have_count(0)
    expect(page.locator("#wizard-conflicts")).to_have_count(0)
    l7_rows = page.locator("#wizard-l7 tbody tr")
    expect(l7_rows).to_have_count(len(LAYER7))
    for label in LAYER7:
        expect(l7_rows.filter(has_text=label).first).to_be_visible()
    front_end_cells = l7_rows.filter(has_text="FrontEndPool").locator("td")
    expect(front_end_cells.nth(1)).to_have_text("127.10.10.30")
    expect(front_end_cells.nth(2)).to_have_text("135,443,444,5061,5065,5069")
    expect(l7_rows.filter(has_text="ReverseProxyFE-https")).to_contain_text(
        "FE-2 127.10.10.32:4443"
    )
    for label in LAYER4:
        expect(page.locator("#wizard-l4")).to_contain_text(label)
    for label in (*LAYER7, *LAYER4):
        expect(change_row(page, label)).to_contain_text("create")
    expect(page.locator("#wizard-diff")).to_contain_text("+listen FrontEndPool")
    expect(page.locator("#wizard-diff")).to_contain_text("+listen ReverseProxyFE-http")
    expect(page.locator("#wizard-create")).to_have_text("Create and apply")

    # Pre-flight, on request: nothing answers on the servers' loopback addresses yet, and the
    # virtual services are not probed (they do not exist).
    page.click("#wizard-run-preflight")
    preflight = page.locator("#wizard-preflight #checks")
    expect(preflight).to_contain_text("DirectorPool → DIR-1 127.10.10.21")
    expect(preflight).not_to_contain_text("Virtual services listening")
    expect(preflight.locator("tr", has_text="DirectorPool → DIR-1")).to_contain_text("FAILED")

    # Create and apply: the blue box follows the apply on the worker until it runs.
    page.click("#wizard-create")
    expect(page).to_have_url(PROGRESS_URL)
    expect(page.locator("#wizard-progress")).to_contain_text("The deployment is saved.")
    applied(page)
    expect(page.locator("#pending-box")).to_have_count(0)
    # HAProxy runs it: the VIPs on loopback accept connections.
    assert listening("127.10.10.30", 5061) and listening("127.10.30.150", 80)

    # The post-apply checks, from the progress page: HAProxy listens on every Layer 7 VIP
    # port; DIR-1 answers once a server runs on its address.
    with socket.create_server(("127.10.10.21", 5061)) as director:
        director.listen()
        page.click("#wizard-run-checks")
        checks = page.locator("#checks")
        vip = checks.locator("tr", has_text="FrontEndPool 127.10.10.30:5061")
        expect(vip).to_contain_text("OK")
        expect(checks.locator("tr", has_text="DirectorPool → DIR-1")).to_contain_text("OK")
        expect(checks.locator("tr", has_text="DirectorPool → DIR-2")).to_contain_text("FAILED")
    expect(page.locator("#checks-summary")).to_contain_text("checks passed")

    # System Overview lists the services the wizard made.
    page.click("nav >> text=System Overview")
    expect(page.locator("h1")).to_have_text("System Overview")
    overview = page.locator("#overview-table")
    for label in (*LAYER7, *LAYER4):
        expect(overview).to_contain_text(label)
    expect(page.locator("#setup-wizard-prompt")).to_have_count(0)

    # The wizard's page now shows the deployment; changing it starts from its answers.
    page.click("nav >> text=Setup Wizard for Lync")
    expect(page).to_have_url(re.compile(r"/lbadmin/wizard/lync/$"))
    deployment = page.locator("#wizard-deployment")
    expect(deployment).to_contain_text("A Lync 2013 deployment made by the wizard")
    expect(change_row(page, "FrontEndPool")).to_contain_text("keep")
    page.click("#wizard-change")
    current_step(page, "Version and parts")
    expect(page.locator("#wizard-editing")).to_be_visible()
    expect(page.locator("#id_version")).to_have_value("2013")
    for part in ("front_end", "director", "internal_edge", "reverse_proxy"):
        expect(page.locator(f"#id_{part}")).to_be_checked()
    expect(page.locator("#id_external_edge")).not_to_be_checked()
    page.click("#wizard-next")

    current_step(page, "Addresses and servers")
    fe_servers = page.locator("#id_fe_servers")
    expect(fe_servers).to_have_value(re.compile(r"^FE-2 127\.10\.10\.32$", re.MULTILINE))
    expect(page.locator("#id_rp_fe_vip")).to_have_value("127.10.30.150")
    page.fill("#id_fe_servers", ADDRESSES["#id_fe_servers"] + "\nFE-3 127.10.10.33")
    page.click("#wizard-next")
    current_step(page, "Web services persistence")
    expect(page.locator("input[name=web_persistence][value=none]")).to_be_checked()
    page.click("#wizard-next")

    # The preview changes the Front End services only.
    current_step(page, "Preview")
    for label in ("FrontEndPool", "FePoolExtWebSvcs8080", "ReverseProxyFE-http"):
        expect(change_row(page, label).locator("td").nth(2)).to_have_text("change")
    for label in ("DirectorPool", "IntEdgeAccess5061"):
        expect(change_row(page, label).locator("td").nth(2)).to_have_text("keep")
    expect(page.locator("#wizard-diff")).to_contain_text(
        re.compile(r"^\+\s*server FE-3 127\.10\.10\.33", re.MULTILINE)
    )
    expect(page.locator("#wizard-diff")).not_to_contain_text("+listen FrontEndPool")
    expect(page.locator("#wizard-create")).to_have_text("Apply the changes")
    page.click("#wizard-create")
    expect(page).to_have_url(PROGRESS_URL)
    applied(page)

    page.click("nav >> text=System Overview")
    row = page.locator("#overview-table tbody.service").filter(has_text="FrontEndPool")
    row.locator("button.toggle").click()
    expect(row).to_contain_text("FE-3")

    # Remove the deployment: what goes is shown, then removed and applied.
    page.click("nav >> text=Setup Wizard for Lync")
    page.click("#wizard-remove-link")
    expect(page.locator("h1")).to_have_text("Remove the Lync deployment")
    for label in (*LAYER7, *LAYER4):
        expect(change_row(page, label).locator("td").nth(2)).to_have_text("remove")
    expect(page.locator("#wizard-diff")).to_contain_text("-listen FrontEndPool")
    page.click("#wizard-remove")
    expect(page).to_have_url(PROGRESS_URL)
    expect(page.locator("#wizard-progress")).to_contain_text("The deployment was removed.")
    applied(page)
    assert not listening("127.10.10.30", 5061) and not listening("127.10.30.150", 80)

    page.click("nav >> text=System Overview")
    expect(page.locator("h1")).to_have_text("System Overview")
    # No service left: the first-run prompt is back, and none of the wizard's services.
    expect(page.locator("#setup-wizard-prompt")).to_be_visible()
    overview = page.locator("#overview-table")
    expect(overview).to_be_visible()
    for label in (*LAYER7, *LAYER4):
        expect(overview).not_to_contain_text(label)
    page.click("nav >> text=Setup Wizard for Lync")
    expect(page).to_have_url(re.compile(r"/lbadmin/wizard/lync/(step/1/)?$"))
    expect(page.locator("#wizard-editing")).to_have_count(0)
