"""The pages answer for logged-in users, show the filtered events, and keep user text as text."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.curation import services
from tests.conftest import preference, rating
from tests.curation.conftest import PASSWORD

pytestmark = pytest.mark.django_db

XSS_COMMENT = (
    '<script>window.pwned=1</script> <img src=x onerror="window.pwned=2"> [x](javascript:alert(1))'
)


@pytest.fixture
def logged_in(client: Client, curator) -> Client:
    assert client.login(username=curator.username, password=PASSWORD)
    return client


def test_pages_need_a_login(client):
    for path in ("/inbox/", "/dashboard/", "/events/1/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_logs_in_and_lands_on_the_inbox(client, curator):
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post("/accounts/login/", {"username": "cora", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/inbox/"
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/inbox/").status_code == 302


def test_inbox_filters_and_pages_by_cursor(logged_in, add_events, settings):
    events = add_events(*[rating(response=f"answer number {i}") for i in range(55)])
    add_events(preference())
    page = logged_in.get("/inbox/", {"type": "rating"})
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="row"') == 50
    assert f'data-id="{events[-1].id}"' in html and f'data-id="{events[4].id}"' not in html
    assert "before=" in html and "/datasets/?type=rating#new-recipe" in html
    older = logged_in.get("/inbox/", {"type": "rating", "before": events[5].id}).content.decode()
    assert older.count('class="row"') == 5


def test_inbox_shows_field_errors_instead_of_failing(logged_in):
    page = logged_in.get("/inbox/", {"spam_min": "lots", "since": "soon"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "spam_min" in html and "since" in html and "Fix the filter" in html


def test_event_page_renders_markdown_safely(logged_in, add_events, curator):
    (event,) = add_events(
        rating(
            comment=XSS_COMMENT,
            response="**bold** and [docs](https://example.org) and [bad](javascript:alert(1)) <script>x()</script>",
        )
    )
    services.decision_tag(event_id=event.id, user=curator, tag="<b>tagged</b>")
    html = logged_in.get(f"/events/{event.id}/").content.decode()
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.org"' in html
    assert "javascript:" not in html.replace("[x](javascript:alert(1))", "").replace(
        "[bad](javascript:alert(1))", ""
    )
    assert "<script>window.pwned" not in html and "<script>x()" not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert '<img src="x"' not in html and "<img src=x" not in html
    assert "&lt;b&gt;tagged&lt;/b&gt;" in html


def test_dashboard_draws_charts(logged_in, add_events):
    add_events(rating(rating=1), rating(rating=-1, model="other"))
    html = logged_in.get("/dashboard/").content.decode()
    assert html.count("<svg") >= 3


def test_api_decides_undoes_and_answers_field_errors(logged_in, add_events, viewer):
    (event,) = add_events(rating())
    bad = logged_in.post(
        f"/api/v1/events/{event.id}/decisions",
        {"action": "reject", "reason": "meh"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["fields"]
    ok = logged_in.post(
        f"/api/v1/events/{event.id}/decisions",
        {"action": "reject", "reason": "spam"},
        content_type="application/json",
    )
    assert ok.status_code == 201 and ok.json()["user"] == "cora"
    undo = logged_in.post(f"/api/v1/decisions/{ok.json()['id']}/undo")
    assert undo.status_code == 200 and undo.json()["undone_by"] == "cora"
    assert logged_in.post("/api/v1/decisions/999999/undo").status_code == 404
    bulk = logged_in.post(
        "/api/v1/decisions/bulk",
        {"action": "accept", "filters": {"type": "rating"}, "expect": 1},
        content_type="application/json",
    )
    assert bulk.status_code == 201 and bulk.json()["count"] == 1
    stale = logged_in.post(
        "/api/v1/decisions/bulk",
        {"action": "accept", "filters": {"type": "rating"}, "expect": 7},
        content_type="application/json",
    )
    assert stale.status_code == 400 and "expect" in stale.json()["error"]["fields"]
    badf = logged_in.post(
        "/api/v1/decisions/bulk",
        {"action": "accept", "filters": {"rating": "x"}},
        content_type="application/json",
    )
    assert badf.status_code == 400 and "filters.rating" in badf.json()["error"]["fields"]
    count = logged_in.get("/api/v1/inbox/count", {"type": "rating"}).json()
    assert count["count"] == 1 and count["exact"]
    other = Client()
    other.force_login(viewer)
    refused = other.post(
        f"/api/v1/events/{event.id}/decisions",
        {"action": "accept"},
        content_type="application/json",
    )
    assert refused.status_code == 403


def test_api_keys_cannot_decide(api, add_events):
    (event,) = add_events(rating())
    response = api.post({"action": "accept"}, path=f"/api/v1/events/{event.id}/decisions")
    assert response.status_code == 403


STAFF_PAGES = (
    "/inbox/",
    "/dashboard/",
    "/datasets/",
    "/training/",
    "/checkpoints/",
    "/leaderboard/",
    "/experiments/",
    "/experiments/new",
)


def test_a_user_without_a_role_gets_403_on_every_staff_page(client, add_events):
    from tests.curation.conftest import user_in

    (event,) = add_events(rating(comment="a secret comment from the chat app"))
    user_in(None, "nobody")
    assert client.login(username="nobody", password=PASSWORD)
    for path in (*STAFF_PAGES, f"/events/{event.id}/"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"secret comment" not in response.content
        assert b"needs a role (viewer, curator or admin)" in response.content, path
    assert client.get(f"/api/v1/events/{event.id}/decisions").status_code == 403
    assert client.get("/api/v1/inbox/count").status_code == 403


def test_a_viewer_opens_every_staff_page(client, add_events, viewer):
    (event,) = add_events(rating(comment="a comment"))
    assert client.login(username=viewer.username, password=PASSWORD)
    for path in (*STAFF_PAGES[:-1], f"/events/{event.id}/"):
        assert client.get(path).status_code == 200, path


def test_anonymous_home_is_a_landing_page_without_data(client, add_events, curator):
    add_events(rating(model="secret-model-name"), source="secret-source-name")
    anonymous = client.get("/")
    body = anonymous.content.decode()
    assert anonymous.status_code == 200
    assert "/accounts/login/" in body and "/api/docs/" in body
    assert "secret-source-name" not in body and "secret-model-name" not in body
    assert "Latest feedback" not in body
    from tests.curation.conftest import user_in

    user_in(None, "nobody")
    assert client.login(username="nobody", password=PASSWORD)
    no_role = client.get("/").content.decode()
    assert "secret-source-name" not in no_role and "without a role" in no_role
    client.logout()
    assert client.login(username=curator.username, password=PASSWORD)
    home = client.get("/").content.decode()
    assert "secret-source-name" in home and "secret-model-name" in home
