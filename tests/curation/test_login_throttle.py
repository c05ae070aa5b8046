"""Login throttling (django-axes) through the real login form: wrong passwords lock one username
from one address out for a while, with a page that says so; `manage.py axes_reset` unlocks."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from tests.curation.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HERE, ELSEWHERE = "198.51.100.7", "203.0.113.9"


def _login(client: Client, password: str, ip: str = HERE, username: str = "cora"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def _logged_in(client: Client) -> bool:
    return client.get("/inbox/").status_code == 200


def test_it_locks_a_username_out_after_five_wrong_passwords_with_a_clear_page(
    client: Client, curator, settings
) -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        wrong = _login(client, "wrong password")
        assert wrong.status_code == 200 and b"do not match" in wrong.content
    locked = _login(client, "wrong password")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content and b"15 minutes" in locked.content
    right_but_locked = _login(client, PASSWORD)
    assert right_but_locked.status_code == 429 and not _logged_in(client)
    # Per username and address: the same account from elsewhere still logs in.
    assert _login(Client(), PASSWORD, ip=ELSEWHERE).status_code == 302


def test_axes_reset_unlocks(client: Client, curator) -> None:
    for _ in range(5):
        _login(client, "wrong password")
    assert _login(client, PASSWORD).status_code == 429
    call_command("axes_reset")
    answer = _login(client, PASSWORD)
    assert answer.status_code == 302 and _logged_in(client)


def test_a_right_password_resets_the_count(client: Client, curator) -> None:
    for _ in range(4):
        _login(client, "wrong password")
    assert _login(client, PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(4):
        assert _login(client, "wrong password").status_code == 200
    assert _login(client, PASSWORD).status_code == 302


def test_the_admins_login_is_throttled_too(client: Client, admin_user) -> None:
    for _ in range(5):
        client.post("/admin/login/", {"username": "admin", "password": "nope"}, REMOTE_ADDR=HERE)
    answer = client.post(
        "/admin/login/", {"username": "admin", "password": "password"}, REMOTE_ADDR=HERE
    )
    assert answer.status_code == 429
