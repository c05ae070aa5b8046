"""Login throttling in Chromium, through the login page as a person uses it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.curation.conftest import PASSWORD, user_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_person_typing_wrong_passwords_is_told_the_account_is_locked(
    browser: Any, live_server: Any
) -> None:
    user_in("curator", "cora")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    url = live_server.url.rstrip("/") + "/accounts/login/"

    def log_in(password: str) -> None:
        page.goto(url)
        page.fill("input[name=username]", "cora")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()

    for _ in range(4):
        log_in("not the password")
        assert "do not match" in page.inner_text("main")
    log_in("not the password")
    text = page.inner_text("main")
    assert "Too many failed logins" in text and "15 minutes" in text
    log_in(PASSWORD)  # the right password, too late
    assert "Too many failed logins" in page.inner_text("main")
    assert "/inbox/" not in page.url
    context.close()
