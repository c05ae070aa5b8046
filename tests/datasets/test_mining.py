"""Pair mining: what each signal gives to SFT, DPO and KTO rows, on hand-made events and on the
real samples in ../shared/data/formats imported through the real importers."""

from __future__ import annotations

from collections import Counter

import pytest

from apps.datasets.mining import EventRecord, Thumb, event_rows, rules_with_defaults, thumbs_pairs
from apps.datasets.models import DatasetVersion
from apps.datasets.selectors import manifest_rows, version_rows
from apps.datasets.services import dataset_version_build, dataset_version_create, recipe_create
from apps.feedback.models import Event
from apps.feedback.services.importing import feedback_import
from apps.feedback.services.normalize import feedback_events_normalize
from apps.quality.services import quality_events_judge
from tests.conftest import SHARED_DATA

RULES = rules_with_defaults({})
ASK = [{"role": "user", "content": "Name a fruit"}]


def record(event_type: str, **payload) -> EventRecord:
    return EventRecord(7, event_type, {"type": event_type, "messages": ASK, **payload}, "src", "m")


def rows(kind: str, event: EventRecord, **kw) -> list:
    return list(event_rows(kind, event, rules=RULES, **kw))


def test_a_ranking_expands_to_every_ordered_pair_best_first() -> None:
    event = record(
        "ranking", responses=[{"content": c} for c in ("B", "A", "C")], ranking=[1, 0, 2]
    )
    pairs = [
        (r.columns["chosen"][0]["content"], r.columns["rejected"][0]["content"])
        for r in rows("dpo", event)
    ]
    assert pairs == [("A", "B"), ("A", "C"), ("B", "C")]
    assert {r.quadrant for r in rows("dpo", event)} == {"ranking"}
    assert [r.columns["messages"][-1]["content"] for r in rows("sft", event)] == ["A"]
    assert [(r.completion, r.columns["label"]) for r in rows("kto", event)] == [
        ("A", True),
        ("C", False),
    ]


def test_ties_and_both_bad_give_no_pairs_and_are_counted() -> None:
    dropped: Counter = Counter()
    tie = record("preference", responses=[{"content": "x"}, {"content": "y"}], choice="tie")
    both_bad = record(
        "preference", responses=[{"content": "x"}, {"content": "y"}], choice="both_bad"
    )
    assert rows("dpo", tie, dropped=dropped) == [] and rows("dpo", both_bad, dropped=dropped) == []
    assert rows("sft", both_bad) == []
    assert dropped == {"tie": 1, "both_bad": 1}
    assert [r.columns["label"] for r in rows("kto", both_bad)] == [False, False], (
        "both are bad for KTO"
    )


def test_an_edit_gives_the_edited_reply_over_the_original() -> None:
    event = record("edit", response="Lyon", edited="Paris")
    [pair] = rows("dpo", event)
    assert (pair.columns["chosen"], pair.columns["rejected"]) == (
        [{"role": "assistant", "content": "Paris"}],
        [{"role": "assistant", "content": "Lyon"}],
    )
    assert pair.quadrant == "edit" and pair.event_ids == (7,)


def test_a_gold_reply_is_an_sft_row_a_pair_over_the_original_and_a_desirable_row() -> None:
    event = record("rating", response="Rock", rating=1)
    assert [r.completion for r in rows("sft", event, gold={0: "Apple"})] == ["Apple"], (
        "gold replaces it"
    )
    [pair] = rows("dpo", event, gold={0: "Apple"})
    assert (pair.completion, pair.columns["rejected"][0]["content"], pair.quadrant) == (
        "Apple",
        "Rock",
        "gold",
    )
    assert ("Apple", True, "gold") in [
        (r.completion, r.columns["label"], r.quadrant)
        for r in rows("kto", event, gold={0: "Apple"})
    ]


def test_multi_turn_conversations_stay_multi_turn() -> None:
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "Fruit?"}]},
    ]
    event = EventRecord(
        1,
        "preference",
        {
            "type": "preference",
            "messages": turns,
            "responses": [{"content": "Apple"}, {"content": "Rock"}],
            "choice": 0,
        },
    )
    [pair] = rows("dpo", event)
    assert [m["role"] for m in pair.columns["prompt"]] == ["system", "user", "assistant", "user"]
    assert pair.columns["prompt"][-1]["content"] == "Fruit?"
    [sft] = rows("sft", event)
    assert len(sft.columns["messages"]) == 5 and sft.columns["messages"][-1] == {
        "role": "assistant",
        "content": "Apple",
    }


def test_thumbs_on_one_prompt_pair_every_rated_reply_once_at_least() -> None:
    payload = lambda reply: {"type": "rating", "messages": ASK, "response": reply}  # noqa: E731
    thumbs = [
        Thumb(1, 1, payload("Apple")),
        Thumb(2, -1, payload("Rock")),
        Thumb(3, -1, payload("Car")),
        Thumb(4, -1, payload("Rock")),
    ]
    pairs = list(thumbs_pairs(thumbs))
    assert [
        (p.columns["chosen"][0]["content"], p.columns["rejected"][0]["content"], p.event_ids)
        for p in pairs
    ] == [
        ("Apple", "Rock", (1, 2)),
        ("Apple", "Car", (1, 3)),
    ], "the repeated (Apple, Rock) pair is skipped"
    assert {p.quadrant for p in pairs} == {"thumbs"}
    assert list(thumbs_pairs([Thumb(1, 1, payload("Apple"))])) == []


def test_placeholder_texts_of_imports_never_become_rows() -> None:
    event = record(
        "rating",
        response="[reply of x: not in the export]",
        rating=1,
        metadata={"placeholders": ["response"]},
    )
    dropped: Counter = Counter()
    assert rows("sft", event, dropped=dropped) == [] and dropped["placeholder_text"] == 1


# --- the real samples -------------------------------------------------------------------------


@pytest.fixture
def real_samples(src) -> dict[str, int]:
    counts = {}
    for fmt, name in (
        ("openwebui", "openwebui_feedback_export_example.json"),
        ("hh-rlhf", "hh_rlhf_harmless_sample.jsonl"),
        ("oasst", "oasst_tree_sample.jsonl"),
    ):
        path = SHARED_DATA / "formats" / name
        if not path.exists():
            pytest.skip(f"{path} is absent (the shared data folder beside the checkout)")
        counts[fmt] = feedback_import(source=src.source, format=fmt, path=path).imported
    ids = list(Event.objects.values_list("id", flat=True))
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)
    return counts


def _build(kind: str) -> DatasetVersion:
    recipe = recipe_create(name=f"real-{kind}", kind=kind, test_fraction=0.2, dedup_exact=False)
    version = dataset_version_build(
        version_id=dataset_version_create(recipe=recipe, enqueue=False).pk
    )
    assert version.status == "succeeded", version.error
    return version


@pytest.mark.django_db
def test_real_samples_mine_into_pairs_with_their_quadrants_and_events(real_samples) -> None:
    version = _build("dpo")
    manifest = list(manifest_rows(version))
    quadrants = Counter(line["quadrant"] for line in manifest)
    usable = Event.objects.filter(verdicts__is_current=True, verdicts__status="accepted")
    hh = usable.filter(payload__id__startswith="hh-rlhf").count()
    oasst_pairs = sum(
        len(e.payload["responses"]) * (len(e.payload["responses"]) - 1) // 2
        for e in usable.filter(type="ranking")
    )
    assert hh > 250 and quadrants["ranking"] == oasst_pairs > 18
    # the Open WebUI example's arena wins have real texts for one of its pairs only; its
    # placeholders (replies not in the export) are left out
    openwebui = [
        line
        for line in manifest
        if Event.objects.get(pk=line["event_ids"][0]).payload["id"].startswith("openwebui")
    ]
    assert all(
        "not in the export" not in str(version_rows(version, line["split"])[line["index"]])
        for line in openwebui
    )
    assert version.stats["dropped"].get("placeholder_text", 0) >= 1
    assert (
        sum(version.rows.values())
        == len(manifest)
        == quadrants["preference"] + quadrants["ranking"]
    )
    # HH-RLHF's transcripts stay multi-turn
    rows = version_rows(version, "train") + version_rows(version, "test")
    assert max(len(r["prompt"]) for r in rows) >= 3
    assert all(r["chosen"][0]["role"] == "assistant" and r["chosen"] != r["rejected"] for r in rows)
    # every row names events that exist, and the manifest table has them
    assert set(version.manifest.values_list("event_id", flat=True)) == {
        i for line in manifest for i in line["event_ids"]
    }


@pytest.mark.django_db
def test_real_samples_make_sft_and_kto_rows(real_samples) -> None:
    sft, kto = _build("sft"), _build("kto")
    assert sum(sft.rows.values()) > 250
    labels = Counter(line["label"] for line in manifest_rows(kto))
    assert labels["desirable"] > 250 and labels["undesirable"] > 250
    weights = kto.stats["kto"]
    ratio = (
        weights["desirable_weight"]
        * weights["desirable"]
        / (weights["undesirable_weight"] * weights["undesirable"])
    )
    assert 1 <= ratio <= 4 / 3
