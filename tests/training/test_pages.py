"""The training and checkpoint pages: launch form errors, permissions, escaping, the registry's
publish/alias/rollback buttons, and (in Chromium) the run page following a run live."""

from __future__ import annotations

import pytest

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
        assert page.text_content("#run-step") == "step 0/4"
        TrainingRun.objects.filter(pk=run.pk).update(
            step=2,
            progress=0.5,
            log_tail="step 2/4 loss 0.6000 <b>x</b>",
            loss_curve=[{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}],
        )
        page.wait_for_function("document.getElementById('run-step').textContent === 'step 2/4'")
        assert page.text_content("#run-loss") == "loss 0.6000"
        assert page.locator("#run-chart svg path, #run-chart svg polyline").count() >= 1
        assert page.text_content("#run-log") == "step 2/4 loss 0.6000 <b>x</b>"  # text, not markup
        TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", step=4, progress=1.0)
        page.wait_for_function("document.getElementById('run-status').textContent === 'succeeded'")
        assert page.locator("#run-cancel").count() == 0
        assert errors == []
    finally:
        page.goto("about:blank")
        context.close()
