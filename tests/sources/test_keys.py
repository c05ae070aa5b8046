"""Sources and their keys: created by command (keys printed once), stored only as hashes,
revoked and rotated by command or in the admin."""

from __future__ import annotations

import hashlib
import json
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from apps.feedback.models import Event
from apps.sources.models import ApiKey, Source
from tests.conftest import Api, rating


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _create(name: str, *extra: str) -> dict[str, str]:
    return json.loads(_run("create_source", name, "--json", *extra))


def _ingests(client: Client, key: str, **headers: str) -> int:
    return Api(client, key).post(rating(id=f"probe-{key[:12]}"), **headers).status_code


# --- create_source ---------------------------------------------------------------------------------


def test_create_source_json_prints_the_name_and_both_keys_once(db: Any) -> None:
    printed = _create("open-webui-prod")

    assert set(printed) == {"name", "secret_key", "publishable_key"}
    assert printed["name"] == "open-webui-prod"
    assert re.fullmatch(r"sk-[A-Za-z0-9_\-]{40,}", printed["secret_key"])
    assert re.fullmatch(r"pk-[A-Za-z0-9_\-]{40,}", printed["publishable_key"])
    source = Source.objects.get(name="open-webui-prod")
    assert sorted(source.keys.values_list("kind", flat=True)) == ["publishable", "secret"]


def test_create_source_without_json_prints_both_keys_for_a_person(db: Any) -> None:
    printed = _run("create_source", "chat-ui")

    assert "shown once" in printed
    keys = re.findall(r"\b[sp]k-[A-Za-z0-9_\-]{40,}", printed)
    assert [key[:3] for key in keys] == ["sk-", "pk-"]
    assert all(
        ApiKey.objects.filter(key_hash=hashlib.sha256(key.encode()).hexdigest()).exists()
        for key in keys
    )


def test_the_printed_keys_work_at_once(db: Any, client: Client) -> None:
    keys = _create("fresh", "--origin", "https://chat.example.org")

    assert _ingests(client, keys["secret_key"]) == 201
    assert _ingests(client, keys["publishable_key"], origin="https://chat.example.org") == 201
    assert Event.objects.filter(source__name="fresh").count() == 2


def test_keys_are_stored_only_as_sha256_hashes(db: Any) -> None:
    keys = _create("hashed")

    for raw in (keys["secret_key"], keys["publishable_key"]):
        key = ApiKey.objects.get(key_hash=hashlib.sha256(raw.encode()).hexdigest())
        assert key.prefix == raw[:10]
        stored = [str(value) for value in ApiKey.objects.filter(pk=key.pk).values_list()[0]]
        assert not any(raw in value for value in stored)
        assert raw not in str(key)


def test_create_source_takes_origins_and_the_redaction_opt_out(db: Any) -> None:
    _create(
        "web",
        "--origin",
        "https://a.example.org",
        "--origin",
        "http://localhost:3000",
        "--no-redact",
        "--description",
        "The staging chat",
    )

    source = Source.objects.get(name="web")
    assert source.allowed_origins == ["https://a.example.org", "http://localhost:3000"]
    assert (source.redact_pii, source.description) == (False, "The staging chat")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Has Spaces"], "name"),
        (["Upper-Case"], "name"),
        (["ok-name", "--origin", "ftp://files.example.org"], "allowed_origins"),
        (["ok-name", "--origin", "chat.example.org"], "allowed_origins"),
        (["ok-name", "--origin", "https://chat.example.org/"], "trailing slash"),
    ],
)
def test_create_source_refuses_bad_input_with_a_message_and_creates_nothing(
    db: Any, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        _run("create_source", *args)

    assert Source.objects.count() == 0
    assert ApiKey.objects.count() == 0


def test_create_source_refuses_a_name_in_use(db: Any) -> None:
    _create("taken")

    with pytest.raises(CommandError, match="name"):
        _run("create_source", "taken")
    assert ApiKey.objects.count() == 2


# --- revoke_key ------------------------------------------------------------------------------------


def test_revoke_key_by_the_whole_key_stops_it_and_only_it(db: Any, client: Client) -> None:
    keys = _create("app", "--origin", "https://chat.example.org")

    printed = _run("revoke_key", keys["secret_key"])

    assert "Revoked" in printed and "app" in printed
    assert _ingests(client, keys["secret_key"]) == 401
    assert _ingests(client, keys["publishable_key"], origin="https://chat.example.org") == 201
    assert ApiKey.objects.get(kind="secret").revoked_at is not None


def test_revoke_key_by_its_prefix(db: Any, client: Client) -> None:
    keys = _create("app")

    _run("revoke_key", keys["publishable_key"][:10])

    assert ApiKey.objects.get(kind="publishable").revoked_at is not None
    assert ApiKey.objects.get(kind="secret").revoked_at is None


def test_revoke_key_refuses_an_unknown_key(db: Any) -> None:
    _create("app")

    with pytest.raises(CommandError, match="No active key"):
        _run("revoke_key", "sk-doesnotexist")
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


def test_revoking_twice_keeps_the_first_revocation_time(db: Any) -> None:
    keys = _create("app")
    _run("revoke_key", keys["secret_key"])
    first = ApiKey.objects.get(kind="secret").revoked_at

    _run("revoke_key", keys["secret_key"])

    assert ApiKey.objects.get(kind="secret").revoked_at == first


# --- rotate_keys -----------------------------------------------------------------------------------


def test_rotate_keys_revokes_both_and_prints_new_ones(db: Any, client: Client) -> None:
    old = _create("app", "--origin", "https://chat.example.org")

    new = json.loads(_run("rotate_keys", "app", "--json"))

    assert set(new) == {"name", "secret_key", "publishable_key"}
    assert (
        new["secret_key"] != old["secret_key"] and new["publishable_key"] != old["publishable_key"]
    )
    assert _ingests(client, old["secret_key"]) == 401
    assert _ingests(client, old["publishable_key"], origin="https://chat.example.org") == 401
    assert _ingests(client, new["secret_key"]) == 201
    assert _ingests(client, new["publishable_key"], origin="https://chat.example.org") == 201
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 2


def test_rotate_keys_of_one_kind_leaves_the_other(db: Any, client: Client) -> None:
    old = _create("app")

    new = json.loads(_run("rotate_keys", "app", "--kind", "secret", "--json"))

    assert set(new) == {"name", "secret_key"}
    assert _ingests(client, old["secret_key"]) == 401
    assert _ingests(client, new["secret_key"]) == 201
    assert ApiKey.objects.get(kind="publishable").revoked_at is None


def test_rotate_keys_without_json_prints_the_new_keys(db: Any) -> None:
    _create("app")

    printed = _run("rotate_keys", "app")

    assert len(re.findall(r"\b[sp]k-[A-Za-z0-9_\-]{40,}", printed)) == 2


def test_rotate_keys_refuses_an_unknown_source(db: Any) -> None:
    with pytest.raises(CommandError, match="No source named"):
        _run("rotate_keys", "ghost")


# --- admin -----------------------------------------------------------------------------------------


@pytest.fixture
def keys(db: Any) -> dict[str, str]:
    return _create("admin-app")


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/sources/source/",
        "/admin/sources/source/add/",
        "/admin/sources/source/{source}/change/",
        "/admin/sources/apikey/",
        "/admin/sources/apikey/{key}/change/",
        "/admin/feedback/event/",
        "/admin/feedback/event/{event}/change/",
        "/admin/feedback/interaction/",
        "/admin/feedback/rating/",
        "/admin/feedback/comparison/",
    ],
)
def test_admin_pages_render_for_a_superuser_without_showing_raw_keys(
    admin_client: Client, client: Client, keys: dict[str, str], path: str
) -> None:
    event_id = Api(client, keys["secret_key"]).post(rating()).json()["id"]
    source = Source.objects.get(name="admin-app")
    url = path.format(source=source.pk, key=source.keys.first().pk, event=event_id)

    response = admin_client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert keys["secret_key"] not in page and keys["publishable_key"] not in page


def test_the_source_page_lists_its_keys_by_prefix(
    admin_client: Client, keys: dict[str, str]
) -> None:
    source = Source.objects.get(name="admin-app")

    page = admin_client.get(f"/admin/sources/source/{source.pk}/change/").content.decode()

    assert keys["secret_key"][:10] in page and keys["publishable_key"][:10] in page


def test_the_admin_cannot_add_keys_by_hand(admin_client: Client, db: Any) -> None:
    assert admin_client.get("/admin/sources/apikey/add/").status_code == 403


def test_the_admin_revoke_action_revokes_the_selected_keys(
    admin_client: Client, client: Client, keys: dict[str, str]
) -> None:
    secret = ApiKey.objects.get(kind="secret")

    response = admin_client.post(
        "/admin/sources/apikey/", {"action": "revoke", "_selected_action": [secret.pk]}, follow=True
    )

    assert response.status_code == 200
    assert "Revoked 1 key" in response.content.decode()
    assert _ingests(client, keys["secret_key"]) == 401
    assert ApiKey.objects.get(kind="publishable").revoked_at is None


def test_the_admin_rotate_action_shows_the_new_keys_once(
    admin_client: Client, client: Client, keys: dict[str, str]
) -> None:
    source = Source.objects.get(name="admin-app")

    response = admin_client.post(
        "/admin/sources/source/",
        {"action": "rotate_keys", "_selected_action": [source.pk]},
        follow=True,
    )

    page = response.content.decode()
    new_secret = re.search(r"\bsk-[A-Za-z0-9_\-]{40,}", page).group()
    assert new_secret != keys["secret_key"]
    assert _ingests(client, keys["secret_key"]) == 401
    assert _ingests(client, new_secret) == 201
    assert new_secret not in admin_client.get("/admin/sources/source/").content.decode()


def test_a_staff_user_without_permissions_cannot_see_sources(
    django_user_model: Any, client: Client, keys: dict[str, str]
) -> None:
    client.force_login(
        django_user_model.objects.create_user("staff", password="a-long-password", is_staff=True)
    )

    assert client.get("/admin/sources/apikey/").status_code == 403
