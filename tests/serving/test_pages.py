"""The experiments pages: reading for any login, changing for admins, text escaped."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.registry.models import Alias
from apps.serving import services
from apps.serving.models import Experiment

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client, registry):
    response = client.get("/experiments/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_admin_creates_starts_and_promotes_from_the_pages(admin_client, registry):
    page = admin_client.get("/experiments/new")
    assert page.status_code == 200 and b"tiny-lora" in page.content

    response = admin_client.post(
        "/experiments/new",
        {
            "name": "page-ab",
            "description": "<script>alert(1)</script>",
            "alias": "production",
            "confidence": "0.9",
            "min_events": "5",
            "control": "0",
            "arm0_target": "alias:production",
            "arm0_weight": "3",
            "arm1_target": "checkpoint:tiny-lora",
            "arm1_weight": "1",
        },
    )
    assert response.status_code == 302
    experiment = Experiment.objects.get(name="page-ab")
    assert [(a.name, a.weight, a.is_control) for a in experiment.arms.all()] == [
        ("production", 3, True),
        ("tiny-lora", 1, False),
    ]

    assert admin_client.post("/experiments/page-ab/start").status_code == 302
    detail = admin_client.get("/experiments/page-ab/")
    html = detail.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Promote to production" in html and "data-poll" in html
    assert admin_client.get("/experiments/page-ab/?fragment=results").status_code == 200

    admin_client.post("/experiments/page-ab/promote", {"arm": "tiny-lora"})
    assert Alias.objects.get(name="production").checkpoint.name == "tiny-lora"
    admin_client.post("/experiments/page-ab/rollback")
    assert Alias.objects.get(name="production").checkpoint.name == "base-tiny"


def test_the_form_shows_errors_and_keeps_nothing(admin_client, registry):
    response = admin_client.post(
        "/experiments/new", {"name": "lonely", "arm0_target": "checkpoint:base-tiny"}
    )
    assert response.status_code == 400
    assert b"at least two arms" in response.content
    assert not Experiment.objects.exists()


def test_a_viewer_reads_but_cannot_change(client, registry, django_user_model):
    services.experiment_create(
        name="seen",
        arms=[services.ArmSpec(checkpoint="base-tiny"), services.ArmSpec(checkpoint="tiny-lora")],
    )
    viewer = django_user_model.objects.create_user("viewer")
    viewer.groups.add(Group.objects.get(name="viewer"))  # a user without a role sees nothing
    client.force_login(viewer)
    assert b"seen" in client.get("/experiments/").content
    html = client.get("/experiments/seen/").content.decode()
    assert "Start" not in html and "Promote" not in html
    assert client.post("/experiments/seen/start").status_code == 403
    assert client.get("/experiments/new").status_code == 403
    assert Experiment.objects.get().status == "draft"


def test_the_experiment_page_draws_the_intervals_of_arms_with_feedback(
    admin_client, registry, src, django_capture_on_commit_callbacks
):
    from tests.serving.test_experiments import ingest, make_experiment, thumbs

    make_experiment(registry, min_events=5)
    ingest(
        src,
        thumbs("base-tiny", 3, 7) + thumbs("tiny-lora", 9, 1),
        django_capture_on_commit_callbacks,
    )

    html = admin_client.get("/experiments/lora-vs-base/").content.decode()

    assert html.count("<svg") >= 1
    assert "lora (tiny-lora)" in html
    assert "0.900" in html and "better" in html
