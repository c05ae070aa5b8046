"""The checkpoint registry: registering a run's adapter with its sha256 and lineage, publishing
into the artifact store and a (fake, real-HTTP) vLLM, aliases with rollback, retiring, the
serving manifest, the API's permissions, and the commands."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.core.exceptions import ApplicationError
from apps.registry import services
from apps.registry.models import AliasMove, BaseModel, Checkpoint
from apps.registry.selectors import serving_manifest
from apps.registry.storage import sha256_file
from apps.training.models import TrainingRun
from tests.registry.factories import (
    make_adapter_dir,
    make_base_model,
    make_dataset_version,
    make_user,
)

pytestmark = pytest.mark.django_db


def registered(tmp_path: Path, *, n: int = 1, payload: bytes = b"weights") -> list[Checkpoint]:
    base = BaseModel.objects.filter(name="tiny").first() or make_base_model("org/tiny-llama")
    version = make_dataset_version("dpo", name=f"toy-{n}-{payload.hex()[:6]}")
    out = []
    for i in range(n):
        run = TrainingRun.objects.create(
            dataset_version=version, base_model=base, method="dpo", spec={}, status="succeeded"
        )
        adapter = make_adapter_dir(
            tmp_path / f"run{run.pk}" / "adapter", base.model_id, payload=payload + bytes([i])
        )
        out.append(
            services.checkpoint_register(run=run, adapter_dir=adapter, metrics={"eval_loss": 0.5})
        )
    return out


def test_the_default_base_model_is_smollm2():
    default = BaseModel.objects.get(is_default=True)
    assert (default.name, default.model_id) == (
        "smollm2-135m",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    )


def test_registering_a_run_records_every_files_sha256_and_the_lineage(tmp_path):
    (checkpoint,) = registered(tmp_path)
    adapter = Path(checkpoint.local_path)
    assert checkpoint.status == "candidate"
    assert checkpoint.name == f"run-{checkpoint.run_id}-dpo"
    assert set(checkpoint.sha256) == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
    }
    assert checkpoint.sha256["adapter_model.safetensors"] == sha256_file(
        adapter / "adapter_model.safetensors"
    )
    assert checkpoint.dataset_version.recipe.name.startswith("toy-")
    assert checkpoint.base_model.name == "tiny"
    # A task that ran twice registers once.
    assert services.checkpoint_register(run=checkpoint.run, adapter_dir=adapter).pk == checkpoint.pk
    assert Checkpoint.objects.count() == 1


def test_an_adapter_for_another_base_is_refused(tmp_path):
    base = make_base_model("org/tiny-llama")
    run = TrainingRun.objects.create(
        dataset_version=make_dataset_version("dpo"), base_model=base, method="dpo", spec={}
    )
    adapter = make_adapter_dir(tmp_path / "a", "org/some-other-model")
    with pytest.raises(ApplicationError, match="base is 'org/some-other-model'"):
        services.checkpoint_register(run=run, adapter_dir=adapter)
    assert not Checkpoint.objects.exists()


def test_publishing_copies_the_files_and_loads_the_adapter_into_vllm(tmp_path, fake_vllm):
    (checkpoint,) = registered(tmp_path)
    published = services.checkpoint_publish(checkpoint=checkpoint, alias="production")
    target = Path(settings.ARTIFACT_ROOT) / "adapters" / checkpoint.name
    assert published.status == "published" and published.published_at is not None
    assert published.artifact_uri == target.resolve().as_uri()
    assert {p.name: sha256_file(p) for p in target.iterdir()} == checkpoint.sha256
    assert fake_vllm.calls == [
        (
            "/v1/load_lora_adapter",
            {"lora_name": checkpoint.name, "lora_path": str(target.resolve())},
        )
    ]
    assert published.aliases.get().name == "production"
    # Publishing again is harmless (vLLM's "already loaded" counts as done).
    services.checkpoint_publish(checkpoint=published)
    assert len(fake_vllm.calls) == 2


def test_a_vllm_that_refuses_leaves_the_checkpoint_a_candidate(tmp_path, fake_vllm):
    (checkpoint,) = registered(tmp_path)
    fake_vllm.fail_with = 500
    with pytest.raises(ApplicationError, match="vLLM refused"):
        services.checkpoint_publish(checkpoint=checkpoint)
    checkpoint.refresh_from_db()
    assert checkpoint.status == "candidate" and checkpoint.artifact_uri == ""


def test_an_unreachable_vllm_is_a_clear_error(tmp_path, settings):
    (checkpoint,) = registered(tmp_path)
    settings.VLLM_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(ApplicationError, match="did not answer"):
        services.checkpoint_publish(checkpoint=checkpoint)


def test_publishing_refuses_files_changed_since_registration(tmp_path):
    (checkpoint,) = registered(tmp_path)
    (Path(checkpoint.local_path) / "adapter_model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ApplicationError, match="no longer match"):
        services.checkpoint_publish(checkpoint=checkpoint)


def test_s3_storage_without_boto3_is_a_clear_error(tmp_path, settings):
    try:
        import boto3  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("boto3 is installed: this test is about a deployment without it")
    settings.ARTIFACT_S3_URL = "s3://bucket/sinkhole"
    (checkpoint,) = registered(tmp_path)
    with pytest.raises(ApplicationError, match="boto3"):
        services.checkpoint_publish(checkpoint=checkpoint)
    checkpoint.refresh_from_db()
    assert checkpoint.status == "candidate"


def test_aliases_record_moves_and_roll_back_like_undo(tmp_path):
    a, b, c = registered(tmp_path, n=3)
    for cp in (a, b, c):
        services.checkpoint_publish(checkpoint=cp)
    services.alias_set(name="production", checkpoint=a)
    services.alias_set(name="production", checkpoint=b, reason="experiment 1 won")
    services.alias_set(name="production", checkpoint=b)  # no move: already there
    services.alias_set(name="production", checkpoint=c)
    assert AliasMove.objects.filter(alias__name="production").count() == 3

    assert services.alias_rollback(name="production").checkpoint == b
    assert services.alias_rollback(name="production").checkpoint == a
    with pytest.raises(ApplicationError, match="no earlier checkpoint"):
        services.alias_rollback(name="production")
    moves = list(AliasMove.objects.filter(alias__name="production").order_by("id"))
    assert [(m.from_checkpoint_id, m.to_checkpoint_id, m.is_rollback) for m in moves] == [
        (None, a.pk, False),
        (a.pk, b.pk, False),
        (b.pk, c.pk, False),
        (c.pk, b.pk, True),
        (b.pk, a.pk, True),
    ]


def test_an_alias_needs_a_published_checkpoint_and_a_slug_name(tmp_path):
    (candidate,) = registered(tmp_path)
    with pytest.raises(ApplicationError) as exc:
        services.alias_set(name="production", checkpoint=candidate)
    assert "publish it first" in exc.value.fields["checkpoint"][0]
    services.checkpoint_publish(checkpoint=candidate)
    with pytest.raises(ApplicationError) as exc:
        services.alias_set(name="no spaces!", checkpoint=candidate)
    assert "alias" in exc.value.fields


def test_retiring_is_refused_while_an_alias_points_at_it_and_unloads_from_vllm(tmp_path, fake_vllm):
    a, b = registered(tmp_path, n=2)
    services.checkpoint_publish(checkpoint=a, alias="canary")
    services.checkpoint_publish(checkpoint=b)
    with pytest.raises(ApplicationError, match="still the target of canary"):
        services.checkpoint_retire(checkpoint=a)
    services.alias_set(name="canary", checkpoint=b)
    assert services.checkpoint_retire(checkpoint=a).status == "retired"
    assert fake_vllm.calls[-1] == ("/v1/unload_lora_adapter", {"lora_name": a.name})
    # Rolling the alias back onto a retired checkpoint is refused.
    with pytest.raises(ApplicationError, match="retired"):
        services.alias_rollback(name="canary")


def test_the_serving_manifest_lists_published_adapters_and_aliases(tmp_path, client, src):
    a, b = registered(tmp_path, n=2)
    services.checkpoint_publish(checkpoint=a, alias="production")
    base = services.checkpoint_register_base(base_model=BaseModel.objects.get(name="smollm2-135m"))
    services.alias_set(name="baseline", checkpoint=base)

    assert client.get("/api/v1/serving/manifest").status_code in (401, 403)
    response = client.get("/api/v1/serving/manifest", HTTP_AUTHORIZATION=f"Bearer {src.secret}")
    assert response.status_code == 200
    body = response.json()
    assert body["aliases"] == {"baseline": base.name, "production": a.name}
    adapters = {item["name"]: item for item in body["adapters"]}
    assert set(adapters) == {a.name, base.name}  # b is only a candidate
    entry = adapters[a.name]
    assert entry["base_model"] == "org/tiny-llama"
    assert entry["path"] == str((Path(settings.ARTIFACT_ROOT) / "adapters" / a.name).resolve())
    assert entry["sha256"] == a.sha256 and entry["aliases"] == ["production"]
    assert adapters[base.name]["kind"] == "base" and adapters[base.name]["path"] == ""
    # A publishable key is for the widget's ingest only.
    assert (
        client.get(
            "/api/v1/serving/manifest", HTTP_AUTHORIZATION=f"Bearer {src.publishable}"
        ).status_code
        == 403
    )
    assert serving_manifest()["aliases"] == body["aliases"]


def test_the_api_lets_admins_publish_and_move_aliases_and_viewers_only_read(tmp_path, client, src):
    a, b = registered(tmp_path, n=2)
    viewer = make_user("vera", group="viewer")
    client.force_login(viewer)
    listing = client.get("/api/v1/checkpoints").json()
    assert [c["name"] for c in listing] == [b.name, a.name]
    detail = client.get(f"/api/v1/checkpoints/{a.name}").json()
    assert detail["lineage"]["recipe"] == a.dataset_version.recipe.name
    assert detail["lineage"]["run"] == a.run_id
    assert client.post(f"/api/v1/checkpoints/{a.name}/publish").status_code == 403
    # A secret key reads, but cannot publish.
    assert (
        client.post(
            f"/api/v1/checkpoints/{a.name}/publish", HTTP_AUTHORIZATION=f"Bearer {src.secret}"
        ).status_code
        == 403
    )

    client.force_login(make_user("ada", group="admin"))
    published = client.post(
        f"/api/v1/checkpoints/{a.name}/publish",
        {"alias": "production"},
        content_type="application/json",
    )
    assert published.status_code == 200, published.json()
    assert published.json()["status"] == "published" and published.json()["aliases"] == [
        "production"
    ]
    bad = client.put(
        "/api/v1/aliases/production", {"checkpoint": b.name}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert "checkpoint" in bad.json()["error"]["fields"]
    assert (
        client.post(
            f"/api/v1/checkpoints/{b.pk}/publish", content_type="application/json"
        ).status_code
        == 200
    )
    moved = client.put(
        "/api/v1/aliases/production",
        {"checkpoint": b.name, "reason": "better"},
        content_type="application/json",
    ).json()
    assert moved["checkpoint"] == b.name and moved["rollback_to"] == a.name
    assert moved["moves"][0]["reason"] == "better" and moved["moves"][0]["user"] == "ada"
    rolled = client.post("/api/v1/aliases/production/rollback").json()
    assert rolled["checkpoint"] == a.name and rolled["moves"][0]["is_rollback"] is True
    assert client.get("/api/v1/checkpoints/nope").status_code == 404
    assert client.post("/api/v1/aliases/nope/rollback").status_code == 404
    assert client.post(f"/api/v1/checkpoints/{a.name}/retire").status_code == 409

    # registry.change_alias alone is enough to publish.
    client.force_login(make_user("pat", perms=("registry.change_alias",)))
    assert (
        client.post(
            "/api/v1/aliases/production", {"checkpoint": b.name}, content_type="application/json"
        ).status_code
        == 200
    )


def test_the_publish_and_alias_commands(tmp_path):
    a, b = registered(tmp_path, n=2)
    out = StringIO()
    call_command("publish", a.name, "--alias", "production", "--json", stdout=out)
    assert json.loads(out.getvalue())["status"] == "published"
    call_command("publish", str(b.pk), stdout=StringIO())
    out = StringIO()
    call_command("alias", "production", b.name, "--reason", "by hand", stdout=out)
    assert out.getvalue().strip() == f"production → {b.name}"
    out = StringIO()
    call_command("alias", "production", "--rollback", stdout=out)
    assert out.getvalue().strip() == f"production → {a.name}"
    with pytest.raises(CommandError, match="no checkpoint 'nope'"):
        call_command("publish", "nope")
