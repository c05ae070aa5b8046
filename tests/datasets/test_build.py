"""Building dataset versions: selection, hash stability, split by prompt, dedup, decontamination,
tombstones, curated-only and gold, the files (loadable by `datasets`, readable by TRL), compare,
and the Celery task on the datasets queue."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.curation.models import Decision
from apps.datasets.models import DatasetVersion
from apps.datasets.selectors import manifest_rows, version_rows, versions_compare
from apps.datasets.services import (
    dataset_version_build,
    dataset_version_create,
    eval_set_create,
    recipe_create,
    recipe_update,
)
from apps.datasets.services.build import kto_weights
from apps.feedback.models import Event
from apps.feedback.services.normalize import prompt_hash
from apps.quality.services import verdict_override
from tests.datasets.conftest import ask, edit, pref, rank, thumbs

pytestmark = pytest.mark.django_db

FRUITS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "mango", "peach", "grape"]


def build(recipe, **kw) -> DatasetVersion:
    version = dataset_version_build(
        version_id=dataset_version_create(recipe=recipe, enqueue=False).pk, **kw
    )
    assert version.status == "succeeded", version.error
    return version


def all_rows(version: DatasetVersion) -> list[dict]:
    return version_rows(version, "train") + version_rows(version, "test")


@pytest.fixture
def mixed(feed) -> list[int]:
    items = []
    for i, fruit in enumerate(FRUITS * 3):  # each prompt three times, in different case and space
        prompt = (
            f"Tell me about the {fruit}."
            if i < 10
            else (
                f"tell me about the  {fruit}." if i < 20 else f"TELL ME ABOUT THE {fruit.upper()}."
            )
        )
        items.append(
            pref(prompt, f"The {fruit} is a fruit ({i}).", f"No idea ({i}).", i % 2, rater=f"r{i}")
        )
    items += [
        thumbs("What is 2+2?", "4", 1, rater="u1"),
        thumbs("what is 2+2?", "5", -1, rater="u2"),
        rank("Name a colour", ["Red", "Table", "Blue"], [0, 2, 1]),
        edit("Capital of France?", "Lyon", "Paris"),
    ]
    return feed(items)


def test_the_same_events_and_recipe_give_the_same_hash_and_files(mixed) -> None:
    first = build(recipe_create(name="dpo-a", kind="dpo", test_fraction=0.3))
    again = build(first.recipe)
    twin = build(recipe_create(name="dpo-b", kind="dpo", test_fraction=0.3))
    assert first.content_hash == again.content_hash == twin.content_hash, (
        "name and version id do not matter"
    )
    assert len(first.content_hash) == 64
    for split in ("train", "test"):
        assert first.file_path(split).read_bytes() == twin.file_path(split).read_bytes()
    assert first.rows == again.rows and sum(first.rows.values()) == 30 + 1 + 3 + 1
    other_seed = build(recipe_update(recipe=twin.recipe, seed=5))
    assert other_seed.content_hash != first.content_hash
    assert twin.recipe_snapshot["seed"] == 0, "a version keeps the recipe as it was built"


def test_a_new_event_changes_the_hash(mixed, feed) -> None:
    recipe = recipe_create(name="sft", kind="sft")
    before = build(recipe)
    feed([thumbs("Why is the sky blue?", "Rayleigh scattering.", 1, rater="new")])
    after = build(recipe)
    assert (
        after.content_hash != before.content_hash
        and sum(after.rows.values()) == sum(before.rows.values()) + 1
    )
    diff = versions_compare(a=before, b=after)
    assert (diff.added, diff.removed, diff.kept) == (1, 0, sum(before.rows.values()))
    assert diff.added_sample[0]["event_ids"] == [Event.objects.order_by("-id").first().pk]


def test_a_prompt_never_lands_on_both_sides_of_the_split(mixed) -> None:
    version = build(recipe_create(name="split", kind="dpo", test_fraction=0.4, dedup_exact=False))
    sides = {
        split: {prompt_hash(row["prompt"]) for row in version_rows(version, split)}
        for split in ("train", "test")
    }
    assert sides["train"] and sides["test"], version.rows
    assert not sides["train"] & sides["test"]
    assert version.rows["train"] + version.rows["test"] == 35


def test_exact_and_near_duplicates_are_dropped(feed) -> None:
    long = (
        "Bananas are rich in potassium and are a good snack before running or cycling for an hour"
    )
    feed(
        [
            thumbs("Snack ideas?", long, 1, rater="a"),
            thumbs("snack   IDEAS?", long.upper(), 1, rater="b"),
            thumbs("Snack ideas?", long + " or so", 1, rater="c"),
            thumbs("Snack ideas?", "Nuts.", 1, rater="d"),
        ]
    )
    exact = build(recipe_create(name="exact", kind="sft", test_fraction=0))
    assert exact.rows["train"] == 3 and exact.stats["dropped"]["duplicate_exact"] == 1
    near = build(
        recipe_create(name="near", kind="sft", test_fraction=0, dedup_near=True, near_threshold=0.8)
    )
    assert near.rows["train"] == 2 and near.stats["dropped"]["duplicate_near"] == 1
    none = build(recipe_create(name="all", kind="sft", test_fraction=0, dedup_exact=False))
    assert none.rows["train"] == 4


def test_prompts_of_an_uploaded_eval_set_are_kept_out(feed) -> None:
    gsm = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?"
    feed(
        [
            thumbs("What is the capital of Peru?", "Lima.", 1, rater="a"),
            thumbs("what is the CAPITAL of peru?  ", "Lima!", 1, rater="b"),
            thumbs(f"Please solve: {gsm} Show your work.", "72", 1, rater="c"),
            thumbs("Name a prime.", "7", 1, rater="d"),
        ]
    )
    upload = "\n".join(
        json.dumps(item)
        for item in [
            {"prompt": "What is the capital of Peru?"},
            {"messages": ask(gsm)},
            "Another question entirely",
        ]
    )
    evals = eval_set_create(name="evals", content=upload.encode(), file_name="evals.jsonl")
    assert evals.prompts == 3 and len(evals.prompts_hashes) == 3
    version = build(recipe_create(name="clean", kind="sft", test_fraction=0, decontaminate=evals))
    assert [r["messages"][0]["content"] for r in all_rows(version)] == ["Name a prime."]
    assert version.stats["dropped"]["contaminated"] == 3, (
        "two exact prompt matches, one 13-gram overlap"
    )
    with pytest.raises(ValidationError) as bad:
        eval_set_create(name="bad", content=b'{"prompt": 3}\n')
    assert "item 1" in bad.value.message_dict["file"][0]


def test_forgotten_raters_quarantined_events_and_no_consent_are_left_out(feed) -> None:
    [kept, forgotten, no_consent, spammy] = feed(
        [
            thumbs("Q1?", "A1", 1, rater="keep"),
            thumbs("Q2?", "A2", 1, rater="forget-me"),
            thumbs("Q3?", "A3", 1, rater="x", consent=False),
            thumbs("Q4?", "A4", 1, rater="y"),
        ]
    )
    verdict_override(event_id=spammy, status="quarantined", curator=None)
    recipe = recipe_create(name="sft", kind="sft", test_fraction=0)
    before = build(recipe)
    assert {tuple(line["event_ids"]) for line in manifest_rows(before)} == {(kept,), (forgotten,)}
    from django.core.management import call_command

    call_command("forget_rater", "forget-me", "--source", "test-app", stdout=open("/dev/null", "w"))  # noqa: SIM115
    before.refresh_from_db()
    assert before.forgotten_raters
    after = build(recipe)
    assert [line["event_ids"] for line in manifest_rows(after)] == [
        [kept]
    ] and not after.forgotten_raters


def test_curated_only_takes_accepted_and_gold_and_rejections_always_count(feed, curator) -> None:
    [accepted, gold, plain, rejected] = feed(
        [
            thumbs("Q1?", "A1", 1, rater="a"),
            thumbs("Q2?", "bad answer", -1, rater="b"),
            thumbs("Q3?", "A3", 1, rater="c"),
            thumbs("Q4?", "A4", 1, rater="d"),
        ]
    )
    Decision.objects.create(event_id=accepted, action="accept", user=curator)
    Decision.objects.create(
        event_id=gold, action="gold", gold_response="A much better answer.", user=curator
    )
    Decision.objects.create(event_id=rejected, action="reject", reason="low_quality", user=curator)
    undone = Decision.objects.create(event_id=plain, action="accept", user=curator)
    undone.undone_at = undone.created_at
    undone.save()
    curated = build(recipe_create(name="cur", kind="sft", test_fraction=0, curated_only=True))
    assert sorted(r["messages"][-1]["content"] for r in all_rows(curated)) == [
        "A much better answer.",
        "A1",
    ]
    dpo = build(recipe_create(name="gold-dpo", kind="dpo", test_fraction=0, curated_only=True))
    [pair] = all_rows(dpo)
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == (
        "A much better answer.",
        "bad answer",
    )
    assert [line["quadrant"] for line in manifest_rows(dpo)] == ["gold"]
    everything = build(recipe_create(name="all", kind="sft", test_fraction=0))
    assert sorted(r["messages"][-1]["content"] for r in all_rows(everything)) == [
        "A much better answer.",
        "A1",
        "A3",
    ]


def test_min_trust_and_inbox_filters_narrow_the_selection(feed, make_source) -> None:
    other = make_source("other-app")
    feed([thumbs("Q1?", "A1", 1, rater="a", model="llama")])
    feed([thumbs("Q2?", "A2", 1, rater="b", model="qwen")], source=other.source)
    by_source = build(
        recipe_create(name="src", kind="sft", test_fraction=0, filters={"source": "other-app"})
    )
    assert [r["messages"][-1]["content"] for r in all_rows(by_source)] == ["A2"]
    assert by_source.stats["train"]["source"] == {"other-app": 1} and by_source.stats["train"][
        "model"
    ] == {"qwen": 1}
    by_model = build(
        recipe_create(name="mdl", kind="sft", test_fraction=0, filters={"model": "llama"})
    )
    assert [r["messages"][-1]["content"] for r in all_rows(by_model)] == ["A1"]
    with pytest.raises(ValidationError) as bad:
        recipe_create(
            name="bad", kind="sft", filters={"type": "nonsense"}, pair_rules={"magic": True}
        )
    assert set(bad.value.message_dict) == {"filters.type", "pair_rules"}


def test_the_files_load_with_datasets_and_trl_reads_the_rows(mixed, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    import datasets
    from trl.data_utils import apply_chat_template, is_conversational

    tokenizer = _tiny_chat_tokenizer()
    for kind, columns in (
        ("sft", ["messages"]),
        ("dpo", ["prompt", "chosen", "rejected"]),
        ("kto", ["prompt", "completion", "label"]),
    ):
        version = build(recipe_create(name=f"files-{kind}", kind=kind, test_fraction=0.3))
        files = {s: str(version.file_path(s, "jsonl")) for s in ("train", "test")}
        loaded = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf"))
        parquet = datasets.load_dataset(
            "parquet",
            data_files={s: str(version.file_path(s, "parquet")) for s in files},
            cache_dir=str(tmp_path / "hf"),
        )
        for split in files:
            assert loaded[split].column_names == columns
            assert len(loaded[split]) == version.rows[split] == len(parquet[split])
            assert (
                loaded[split].to_list() == parquet[split].to_list() == version_rows(version, split)
            )
        example = loaded["train"][0]
        assert is_conversational(example)
        text = apply_chat_template(example, tokenizer)
        assert all(isinstance(v, str) for k, v in text.items() if k != "label"), text


def _tiny_chat_tokenizer():
    """A tokenizer with a chat template, made here: no model is downloaded."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
        chat_template=template,
        eos_token="[UNK]",
    )


def test_kto_weights_follow_the_class_balance() -> None:
    for good, bad in ((10, 100), (100, 10), (100, 90), (1, 1), (3, 7)):
        d, u = kto_weights(good, bad)
        assert 1 <= d * good / (u * bad) <= 4 / 3, (good, bad, d, u)
    assert kto_weights(0, 5) == (1.0, 1.0)


def test_progress_is_reported_and_a_failure_is_recorded(mixed, settings, tmp_path) -> None:
    seen = []
    version = build(recipe_create(name="p", kind="dpo"), progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] >= 0.97 and seen == sorted(seen)
    assert version.progress == 1.0 and version.message.endswith("events")
    assert set(version.files) == {"train", "test", "manifest", "stats"}
    assert (
        json.loads((settings.ARTIFACT_ROOT / version.files["stats"]).read_text())["train"]["rows"]
        == version.rows["train"]
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.ARTIFACT_ROOT = blocker  # not a folder: the build cannot write
    failed = dataset_version_build(
        version_id=dataset_version_create(recipe=version.recipe, enqueue=False).pk
    )
    assert failed.status == "failed" and "Error" in failed.error and not failed.manifest.exists()


def test_the_build_task_runs_on_the_datasets_queue_after_commit(
    mixed, django_capture_on_commit_callbacks
) -> None:
    from apps.datasets.tasks import build_version

    assert build_version.name == "datasets.build_version"
    with django_capture_on_commit_callbacks(execute=True):
        version = dataset_version_create(recipe=recipe_create(name="q", kind="kto"))
    version.refresh_from_db()
    assert version.status == "succeeded" and version.stats["kto"]["weights_from"] == "class balance"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="COPY streams are PostgreSQL's (SQLite: a cursor)"
)
def test_the_copy_streams_give_the_version_a_cursor_gives(mixed, monkeypatch) -> None:
    """Outside a transaction a PostgreSQL build reads by COPY on connections of its own; inside
    one (where other connections cannot see its rows) by a cursor: the same version either way,
    and a build that fails half way leaves no reading connection behind."""
    copied = build(recipe_create(name="by-copy", kind="dpo", test_fraction=0.3))
    with transaction.atomic():
        cursor = build(recipe_create(name="by-cursor", kind="dpo", test_fraction=0.3))
    assert "thumbs" in {row["quadrant"] for row in manifest_rows(copied)}
    assert copied.content_hash == cursor.content_hash and copied.rows == cursor.rows
    for split in ("train", "test"):
        assert copied.file_path(split).read_bytes() == cursor.file_path(split).read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("mining broke")

    monkeypatch.setattr("apps.datasets.services.build.event_rows", broken)
    failed = dataset_version_build(
        version_id=dataset_version_create(recipe=copied.recipe, enqueue=False).pk
    )
    assert failed.status == "failed" and "mining broke" in failed.error
    with connection.cursor() as c:
        c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert c.fetchone()[0] == 0
