"""Pipeline benchmark: does the worker keep up with what the web tier accepts?

    .venv/bin/python bench/pipeline.py [--rate 200] [--seconds 300] [--burst-seconds 60]
    make bench BENCHES=pipeline

On PostgreSQL + Redis (scripts/services.sh, or the DATABASE_URL / CELERY_BROKER_URL / CACHE_URL
that bench/all.sh exports), in a fresh database, with `manage.py serve` (gunicorn and one Celery
worker with its beat, side by side, as `make run` starts them) sharing this machine's CPUs:

1. Steady: single events at RATE per second for SECONDS (bench/loadgen.py, open loop). Every
   second the depth of the `ingest` and `quality` queues is read (LLEN). When the load stops,
   the benchmark waits (at most 2 minutes) until every event has a verdict. Reported: the time
   from acknowledgement to verdict per event (the verdict's `created_at` minus the event's
   `received_at`, both server clocks): p50, p99, max; the largest queue depths.
2. Burst: batches of 1,000 events at full speed (4 in flight) for BURST_SECONDS; then the time
   until every one of them has a verdict, counted from the end of the burst. A batch answered
   429 by admission control (the workers too far behind) waits its Retry-After and is sent
   again, as the SDK does.

Targets (issue 12): steady p99 ≤ 10 s with bounded queues; the burst judged within 2 minutes.
Also reported: the load average before and after, and the CPUs this run and others used (the
machine is shared). Writes bench/results/pipeline-<time>.json."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from events import EventFactory  # noqa: E402
from ingest import (  # noqa: E402
    RESULTS,
    CpuMeter,
    Processes,
    calibrate,
    free_port,
    fresh_database,
    loadgen,
    machine,
    say,
    services_pids,
    start_services,
    wait_http,
)

CATCH_UP_LIMIT_S = 120.0


class DepthSampler(threading.Thread):
    """LLEN of the ingest and quality queues every second, in the background."""

    def __init__(self, broker_url: str) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(broker_url, socket_timeout=2)
        self.samples: list[tuple[float, int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopping.wait(1.0):
            try:
                ingest, quality = self.client.llen("ingest"), self.client.llen("quality")
            except Exception:  # noqa: BLE001, S112 - a missed sample is not a failed benchmark
                continue
            self.samples.append((round(time.monotonic() - started, 1), ingest, quality))

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.join(5)
        return {
            "max_ingest": max((s[1] for s in self.samples), default=0),
            "max_quality": max((s[2] for s in self.samples), default=0),
            "last": self.samples[-1] if self.samples else None,
            "samples": self.samples,
        }


def waiting(db_url: str, prefix: str) -> tuple[int, int, int]:
    """(events with PREFIX, of them normalized, of them judged)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM feedback_interaction i
                                                  WHERE i.event_id = e.id)),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM quality_verdict v
                                                  WHERE v.event_id = e.id AND v.is_current))
            FROM feedback_event e WHERE e.client_id LIKE %s
            """,
            [prefix + "%"],
        ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def wait_until_judged(
    db_url: str, prefix: str, limit: float
) -> tuple[float | None, tuple[int, ...]]:
    """Seconds until every event with PREFIX has a verdict (None past LIMIT), and the counts."""
    started = time.monotonic()
    while True:
        counts = waiting(db_url, prefix)
        if counts[0] and counts[2] == counts[0]:
            return time.monotonic() - started, counts
        if time.monotonic() - started > limit:
            return None, counts
        time.sleep(0.5)


def verdict_delays(db_url: str, prefix: str) -> dict[str, Any]:
    """Acknowledgement to first verdict, per event with PREFIX: p50, p99, max (seconds), and the
    last verdict's time (epoch seconds)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """
            WITH d AS (
                SELECT extract(epoch FROM v.first - e.received_at) AS s, v.first
                FROM feedback_event e
                JOIN LATERAL (SELECT min(created_at) AS first FROM quality_verdict
                              WHERE event_id = e.id) v ON v.first IS NOT NULL
                WHERE e.client_id LIKE %s)
            SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY s), max(s),
                   extract(epoch FROM max(first))
            FROM d
            """,
            [prefix + "%"],
        ).fetchone()
    count, p50, p99, worst, last = row
    return {
        "judged": int(count),
        "p50_s": float(p50 or 0),
        "p99_s": float(p99 or 0),
        "max_s": float(worst or 0),
        "last_verdict_epoch": float(last or 0),
    }


def start_stack(
    procs: Processes, tmp: Path, env: dict[str, str], port: int, args: argparse.Namespace
) -> None:
    say(
        f"starting manage.py serve (gunicorn {args.workers}×{args.threads} threads, Celery worker "
        f"concurrency {args.concurrency} with beat) on 127.0.0.1:{port}"
    )
    procs.start(
        "serve",
        [
            sys.executable,
            "manage.py",
            "serve",
            "--no-samples",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--concurrency",
            str(args.concurrency),
        ],
        tmp / "serve.log",
        env,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", seconds=90)


def prepare(env: dict[str, str], tmp: Path, procs: Processes) -> None:
    admin_url = start_services(procs, tmp, env)
    env.update(
        DATABASE_URL=fresh_database(procs, admin_url),
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        SINKHOLE_DATA_DIR=str(tmp / "data"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "prometheus"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        PYTHONPATH=str(ROOT),
    )
    (tmp / "prometheus").mkdir(exist_ok=True)
    os.environ.update(env)
    say("migrating a fresh database")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def make_source() -> str:
    import django

    django.setup()
    from apps.sources.services import source_create

    source, secret, _ = source_create(name="bench")
    source.rate_limit_per_minute = 1_000_000_000  # on (each request pays for it), out of reach
    source.save(update_fields=["rate_limit_per_minute"])
    return secret.raw


def report(result: dict[str, Any]) -> str:
    steady, burst = result["steady"], result["burst"]
    lines = [
        "",
        "pipeline: acknowledgement → verdict, web and worker on the same CPUs",
        "-" * 80,
        f"machine: {result['machine']['cpus']} CPUs, load average {result['load_before']['loadavg_1m']:.2f}"
        f" before, {result['load_after']['loadavg_1m']:.2f} after; commit {result['machine']['commit']}",
        f"steady {steady['rate']:.0f}/s for {steady['seconds']:.0f} s: {steady['acknowledged']:,} acknowledged, "
        f"{steady['http']}",
        f"  ack → verdict: p50 {steady['delays']['p50_s']:.2f} s, p99 {steady['delays']['p99_s']:.2f} s "
        f"(target ≤ 10), max {steady['delays']['max_s']:.2f} s; judged {steady['delays']['judged']:,}",
        f"  queue depth max: ingest {steady['depth']['max_ingest']}, quality {steady['depth']['max_quality']}; "
        f"all judged {steady['catch_up_s'] if steady['catch_up_s'] is not None else 'NOT'} s after the load",
        f"  CPUs busy: ours {steady['cpu']['ours_cpus']:.2f}, others' {steady['cpu']['others_cpus']:.2f}",
        f"burst {burst['seconds']:.0f} s of batches: {burst['acknowledged']:,} events acknowledged "
        f"({burst['acknowledged'] / max(burst['elapsed_s'], 1e-9):,.0f}/s); HTTP {burst['http']} "
        "(429: a batch deferred by admission control, sent again after its Retry-After)",
        f"  every one judged {burst['catch_up_s']:.1f} s after the burst (target ≤ 120)"
        if burst["catch_up_s"] is not None
        else f"  NOT all judged within {CATCH_UP_LIMIT_S:.0f} s after the burst: {burst['counts']}",
        f"  CPUs busy: ours {burst['cpu']['ours_cpus']:.2f}, others' {burst['cpu']['others_cpus']:.2f}",
        "-" * 80,
        f"results: {result['path']}",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="single events per second")
    parser.add_argument("--seconds", type=float, default=300.0, help="steady phase length")
    parser.add_argument("--burst-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (serve)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="Celery worker processes (serve's default)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args()

    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="sinkhole-pipeline-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user must reach the services folder
    env = dict(os.environ)
    load_before = calibrate()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        prepare(env, tmp, procs)
        key = make_source()
        run = f"p{int(time.time())}"
        factory = EventFactory(seed=11, run=f"{run}-s")
        single = tmp / "single.jsonl"
        single.write_bytes(
            b"\n".join(
                orjson.dumps(factory.event()) for _ in range(int(args.rate * args.seconds) + 1)
            )
        )
        bodies = tmp / "burst"
        bodies.mkdir()
        factory.run = f"{run}-b-@@R@@"
        for index, batch in enumerate(factory.batches(8, 1000)):
            (bodies / f"{index:02d}.json").write_bytes(orjson.dumps(batch))

        port = free_port()
        start_stack(procs, tmp, env, port, args)
        url = f"http://127.0.0.1:{port}/api/v1/feedback"
        db_url = env["DATABASE_URL"]
        meter = CpuMeter([os.getpid(), *services_pids(procs.services_dir)])

        say(f"steady: {args.rate:.0f} single events/s for {args.seconds:.0f} s")
        sampler = DepthSampler(env["CELERY_BROKER_URL"])
        sampler.start()
        cpu0 = meter.start()
        single_result = loadgen(
            ["single", url, key, "--events", str(single), "--rate", str(args.rate)]
            + ["--seconds", str(args.seconds), "--give-up", "10"],
            env,
        )
        cpu = meter.stop(cpu0, exited_s=single_result["cpu_seconds"])
        catch_up, counts = wait_until_judged(db_url, f"{run}-s-", CATCH_UP_LIMIT_S)
        depth = sampler.stop()
        steady = {
            "rate": args.rate,
            "seconds": args.seconds,
            "http": single_result["http"],
            "dropped": single_result["dropped"],
            "acknowledged": sum(
                n for code, n in single_result["http"].items() if code in ("200", "201")
            ),
            "stored_normalized_judged": counts,
            "catch_up_s": None if catch_up is None else round(catch_up, 1),
            "delays": verdict_delays(db_url, f"{run}-s-"),
            "depth": depth,
            "cpu": cpu,
        }
        say(
            f"steady: p99 {steady['delays']['p99_s']:.2f} s, depth max "
            f"{depth['max_ingest']}/{depth['max_quality']}"
        )

        say(f"burst: batches of 1,000 at full speed for {args.burst_seconds:.0f} s")
        cpu0 = meter.start()
        burst_result = loadgen(
            ["batch", url, key, "--bodies", str(bodies), "--concurrency", "4"]
            + ["--seconds", str(args.burst_seconds), "--unique"],
            env,
        )
        burst_end = time.time()
        catch_up, counts = wait_until_judged(db_url, f"{run}-b-", CATCH_UP_LIMIT_S)
        cpu = meter.stop(cpu0, exited_s=burst_result["cpu_seconds"])
        delays = verdict_delays(db_url, f"{run}-b-")
        burst = {
            "seconds": args.burst_seconds,
            "elapsed_s": burst_result["seconds"],
            "acknowledged": burst_result["items"].get("accepted", 0),
            "items": burst_result["items"],
            "http": burst_result["http"],
            "catch_up_s": None
            if catch_up is None
            else max(0.0, delays["last_verdict_epoch"] - burst_end),
            "counts": counts,
            "delays": delays,
            "cpu": cpu,
        }
        result = {
            "benchmark": "pipeline",
            "started_at": started_at,
            "machine": machine(),
            "load_before": load_before,
            "load_after": calibrate(),
            "args": vars(args),
            "steady": steady,
            "burst": burst,
        }
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"pipeline-{started_at.replace(':', '')}.json"
        result["path"] = str(path.relative_to(ROOT))
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(report(result))
        met = (
            steady["delays"]["p99_s"] <= 10
            and steady["catch_up_s"] is not None
            and burst["catch_up_s"] is not None
            and burst["catch_up_s"] <= CATCH_UP_LIMIT_S
        )
        return 0 if met else 1
    finally:
        procs.close()
        if args.keep:
            say(f"kept {tmp}")
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
