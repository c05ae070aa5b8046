"""The base model is served before anything is trained: the gateway answers a registered base
model's name at once, `manage.py serve_base`, the API and the checkpoints page serve it (with
an alias if asked), and /v1/models lists it, so base vs first checkpoint can be compared from
day one."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.registry.models import Alias, BaseModel, Checkpoint
from apps.serving.models import ServedAnswer

pytestmark = pytest.mark.django_db


@pytest.fixture
def base_only(db, tiny_model):
    """A fresh install: a base model registered, nothing trained, no checkpoint, no alias."""
    return BaseModel.objects.create(name="tiny", model_id=tiny_model)


def test_the_gateway_answers_with_the_base_model_before_any_training(gateway, base_only):
    assert not Checkpoint.objects.exists()
    response = gateway.chat("tiny", user="alice")
    # Before: 404 model_not_found until something was trained and published.
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sinkhole"]["checkpoint"] == "base-tiny" and body["sinkhole"]["model"] == "tiny"
    checkpoint = Checkpoint.objects.get()
    assert (checkpoint.kind, checkpoint.status) == ("base", "published")
    assert ServedAnswer.objects.get().checkpoint == checkpoint
    # Its model id works too, and an unknown name is still a 404.
    assert gateway.chat(base_only.model_id).status_code == 200
    assert gateway.chat("gpt-9").status_code == 404


def test_models_lists_the_registered_base_models(client, src, base_only):
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {src.secret}")
    entries = {item["id"]: item["owned_by"] for item in response.json()["data"]}
    assert entries["tiny"] == "sinkhole:base-model"


def test_the_serve_base_command_publishes_it_under_an_alias(gateway, base_only):
    out = StringIO()
    call_command("serve_base", "tiny", "--alias", "production", stdout=out)
    assert "base-tiny" in out.getvalue() and "'production'" in out.getvalue()
    assert Alias.objects.get(name="production").checkpoint.name == "base-tiny"
    assert gateway.chat("production").json()["sinkhole"]["alias"] == "production"


def test_the_api_serves_a_base_model_for_publishers_only(client, admin_client, base_only):
    url = "/api/v1/base-models/tiny/serve"
    assert client.post(url, {}, content_type="application/json").status_code in (401, 403)
    response = admin_client.post(url, {"alias": "day-one"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "base-tiny" and response.json()["aliases"] == ["day-one"]
    missing = admin_client.post(
        "/api/v1/base-models/nope/serve", {}, content_type="application/json"
    )
    assert missing.status_code == 404
    bad = admin_client.post(url, {"alias": "Not An Alias!"}, content_type="application/json")
    assert bad.status_code == 400 and "alias" in str(bad.json())


def test_the_checkpoints_page_has_a_serve_button_for_each_base_model(admin_client, base_only):
    page = admin_client.get("/checkpoints/")
    assert b"Serve base-tiny" in page.content
    response = admin_client.post("/checkpoints/base/tiny/serve", {"alias": ""})
    assert response.status_code == 302 and response["Location"] == "/checkpoints/base-tiny/"
    assert Checkpoint.objects.get(name="base-tiny").status == "published"
