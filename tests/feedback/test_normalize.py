"""Normalized rows (interactions, ratings, pairwise comparisons) are derived from the raw log for
all four event types, can be thrown away and rebuilt identically, and deriving twice is a no-op."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest

from apps.feedback.models import Comparison, Event, Interaction, Rating
from apps.feedback.services.normalize import (
    derive,
    feedback_events_normalize,
    feedback_normalized_rebuild,
    feedback_pending_normalize,
    prompt_hash,
)
from tests.conftest import Api, preference, rating

PROMPT = [{"role": "user", "content": "What is the capital of Australia?"}]


def ranking(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "ranking",
        "id": "evt-r",
        "rater": "user-1",
        "messages": PROMPT,
        "model": "fallback",
        "responses": [
            {"model": "a", "content": "Sydney."},
            {"content": "Canberra."},
            {"model": "c", "checkpoint": "ck-c", "content": "Canberra, since 1913."},
            {"model": "d", "content": "Melbourne."},
        ],
        "ranking": [2, 1, 3, 0],
    }
    event.update(overrides)
    return event


def edit(**overrides: Any) -> dict[str, Any]:
    event = {
        "type": "edit",
        "id": "evt-e",
        "model": "m",
        "checkpoint": "ck",
        "messages": PROMPT,
        "response": "Sydney.",
        "edited": "Canberra.",
    }
    event.update(overrides)
    return event


# --- derive: a pure function of one payload --------------------------------------------------------


def test_a_thumb_becomes_one_interaction_and_a_rating() -> None:
    derived = derive(rating(rating=-1, reason="wrong", checkpoint="ck-1"))

    assert derived.interactions == [
        {"position": 0, "model": "llama3.1:8b", "checkpoint": "ck-1", "edited": False}
    ]
    assert derived.rating == {"value": -1, "score": None, "reason": "wrong"}
    assert derived.comparisons == []


def test_a_score_is_kept_beside_an_absent_thumb() -> None:
    assert derive(rating(rating=None, score=8)).rating == {"value": None, "score": 8, "reason": ""}


def test_an_edit_becomes_one_edited_interaction_without_a_rating() -> None:
    derived = derive(edit())

    assert derived.interactions == [
        {"position": 0, "model": "m", "checkpoint": "ck", "edited": True}
    ]
    assert derived.rating is None
    assert derived.comparisons == []


@pytest.mark.parametrize(
    ("choice", "outcome"), [(0, "a"), (1, "b"), ("tie", "tie"), ("both_bad", "both_bad")]
)
def test_a_preference_becomes_two_interactions_and_one_comparison(
    choice: Any, outcome: str
) -> None:
    derived = derive(preference(choice=choice))

    assert [(i["position"], i["model"]) for i in derived.interactions] == [(0, "a"), (1, "b")]
    assert derived.comparisons == [(0, 1, outcome)]
    assert derived.rating is None


def test_a_ranking_expands_to_every_pair_with_the_better_one_winning() -> None:
    derived = derive(ranking())

    place = {2: 0, 1: 1, 3: 2, 0: 3}  # position → rank, best first
    expected = [(a, b, "a" if place[a] < place[b] else "b") for a, b in combinations(range(4), 2)]
    assert derived.comparisons == expected
    assert len(derived.comparisons) == 6
    assert (
        (1, 2, "b") in derived.comparisons
        and (0, 3, "b") in derived.comparisons
        and (1, 3, "a") in derived.comparisons
    )


def test_a_response_without_a_model_falls_back_to_the_events() -> None:
    interactions = derive(ranking()).interactions

    assert [(i["model"], i["checkpoint"]) for i in interactions] == [
        ("a", ""),
        ("fallback", ""),
        ("c", "ck-c"),
        ("d", ""),
    ]


def test_prompts_that_differ_only_in_case_and_space_hash_alike() -> None:
    same = prompt_hash([{"role": "user", "content": "  What is   the Capital\nof Australia? "}])
    parts = prompt_hash(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "what is the capital of australia?"}],
            }
        ]
    )

    assert same == parts == prompt_hash(PROMPT)
    assert prompt_hash([{"role": "system", "content": PROMPT[0]["content"]}]) != same
    assert prompt_hash([{"role": "user", "content": "What is the capital of Austria?"}]) != same


# --- written rows ------------------------------------------------------------------------------


@pytest.fixture
def stored(api: Api) -> list[int]:
    """One event of each type in the raw log, not yet normalized."""
    batch = [
        rating(id="r", rating=1, score=9, reason="good", checkpoint="ck-r"),
        preference(id="p", choice="tie"),
        ranking(id="k"),
        edit(id="e"),
    ]
    return [result["id"] for result in api.post(batch).json()["results"]]


def _snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every derived row, without its own primary key, in a stable order."""
    return {
        "interactions": sorted(
            Interaction.objects.values_list(
                "event_id", "position", "model", "checkpoint", "prompt_hash", "edited"
            )
        ),
        "ratings": sorted(
            Rating.objects.values_list(
                "event_id",
                "interaction__position",
                "source_id",
                "model",
                "checkpoint",
                "value",
                "score",
                "reason",
                "rater_hash",
                "created_at",
            )
        ),
        "comparisons": sorted(
            Comparison.objects.values_list(
                "event_id",
                "interaction_a__position",
                "interaction_b__position",
                "source_id",
                "model_a",
                "model_b",
                "outcome",
                "rater_hash",
                "created_at",
            )
        ),
    }


def test_it_writes_the_derived_rows_of_every_type(stored: list[int], src: Any) -> None:
    rating_id, preference_id, ranking_id, edit_id = stored

    assert feedback_events_normalize(event_ids=stored) == 4

    assert Interaction.objects.filter(event_id=rating_id).count() == 1
    assert Interaction.objects.filter(event_id=preference_id).count() == 2
    assert Interaction.objects.filter(event_id=ranking_id).count() == 4
    assert list(Interaction.objects.filter(event_id=edit_id).values_list("edited", flat=True)) == [
        True
    ]
    row = Rating.objects.get()
    event = Event.objects.get(pk=rating_id)
    assert (row.event_id, row.value, row.score, row.reason, row.model, row.checkpoint) == (
        rating_id,
        1,
        9,
        "good",
        "llama3.1:8b",
        "ck-r",
    )
    assert (row.source_id, row.rater_hash, row.created_at) == (
        src.source.pk,
        event.rater_hash,
        event.received_at,
    )
    assert list(
        Comparison.objects.filter(event_id=preference_id).values_list(
            "model_a", "model_b", "outcome"
        )
    ) == [("a", "b", "tie")]
    assert Comparison.objects.filter(event_id=ranking_id).count() == 6
    for comparison in Comparison.objects.select_related("interaction_a", "interaction_b"):
        assert comparison.interaction_a.position < comparison.interaction_b.position
        assert (
            comparison.interaction_a.event_id
            == comparison.interaction_b.event_id
            == comparison.event_id
        )


def test_interactions_of_one_prompt_share_its_hash(stored: list[int]) -> None:
    feedback_events_normalize(event_ids=stored)

    hashes = set(
        Interaction.objects.exclude(event_id=stored[1]).values_list("prompt_hash", flat=True)
    )
    assert hashes == {prompt_hash(PROMPT)}


def test_normalizing_twice_does_the_work_once(stored: list[int]) -> None:
    feedback_events_normalize(event_ids=stored)
    before = _snapshot()

    assert feedback_events_normalize(event_ids=stored) == 0
    assert feedback_pending_normalize() == 0

    assert _snapshot() == before


def test_normalizing_picks_up_only_the_events_that_have_no_rows(stored: list[int]) -> None:
    feedback_events_normalize(event_ids=stored[:2])

    assert feedback_pending_normalize() == 2
    assert Interaction.objects.values("event_id").distinct().count() == 4


def test_a_rebuild_derives_exactly_the_same_rows(stored: list[int]) -> None:
    feedback_events_normalize(event_ids=stored)
    before = _snapshot()
    old_ids = set(Interaction.objects.values_list("id", flat=True))

    assert feedback_normalized_rebuild(chunk_size=3) == 4

    assert _snapshot() == before
    assert not old_ids & set(Interaction.objects.values_list("id", flat=True)), (
        "rebuild did not rebuild"
    )


def test_a_rebuild_leaves_the_raw_log_untouched(stored: list[int]) -> None:
    feedback_events_normalize(event_ids=stored)
    raw = list(Event.objects.order_by("id").values_list("id", "payload", "status", "received_at"))

    feedback_normalized_rebuild()

    assert (
        list(Event.objects.order_by("id").values_list("id", "payload", "status", "received_at"))
        == raw
    )


def test_a_rebuild_reports_progress(stored: list[int]) -> None:
    seen: list[int] = []

    feedback_normalized_rebuild(chunk_size=3, progress=seen.append)

    assert seen == [3, 1]


def test_the_ingest_task_normalizes_and_judges_after_commit(
    api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.quality.models import Verdict

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event_id = api.post(ranking()).json()["id"]

    assert len(callbacks) == 1  # one hint: normalization, then (by signal) the verdict
    assert Verdict.objects.filter(event_id=event_id, is_current=True).count() == 1
    assert Interaction.objects.filter(event_id=event_id).count() == 4
    assert Comparison.objects.filter(event_id=event_id).count() == 6


def test_a_retry_schedules_no_second_normalization(
    api: Api, django_capture_on_commit_callbacks: Any
) -> None:
    api.post(rating())

    with django_capture_on_commit_callbacks() as callbacks:
        assert api.post(rating()).status_code == 200

    assert callbacks == []
