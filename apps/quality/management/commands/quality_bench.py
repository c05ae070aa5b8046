"""manage.py quality_bench [--events N] [--batch B] [--json]

Measures how many events a second the quality pipeline judges in this one process, database
writes included: it stores N realistic events (a mix of ratings with and without comments,
preferences, rankings and edits, with real chat text from the HH-RLHF sample when
../shared/data is there), judges them in batches as the `quality.judge_events` task does, and
then rolls everything back: the database is left as it was."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from apps.feedback.services.ingest import feedback_ingest
from apps.sources.services import source_create

_TURN = re.compile(r"\n\n(?:Human|Assistant): ")
_WORDS = (
    "the answer was clear but too long and it missed the second part of my question about python "
    "lists dictionaries error handling and the example did not run on my machine thanks"
).split()


class _Rollback(Exception):
    pass


def _texts() -> list[str]:
    sample = (
        Path(settings.BASE_DIR).parent
        / "shared"
        / "data"
        / "formats"
        / "hh_rlhf_harmless_sample.jsonl"
    )
    if not sample.exists():
        rng = random.Random(1)
        return [" ".join(rng.choices(_WORDS, k=rng.randint(5, 60))) for _ in range(500)]
    found = []
    for line in sample.read_text(encoding="utf-8").splitlines():
        for part in _TURN.split(json.loads(line)["chosen"]):
            if part.strip():
                found.append(part.strip()[:700])
    return found


def _events(n: int, seed: int = 0) -> list[dict[str, Any]]:
    from apps.quality.spam_model import seed_corpus

    rng = random.Random(seed)
    texts = _texts()
    spam = [text for text, is_spam in seed_corpus() if is_spam]
    models = ["llama3.1:8b", "qwen2.5:7b", "mistral-nemo:12b", "gemma2:9b"]
    out = []
    for i in range(n):
        kind = rng.choices(["rating", "preference", "ranking", "edit"], [50, 25, 10, 15])[0]
        event: dict[str, Any] = {
            "type": kind,
            "id": f"bench-{i}",
            "rater": f"rater-{rng.randrange(2000)}",
            "messages": [{"role": "user", "content": rng.choice(texts)}],
        }
        if kind == "rating":
            event.update(
                model=rng.choice(models), response=rng.choice(texts), rating=rng.choice([1, -1])
            )
            if rng.random() < 0.3:
                event["comment"] = (
                    rng.choice(spam) if rng.random() < 0.05 else rng.choice(texts)[:200]
                )
        elif kind == "edit":
            original = rng.choice(texts)
            event.update(
                model=rng.choice(models),
                response=original,
                edited=original + " " + rng.choice(texts)[:120],
            )
        else:
            count = 2 if kind == "preference" else 3
            pair = rng.sample(models, count)
            event["responses"] = [{"model": m, "content": rng.choice(texts)} for m in pair]
            if kind == "preference":
                event["choice"] = rng.choice([0, 1, "tie"])
            else:
                event["ranking"] = rng.sample(range(count), count)
        out.append(event)
    return out


class Command(BaseCommand):
    help = "Measure the quality pipeline's events/s in this process (writes are rolled back)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=10_000)
        parser.add_argument(
            "--batch",
            type=int,
            default=1000,
            help="Events per judge call, as the ingest task sends.",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.quality.services import quality_events_judge
        from apps.quality.spam_model import active_model

        events = _events(options["events"])
        result: dict[str, Any] = {}
        try:
            with transaction.atomic():
                active_model()  # warm: the seed model is built once per process
                source, _, _ = source_create(
                    name=f"quality-bench-{time.time_ns()}", allowed_origins=[]
                )
                ids: list[int] = []
                for start in range(0, len(events), 1000):
                    ids += [
                        r.id
                        for r in feedback_ingest(
                            source=source, items=events[start : start + 1000], client_ip="192.0.2.1"
                        )
                        if r.id
                    ]
                quality_events_judge(event_ids=ids[:50])  # warm-up, untimed
                ids = ids[50:]
                statuses: dict[str, int] = {}
                started, cpu = time.perf_counter(), time.process_time()
                for start in range(0, len(ids), options["batch"]):
                    summary = quality_events_judge(event_ids=ids[start : start + options["batch"]])
                    for status, count in summary.by_status.items():
                        statuses[status] = statuses.get(status, 0) + count
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                # CPU time of this process: what one worker costs, whatever else the machine runs
                # (the database server's own work is not in it; wall time is).
                result = {
                    "events": len(ids),
                    "seconds": round(seconds, 2),
                    "cpu_seconds": round(cpu, 2),
                    "events_per_second": round(len(ids) / seconds, 1),
                    "events_per_cpu_second": round(len(ids) / cpu, 1),
                    "by_status": statuses,
                    "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                }
                raise _Rollback
        except _Rollback:
            pass
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"judged {result['events']:,} events on {result['database']} in {result['seconds']} s: "
                f"{result['events_per_second']:,.0f} events/s wall, {result['events_per_cpu_second']:,.0f} per CPU-second "
                f"of this process ({result['by_status']})"
            )
