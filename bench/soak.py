"""Soak with faults: does anything get lost, doubled or stuck when parts of the deployment die?

    .venv/bin/python bench/soak.py [--rate 100] [--seconds 120]
    make bench BENCHES=soak

It runs the production shape on this machine (not in CI): its own PostgreSQL (or DATABASE_URL's
server, in a fresh database) and its own Redis with an append-only file (it must stop that one),
gunicorn (config/gunicorn.py), one Celery worker on the CPU queues and one beat, as separate
processes the way compose runs them. A load generator in this process sends single events at
RATE per second, each with its own id, and retries what failed the way the widget does (same
id, after a pause) until it is acknowledged (201, or 200 `duplicate` for a retry whose first
answer was lost). Meanwhile, on a schedule:

    t=25 s   kill -9 of the Celery worker in the middle of its work; 5 s later a new one starts
             (what a process supervisor does; no command is run)
    t=55 s   gunicorn stopped (SIGTERM) and started again
    t=85 s   Redis (broker and rate limits) stopped for 15 s, then started on its files again

When the load ends it waits (at most 3 minutes) until every stored event has normalized rows
and a current verdict, and prints: acknowledged, stored, lost (acknowledged, not stored),
duplicated (one client id stored twice), normalized, judged; for each fault, how long after it
ended the last event stored before its end got its verdict (the longest is the catch-up time);
and the manual commands that were needed (none, if the reconciler did its job).
Targets (issue 12): 0 lost, 0 duplicated, every event judged within 60 s after the last fault,
0 manual commands. Writes bench/results/soak-<time>.json."""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
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
    Processes,
    calibrate,
    free_port,
    fresh_database,
    machine,
    say,
    wait_http,
)
from loadgen import Client  # noqa: E402

VENV_BIN = Path(sys.executable).parent
CATCH_UP_LIMIT_S = 180.0
QUEUES = "default,ingest,quality,datasets"


class Redis:
    """A redis-server of the soak's own, with an append-only file, that it can stop and start."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
            + ["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
            + ["--appendfsync", "everysec", "--dir", str(self.folder)],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for _ in range(100):
            if subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            ).stdout.startswith(b"PONG"):
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.proc.wait(30)


@dataclass
class Load:
    """The load generator: single events, open loop, retried until acknowledged."""

    url: str
    key: str
    events: list[bytes]
    rate: float
    acknowledged: set[str] = field(default_factory=set)
    answers: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    gave_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, seconds: float, threads: int = 48) -> None:
        due: queue.Queue[int | None] = queue.Queue()

        def sender() -> None:
            client = Client(self.url, self.key)
            while True:
                index = due.get()
                if index is None:
                    return
                self._send(client, index)

        pool = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
        for thread in pool:
            thread.start()
        started = time.perf_counter()
        for index in range(int(seconds * self.rate)):
            delay = started + index / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            due.put(index)
        for _ in pool:
            due.put(None)
        for thread in pool:
            thread.join(120)

    def _send(self, client: Client, index: int) -> None:
        body = self.events[index]
        client_id = orjson.loads(body)["id"]
        for _attempt in range(120):  # up to about a minute of retries
            try:
                code, data = client.post(body)
            except Exception:  # noqa: BLE001 - the server is down or restarting: retry
                code, data = 0, b""
            with self.lock:
                self.answers[str(code)] = self.answers.get(str(code), 0) + 1
            if code in (200, 201):
                with self.lock:
                    self.acknowledged.add(client_id)
                return
            if 400 <= code < 500 and code != 429:
                with self.lock:
                    self.gave_up.append(f"{client_id}: HTTP {code} {data[:200]!r}")
                return
            with self.lock:
                self.retries += 1
            time.sleep(0.5)
        with self.lock:
            self.gave_up.append(f"{client_id}: no answer after a minute of retries")


class Stack:
    """gunicorn, a Celery worker and beat, as separate processes (compose's shape)."""

    def __init__(self, procs: Processes, tmp: Path, env: dict[str, str], port: int) -> None:
        self.procs, self.tmp, self.env, self.port = procs, tmp, env, port
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.workers_started = 0

    def start_web(self) -> None:
        self.web = self.procs.start(
            "gunicorn",
            [str(VENV_BIN / "gunicorn"), "config.wsgi:application"]
            + ["--config", "python:config.gunicorn", "--bind", f"127.0.0.1:{self.port}"]
            + ["--workers", "2", "--threads", "4"],
            self.tmp / "gunicorn.log",
            self.env,
        )
        wait_http(f"http://127.0.0.1:{self.port}/healthz", seconds=60)

    def start_worker(self) -> None:
        self.workers_started += 1
        self.worker = self.procs.start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES]
            + ["--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
            + ["--hostname", f"soak{self.workers_started}@%h"],
            self.tmp / "worker.log",
            self.env,
        )

    def start_beat(self) -> None:
        self.procs.start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"]
            + ["--schedule", str(self.tmp / "celerybeat-schedule")],
            self.tmp / "beat.log",
            self.env,
        )


def counts(db_url: str, prefix: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """
            SELECT count(*), count(DISTINCT client_id),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM feedback_interaction i
                                                  WHERE i.event_id = e.id)),
                   count(*) FILTER (WHERE EXISTS (SELECT 1 FROM quality_verdict v
                                                  WHERE v.event_id = e.id AND v.is_current))
            FROM feedback_event e WHERE e.client_id LIKE %s
            """,
            [prefix + "%"],
        ).fetchone()
    stored, distinct, normalized, judged = (int(v) for v in row)
    return {
        "stored": stored,
        "duplicated": stored - distinct,
        "normalized": normalized,
        "judged": judged,
    }


def stored_ids(db_url: str, prefix: str) -> set[str]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT client_id FROM feedback_event WHERE client_id LIKE %s", [prefix + "%"]
        ).fetchall()
    return {row[0] for row in rows}


def catch_up_after(db_url: str, prefix: str, moment: float) -> float | None:
    """Seconds from MOMENT (epoch) until the last event stored before it got its first verdict."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            """
            SELECT extract(epoch FROM max(v.first)), count(*) FILTER (WHERE v.first IS NULL)
            FROM feedback_event e
            LEFT JOIN LATERAL (SELECT min(created_at) AS first FROM quality_verdict
                               WHERE event_id = e.id) v ON true
            WHERE e.client_id LIKE %s AND e.received_at <= to_timestamp(%s)
            """,
            [prefix + "%", moment],
        ).fetchone()
    last, unjudged = row
    if unjudged or last is None:
        return None
    return max(0.0, float(last) - moment)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="single events per second")
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="how long the load runs (≥ 105)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        say("redis-server is not installed (scripts/services.sh install)")
        return 2

    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="sinkhole-soak-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user must reach the services folder
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = calibrate()
    env = dict(os.environ)
    redis = Redis(tmp / "redis")
    try:
        if os.environ.get("DATABASE_URL"):
            admin_url = os.environ["DATABASE_URL"]
        else:
            services = tmp / "services"
            procs.services_dir = services
            out = subprocess.run(
                [str(ROOT / "scripts" / "services.sh"), "start", str(services)],
                env={**os.environ, "PG_PORT": str(free_port()), "REDIS_PORT": str(free_port())},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            admin_url = next(
                line.split("=", 1)[1]
                for line in out.splitlines()
                if line.startswith("export DATABASE_URL=")
            )
        redis.start()
        say(f"own Redis on :{redis.port} (append-only file in {redis.folder})")
        env.update(
            DATABASE_URL=fresh_database(procs, admin_url),
            CELERY_BROKER_URL=f"redis://127.0.0.1:{redis.port}/0",
            CACHE_URL=f"redis://127.0.0.1:{redis.port}/1",
            DJANGO_SETTINGS_MODULE="config.settings",
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(48),
            SINKHOLE_DATA_DIR=str(tmp / "data"),
            LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
            CELERY_WORKER_QUEUES=QUEUES,
            PYTHONPATH=str(ROOT),
        )
        os.environ.update(env)
        say("migrating a fresh database")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        import django

        django.setup()
        from apps.sources.services import source_create

        source, secret, _ = source_create(name="soak")
        source.rate_limit_per_minute = 1_000_000_000
        source.save(update_fields=["rate_limit_per_minute"])

        run = f"soak{int(time.time())}-"
        factory = EventFactory(seed=5, run=run.rstrip("-"))
        events = [orjson.dumps(factory.event()) for _ in range(int(args.rate * args.seconds))]
        port = free_port()
        stack = Stack(procs, tmp, env, port)
        say("starting gunicorn, a Celery worker and beat")
        stack.start_web()
        stack.start_worker()
        stack.start_beat()
        time.sleep(3)

        load = Load(f"http://127.0.0.1:{port}/api/v1/feedback", secret.raw, events, args.rate)
        faults: list[dict[str, Any]] = []
        t0 = time.time()

        def at(second: float) -> None:
            time.sleep(max(0.0, t0 + second - time.time()))

        def schedule() -> None:
            at(25)
            say("fault: kill -9 of the Celery worker")
            began = time.time()
            assert stack.worker is not None
            stack.worker.send_signal(signal.SIGKILL)
            stack.worker.wait(10)
            at(30)
            stack.start_worker()
            faults.append(
                {"fault": "kill -9 worker (new one 5 s later)", "start": began, "end": time.time()}
            )
            at(55)
            say("fault: gunicorn stopped and started again")
            began = time.time()
            assert stack.web is not None
            procs.stop(stack.web)
            stack.start_web()
            faults.append({"fault": "gunicorn restart", "start": began, "end": time.time()})
            at(85)
            say("fault: Redis stopped for 15 s")
            began = time.time()
            redis.stop()
            at(100)
            redis.start()
            faults.append({"fault": "Redis stopped 15 s", "start": began, "end": time.time()})
            say("Redis is back")

        faulter = threading.Thread(target=schedule, daemon=True)
        faulter.start()
        say(
            f"load: {args.rate:.0f} single events/s for {args.seconds:.0f} s, retried until acknowledged"
        )
        load.run(args.seconds)
        faulter.join(60)
        load_end = time.time()
        say(f"load done: {len(load.acknowledged):,} acknowledged; waiting for the pipeline")

        db_url = env["DATABASE_URL"]
        final: dict[str, int] = {}
        done_at = None
        while time.time() - load_end < CATCH_UP_LIMIT_S:
            final = counts(db_url, run)
            if final["stored"] and final["judged"] == final["normalized"] == final["stored"]:
                done_at = time.time()
                break
            time.sleep(1)
        final = counts(db_url, run)
        stored = stored_ids(db_url, run)
        lost = sorted(load.acknowledged - stored)
        last_fault_end = max(f["end"] for f in faults) if faults else load_end
        for fault in faults:
            fault["catch_up_s"] = catch_up_after(db_url, run, fault["end"])
        manual = []
        if final["normalized"] < final["stored"]:
            manual.append("manage.py normalize_feedback")
        if final["judged"] < final["stored"]:
            manual.append("manage.py requalify --missing")
        result = {
            "benchmark": "soak",
            "started_at": started_at,
            "machine": machine(),
            "load_before": load_before,
            "load_after": calibrate(),
            "args": vars(args),
            "sent": len(events),
            "acknowledged": len(load.acknowledged),
            "answers": load.answers,
            "client_retries": load.retries,
            "gave_up": load.gave_up[:10],
            **final,
            "lost": len(lost),
            "lost_ids": lost[:10],
            "faults": [
                {**f, "start": round(f["start"] - t0, 1), "end": round(f["end"] - t0, 1)}
                for f in faults
            ],
            "all_judged_after_last_fault_s": None
            if done_at is None
            else round(done_at - last_fault_end, 1),
            "all_judged_after_load_s": None if done_at is None else round(done_at - load_end, 1),
            "longest_catch_up_s": max(
                (f["catch_up_s"] for f in faults if f["catch_up_s"] is not None), default=None
            ),
            "manual_commands": manual,
        }
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"soak-{started_at.replace(':', '')}.json"
        result["path"] = str(path.relative_to(ROOT))
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        print(report(result))
        ok = (
            not lost
            and final["duplicated"] == 0
            and not manual
            and result["all_judged_after_last_fault_s"] is not None
            and result["all_judged_after_last_fault_s"] <= 60
        )
        return 0 if ok else 1
    finally:
        procs.close()
        redis.stop()
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(r: dict[str, Any]) -> str:
    def secs(value: float | None) -> str:
        return "never (within the wait)" if value is None else f"{value:.1f} s"

    lines = [
        "",
        "soak: single events under faults (PostgreSQL + Redis, gunicorn, worker, beat)",
        "-" * 80,
        f"machine: {r['machine']['cpus']} CPUs, load average {r['load_before']['loadavg_1m']:.2f} before, "
        f"{r['load_after']['loadavg_1m']:.2f} after; commit {r['machine']['commit']}",
        f"sent {r['sent']:,} at {r['args']['rate']:.0f}/s; answers {r['answers']}; client retries {r['client_retries']:,}",
        f"acknowledged {r['acknowledged']:,} / stored {r['stored']:,} / lost {r['lost']} / "
        f"duplicated {r['duplicated']} / normalized {r['normalized']:,} / judged {r['judged']:,}",
    ]
    for fault in r["faults"]:
        lines.append(
            f"  {fault['fault']:<38} t={fault['start']:>5.1f}–{fault['end']:>5.1f} s: "
            f"events stored before its end all judged {secs(fault['catch_up_s'])} after"
        )
    lines += [
        f"every stored event judged {secs(r['all_judged_after_last_fault_s'])} after the last fault "
        f"(target ≤ 60 s), {secs(r['all_judged_after_load_s'])} after the load stopped; "
        f"longest catch-up {secs(r['longest_catch_up_s'])}",
        f"manual commands needed: {len(r['manual_commands'])}"
        + (f" ({', '.join(r['manual_commands'])})" if r["manual_commands"] else ""),
        "-" * 80,
        f"results: {r['path']}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
