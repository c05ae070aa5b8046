"""Ingest benchmark: the HTTP API in production shape against raw COPY, on one machine.

    .venv/bin/python bench/ingest.py [--rounds 3] [--batches 40] [--rate 300] [--seconds 15]
    make bench BENCH_ARGS="..."

1. Starts a throw-away PostgreSQL and Redis (scripts/services.sh, free ports, a temp folder)
   unless DATABASE_URL is set; creates and migrates a fresh database either way.
2. Creates a source, writes realistic events (every type, ~1 KB each, some with PII) to disk.
3. Starts gunicorn (config/gunicorn.py, 3 sync workers) on 127.0.0.1 with DEBUG off.
4. Rounds: the load generator (bench/loadgen.py, its own process) posts batches of 1,000
   events, closed loop, CONCURRENCY in flight; then psycopg's cursor.copy COPYs the very
   rows the API stored (read back from feedback_event) into two scratch tables, one with
   feedback_event's indexes, one bare. The ratio is the median of the rounds'.
5. The real Celery worker derives the rows of every event the batches stored (the hints they
   sent and its start-up sweep find them in the database), timed over at most 20 s (no worker runs during the measured phases: on two cores it
   would take the CPU the web workers are measured on).
6. Single events at a steady open-loop rate: p50/p99/max latency, errors, and the web tier's
   CPU per event (CPU seconds of the gunicorn processes ÷ events answered).

Before each measured step the event log is VACUUM ANALYZEd and checkpointed. Prints a table
and writes bench/results/ingest-<time>.json (docs/benchmarks.md explains every number).
Everything it started is stopped by pid at the end, also on Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from events import EventFactory  # noqa: E402

VENV_BIN = Path(sys.executable).parent
RESULTS = BENCH / "results"
_COLUMNS = (
    "client_id, type, status, payload, rater_hash, model, checkpoint, consent, licence, "
    "redactions, ip_hash, occurred_at, received_at, source_id"
)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Processes:
    """What the benchmark started, stopped in reverse order by pid."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.services_dir: Path | None = None
        self.drop_database: tuple[str, str] | None = None

    def start(
        self, name: str, argv: list[str], log: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def stop(
        self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 15
    ) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)
        if self.drop_database:
            import psycopg

            admin_url, name = self.drop_database
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(admin_url, autocommit=True) as conn,
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.services_dir:
            subprocess.run(
                [str(ROOT / "scripts" / "services.sh"), "stop", str(self.services_dir)], check=False
            )


def start_services(procs: Processes, tmp: Path, env: dict[str, str]) -> str:
    """Our own PostgreSQL + Redis, or the ones DATABASE_URL names; returns the admin DB URL."""
    if os.environ.get("DATABASE_URL"):
        say("using DATABASE_URL from the environment (a fresh database is created on it)")
        return os.environ["DATABASE_URL"]
    services = tmp / "services"
    ports = {"PG_PORT": str(free_port()), "REDIS_PORT": str(free_port())}
    say(
        f"starting PostgreSQL on :{ports['PG_PORT']} and Redis on :{ports['REDIS_PORT']} in {services}"
    )
    procs.services_dir = services
    out = subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "start", str(services)],
        env={**os.environ, **ports},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
    return env["DATABASE_URL"]


def fresh_database(procs: Processes, admin_url: str) -> str:
    import psycopg

    name = f"sinkhole_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    procs.drop_database = (admin_url, name)
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--", "apps", "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit + ("+dirty" if dirty else ""),
    }


def loadgen(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(BENCH / "loadgen.py"), *args],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return orjson.loads(out)


def phase_batch(
    url: str, key: str, bodies: Path, concurrency: int, env: dict[str, str], meter: CpuMeter
) -> dict[str, Any]:
    started = meter.start()
    result = loadgen(
        ["batch", url, key, "--bodies", str(bodies), "--concurrency", str(concurrency)], env
    )
    result["cpu"] = meter.stop(started, exited_s=result["cpu_seconds"])
    stored = result["items"].get("accepted", 0) + result["items"].get("quarantined", 0)
    latencies = result.pop("request_seconds")
    result.update(
        events=stored,
        events_per_s=stored / result["seconds"],
        request_p50_ms=percentile(latencies, 0.5) * 1000,
        request_p99_ms=percentile(latencies, 0.99) * 1000,
    )
    return result


def phase_normalize(
    procs: Processes, tmp: Path, env: dict[str, str], expected: int, deadline_s: float
) -> dict[str, Any]:
    """The real worker drains the queued normalize tasks; events/s from its 'ready' to the last row."""
    from django.db import connection

    log = tmp / "celery.log"
    worker = procs.start(
        "celery",
        [
            str(VENV_BIN / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            "ingest",
            "--concurrency",
            "2",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        log,
        env,
    )
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start; see {log}")
        time.sleep(0.05)
    started = time.perf_counter()
    done = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT count(DISTINCT event_id) FROM feedback_interaction")
            done = cursor.fetchone()[0]
            if done >= expected or time.perf_counter() - started > deadline_s:
                break
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    procs.stop(worker)
    return {
        "events": done,
        "seconds": elapsed,
        "events_per_s": done / elapsed,
        "complete": done >= expected,
        "worker": "celery prefork, concurrency 2, queue ingest",
    }


def phase_copy(db_url: str, source_id: int, prefix: str) -> dict[str, Any]:
    """COPY the rows the API stored into scratch tables; the rows are read back first, untimed."""
    import psycopg

    out: dict[str, Any] = {}
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS.replace('payload', 'payload::text').replace('redactions', 'redactions::text')} "  # noqa: S608 - constants
            "FROM feedback_event WHERE source_id = %s AND client_id LIKE %s ORDER BY id",
            (source_id, f"{prefix}%"),
        ).fetchall()
        for table, ddl in (
            ("bench_copy_indexed", "LIKE feedback_event INCLUDING ALL"),
            ("bench_copy_bare", "LIKE feedback_event INCLUDING DEFAULTS INCLUDING IDENTITY"),
        ):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({ddl})")
            conn.commit()
            started = time.perf_counter()
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY {table} ({_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            elapsed = time.perf_counter() - started
            out[table] = {
                "events": len(rows),
                "seconds": elapsed,
                "events_per_s": len(rows) / elapsed,
            }
            conn.execute(f"DROP TABLE {table}")
            conn.commit()
    return out


def phase_single(
    url: str,
    key: str,
    events_file: Path,
    rate: float,
    seconds: float,
    env: dict[str, str],
    meter: CpuMeter,
) -> dict[str, Any]:
    started = meter.start()
    result = loadgen(
        [
            "single",
            url,
            key,
            "--events",
            str(events_file),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ],
        env,
    )
    result["cpu"] = meter.stop(started, exited_s=result["cpu_seconds"])
    # Dropped requests (never sent: the server was that far behind) count as errors and, for
    # the percentiles, as slower than anything measured (None in the JSON: "over give_up").
    latencies = result.pop("request_seconds") + [float("inf")] * result["dropped"]
    ok = sum(count for code, count in result["http"].items() if code in ("200", "201"))

    def ms(seconds: float) -> float | None:
        return None if seconds == float("inf") else seconds * 1000

    # The web tier's CPU per event: CPU seconds of the server processes (gunicorn's master and
    # workers) over the events they answered.
    web_cpu_s = result["cpu"]["seconds"] * sum(
        cpus
        for name, cpus in result["cpu"]["ours_by_process_cpus"].items()
        if name.startswith("gunicorn")
    )
    result.update(
        web_cpu_ms_per_event=web_cpu_s / ok * 1000 if ok else None,
        ok=ok,
        errors=result["requests"] - ok + result["dropped"],
        achieved_rate=ok / result["seconds"],
        p50_ms=ms(percentile(latencies, 0.5)),
        p90_ms=ms(percentile(latencies, 0.9)),
        p99_ms=ms(percentile(latencies, 0.99)),
        max_ms=ms(latencies[-1] if latencies else float("inf")),
    )
    return result


class CpuMeter:
    """CPU seconds spent during a phase: by the whole machine (/proc/stat), by what this
    benchmark runs (its own process tree, the PostgreSQL and Redis it started, the load
    generator), and so by everything else on a shared machine."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.tick = os.sysconf("SC_CLK_TCK")

    def _busy(self) -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return (sum(fields[:8]) - idle) / self.tick

    def _ours(self) -> dict[int, tuple[str, float]]:
        parents: dict[int, int] = {}
        cpu: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                name, fields = (entry / "stat").read_text().split(" (", 1)[1].rsplit(")", 1)
            except (OSError, ValueError):
                continue
            fields = fields.split()
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / self.tick)
        mine = set(self.roots)
        grew = True
        while grew:
            grew = False
            for pid, parent in parents.items():
                if parent in mine and pid not in mine:
                    mine.add(pid)
                    grew = True
        return {pid: cpu[pid] for pid in mine if pid in cpu}

    def start(self) -> tuple[float, float, dict[int, tuple[str, float]]]:
        return time.perf_counter(), self._busy(), self._ours()

    def stop(
        self, started: tuple[float, float, dict[int, tuple[str, float]]], exited_s: float = 0.0
    ) -> dict[str, Any]:
        """EXITED_S: CPU of our processes that ended during the phase (the load generator)."""
        t0, busy0, ours0 = started
        elapsed, busy, ours = time.perf_counter() - t0, self._busy() - busy0, self._ours()
        by_name: dict[str, float] = {"load generator": exited_s}
        for pid, (name, cpu) in ours.items():
            spent = cpu - ours0.get(pid, (name, 0.0))[1]
            by_name[name] = by_name.get(name, 0.0) + spent
        mine = sum(by_name.values())
        return {
            "seconds": elapsed,
            "machine_cpus_busy": busy / elapsed,
            "ours_cpus": mine / elapsed,
            "others_cpus": max(0.0, busy - mine) / elapsed,
            "ours_by_process_cpus": {
                name: round(spent / elapsed, 3) for name, spent in by_name.items() if spent > 0
            },
        }


def services_pids(services: Path | None) -> list[int]:
    if services is None:
        return []
    pids = []
    for name in ("pg.pid", "redis.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((services / name).read_text().split()[0]))
    return pids


def settle(db_url: str, quiet: bool = False) -> None:
    """Before every measured phase: VACUUM ANALYZE the event log and CHECKPOINT, so that the
    clean-up after the previous phase (autovacuum after 40,000 inserts, dirty buffers, a
    checkpoint) does not land in the next one: the COPY right after a batch round would
    otherwise run slower, and flatter the ratio. A server under steady load does this work too,
    spread thin."""
    import psycopg

    if not quiet:
        say("settling: VACUUM ANALYZE feedback_event, CHECKPOINT")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) feedback_event")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            say("  CHECKPOINT skipped: the DATABASE_URL role may not run it")


def calibrate() -> dict[str, float]:
    """How loaded the machine is right now: the load average, and the time a fixed piece of pure
    Python takes (about 100 ms on an idle core of this kind of machine)."""
    started = time.perf_counter()
    total = 0
    for number in range(3_000_000):
        total += number & 7
    return {
        "loadavg_1m": os.getloadavg()[0],
        "python_loop_ms": (time.perf_counter() - started) * 1000,
    }


def _ms(value: float | None) -> str:
    return "dropped" if value is None else f"{value:,.1f}"


def _median_round(rounds: list[dict[str, Any]], key: Any) -> dict[str, Any]:
    """The round whose KEY is the median (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=key)
    return ordered[(len(ordered) - 1) // 2]


def _cpus(cpu: dict[str, float]) -> str:
    return f"{cpu['ours_cpus']:.2f} / {cpu['others_cpus']:.2f}"


def _met(single: dict[str, Any], target_ms: float) -> bool:
    return single["p99_ms"] is not None and single["p99_ms"] <= target_ms and single["errors"] == 0


def report(result: dict[str, Any]) -> str:
    batch, copy, single, norm = (
        result["batch"],
        result["copy"],
        result["single"],
        result.get("normalize"),
    )
    targets, load, machine_ = result["targets"], result["load"], result["machine"]

    def row(label: str, value: str, target: str = "") -> str:
        return f"{label:<50}{value:>16}  {target}".rstrip()

    verdict = "met" if result["ratio"] >= targets["ratio"] else "MISSED"
    single_verdict = "met" if _met(single, targets["single_p99_ms"]) else "MISSED"
    lines = [
        "",
        f"Sinkhole ingest benchmark, {result['started_at']}, commit {machine_['commit']}",
        f"machine: {machine_['cpus']} CPUs ({machine_['cpu_model']}), Python {machine_['python']}; "
        f"load average {load['start']['loadavg_1m']:.1f} -> {load['end']['loadavg_1m']:.1f}, "
        f"fixed Python loop {load['start']['python_loop_ms']:.0f} -> {load['end']['python_loop_ms']:.0f} ms",
        f"server: {result['server']}",
        f"events: {result['events']['text_source']}, ~{result['events']['mean_bytes']:.0f} bytes each; "
        f"{result['config']['rounds']} rounds of {result['config']['batches']} batches of "
        f"{result['config']['batch_size']}, {result['config']['concurrency']} in flight",
        "",
        row("", "measured", "target"),
        "-" * 80,
        row("batch ingest over HTTP, events/s (median round)", f"{batch['events_per_s']:,.0f}"),
        row(
            "  one 1,000-event request, p50 / p99 ms",
            f"{batch['request_p50_ms']:,.0f} / {batch['request_p99_ms']:,.0f}",
        ),
        row(
            "raw COPY, table with feedback_event's indexes, ev/s",
            f"{copy['bench_copy_indexed']['events_per_s']:,.0f}",
        ),
        row("raw COPY, bare table, events/s", f"{copy['bench_copy_bare']['events_per_s']:,.0f}"),
        row(
            "ratio batch / COPY (same indexes), median round",
            f"{result['ratio']:.3f}",
            f">= {targets['ratio']}  {verdict}",
        ),
        row("ratio batch / COPY (bare table), median round", f"{result['ratio_bare']:.3f}"),
        row(
            "  each round: same indexes",
            " ".join(f"{r['ratio']:.3f}" for r in result["rounds"]),
        ),
        row("  CPUs busy in the batch phase: ours / others'", _cpus(batch["cpu"])),
        row(
            f"single events, open loop at {single['rate']:.0f} req/s: served/s",
            f"{single['achieved_rate']:,.0f}",
        ),
        row("  p50 / p90 ms", f"{_ms(single['p50_ms'])} / {_ms(single['p90_ms'])}"),
        row(
            "  p99 ms",
            _ms(single["p99_ms"]),
            f"<= {targets['single_p99_ms']:.0f}  {single_verdict}",
        ),
        row("  max ms", _ms(single["max_ms"])),
        row(
            "  errors (not 200/201) + dropped",
            f"{single['errors'] - single['dropped']} + {single['dropped']}",
            "0",
        ),
        row("  CPUs busy in the single phase: ours / others'", _cpus(single["cpu"])),
        row(
            "  web tier CPU per event, ms (gunicorn CPU s / events)",
            f"{single['web_cpu_ms_per_event']:.2f}" if single["web_cpu_ms_per_event"] else "n/a",
            f"<= {targets['web_cpu_ms_per_event']}",
        ),
    ]
    if norm:
        lines.append(
            row(
                "normalize, real Celery worker, events/s",
                f"{norm['events_per_s']:,.0f}",
            )
        )
    else:
        lines.append(row("normalize", "skipped"))
    lines += ["-" * 80, f"results: {result['path']}", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="batch + COPY rounds; the ratio is their median"
    )
    parser.add_argument(
        "--batches", type=int, default=40, help="batch requests per round (default 40)"
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="batch requests in flight")
    parser.add_argument(
        "--workers", type=int, default=3, help="gunicorn worker processes (default 3)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker; 1 = sync workers (default)"
    )
    parser.add_argument("--rate", type=float, default=300.0, help="single events per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="single-event phase length")
    parser.add_argument("--no-normalize", action="store_true", help="skip the Celery worker phase")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp folder (logs) afterwards"
    )
    args = parser.parse_args()

    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="sinkhole-bench-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user must reach the services folder inside
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = calibrate()
    env = dict(os.environ)
    try:
        admin_url = start_services(procs, tmp, env)
        env.update(
            DATABASE_URL=fresh_database(procs, admin_url),
            DJANGO_SETTINGS_MODULE="config.settings",
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(48),
            SINKHOLE_DATA_DIR=str(tmp / "data"),
            PROMETHEUS_MULTIPROC_DIR=str(tmp / "prometheus"),
            LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
            PYTHONPATH=str(ROOT),
        )
        (tmp / "prometheus").mkdir()
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

        source, secret, _ = source_create(name="bench")
        # The key's default limit (60,000 events/min) is below what the batch phase sends in a
        # minute: raise it out of reach, but keep it on, so every request pays for the check.
        # Per-rater limits stay at their default (600/min; 5,000 raters: none comes near).
        source.rate_limit_per_minute = 1_000_000_000
        source.save(update_fields=["rate_limit_per_minute"])

        run = f"r{int(time.time())}"
        factory = EventFactory(seed=7, run=run)
        bodies, warm = tmp / "bodies", tmp / "warmup"
        bodies.mkdir()
        warm.mkdir()
        total_bytes = 0
        say(
            f"writing {args.rounds} × {args.batches} batches of {args.batch_size} events "
            f"({factory.text_source})"
        )
        factory.run = f"{run}-w"
        for index, batch in enumerate(factory.batches(3, args.batch_size)):
            (warm / f"{index:04d}.json").write_bytes(orjson.dumps(batch))
        for number in range(args.rounds):
            factory.run = f"{run}-b{number}"
            (bodies / f"r{number}").mkdir()
            for index, batch in enumerate(factory.batches(args.batches, args.batch_size)):
                data = orjson.dumps(batch)
                total_bytes += len(data)
                (bodies / f"r{number}" / f"{index:04d}.json").write_bytes(data)
        factory.run = f"{run}-s"
        single_file, single_warm = tmp / "single.jsonl", tmp / "single-warmup.jsonl"
        single_file.write_bytes(
            b"\n".join(
                orjson.dumps(factory.event()) for _ in range(int(args.rate * args.seconds) + 1)
            )
        )
        factory.run = f"{run}-sw"
        single_warm.write_bytes(
            b"\n".join(orjson.dumps(factory.event()) for _ in range(int(args.rate * 2) + 1))
        )

        port = free_port()
        kind = f"{args.threads} threads each (gthread)" if args.threads > 1 else "sync"
        server = f"gunicorn -c python:config.gunicorn config.wsgi, {args.workers} workers, {kind}, DEBUG off"
        say(f"starting {server} on 127.0.0.1:{port}")
        procs.start(
            "gunicorn",
            [
                str(VENV_BIN / "gunicorn"),
                "config.wsgi:application",
                "--config",
                "python:config.gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
            ],
            tmp / "gunicorn.log",
            env,
        )
        wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/api/v1/feedback"
        say("warming up (3 batches, not counted)")
        loadgen(
            ["batch", url, secret.raw, "--bodies", str(warm), "--concurrency", str(args.workers)],
            env,
        )

        meter = CpuMeter([os.getpid(), *services_pids(procs.services_dir)])
        rounds = []
        for number in range(args.rounds):
            # Batch and COPY close together in time, several times: on a shared machine the
            # speed drifts over tens of seconds, and the median ratio of the rounds is steadier.
            say(
                f"round {number + 1}/{args.rounds}: {args.batches} batches of {args.batch_size} "
                f"over HTTP, {args.concurrency} in flight; then COPY of the same rows"
            )
            settle(env["DATABASE_URL"], quiet=True)
            batch = phase_batch(
                url, secret.raw, bodies / f"r{number}", args.concurrency, env, meter
            )
            settle(env["DATABASE_URL"], quiet=True)
            copy = phase_copy(env["DATABASE_URL"], source.pk, f"{run}-b{number}-")
            rounds.append(
                {
                    "batch": batch,
                    "copy": copy,
                    "ratio": batch["events_per_s"] / copy["bench_copy_indexed"]["events_per_s"],
                    "ratio_bare": batch["events_per_s"] / copy["bench_copy_bare"]["events_per_s"],
                }
            )
            say(
                f"  HTTP {batch['events_per_s']:,.0f} events/s ({batch['items']}), COPY "
                f"{copy['bench_copy_indexed']['events_per_s']:,.0f} / "
                f"{copy['bench_copy_bare']['events_per_s']:,.0f} events/s; "
                f"ratio {rounds[-1]['ratio']:.3f} / {rounds[-1]['ratio_bare']:.3f}"
            )

        normalize = None
        if not args.no_normalize:
            say("normalize phase: the real Celery worker drains the queued tasks (at most 20 s)")
            expected = sum(r["batch"]["events"] for r in rounds) + 3 * args.batch_size
            normalize = phase_normalize(procs, tmp, env, expected=expected, deadline_s=20)
            say(f"  {normalize['events_per_s']:,.0f} events/s")

        settle(env["DATABASE_URL"])
        say(
            f"single-event phase: {args.rate:.0f} req/s open loop, 2 s warm-up (not counted), then {args.seconds:.0f} s"
        )
        loadgen(
            [
                "single",
                url,
                secret.raw,
                "--events",
                str(single_warm),
                "--rate",
                str(args.rate),
                "--seconds",
                "2",
            ],
            env,
        )
        single = phase_single(url, secret.raw, single_file, args.rate, args.seconds, env, meter)
        say(
            f"  p50 {_ms(single['p50_ms'])} ms, p99 {_ms(single['p99_ms'])} ms, errors {single['errors']}"
        )
        load_end = calibrate()

        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"ingest-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        result = {
            "started_at": started_at,
            "machine": machine(),
            "server": server,
            "path": str(path.relative_to(ROOT)),
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "config": vars(args) | {"batch_size": args.batch_size},
            "events": {
                "text_source": factory.text_source,
                "mean_bytes": total_bytes / (args.rounds * args.batches * args.batch_size),
            },
            "rounds": rounds,
            "batch": _median_round(rounds, lambda r: r["batch"]["events_per_s"])["batch"],
            "copy": {
                table: _median_round(rounds, lambda r, t=table: r["copy"][t]["events_per_s"])[
                    "copy"
                ][table]
                for table in rounds[0]["copy"]
            },
            "single": single,
            "normalize": normalize,
            "ratio": statistics.median(r["ratio"] for r in rounds),
            "ratio_bare": statistics.median(r["ratio_bare"] for r in rounds),
            "targets": {"ratio": 0.35, "single_p99_ms": 15.0, "web_cpu_ms_per_event": 2.5},
            "load": {"start": load_start, "end": load_end},
        }
        path.write_text(json.dumps(result, indent=2))
        print(report(result))
        return 0
    finally:
        say("stopping everything")
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        procs.close()
        if args.keep:
            say(f"kept {tmp}")
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    sys.exit(main())
