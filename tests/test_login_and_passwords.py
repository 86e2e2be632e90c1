"""Login with the factory credentials, the default-password guard, Maintenance > Passwords."""

import pytest

from lbadmin.models import AuditEntry, User

pytestmark = pytest.mark.django_db

STRONG = "Corr3ct-Horse-Battery"


def login(client, password: str = "loadbalancer"):
    return client.post("/lbadmin/login/", {"username": "loadbalancer", "password": password})


def test_unauthenticated_pages_redirect_to_login(client) -> None:
    response = client.get("/lbadmin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/lbadmin/login/")


def test_factory_login_is_sent_to_passwords_and_warned_everywhere(client, default_user) -> None:
    response = login(client)
    assert response.status_code == 302
    assert response["Location"] == "/lbadmin/maintenance/passwords/"
    for url in ("/lbadmin/", "/lbadmin/logs/audit/", "/lbadmin/maintenance/passwords/"):
        page = client.get(url).content.decode()
        assert "The default password is still in use." in page, url
    entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN)
    assert entry.actor == default_user
    assert entry.source_ip == "127.0.0.1"


def test_nothing_can_be_saved_while_the_default_password_is_set(client, default_user) -> None:
    login(client)
    response = client.post("/lbadmin/", {"anything": "1"})
    assert response.status_code == 302
    assert response["Location"] == "/lbadmin/maintenance/passwords/"
    page = client.get(response["Location"]).content.decode()
    assert "Nothing was saved: change the default password" in page
    # htmx requests are told where to go rather than given a page.
    response = client.post("/lbadmin/", {}, HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert response["HX-Redirect"] == "/lbadmin/maintenance/passwords/"


def test_changing_the_password_lifts_the_guard(client, default_user) -> None:
    login(client)
    response = client.post(
        "/lbadmin/maintenance/passwords/",
        {"old_password": "loadbalancer", "new_password1": STRONG, "new_password2": STRONG},
    )
    assert response.status_code == 302
    default_user.refresh_from_db()
    assert default_user.check_password(STRONG)
    assert not default_user.must_change_password
    # The session survives the change, and the warning is gone.
    page = client.get("/lbadmin/").content.decode()
    assert "System Overview" in page
    assert "The default password is still in use." not in page
    assert client.post("/lbadmin/", {}).status_code == 405  # reaches the view now
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.PASSWORD_CHANGED, actor=default_user
    ).exists()


@pytest.mark.parametrize(
    ("old", "new1", "new2", "field", "message"),
    [
        ("wrong-old", STRONG, STRONG, "old_password", "old password was entered incorrectly"),
        ("loadbalancer", STRONG, STRONG + "x", "new_password2", "didn’t match"),
        ("loadbalancer", "Sh0rt!", "Sh0rt!", "new_password2", "at least 10 characters"),
        ("loadbalancer", "1234567890123", "1234567890123", "new_password2", "entirely numeric"),
        ("loadbalancer", "password1234", "password1234", "new_password2", "too common"),
        ("loadbalancer", "alllowercaseletters", "alllowercaseletters", "new_password2",
         "at least three of"),
        ("loadbalancer", "loadbalancer", "loadbalancer", "new_password2", "factory default"),
    ],
)  # fmt: skip
def test_weak_or_wrong_passwords_are_refused_next_to_the_field(
    client, default_user, old: str, new1: str, new2: str, field: str, message: str
) -> None:
    login(client)
    before = User.objects.get(pk=default_user.pk).password
    response = client.post(
        "/lbadmin/maintenance/passwords/",
        {"old_password": old, "new_password1": new1, "new_password2": new2},
    )
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert f'id="errors-{field}"' in response.content.decode()
    assert User.objects.get(pk=default_user.pk).password == before


def test_logout_is_post_only_and_recorded(client, default_user) -> None:
    login(client)
    assert client.get("/lbadmin/logout/").status_code == 405
    response = client.post("/lbadmin/logout/")
    assert response.status_code == 302
    assert client.get("/lbadmin/").status_code == 302
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGOUT).count() == 1


def test_default_user_is_created_once(db) -> None:
    from lbadmin.services.auth import default_user_ensure

    first = default_user_ensure()
    assert first.username == "loadbalancer"
    assert first.check_password("loadbalancer")
    assert first.must_change_password
    first.set_password(STRONG)
    first.save()
    again = default_user_ensure()
    assert again.pk == first.pk
    assert again.check_password(STRONG)  # a restart never resets the password
    assert User.objects.count() == 1
