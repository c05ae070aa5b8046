"""spam_eval: a labelled corpus through the pipeline, numbers out; the targets on the real corpora."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.quality.filters import classifier
from apps.quality.spam_model import seed_model
from tests.quality.conftest import (
    HH_SAMPLE,
    QUALITY_FIXTURES,
    SMS_CORPUS,
    comment_event,
    hh_turns,
    need,
    run_filter,
    sms_rows,
)


def run_eval(capsys, *args: str) -> dict:
    call_command("spam_eval", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_it_scores_a_headerless_tsv_and_prints_every_number(capsys) -> None:
    call_command("spam_eval", str(QUALITY_FIXTURES / "sms_slice.tsv"), "--format", "tsv")
    out = capsys.readouterr().out
    for word in ("precision", "recall", "F1", "FPR", "events/s", "200 texts (60 spam)"):
        assert word in out


def test_csv_with_a_header_and_jsonl_with_named_fields_read_the_same_corpus(
    tmp_path: Path, capsys
) -> None:
    rows = sms_rows()
    with (tmp_path / "c.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["COMMENT_ID", "CONTENT", "CLASS"])
        writer.writerows([i, text, int(label == "spam")] for i, (label, text) in enumerate(rows))
    (tmp_path / "c.jsonl").write_text(
        "".join(json.dumps({"body": t, "is_spam": label == "spam"}) + "\n" for label, t in rows)
    )
    from_csv = run_eval(capsys, str(tmp_path / "c.csv"), "--format", "csv")
    from_jsonl = run_eval(
        capsys,
        str(tmp_path / "c.jsonl"),
        "--format",
        "jsonl",
        "--text-column",
        "body",
        "--label-column",
        "is_spam",
    )
    from_tsv = run_eval(capsys, str(QUALITY_FIXTURES / "sms_slice.tsv"), "--format", "tsv")
    assert from_csv["tp"] == from_jsonl["tp"] == from_tsv["tp"] > 0
    assert from_csv["texts"] == 200 and from_csv["spam"] == 60


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.tsv").write_text("spam\tbuy now\nmaybe\thello\n")
    with pytest.raises(CommandError, match=r"line 2: 'maybe' is not a label"):
        call_command("spam_eval", str(tmp_path / "bad.tsv"), "--format", "tsv")
    with pytest.raises(CommandError, match="no such file"):
        call_command("spam_eval", str(tmp_path / "none.tsv"), "--format", "tsv")
    with pytest.raises(CommandError, match="train-fraction"):
        call_command(
            "spam_eval",
            str(QUALITY_FIXTURES / "sms_slice.tsv"),
            "--format",
            "tsv",
            "--train-fraction",
            "1.5",
        )


def test_a_file_without_labels_is_genuine_feedback(capsys) -> None:
    result = run_eval(
        capsys,
        str(QUALITY_FIXTURES / "hh_slice.jsonl"),
        "--format",
        "jsonl",
        "--text-column",
        "chosen",
    )
    assert result["labels_assumed"] and result["spam"] == 0 and result["fp"] == 0


def test_the_seed_classifier_is_sure_of_real_spam_and_quiet_on_real_chat() -> None:
    spam = [text for label, text in sms_rows() if label == "spam"]
    chat = [text for _, text in hh_turns()]
    model = seed_model()
    flagged = run_filter(
        classifier, [comment_event(t) for t in spam + chat], state={"classifier.model": model}
    )
    assert sum(r.action != "pass" for r in flagged[: len(spam)]) >= len(spam) // 3
    assert all(r.action == "pass" for r in flagged[len(spam) :])


@pytest.mark.slow
def test_on_the_sms_corpus_half_labelled_f1_and_unlabelled_precision_meet_the_targets(
    capsys,
) -> None:
    path = str(need(SMS_CORPUS))
    half = run_eval(capsys, path, "--format", "tsv", "--train-fraction", "0.5", "--seed", "0")
    none = run_eval(capsys, path, "--format", "tsv", "--train-fraction", "0")
    assert half["f1"] >= 0.95, half
    assert none["precision"] >= 0.95, none


@pytest.mark.slow
def test_on_real_chat_transcripts_the_false_positive_rate_stays_under_one_percent(capsys) -> None:
    path = str(need(HH_SAMPLE))
    for column in ("chosen", "rejected"):
        result = run_eval(capsys, path, "--format", "jsonl", "--text-column", column)
        assert result["fpr"] <= 0.01, result
