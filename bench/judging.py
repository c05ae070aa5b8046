"""Judging benchmark: the CPU that normalizing and judging cost per event, in-process.

    .venv/bin/python bench/judging.py [--events 10000] [--database-url postgres://…/h21]
        [--verdicts-out FILE] [--json]
    make bench BENCHES=judging

On PostgreSQL (BENCH_DATABASE_URL, else DATABASE_URL: the server it names; the benchmark makes
a fresh database `<that name>_judging` beside it, and drops it at the end), in this process:

1. Loads EVENTS real-shaped events through `feedback_ingest`, in batches of 1,000 as the burst
   of bench/pipeline.py sends them, from several sources: a slice of the PRD Vicuna-80 human
   battles (FastChat importer, a research log: `daily_vote_cap = 0`), the HH-RLHF sample
   (hh-rlhf importer), the OpenAssistant trees (oasst importer), the Open WebUI export example,
   and the rest from bench/events.py's factory (HH-RLHF dialogues, every event type, 600
   raters), a tenth of them carrying a comment: SMS spam and ham texts from the UCI SMS Spam
   Collection, keyboard mash, link injection, and one spam text sent by six raters (a flood).
2. Normalizes them as the `feedback.normalize_pending` task does (`feedback_backlog_normalize`,
   500 events a transaction), then judges them as `quality.judge_pending` does
   (`quality_backlog_judge`, 500 a transaction), each timed apart, after a warm-up that imports
   the filters and fits the seed classifier (once per worker process, not per event).

Reported per event, for each phase: this process's CPU (`time.process_time`), the PostgreSQL
backend's CPU (utime + stime from /proc/<pg_backend_pid()>/stat, when the server runs on this
machine) and wall time; the verdicts by status; the load average. `--verdicts-out` writes each
event's client id, status and reason codes, to compare two versions of the code on the same
events. Issue 12's target: judging ≤ 0.4 ms of CPU an event."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
BATTLES = SHARED / "battles" / "prd_vicuna80_human_battles.jsonl"
SMS = SHARED / "spam" / "sms_spam_collection.tsv"
IMPORTS = (
    ("hh-rlhf", SHARED / "formats" / "hh_rlhf_harmless_sample.jsonl"),
    ("oasst", SHARED / "formats" / "oasst_tree_sample.jsonl"),
    ("openwebui", SHARED / "formats" / "openwebui_feedback_export_example.json"),
)
BATTLE_SHARE = 0.2  # of EVENTS: votes of a few annotators, many each
BATCH = 1000  # events per ingest call, as bench/pipeline.py's burst sends them
TARGET_MS = 0.4
MASH = ("asdfghjkl qwerty zxcvbnm", "sdfsdfsdf jkljkljkl", "hjkhjkhjk lkjlkjlkj qweqwe")
LINKS = (
    "Great answer!! check out my channel www.best-deals.shop for more",
    "earn $500/day from home, dm me on telegram @fastcash_pro",
    "visit bit.ly/free-gift-card to claim your prize now",
)


def _setup(base_url: str) -> tuple[str, tuple[str, str]]:
    """A fresh database beside BASE_URL's, migrated; Django set up on it. Its URL and the
    (admin URL, name) to drop at the end."""
    import psycopg

    from bench.database import database_url

    name = base_url.rsplit("/", 1)[1].split("?")[0] + "_judging"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(base_url, name)
    os.environ["DATABASE_URL"] = url
    # Hints to workers go nowhere: this process does the work itself, and times it.
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url, (base_url, name)


def _sms() -> tuple[list[str], list[str]]:
    spam, ham = [], []
    if SMS.exists():
        for line in SMS.read_text(encoding="utf-8", errors="replace").splitlines():
            label, _, text = line.partition("\t")
            if len(text) >= 30:
                (spam if label == "spam" else ham).append(text)
    return spam or list(LINKS), ham or ["thanks, that helped me fix the bug in my script"]


def _factory_events(count: int, rng: random.Random) -> list[dict[str, Any]]:
    from bench.events import EventFactory

    factory = EventFactory(seed=12, raters=600, run="judging")
    spam, ham = _sms()
    flood = rng.choice(spam)
    events = []
    for n in range(count):
        event = factory.event()
        roll = rng.random()
        text = None
        if roll < 0.03:
            text = rng.choice(spam)
        elif roll < 0.07:
            text = rng.choice(ham)
        elif roll < 0.08:
            text = rng.choice(MASH)
        elif roll < 0.09:
            text = rng.choice(LINKS)
        elif roll < 0.10 or n % 997 == 0:
            text = flood  # the same text from many raters: a flood
        if text is not None:
            event["comment"] = text
        events.append(event)
    return events


def load(total: int) -> dict[str, int]:
    """Store about TOTAL events from several sources; how many each."""
    from apps.feedback.services.importing import feedback_import
    from apps.feedback.services.ingest import feedback_ingest
    from apps.sources.services import source_create

    rng = random.Random(12)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if BATTLES.exists():
            arena, _, _ = source_create(name="arena-log")
            arena.daily_vote_cap = 0  # a research log, judged under its own policy
            arena.save(update_fields=["daily_vote_cap"])
            lines = BATTLES.read_text(encoding="utf-8").splitlines()[: int(total * BATTLE_SHARE)]
            part = Path(tmp) / "battles.jsonl"
            part.write_text("\n".join(lines) + "\n", encoding="utf-8")
            summary = feedback_import(source=arena, format="fastchat", path=part)
            counts["fastchat battles"] = summary.imported
        imports, _, _ = source_create(name="imports")
        for fmt, path in IMPORTS:
            if path.exists():
                counts[fmt] = feedback_import(source=imports, format=fmt, path=path).imported
        chat, _, _ = source_create(name="open-webui-prod")
        rest = max(0, total - sum(counts.values()))
        events = _factory_events(rest, rng)
        stored = 0
        for start in range(0, len(events), BATCH):
            results = feedback_ingest(source=chat, items=events[start : start + BATCH])
            stored += sum(r.status in ("accepted", "quarantined") for r in results)
        counts["factory (HH-RLHF dialogues, spam comments)"] = stored
    return counts


class Clock:
    """CPU of this process and of its PostgreSQL backend, and wall time, between two reads."""

    def __init__(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.pid = cursor.fetchone()[0]
        self.stat = Path(f"/proc/{self.pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")

    def backend_s(self) -> float | None:
        try:
            fields = self.stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None  # the server runs elsewhere
        return (int(fields[11]) + int(fields[12])) / self.tick

    def read(self) -> tuple[float, float | None, float]:
        return time.process_time(), self.backend_s(), time.perf_counter()


def timed(clock: Clock, work: Any, events: int) -> dict[str, Any]:
    cpu0, pg0, wall0 = clock.read()
    done = work()
    cpu1, pg1, wall1 = clock.read()
    per = 1000 / max(1, events)
    return {
        "events": events,
        "done": done,
        "cpu_ms_per_event": round((cpu1 - cpu0) * per, 4),
        "pg_ms_per_event": None if pg0 is None or pg1 is None else round((pg1 - pg0) * per, 4),
        "wall_ms_per_event": round((wall1 - wall0) * per, 4),
        "wall_s": round(wall1 - wall0, 2),
    }


def run(total: int, base_url: str, verdicts_out: Path | None) -> dict[str, Any]:
    load_before = os.getloadavg()
    _, drop = _setup(base_url)
    try:
        return _measure(total, verdicts_out, load_before)
    finally:
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(drop[0], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{drop[1]}"')


def _measure(
    total: int, verdicts_out: Path | None, load_before: tuple[float, ...]
) -> dict[str, Any]:
    from collections import Counter

    from django.db import connection

    from apps.feedback.models import Event
    from apps.feedback.services.normalize import feedback_backlog_normalize
    from apps.quality.backlog import quality_backlog_judge
    from apps.quality.filters import get_filters
    from apps.quality.models import Verdict
    from apps.quality.spam_model import active_model

    started = time.perf_counter()
    counts = load(total)
    load_s = time.perf_counter() - started
    n = Event.objects.count()
    # What a worker process does once, not per event: import the filters, fit the seed model.
    active_model().predict(["warm up"])
    get_filters()
    connection.ensure_connection()
    clock = Clock()
    normalized = timed(clock, lambda: feedback_backlog_normalize()[0], n)
    judged = timed(clock, lambda: quality_backlog_judge()[0].judged, n)
    rows = Verdict.objects.filter(is_current=True).values_list(
        "event__client_id", "status", "reasons"
    )
    by_status = Counter(status for _, status, _ in rows)
    codes = Counter(r["code"] for _, _, reasons in rows for r in reasons)
    if verdicts_out is not None:
        verdicts_out.write_text(
            json.dumps(
                {cid: [s, [r["code"] for r in reasons]] for cid, s, reasons in rows},
                sort_keys=True,
            )
            + "\n"
        )
    return {
        "events": n,
        "sources": counts,
        "load_s": round(load_s, 1),
        "normalize": normalized,
        "judge": judged,
        "verdicts": dict(by_status),
        "reasons": dict(codes.most_common()),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def report(result: dict[str, Any]) -> str:
    def line(name: str, phase: dict[str, Any]) -> str:
        pg = phase["pg_ms_per_event"]
        total = phase["cpu_ms_per_event"] + (pg or 0)
        return (
            f"{name:<10} {phase['cpu_ms_per_event']:7.3f} ms CPU/event in-process, "
            f"{'n/a' if pg is None else f'{pg:.3f}'} ms PostgreSQL backend, {total:.3f} together; "
            f"wall {phase['wall_s']} s ({phase['done']:,} done)"
        )

    judge = result["judge"]["cpu_ms_per_event"]
    return "\n".join(
        [
            f"{result['events']:,} events loaded in {result['load_s']} s: {result['sources']}",
            line("normalize", result["normalize"]),
            line("judge", result["judge"]),
            f"verdicts {result['verdicts']}",
            f"reasons  {result['reasons']}",
            f"load average before {result['loadavg_before']}, after {result['loadavg_after']}",
            f"judging {'meets' if judge <= TARGET_MS else 'MISSES'} the target of "
            f"{TARGET_MS} ms of in-process CPU an event ({judge:.3f})",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL"),
    )
    parser.add_argument("--verdicts-out", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.database_url or not args.database_url.startswith("postgres"):
        parser.error("needs PostgreSQL: --database-url, BENCH_DATABASE_URL or DATABASE_URL")
    result = run(args.events, args.database_url, args.verdicts_out)
    print(json.dumps(result, indent=2) if args.json else report(result))  # noqa: T201
    return 0 if result["judge"]["cpu_ms_per_event"] <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
