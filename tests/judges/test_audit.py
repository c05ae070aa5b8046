"""Auditing judges against people: the numbers on known cases, the command on real files
(Anthropic HH-RLHF, OpenAssistant trees), a reward model audited on a dataset version, and an
LLM judge through a real OpenAI-compatible HTTP server asked in both orders."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.judges.audit import LabelledPair, audit, humans_agreement, shuffled_positions
from apps.judges.kinds import build, compare_both_orders
from apps.judges.kinds.base import BaseJudge, Pair, Verdict
from apps.judges.models import JudgeAudit
from apps.judges.services import judge_register
from tests.registry.factories import make_dataset_version

FORMATS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "formats"
HH = FORMATS / "hh_rlhf_harmless_sample.jsonl"
OASST = FORMATS / "oasst_tree_sample.jsonl"


class AlwaysFirst(BaseJudge):
    """A judge with pure position bias: whatever is shown as A wins."""

    def compare_once(self, pairs: list[Pair]) -> list[Verdict]:
        return [Verdict(0.9, 0.8) for _ in pairs]


def longer_wins(n: int) -> list[LabelledPair]:
    rows = [(f"q{i}", "a long and careful answer " * (1 + i % 3), "short") for i in range(n)]
    return shuffled_positions(rows, seed=1)


def test_a_length_rule_agrees_fully_when_people_always_chose_the_longer_reply():
    pairs = longer_wins(40)
    judge = build("rule", {"rule": "length"})
    results = audit(pairs, judge.compare([Pair(p.prompt, p.a, p.b) for p in pairs]))
    assert results["agreement"] == 1.0 and results["kappa"] == 1.0
    assert results["position_flip_rate"] == 0.0
    assert results["length_bias"]["humans_chose_longer"] == {"pairs": 40, "agreement": 1.0}
    assert results["length_bias"]["judge_picks_longer"] == 1.0
    assert results["curve"][-1]["coverage"] == 1.0 and results["curve"][-1]["precision"] == 1.0


def test_the_opposite_rule_scores_zero_and_a_negative_kappa():
    pairs = longer_wins(40)
    judge = build("rule", {"rule": "length", "prefer": "shorter"})
    results = audit(pairs, judge.compare([Pair(p.prompt, p.a, p.b) for p in pairs]))
    assert results["agreement"] == 0.0 and results["kappa"] < 0
    assert results["length_bias"]["humans_chose_longer"]["agreement"] == 0.0


def test_a_judge_with_position_bias_flips_on_every_pair_and_is_counted_as_ties():
    pairs = longer_wins(30)
    verdicts = compare_both_orders(AlwaysFirst(), [Pair(p.prompt, p.a, p.b) for p in pairs])
    results = audit(pairs, verdicts)
    assert results["position_flip_rate"] == 1.0
    assert results["ties"] == 30 and results["decided"] == 0
    assert results["agreement"] == 0.5  # a tie counts half
    assert results["curve"] == []  # a tie is never certified


def test_the_curve_trades_coverage_for_precision_and_reads_at_30_percent():
    # confident and right on 10 pairs, unsure and wrong on 10, unsure and right on 10
    pairs = [LabelledPair("q", "x", "y", "a") for _ in range(30)]
    verdicts = [Verdict(0.95, 0.9)] * 10 + [Verdict(0.4, 0.2)] * 10 + [Verdict(0.6, 0.2)] * 10
    results = audit(pairs, verdicts)
    by_coverage = {p["coverage"]: p for p in results["curve"]}
    assert by_coverage[0.3333]["precision"] == 1.0
    assert results["precision_at_30"]["precision"] == 1.0
    assert results["precision_at_30"]["threshold"] == 0.9
    assert by_coverage[1.0]["precision"] == pytest.approx(20 / 30, abs=1e-3)
    assert results["precision_at_30"]["precision_low"] < 1.0  # Wilson, not a point


def test_people_agreeing_with_each_other_is_measured_where_pairs_hold_several_votes():
    pairs = [
        LabelledPair("q", "x", "y", "a", votes=["a", "a", "b"]),  # 1 of 3 rater pairs agree
        LabelledPair("q", "x", "y", "b", votes=["b", "b"]),  # 1 of 1
        LabelledPair("q", "x", "y", "a", votes=["a"]),  # one vote: no information
    ]
    assert humans_agreement(pairs) == {"pairs": 2, "rater_pairs": 4, "agreement": 0.5}
    assert humans_agreement(pairs[2:]) is None


@pytest.mark.django_db
@pytest.mark.skipif(not HH.is_file(), reason="../shared/data/formats is not on this machine")
def test_the_audit_command_prints_the_issues_json_on_real_hh_rlhf_pairs():
    judge_register(name="longer", kind="rule", config={"rule": "length"})
    out = StringIO()
    call_command(
        "audit_judge", "--judge", "longer", "--format", "hh-rlhf", str(HH), "--json", stdout=out
    )
    results = json.loads(out.getvalue())
    for key in (
        "judge",
        "pairs",
        "agreement",
        "kappa",
        "position_flip_rate",
        "length_bias",
        "curve",
    ):
        assert key in results
    assert results["judge"] == "longer@1" and results["pairs"] == 300
    assert 0.0 <= results["agreement"] <= 1.0
    low, high = results["agreement_interval"]
    assert low <= results["agreement"] <= high
    assert JudgeAudit.objects.get().pairs == 300  # recorded for the judge's page


@pytest.mark.django_db
@pytest.mark.skipif(not OASST.is_file(), reason="../shared/data/formats is not on this machine")
def test_openassistant_rankings_become_pairs_of_every_two_ranked_replies():
    judge_register(name="longer", kind="rule", config={"rule": "length"})
    out = StringIO()
    call_command(
        "audit_judge", "--judge", "longer", "--format", "oasst", str(OASST), "--json", stdout=out
    )
    assert json.loads(out.getvalue())["pairs"] > 10


@pytest.mark.django_db
def test_the_audit_command_names_a_missing_file_and_an_unknown_judge(tmp_path):
    judge_register(name="longer", kind="rule", config={"rule": "length"})
    with pytest.raises(CommandError, match="does not exist"):
        call_command(
            "audit_judge", "--judge", "longer", "--format", "jsonl", str(tmp_path / "nope.jsonl")
        )
    with pytest.raises(CommandError, match="no judge 'nobody'"):
        call_command("audit_judge", "--judge", "nobody", "--format", "jsonl", str(HH))


@pytest.mark.django_db
def test_a_reward_model_judge_is_audited_on_a_dataset_versions_test_split(reward_checkpoint):
    version = make_dataset_version("dpo")  # chosen "yes" over rejected "no", as it learned
    judge = judge_register(name="tiny-rm", kind="reward_model", checkpoint=reward_checkpoint)
    out = StringIO()
    call_command(
        "audit_judge", "--judge", judge.label, "--dataset", f"v{version.pk}", "--json", stdout=out
    )
    results = json.loads(out.getvalue())
    assert results["pairs"] == 2
    assert results["agreement"] == 1.0
    assert results["position_flip_rate"] == 0.0  # it scores each reply alone


@pytest.mark.django_db
def test_a_reward_model_judge_needs_a_reward_checkpoint(reward_checkpoint):
    from apps.core.exceptions import ApplicationError
    from apps.registry.models import Checkpoint

    policy = Checkpoint.objects.create(
        name="policy", kind="adapter", base_model=reward_checkpoint.base_model
    )
    with pytest.raises(ApplicationError) as exc:
        judge_register(name="wrong", kind="reward_model", checkpoint=policy)
    assert "not a reward model" in exc.value.fields["checkpoint"][0]


class FakeJudgeServer:
    """A real OpenAI-compatible HTTP server that always answers "A" (a judge with position bias)
    or, with `logprobs`, gives its probabilities; it records every request."""

    def __init__(self, *, letter: str = "A", logprobs: dict[str, float] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                choice: dict[str, Any] = {"message": {"role": "assistant", "content": letter}}
                if logprobs is not None:
                    user = body["messages"][-1]["content"]
                    # the "good" reply is the one that says yes: its letter gets the mass
                    good = "A" if user.index("yes") < user.index("[Reply B]") else "B"
                    top = [
                        {"token": good, "logprob": -0.1},
                        {"token": "B" if good == "A" else "A", "logprob": -2.5},
                    ]
                    choice["logprobs"] = {"content": [{"token": good, "top_logprobs": top}]}
                data = json.dumps({"choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def always_a() -> Iterator[FakeJudgeServer]:
    server = FakeJudgeServer()
    yield server
    server.close()


@pytest.fixture
def calibrated() -> Iterator[FakeJudgeServer]:
    server = FakeJudgeServer(logprobs={})
    yield server
    server.close()


def yes_no_pairs(n: int) -> list[LabelledPair]:
    return shuffled_positions([(f"Is {i} a number?", "yes", "no") for i in range(n)], seed=3)


def test_an_llm_judge_is_asked_in_both_orders_and_its_position_bias_becomes_ties(always_a):
    judge = build("llm", {"base_url": always_a.url, "model": "judge"})
    pairs = yes_no_pairs(6)
    results = audit(pairs, judge.compare([Pair(p.prompt, p.a, p.b) for p in pairs]))
    assert len(always_a.requests) == 12  # each pair twice
    assert results["position_flip_rate"] == 1.0 and results["agreement"] == 0.5
    asked = always_a.requests[0]["messages"][-1]["content"]
    assert "[Reply A]" in asked and "one letter" in asked


def test_an_llm_judges_logprobs_become_its_confidence(calibrated):
    judge = build("llm", {"base_url": calibrated.url, "model": "judge"})
    pairs = yes_no_pairs(8)
    results = audit(pairs, judge.compare([Pair(p.prompt, p.a, p.b) for p in pairs]))
    assert results["agreement"] == 1.0 and results["position_flip_rate"] == 0.0
    assert 0.5 < results["curve"][-1]["threshold"] < 1.0  # a probability, not a hard letter
