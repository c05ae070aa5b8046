"""Scoring the pipeline on a labelled corpus (`manage.py spam_eval`), without the database.

Each text becomes the comment of a rating event, redacted as ingest would redact it, and goes
through the content filters (those that need no history: a corpus has no raters, times or
addresses). With a train fraction F > 0 the classifier is first trained on that share of the
corpus, as if curators had labelled it, plus the seed corpus; the rest is scored. With F = 0 only
what the product ships is used."""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone

from apps.feedback.redaction import redact_text
from apps.quality.filters import get_filters
from apps.quality.history import NoHistory
from apps.quality.pipeline import judge, make_view

TEXT_NAMES = ("text", "content", "comment", "message", "body", "sms", "review", "v2")
LABEL_NAMES = ("label", "class", "category", "spam", "is_spam", "target", "v1")
SPAM_VALUES = frozenset({"spam", "1", "true", "yes", "y", "t", "junk", "abuse", "bad", "positive"})
HAM_VALUES = frozenset(
    {"ham", "0", "false", "no", "n", "f", "legit", "good", "ok", "negative", "not_spam", "not spam"}
)
CHUNK = 1000


class CorpusError(ValueError):
    """A corpus that cannot be read as asked; the message says where and why."""


@dataclass
class Corpus:
    texts: list[str]
    labels: list[bool]  # true = spam
    assumed: bool = False  # no label column: every text taken as genuine (ham)


def parse_label(value: Any, where: str) -> bool:
    text = str(value).strip().lower()
    if text in SPAM_VALUES:
        return True
    if text in HAM_VALUES:
        return False
    raise CorpusError(f"{where}: {value!r} is not a label (spam/ham, 1/0, true/false)")


def _column(names: list[str], wanted: str | None, known: Sequence[str]) -> int | None:
    lowered = [name.strip().lower() for name in names]
    if wanted is not None:
        if wanted.isdigit():
            return int(wanted)
        return lowered.index(wanted.lower()) if wanted.lower() in lowered else None
    return next((lowered.index(name) for name in known if name in lowered), None)


def read_corpus(
    path: Path,
    fmt: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    assume: str | None = None,
) -> Corpus:
    """Texts and labels from a TSV, CSV or JSON-lines file. A delimited file may have a header
    (columns found by name) or not (label then text, as in the SMS Spam Collection). A file with
    no label column is taken as all ham when ASSUME is 'ham' (or all spam with 'spam')."""
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if fmt == "jsonl":
        return _read_jsonl(path, text_column, label_column, assume)
    delimiter = "\t" if fmt == "tsv" else ","
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = [
            row
            for row in csv.reader(
                handle,
                delimiter=delimiter,
                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
            )
            if row
        ]
    if not rows:
        raise CorpusError(f"{path}: the file is empty")
    first = rows[0]
    text_at, label_at = (
        _column(first, text_column, TEXT_NAMES),
        _column(first, label_column, LABEL_NAMES),
    )
    named = (text_column and not text_column.isdigit()) or (
        label_column and not label_column.isdigit()
    )
    has_header = (
        text_at is not None
        and not (text_column or "").isdigit()
        and (named or any(cell.strip().lower() in TEXT_NAMES + LABEL_NAMES for cell in first))
    )
    if has_header:
        body = rows[1:]
    else:
        body = rows
        label_at = int(label_column) if label_column and label_column.isdigit() else 0
        text_at = (
            int(text_column)
            if text_column and text_column.isdigit()
            else (1 if label_at == 0 else 0)
        )
    if text_at is None:
        raise CorpusError(
            f"{path}: no text column (name one with --text-column; the header has {', '.join(first)})"
        )
    if label_column and label_at is None:
        raise CorpusError(f"{path}: no column {label_column!r} (the header has {', '.join(first)})")
    texts, labels = [], []
    assumed = label_at is None
    if assumed and assume is None:
        assume = "ham"
    for number, row in enumerate(body, start=2 if has_header else 1):
        if text_at >= len(row):
            raise CorpusError(
                f"{path}, line {number}: no column {text_at + 1} (the row has {len(row)})"
            )
        # Headerless `label<TAB>text`: a text that holds the delimiter is the rest of the row.
        texts.append(
            delimiter.join(row[1:])
            if not has_header and (label_at, text_at) == (0, 1)
            else row[text_at]
        )
        labels.append(
            parse_label(row[label_at], f"{path}, line {number}")
            if label_at is not None
            else assume == "spam"
        )
    return Corpus(texts, labels, assumed)


def _read_jsonl(
    path: Path, text_column: str | None, label_column: str | None, assume: str | None
) -> Corpus:
    texts, labels, assumed = [], [], False
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}, line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise CorpusError(f"{path}, line {number}: not a JSON object")
            keys = list(record)
            text_at, label_at = (
                _column(keys, text_column, TEXT_NAMES),
                _column(keys, label_column, LABEL_NAMES),
            )
            if text_at is None:
                raise CorpusError(
                    f"{path}, line {number}: no text field (name one with --text-column; it has {', '.join(keys)})"
                )
            texts.append(str(record[keys[text_at]] or ""))
            if label_at is None:
                if label_column:
                    raise CorpusError(f"{path}, line {number}: no field {label_column!r}")
                assumed = True
                labels.append(assume == "spam")
            else:
                labels.append(parse_label(record[keys[label_at]], f"{path}, line {number}"))
    if not texts:
        raise CorpusError(f"{path}: no records")
    return Corpus(texts, labels, assumed)


def evaluate(corpus: Corpus, *, train_fraction: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Precision, recall, F1, false-positive rate and events/s of the pipeline on CORPUS."""
    from apps.quality import spam_model

    if not 0.0 <= train_fraction < 1.0:
        raise CorpusError("--train-fraction must be at least 0 and below 1")
    order = list(range(len(corpus.texts)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * train_fraction)
    train_idx, test_idx = order[:cut], order[cut:]
    started = time.perf_counter()
    if train_idx:
        seed_rows = spam_model.seed_corpus()
        model = spam_model.train(
            [t for t, _ in seed_rows] + [corpus.texts[i] for i in train_idx],
            [s for _, s in seed_rows] + [corpus.labels[i] for i in train_idx],
            in_domain=[False] * len(seed_rows) + [True] * len(train_idx),
            version="eval",
            seed=seed,
        )
    else:
        model = spam_model.seed_model()
    train_seconds = time.perf_counter() - started
    filters = [f for f in get_filters() if not f.uses_history]
    now = timezone.now()
    payloads = []
    for index in test_idx:
        counts: Counter[str] = Counter()
        payloads.append(
            {
                "type": "rating",
                "id": f"eval-{index}",
                "rating": -1,
                "response": "",
                "messages": [{"role": "user", "content": ""}],
                "comment": redact_text(corpus.texts[index], counts),
            }
        )
    predicted: list[bool] = []
    reasons: Counter[str] = Counter()
    judge_seconds = 0.0
    # One untimed warm-up round: the first call pays for imports and compiled patterns.
    warm = [
        make_view(id=i + 1, source_id=0, payload=p, received_at=now)
        for i, p in enumerate(payloads[:20])
    ]
    judge(warm, history=NoHistory(), filters=filters, state={"classifier.model": model})
    for start in range(0, len(payloads), CHUNK):
        tick = time.perf_counter()
        views = [
            make_view(
                id=start + i + 1,
                source_id=0,
                payload=payload,
                received_at=now + timedelta(milliseconds=start + i),
            )
            for i, payload in enumerate(payloads[start : start + CHUNK])
        ]
        judgements, _ = judge(
            views, history=NoHistory(), filters=filters, state={"classifier.model": model}
        )
        judge_seconds += time.perf_counter() - tick
        for judgement in judgements:
            predicted.append(judgement.status != "accepted")
            reasons.update(reason["code"] for reason in judgement.reasons[:1])
    truth = [corpus.labels[i] for i in test_idx]
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    fn = sum(t and not p for p, t in zip(predicted, truth, strict=True))
    tn = len(truth) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "texts": len(corpus.texts),
        "spam": sum(corpus.labels),
        "labels_assumed": corpus.assumed,
        "train_fraction": train_fraction,
        "seed": seed,
        "trained_on": len(train_idx),
        "scored": len(test_idx),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4)
        if precision + recall
        else 0.0,
        "fpr": round(fp / (fp + tn), 4) if fp + tn else 0.0,
        "events_per_second": round(len(test_idx) / judge_seconds, 1) if judge_seconds else 0.0,
        "train_seconds": round(train_seconds, 2),
        "classifier": {"version": model.version, "threshold": model.threshold},
        "filters": [f.name for f in filters],
        "first_reasons": dict(reasons.most_common()),
    }
