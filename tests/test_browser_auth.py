"""What an administrator does in the browser: log in, change the password, log out, get locked
out. Real Chromium, real gunicorn over HTTPS, real PostgreSQL."""

import re

import pytest
from playwright.sync_api import Page, expect

from lbadmin.models import AuditEntry, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "Vip-Health-2013!"


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/lbadmin/")
    expect(page).to_have_url(re.compile(r"/lbadmin/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_default_login_forces_password_change_then_logout(page: Page) -> None:
    log_in(page, "loadbalancer", "loadbalancer")
    # Forced to Maintenance > Passwords, with the warning on the page.
    expect(page).to_have_url(re.compile(r"/lbadmin/maintenance/passwords/$"))
    expect(page.locator("#default-password-warning")).to_be_visible()
    expect(page.locator("header")).to_contain_text("loadbalancer")
    # The warning follows the administrator to every page.
    page.click("nav >> text=System Overview")
    expect(page.locator("#default-password-warning")).to_be_visible()
    expect(page.locator("main")).to_contain_text("No Virtual Services configured.")
    page.click("nav >> text=Passwords")

    # A weak password is refused next to its field.
    page.fill("#id_old_password", "loadbalancer")
    page.fill("#id_new_password1", "short")
    page.fill("#id_new_password2", "short")
    page.click("#update")
    expect(page.locator("#errors-new_password2")).to_contain_text("at least 10 characters")

    page.fill("#id_old_password", "loadbalancer")
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("#update")
    expect(page.locator(".message.success")).to_have_text("Password changed.")
    expect(page.locator("#default-password-warning")).to_have_count(0)
    assert not User.objects.get(username="loadbalancer").must_change_password

    page.click("text=Logout")
    expect(page).to_have_url(re.compile(r"/lbadmin/login/"))
    page.goto("/lbadmin/")
    expect(page).to_have_url(re.compile(r"/lbadmin/login/"))

    # The new password works and lands on System Overview, with no warning.
    log_in(page, "loadbalancer", NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/lbadmin/$"))
    expect(page.locator("h1")).to_have_text("System Overview")
    expect(page.locator("#default-password-warning")).to_have_count(0)
    actions = list(AuditEntry.objects.order_by("at").values_list("action", flat=True))
    assert actions == ["login", "password_changed", "logout", "login"]


def test_repeated_bad_passwords_lock_the_account(page: Page) -> None:
    errors = page.locator("#login-errors")
    # Bad passwords: after a few the form throttles (wait N seconds), then it locks.
    for _ in range(12):
        log_in(page, "loadbalancer", "not-the-password")
        expect(errors).to_be_visible()
        text = errors.inner_text()
        if "locked" in text:
            break
        wait = re.search(r"Try again in (\d+) second", text)
        if wait:
            page.wait_for_timeout(int(wait.group(1)) * 1000 + 100)
    else:
        pytest.fail("the account never locked")
    # Now even the right password is refused, with a clear message.
    log_in(page, "loadbalancer", "loadbalancer")
    expect(errors).to_contain_text("This account is locked after too many failed logins.")
    expect(page).to_have_url(re.compile(r"/lbadmin/login/"))
    assert AuditEntry.objects.filter(action="login_failed").count() == 5
    assert AuditEntry.objects.filter(action="login_refused").count() >= 2
    assert not AuditEntry.objects.filter(action="login").exists()
