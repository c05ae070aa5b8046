"""Dataset build benchmark: 1 million events → one DPO (or SFT/KTO) version, against a plain COPY.

    .venv/bin/python bench/dataset_build.py [--events 1000000] [--kind dpo]
        [--database-url postgres://postgres@127.0.0.1:55432/postgres] [--json]

1. Loads EVENTS synthetic events shaped like the real samples (bench/events.py: HH-RLHF
   dialogues, the API's type mix: 50 % ratings, 25 % preferences, 10 % rankings, 15 % edits) into
   a PostgreSQL database of its own (`bench_datasets`, created and migrated once, reused while it
   holds the same events) with COPY: Event rows, the Interaction + Rating rows of the ratings
   (the thumbs pairs are mined from them), and an accepted current Verdict per event.
2. Reference: `COPY (SELECT id, payload FROM feedback_event WHERE <accepted verdict> ORDER BY id)
   TO STDOUT` into a file: the cost of just reading the same rows out of the database.
3. Ours: `manage.py build_dataset --kind KIND --json` as a subprocess, start to finish (Django
   start, selection, mining, dedup, split, JSONL + Parquet, manifest), its wall time and its peak
   resident memory (`os.wait4` rusage of that one child, started by a small launcher).
Targets (issue 4): ≤ 60 s and ≤ 500 MB for 1 million events."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.database import database_url, migrated_database  # noqa: E402

BENCH_DB = "bench_datasets"


def _bench_url(base_url: str) -> str:
    return database_url(base_url, BENCH_DB)


def load(base_url: str, n: int) -> dict[str, object]:
    import psycopg

    from bench.events import EventFactory

    url = migrated_database(base_url, BENCH_DB)
    marker = f"bench-datasets-{n}"
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM feedback_event").fetchone()[0]
        if (
            have == n
            and conn.execute("SELECT 1 FROM sources_source WHERE name = %s", (marker,)).fetchone()
        ):
            return {"load_s": 0.0, "reused": True, "events": n}
        t0 = time.perf_counter()
        for table in (
            "datasets_manifestentry",
            "datasets_datasetversion",
            "datasets_recipe",
            "quality_verdict",
            "feedback_rating",
            "feedback_comparison",
            "feedback_interaction",
            "feedback_event",
        ):
            conn.execute(f"TRUNCATE {table} CASCADE")
        conn.execute("DELETE FROM sources_source WHERE name LIKE 'bench-datasets-%%'")
        source_id = conn.execute(
            "INSERT INTO sources_source (name, description, allowed_origins, redact_pii, hold_for_review, "
            "rate_limit_per_minute, rater_rate_limit_per_minute, default_consent, default_licence, is_active, "
            "created_at) VALUES (%s, '', '[]', false, false, 0, 0, true, '', true, now()) RETURNING id",
            (marker,),
        ).fetchone()[0]
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from apps.feedback.services.normalize import prompt_hash  # the hash ingest stores

        factory = EventFactory(seed=11, run="bds")
        events, interactions, ratings, verdicts = (
            io.StringIO(),
            io.StringIO(),
            io.StringIO(),
            io.StringIO(),
        )

        def esc(text: str) -> str:
            return (
                text.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )

        with conn.cursor() as cur:

            def flush() -> None:
                for sql, buf in (
                    (
                        "COPY feedback_event (id, source_id, client_id, type, status, payload, rater_hash, model, "
                        "checkpoint, consent, licence, redactions, ip_hash, received_at) FROM STDIN",
                        events,
                    ),
                    (
                        "COPY feedback_interaction (id, event_id, position, model, checkpoint, prompt_hash, edited) "
                        "FROM STDIN",
                        interactions,
                    ),
                    (
                        "COPY feedback_rating (id, event_id, interaction_id, source_id, model, checkpoint, value, score, "
                        "reason, rater_hash, created_at) FROM STDIN",
                        ratings,
                    ),
                    (
                        "COPY quality_verdict (id, event_id, status, score, trust_weight, reasons, filters, "
                        "pipeline_version, origin, is_current, created_at) FROM STDIN",
                        verdicts,
                    ),
                ):
                    with cur.copy(sql) as cp:
                        cp.write(buf.getvalue())
                    buf.seek(0)
                    buf.truncate()

            rating_id = 0
            for i in range(1, n + 1):
                event = factory.event()
                rater = f"r{hash(event['rater']) % 100000}"
                model = event.get("model", "")
                events.write(
                    f"{i}\t{source_id}\t{event['id']}\t{event['type']}\taccepted\t"
                    f"{esc(orjson.dumps(event).decode())}\t{rater}\t{model}\t\tt\t\t{{}}\t\t2026-01-01 00:00:00+00\n"
                )
                if event["type"] == "rating":
                    rating_id += 1
                    value = event.get("rating", "\\N")
                    score = event.get("score", "\\N")
                    interactions.write(
                        f"{rating_id}\t{i}\t0\t{model}\t\t{prompt_hash(event['messages'])}\tf\n"
                    )
                    ratings.write(
                        f"{rating_id}\t{i}\t{rating_id}\t{source_id}\t{model}\t\t{value}\t{score}\t\t{rater}"
                        "\t2026-01-01 00:00:00+00\n"
                    )
                verdicts.write(
                    f"{i}\t{i}\taccepted\t0\t1\t[]\t{{}}\tbench\tpipeline\tt\t2026-01-01 00:00:00+00\n"
                )
                if i % 50_000 == 0:
                    flush()
            flush()
        for table in (
            "feedback_event",
            "feedback_interaction",
            "feedback_rating",
            "quality_verdict",
        ):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608 (our table names)
            )
            conn.execute(f"VACUUM ANALYZE {table}")
        return {"load_s": round(time.perf_counter() - t0, 1), "reused": False, "events": n}


def reference(base_url: str, out: Path) -> dict[str, float]:
    import psycopg

    t0 = time.perf_counter()
    size = 0
    with psycopg.connect(_bench_url(base_url)) as conn, conn.cursor() as cur, open(out, "wb") as fh:
        with cur.copy(
            "COPY (SELECT e.id, e.payload FROM feedback_event e WHERE EXISTS (SELECT 1 FROM quality_verdict v "
            "WHERE v.event_id = e.id AND v.is_current AND v.status = 'accepted') ORDER BY e.id) TO STDOUT"
        ) as cp:
            for chunk in cp:
                fh.write(chunk)
                size += len(chunk)
    return {"seconds": round(time.perf_counter() - t0, 2), "bytes": size}


# The build runs under a small launcher that reports its peak memory: Linux carries the
# high-water mark of the process that forks over to the child it execs (rusage's ru_maxrss is
# the larger of the two), and this process has grown by loading events.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(f"\\npeak_rss_kb={usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def ours(base_url: str, kind: str, artifacts: Path) -> dict[str, object]:
    env = {**os.environ, "DATABASE_URL": _bench_url(base_url), "ARTIFACT_ROOT": str(artifacts)}
    command = [sys.executable, "manage.py", "build_dataset", "--kind", kind, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], cwd=ROOT, env=env, capture_output=True
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"build_dataset failed: {proc.stderr.decode()[-2000:]}")
    peak_kb = int(proc.stderr.decode().rsplit("peak_rss_kb=", 1)[1])
    result = json.loads(proc.stdout)
    size = sum(
        Path(p).stat().st_size
        for split in ("train", "test")
        for p in result["files"][split].values()
    )
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rows": result["rows"],
        "hash": result["hash"],
        "file_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=["sft", "dpo", "kto"], default="dpo")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:55432/postgres"
        ),
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    loaded = load(args.database_url, args.events)
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        ref = reference(args.database_url, Path(tmp) / "copy.tsv")
        mine = ours(args.database_url, args.kind, Path(tmp) / "artifacts")
    report = {
        "events": args.events,
        "kind": args.kind,
        "load": loaded,
        "reference_copy": ref,
        "build": mine,
        "targets": {"seconds": 60, "peak_rss_mb": 500},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "meets_targets": mine["seconds"] <= 60 and mine["peak_rss_mb"] <= 500,
    }
    if args.json:
        print(json.dumps(report))
        return
    rows = sum(mine["rows"].values())
    how = "reused" if loaded["reused"] else f"loaded in {loaded['load_s']} s"
    print(
        f"{args.events:,} events ({how}), kind {args.kind}; "
        f"load average {' '.join(map(str, report['load_average']))} on {os.cpu_count()} cores"
    )
    print(f"{'':32}{'seconds':>10}{'peak RSS MB':>14}{'output MB':>12}")
    print(
        f"{'reference: COPY … TO STDOUT':32}{ref['seconds']:>10}{'':>14}{ref['bytes'] / 1e6:>12.0f}"
    )
    print(
        f"{'build_dataset (whole command)':32}{mine['seconds']:>10}{mine['peak_rss_mb']:>14}{mine['file_bytes'] / 1e6:>12.0f}"
    )
    print(
        f"rows {rows:,} ({mine['rows']}); hash {mine['hash'][:16]}; targets ≤ 60 s, ≤ 500 MB: "
        f"{'met' if report['meets_targets'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
