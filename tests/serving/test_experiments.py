"""A/B experiments: deterministic assignment that splits as configured, the gateway applying it,
results and verdicts on synthetic feedback, promote and roll back, and the API's rules."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import Group

from apps.core.exceptions import ApplicationError
from apps.feedback.services.ingest import feedback_ingest
from apps.registry.models import Alias, AliasMove
from apps.serving import selectors, services
from apps.serving.models import Experiment, ServedAnswer
from tests.conftest import preference, rating

pytestmark = pytest.mark.django_db


def make_experiment(
    registry: Any, *, weights: tuple[int, int] = (1, 1), start: bool = True, **fields: Any
) -> Experiment:
    experiment = services.experiment_create(
        name=fields.pop("name", "lora-vs-base"),
        alias="production",
        arms=[
            services.ArmSpec(alias="production", name="control", weight=weights[0]),
            services.ArmSpec(checkpoint="tiny-lora", name="lora", weight=weights[1]),
        ],
        **fields,
    )
    return services.experiment_start(experiment=experiment) if start else experiment


def thumbs(checkpoint: str, ups: int, downs: int) -> list[dict[str, Any]]:
    return [
        rating(
            id=f"{checkpoint}-{i}",
            rater=f"rater-{checkpoint}-{i}",
            model="tiny",
            checkpoint=checkpoint,
            messages=[{"role": "user", "content": f"Question number {i} for {checkpoint}?"}],
            response=f"Answer number {i} from {checkpoint}.",
            rating=1 if i < ups else -1,
        )
        for i in range(ups + downs)
    ]


def preferences(a: str, b: str, outcomes: list[Any]) -> list[dict[str, Any]]:
    return [
        preference(
            id=f"pref-{i}",
            rater=f"judge-{i}",
            messages=[{"role": "user", "content": f"Compare answers to {i}"}],
            responses=[
                {"content": f"first {i}", "checkpoint": a, "model": a},
                {"content": f"second {i}", "checkpoint": b, "model": b},
            ],
            choice=choice,
        )
        for i, choice in enumerate(outcomes)
    ]


def ingest(src: Any, items: list[dict[str, Any]], capture: Any) -> None:
    with capture(execute=True):
        results = feedback_ingest(source=src.source, items=items)
    assert {r.status for r in results} == {"accepted"}


def test_assignment_is_deterministic_and_splits_ninety_ten(registry):
    experiment = make_experiment(registry, weights=(9, 1))
    arms = selectors.experiment_arms(experiment)

    counts = Counter(
        selectors.assign_arm(experiment, f"user-{i}", arms).name for i in range(10_000)
    )

    assert abs(counts["control"] - 9_000) < 200  # ±4.4 standard deviations
    assert [selectors.assign_arm(experiment, "user-7", arms).name for _ in range(5)] == [
        selectors.assign_arm(experiment, "user-7", arms).name
    ] * 5


def test_the_gateway_splits_an_aliased_experiment_by_user(gateway, registry):
    experiment = make_experiment(registry)
    # The split hashes the experiment's id with the user, and ids are not reset between tests
    # (PostgreSQL): six fixed names can all fall on one arm. Take three users of each arm.
    expected: dict[str, str] = {}
    names = (f"user-{i}" for i in range(1_000))
    while Counter(expected.values()) != {"control": 3, "lora": 3}:
        user = next(names)
        arm = selectors.assign_arm(experiment, user).name
        if Counter(expected.values())[arm] < 3:
            expected[user] = arm
    arms: dict[str, set[str]] = {}
    for user, arm in expected.items():
        for _ in range(2):
            response = gateway.chat("production", user=user, max_tokens=2)
            body = response.json()
            arms.setdefault(user, set()).add(body["sinkhole"]["checkpoint"])
            assert body["sinkhole"]["experiment"] == "lora-vs-base"
            assert body["sinkhole"]["arm"] == arm
            assert response["X-Sinkhole-Arm"] == body["sinkhole"]["arm"]

    assert all(len(served) == 1 for served in arms.values())  # a user stays on one arm
    assert set().union(*arms.values()) == {"base-tiny", "tiny-lora"}
    assert (
        ServedAnswer.objects.filter(experiment__name="lora-vs-base", arm__isnull=False).count()
        == 12
    )


def test_a_rater_header_works_like_user_and_the_assign_api_agrees(gateway, registry, api):
    experiment = make_experiment(registry)
    body = gateway.client.post(
        "/v1/chat/completions",
        json.dumps(
            {
                "model": f"experiment:{experiment.pk}",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2,
            }
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {gateway.key}",
        HTTP_X_SINKHOLE_RATER="zed",
    ).json()

    assigned = api.get(f"/api/v1/experiments/{experiment.name}/assign", rater="zed").json()

    assert assigned["arm"] == body["sinkhole"]["arm"]
    assert assigned["checkpoint"] == body["sinkhole"]["checkpoint"]
    assert api.get(f"/api/v1/experiments/{experiment.pk}/assign").status_code == 400


def test_a_stopped_experiment_serves_nothing(gateway, registry):
    experiment = make_experiment(registry)
    services.experiment_stop(experiment=experiment)

    assert (
        gateway.chat("production").json()["sinkhole"]["checkpoint"] == "base-tiny"
    )  # the alias again
    response = gateway.chat("experiment:lora-vs-base")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "experiment_not_running"


def test_results_give_rates_intervals_and_a_verdict(
    registry, src, django_capture_on_commit_callbacks
):
    ingest(
        src, thumbs("tiny-lora", 10, 10), django_capture_on_commit_callbacks
    )  # before: not counted
    experiment = make_experiment(registry, min_events=30)
    ingest(
        src, thumbs("base-tiny", 40, 60) + thumbs("other", 5, 0), django_capture_on_commit_callbacks
    )
    ingest(
        src,
        [dict(e, id=f"late-{e['id']}") for e in thumbs("tiny-lora", 75, 25)],
        django_capture_on_commit_callbacks,
    )
    ingest(
        src,
        preferences("base-tiny", "tiny-lora", [1] * 30 + ["tie"] * 4 + [0] * 6),
        django_capture_on_commit_callbacks,
    )

    results = selectors.experiment_results(experiment)

    control, lora = results["arms"]
    assert control["checkpoint"] == "base-tiny" and control["is_control"]
    assert control["thumbs"]["n"] == 100 and control["thumbs"]["rate"] == pytest.approx(0.40)
    assert lora["thumbs"]["n"] == 100 and lora["thumbs"]["rate"] == pytest.approx(0.75)
    assert lora["thumbs"]["lower"] < 0.75 < lora["thumbs"]["upper"]
    assert lora["head_to_head"]["n"] == 40
    assert lora["head_to_head"]["rate"] == pytest.approx(32 / 40)
    versus = lora["versus_control"]
    assert versus["verdict"] == "better"
    assert versus["basis"] == "thumbs and head_to_head"
    assert versus["lower"] > 0 and versus["difference"] == pytest.approx(0.35)
    assert versus["events_needed"] == 0
    assert results["decision"] == {"winner": "lora", "checkpoint": "tiny-lora", "verdict": "better"}


def test_a_changed_thumb_counts_once_as_it_is_now(
    registry, src, django_capture_on_commit_callbacks
):
    experiment = make_experiment(registry, min_events=30)
    votes = thumbs("tiny-lora", 3, 1)
    flips = [
        dict(vote, id=f"{vote['id']}:r2", rating=-vote["rating"], supersedes=vote["id"])
        for vote in votes[:2]
    ]  # two users changed their minds: up → down
    ingest(src, votes + flips, django_capture_on_commit_callbacks)

    lora = selectors.experiment_results(experiment)["arms"][1]
    assert lora["thumbs"]["n"] == 4
    assert lora["thumbs"]["rate"] == pytest.approx(1 / 4)


def test_too_few_events_give_no_verdict_and_say_how_many_more(
    registry, src, django_capture_on_commit_callbacks
):
    experiment = make_experiment(registry, min_events=30)
    ingest(
        src,
        thumbs("base-tiny", 5, 5) + thumbs("tiny-lora", 8, 2),
        django_capture_on_commit_callbacks,
    )

    versus = selectors.experiment_results(experiment)["arms"][1]["versus_control"]

    assert versus["verdict"] == "no difference yet"
    assert versus["events_needed"] >= 20
    assert selectors.experiment_results(experiment)["decision"]["winner"] is None


def test_promote_moves_the_alias_and_rollback_moves_it_back_both_recorded(
    registry, src, admin_client, django_capture_on_commit_callbacks
):
    experiment = make_experiment(registry, min_events=20)
    ingest(
        src,
        thumbs("base-tiny", 10, 30) + thumbs("tiny-lora", 35, 5),
        django_capture_on_commit_callbacks,
    )

    response = admin_client.post(
        f"/api/v1/experiments/{experiment.name}/promote", {}, content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "decided"
    assert response.json()["decided_arm"] == "lora"
    assert Alias.objects.get(name="production").checkpoint.name == "tiny-lora"
    move = AliasMove.objects.latest("id")
    assert (move.from_checkpoint.name, move.to_checkpoint.name) == ("base-tiny", "tiny-lora")
    assert "lora-vs-base" in move.reason and move.user.username == "boss"
    # The control arm served the alias as it was at the start, and still counts that way.
    assert (
        selectors.experiment_results(Experiment.objects.get())["arms"][0]["checkpoint"]
        == "base-tiny"
    )

    response = admin_client.post(f"/api/v1/experiments/{experiment.name}/rollback")

    assert response.status_code == 200
    assert response.json()["status"] == "stopped"
    assert Alias.objects.get(name="production").checkpoint.name == "base-tiny"
    back = AliasMove.objects.latest("id")
    assert back.is_rollback and "rolled back" in back.reason


def test_promote_without_a_verdict_needs_an_arm_named(registry, admin_client):
    experiment = make_experiment(registry)
    response = admin_client.post(
        f"/api/v1/experiments/{experiment.pk}/promote", {}, content_type="application/json"
    )
    assert response.status_code == 409
    response = admin_client.post(
        f"/api/v1/experiments/{experiment.pk}/promote",
        {"arm": "lora"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert "chosen by hand" in AliasMove.objects.latest("id").reason


def test_the_api_creates_starts_and_reads_experiments(registry, admin_client, api):
    body = {
        "name": "ab",
        "alias": "production",
        "min_events": 10,
        "arms": [
            {"checkpoint": "base-tiny", "weight": 9, "is_control": True},
            {"checkpoint": "tiny-lora", "weight": 1},
        ],
    }
    created = admin_client.post("/api/v1/experiments", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "draft"
    assert [a["name"] for a in created.json()["arms"]] == ["base-tiny", "tiny-lora"]

    assert admin_client.post("/api/v1/experiments/ab/start").json()["status"] == "running"
    assert (
        admin_client.patch(
            "/api/v1/experiments/ab", {"min_events": 5}, content_type="application/json"
        ).status_code
        == 409
    )
    listed = api.get("/api/v1/experiments").json()["results"]  # a secret key reads
    assert [e["name"] for e in listed] == ["ab"]
    # Results count every source's feedback: a person with a role reads them, a key does not.
    assert api.get("/api/v1/experiments/ab/results").status_code == 403
    results = admin_client.get("/api/v1/experiments/ab/results").json()
    assert results["arms"][0]["thumbs"]["n"] == 0
    assert admin_client.delete("/api/v1/experiments/ab").status_code == 409
    assert admin_client.post("/api/v1/experiments/ab/stop").json()["status"] == "stopped"
    assert admin_client.delete("/api/v1/experiments/ab").status_code == 204


@pytest.mark.parametrize(
    ("arms", "field"),
    [
        ([{"checkpoint": "base-tiny"}], "arms"),
        ([{"checkpoint": "base-tiny"}, {"checkpoint": "nope"}], "arms.1.checkpoint"),
        (
            [{"checkpoint": "base-tiny"}, {"checkpoint": "tiny-lora", "alias": "production"}],
            "arms.1",
        ),
        ([{"checkpoint": "base-tiny"}, {"checkpoint": "tiny-lora", "weight": 0}], "arms.1.weight"),
    ],
)
def test_bad_experiments_are_refused_field_by_field(registry, admin_client, arms, field):
    response = admin_client.post(
        "/api/v1/experiments", {"name": "bad", "arms": arms}, content_type="application/json"
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Experiment.objects.exists()


def test_only_admins_change_experiments(registry, api, client, django_user_model):
    body = {"name": "x", "arms": [{"checkpoint": "base-tiny"}, {"checkpoint": "tiny-lora"}]}
    assert api.post(body, path="/api/v1/experiments").status_code == 403  # a key cannot
    viewer = django_user_model.objects.create_user("viewer")
    viewer.groups.add(Group.objects.get(name="viewer"))  # a user without a role sees nothing
    client.force_login(viewer)
    assert (
        client.post("/api/v1/experiments", body, content_type="application/json").status_code == 403
    )
    assert client.get("/api/v1/experiments").status_code == 200


def test_two_arms_on_one_checkpoint_cannot_start(registry):
    experiment = services.experiment_create(
        name="same",
        arms=[services.ArmSpec(alias="production"), services.ArmSpec(checkpoint="base-tiny")],
    )
    with pytest.raises(ApplicationError) as raised:
        services.experiment_start(experiment=experiment)
    assert "same checkpoint" in raised.value.fields["arms"][0]


def test_the_experiment_command_runs_the_lifecycle(registry):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "experiment",
        "create",
        "cli-ab",
        "--alias",
        "production",
        "--arm",
        "alias:production=9",
        "--arm",
        "checkpoint:tiny-lora=1",
        stdout=out,
    )
    call_command("experiment", "start", "cli-ab", stdout=out)
    call_command("experiment", "promote", "cli-ab", "--to", "tiny-lora", stdout=out)

    assert Alias.objects.get(name="production").checkpoint.name == "tiny-lora"
    experiment = Experiment.objects.get(name="cli-ab")
    assert experiment.status == "decided"
    assert [(a.name, a.weight, a.is_control) for a in experiment.arms.all()] == [
        ("production", 9, True),
        ("tiny-lora", 1, False),
    ]
    assert "decision:" in out.getvalue()
