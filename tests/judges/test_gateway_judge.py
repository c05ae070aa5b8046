"""An LLM judge pointed at Sinkhole's own gateway (/v1/chat/completions on a live server, the
built-in engine answering with a tiny real model): asked in both orders with the source's key
from the environment, every answer recorded as an interaction of the judging checkpoint."""

from __future__ import annotations

import pytest

from apps.judges.audit import audit, shuffled_positions
from apps.judges.kinds import build
from apps.judges.kinds.base import Pair
from apps.registry.models import Alias, BaseModel, Checkpoint


@pytest.mark.django_db(transaction=True)
def test_an_llm_judge_speaks_to_sinkholes_own_gateway(live_server, src, tiny_model, monkeypatch):
    from apps.serving.models import ServedAnswer

    base_model = BaseModel.objects.create(name="tiny", model_id=tiny_model)
    judge_model = Checkpoint.objects.create(
        name="base-tiny", kind="base", base_model=base_model, status="published"
    )
    Alias.objects.create(name="judge", checkpoint=judge_model)
    monkeypatch.setenv("SINKHOLE_TEST_JUDGE_KEY", src.secret)
    judge = build(
        "llm",
        {
            "base_url": f"{live_server.url}/v1",
            "model": "judge",
            "api_key_env": "SINKHOLE_TEST_JUDGE_KEY",
            "max_tokens": 3,
            "concurrency": 2,
        },
    )
    pairs = shuffled_positions([(f"Is {i} a number?", "yes", "no") for i in range(3)], seed=0)
    results = audit(pairs, judge.compare([Pair(p.prompt, p.a, p.b) for p in pairs]))
    assert results["pairs"] == 3
    assert ServedAnswer.objects.filter(checkpoint=judge_model).count() == 6  # both orders
    # A random tiny model names no letter: every verdict is an honest tie, not a guess.
    assert results["ties"] + results["decided"] == 3
