"""The leaderboard page: needs a login, shows ratings, intervals, matrix and thumbs, escapes names."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.evaluation.conftest import pref


def _viewer():
    """A logged-in user in the viewer role (a user without a role sees no page and no data)."""
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user("viewer", password="pw")
    user.groups.add(Group.objects.get(name="viewer"))
    return user


pytestmark = pytest.mark.django_db

EVIL = "<script>alert(1)</script>"


def test_the_page_needs_a_login(client) -> None:
    response = client.get("/leaderboard/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_shows_ratings_matrix_and_thumbs_with_names_escaped(send, client) -> None:
    send(
        [pref(i, EVIL, "y", 1 if i % 3 == 0 else 0) for i in range(40)]
        + [pref(100 + i, "y", "z", i % 2) for i in range(30)]
    )
    send(
        [
            {
                "type": "rating",
                "id": "t-1",
                "rater": "u",
                "model": "y",
                "checkpoint": "ck-7",
                "messages": [{"role": "user", "content": "q"}],
                "response": "r",
                "rating": 1,
            }
        ]
    )
    client.force_login(_viewer())
    html = client.get("/leaderboard/", {"bootstrap": 50}).content.decode()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "lb-matrix" in html and "<svg" in html and "ck-7" in html
    assert "70 battles" in html


def test_bad_filters_show_a_message_not_an_error(send, client) -> None:
    client.force_login(_viewer())
    response = client.get("/leaderboard/", {"since": "not a date", "bootstrap": "-3"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "since" in html and "bootstrap" in html and "lb-table" not in html
