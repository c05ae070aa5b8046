"""Reward models through Sinkhole's training runs (command, service) into the registry as
checkpoints of kind reward, then registered as judges through the API and shown on a page."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.judges.models import Judge
from apps.registry.models import Checkpoint
from apps.training.models import TrainingRun
from tests.registry.factories import make_base_model, make_dataset_version

pytestmark = pytest.mark.django_db


def test_train_method_rm_makes_a_reward_model_checkpoint_with_its_held_out_accuracy(tiny_model):
    make_base_model(tiny_model, name="tiny")
    version = make_dataset_version("dpo")
    out = StringIO()
    call_command(
        "train",
        "--dataset",
        f"v{version.pk}",
        "--method",
        "rm",
        "--base",
        "tiny",
        "--max-steps",
        "2",
        "--set",
        "batch_size=2",
        "--wait",
        "--json",
        stdout=out,
        stderr=StringIO(),
    )
    result = json.loads(out.getvalue())
    assert result["status"] == "succeeded", result
    checkpoint = Checkpoint.objects.get(name=result["checkpoint"])
    assert checkpoint.kind == "reward" and checkpoint.method == "rm"
    assert result["metrics"]["eval_pairs"] == 2
    assert 0 <= result["metrics"]["eval_pairwise_accuracy_low"] <= 1
    assert TrainingRun.objects.get().method == "rm"


def test_a_reward_model_needs_a_dpo_dataset(tiny_model):
    make_base_model(tiny_model, name="tiny")
    version = make_dataset_version("sft")
    with pytest.raises(CommandError, match="a rm run needs a dpo dataset"):
        call_command("train", "--dataset", str(version.pk), "--method", "rm", "--base", "tiny")


def test_the_api_registers_versioned_judges_and_names_bad_fields(admin_client):
    bad = admin_client.post(
        "/api/v1/judges",
        {"name": "gpt", "kind": "llm", "config": {"model": "x"}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert "config.base_url" in bad.json()["error"]["fields"]
    keyed = admin_client.post(
        "/api/v1/judges",
        {
            "name": "gpt",
            "kind": "llm",
            "config": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": "sk-x"},
        },
        content_type="application/json",
    )
    assert "config.api_key" in keyed.json()["error"]["fields"]  # keys are never stored
    first = admin_client.post(
        "/api/v1/judges",
        {"name": "longer", "kind": "rule", "config": {"rule": "length"}},
        content_type="application/json",
    )
    again = admin_client.post(
        "/api/v1/judges",
        {"name": "longer", "kind": "rule", "config": {"rule": "length"}},
        content_type="application/json",
    )
    other = admin_client.post(
        "/api/v1/judges",
        {"name": "longer", "kind": "rule", "config": {"rule": "length", "prefer": "shorter"}},
        content_type="application/json",
    )
    assert first.status_code == again.status_code == other.status_code == 201
    assert first.json()["id"] == again.json()["id"]  # same settings: the same version
    assert other.json()["version"] == 2
    listed = admin_client.get("/api/v1/judges").json()
    assert [(j["name"], j["version"]) for j in listed] == [("longer", 2)]
    assert admin_client.get("/api/v1/judges/longer@1").json()["config"] == {"rule": "length"}
    assert admin_client.get("/api/v1/judges/nobody").status_code == 404


def test_the_judge_page_shows_the_newest_audit_with_its_curve(admin_client):
    from apps.judges.audit import shuffled_positions
    from apps.judges.services import judge_audit, judge_register

    judge = judge_register(name="longer", kind="rule", config={"rule": "length"})
    rows = [(f"q{i}", "a long careful answer" * (1 + i % 2), "no") for i in range(20)]
    judge_audit(judge=judge, pairs=shuffled_positions(rows), source="hand-made pairs")
    page = admin_client.get("/judges/longer@1/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "hand-made pairs" in html and "<svg" in html and "Cohen" in html
    assert admin_client.get("/judges/").status_code == 200
    assert Judge.objects.count() == 1
