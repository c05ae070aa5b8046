"""Judging a fixed, realistic corpus decides every event as the recorded verdicts say: a change
that makes judging cheaper must not change what it decides (tests/quality/corpus.py)."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from apps.quality.backlog import quality_backlog_judge
from tests.quality.conftest import QUALITY_FIXTURES
from tests.quality.corpus import SETTINGS, corpus, verdicts

pytestmark = pytest.mark.django_db(transaction=False)

RECORDED = QUALITY_FIXTURES / "judging_corpus_verdicts.json"


@override_settings(**SETTINGS)
def test_judging_the_corpus_in_batches_gives_every_event_its_recorded_verdict(store) -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    events = corpus()
    for start in range(0, len(events), 1000):
        store(events[start : start + 1000])
    quality_backlog_judge(batch_size=250)  # as the quality.judge_pending drain does, 4+ batches
    found = verdicts()
    assert set(found) == set(recorded)
    differ = {
        cid: {"recorded": recorded[cid], "now": found[cid]}
        for cid in recorded
        if found[cid] != recorded[cid]
    }
    assert not differ, json.dumps(dict(list(differ.items())[:5]), indent=1)
    # The corpus reaches every kind of decision it was built for.
    codes = {reason[0] for verdict in found.values() for reason in verdict["reasons"]}
    assert {
        "flood.many_raters",
        "flood.repeated",
        "velocity.rater_burst",
        "reputation.daily_cap",
        "classifier.spam",
        "junk.gibberish",
        "advertising.link",
    } <= codes
