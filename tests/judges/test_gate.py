"""The offline gate: a candidate and the alias's checkpoint answer held-out prompts through the
built-in serving engine (tiny real models), a judge compares every pair, and the verdict is
recorded; publishing can require a passed gate; reward models are never served."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.core.exceptions import ApplicationError
from apps.judges.kinds.base import Verdict
from apps.judges.models import GateRun
from apps.judges.services import gate_outcome, judge_register
from apps.registry.models import Alias, AliasMove, BaseModel, Checkpoint
from apps.registry.services import checkpoint_publish
from apps.registry.storage import sha256_tree
from tests.registry.factories import make_dataset_version

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter with random (not zero) weights, so that it answers differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    )
    folder = tmp_path_factory.mktemp("tiny-adapter")
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def policies(tiny_model: str, tiny_adapter: str, settings: Any) -> dict[str, Any]:
    settings.JUDGES_GATE_MAX_TOKENS = 12
    base_model, _ = BaseModel.objects.get_or_create(name="tiny", defaults={"model_id": tiny_model})
    base = Checkpoint.objects.create(
        name="base-tiny", kind="base", base_model=base_model, status="published"
    )
    candidate = Checkpoint.objects.create(
        name="tiny-lora",
        kind="adapter",
        base_model=base_model,
        local_path=tiny_adapter,
        sha256=sha256_tree(Path(tiny_adapter)),
    )
    Alias.objects.create(name="production", checkpoint=base)
    return {"base": base, "candidate": candidate, "version": make_dataset_version("dpo")}


def test_the_gate_command_answers_judges_both_orders_and_records_the_verdict(policies):
    judge_register(name="longer", kind="rule", config={"rule": "length"})
    out = StringIO()
    try:
        call_command(
            "gate",
            "tiny-lora",
            "--against",
            "production",
            "--prompts",
            f"v{policies['version'].pk}",
            "--judge",
            "longer",
            "--json",
            stdout=out,
        )
        exit_code = 0
    except SystemExit as exc:
        exit_code = exc.code
    result = json.loads(out.getvalue())
    run = GateRun.objects.get()
    assert result["gate"] == run.pk and result["prompts"] == 2  # the test split's two prompts
    assert result["candidate"] == "tiny-lora" and result["against"] == "base-tiny"
    assert result["wins"] + result["losses"] + result["ties"] == 2
    low, high = result["interval"]
    assert low <= result["win_rate"] <= high
    assert result["passed"] == (low > 0.5)
    assert run.status == ("passed" if result["passed"] else "failed")
    assert exit_code == (0 if result["passed"] else 3)
    assert run.win_rate == result["win_rate"] and run.candidate == policies["candidate"]
    for loss in result["worst_losses"]:
        assert loss["p_candidate_better"] < 0.5 and loss["candidate"] != loss["baseline"]


def test_the_gate_passes_only_when_the_intervals_lower_end_clears_the_line():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(40)]
    replies = [f"r{i}" for i in range(40)]
    clear = [Verdict(0.9, 0.8)] * 34 + [Verdict(0.2, 0.6)] * 6
    close = [Verdict(0.9, 0.8)] * 22 + [Verdict(0.2, 0.6)] * 18
    assert gate_outcome(prompts, replies, replies, clear, 0.5)["passed"] is True
    narrow = gate_outcome(prompts, replies, replies, close, 0.5)
    assert narrow["win_rate"] == 0.55 and narrow["passed"] is False  # above 0.5, not clearly
    worst = narrow["worst_losses"]
    assert len(worst) == 5 and all(loss["p_candidate_better"] == 0.2 for loss in worst)


def test_a_gate_refuses_a_reward_model_an_unknown_alias_and_a_version_without_prompts(
    policies, reward_checkpoint
):
    from apps.judges.services import gate_run_create

    judge = judge_register(name="longer", kind="rule", config={"rule": "length"})
    with pytest.raises(ApplicationError) as exc:
        gate_run_create(
            candidate=reward_checkpoint,
            against_alias="production",
            dataset_version=policies["version"],
            judge=judge,
        )
    assert "reward model" in exc.value.fields["candidate"][0]
    with pytest.raises(ApplicationError) as exc:
        gate_run_create(
            candidate=policies["candidate"],
            against_alias="nowhere",
            dataset_version=policies["version"],
            judge=judge,
        )
    assert "no alias 'nowhere'" in exc.value.fields["against"][0]
    empty = make_dataset_version("dpo", name="empty")
    empty.files = {"train": empty.files["train"]}
    empty.save()
    with pytest.raises(ApplicationError) as exc:
        gate_run_create(
            candidate=policies["candidate"],
            against_alias="production",
            dataset_version=empty,
            judge=judge,
        )
    assert "no held-out" in exc.value.fields["dataset_version"][0]


def test_publishing_to_an_alias_can_require_a_passed_gate_and_records_it(policies, settings):
    settings.JUDGES_REQUIRE_GATE = True
    candidate = policies["candidate"]
    with pytest.raises(ApplicationError) as exc:
        checkpoint_publish(checkpoint=candidate, alias="canary")
    assert exc.value.status_code == 409 and "no passed offline gate" in exc.value.message
    judge = judge_register(name="longer", kind="rule", config={"rule": "length"})
    GateRun.objects.create(
        candidate=candidate,
        against=policies["base"],
        against_alias="production",
        judge=judge,
        dataset_version=policies["version"],
        status="passed",
        win_rate=0.8,
        win_rate_low=0.66,
        win_rate_high=0.9,
    )
    checkpoint_publish(checkpoint=candidate, alias="canary")
    move = AliasMove.objects.get(alias__name="canary")
    assert move.to_checkpoint == candidate and "passed: win rate 0.80" in move.reason


def test_publishing_without_the_setting_needs_no_gate(policies):
    checkpoint_publish(checkpoint=policies["candidate"], alias="canary")
    assert Alias.objects.get(name="canary").checkpoint == policies["candidate"]


def test_a_reward_model_is_never_published_to_serving(reward_checkpoint):
    with pytest.raises(ApplicationError, match="reward model"):
        checkpoint_publish(checkpoint=reward_checkpoint, alias="production")


def test_the_api_queues_a_gate_and_answers_field_errors(
    policies, admin_client, django_capture_on_commit_callbacks
):
    judge_register(name="longer", kind="rule", config={"rule": "length"})
    bad = admin_client.post(
        "/api/v1/gates", {"candidate": "tiny-lora"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) >= {"against", "dataset_version"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/api/v1/gates",
            {
                "candidate": "tiny-lora",
                "against": "production",
                "dataset_version": str(policies["version"].pk),
                "judge": "longer",
            },
            content_type="application/json",
        )
    assert response.status_code == 202, response.content
    gate_id = response.json()["id"]
    # Celery runs eagerly in tests: the gate ran when the request's transaction committed.
    detail = admin_client.get(f"/api/v1/gates/{gate_id}").json()
    assert detail["status"] in ("passed", "failed") and detail["results"]["prompts"] == 2
    page = admin_client.get(f"/judges/gates/{gate_id}/")
    assert page.status_code == 200 and b"Predicted win rate" in page.content
    assert b"No experiment has served tiny-lora" in page.content
