"""Leaderboard benchmark: FastChat's bootstrap method against ours, then the whole command.

    .venv/bin/python bench/leaderboard.py [--battles 1000000] [--models 50] [--rounds 1000]
        [--database-url postgres://postgres@127.0.0.1:55432/postgres] [--repeat 3]
        [--skip-db | --skip-compare] [--json]

1. Generates BATTLES battles among MODELS models, Bradley-Terry distributed (true ratings drawn
   from N(1000, 150), 10 % of battles ties), as numpy arrays (seed 0).
2. Reference, FastChat's method (rating_systems.py compute_bt / compute_bootstrap_bt, written
   here from its description): aggregate the unique (model_a, model_b, outcome) rows with
   np.unique, fit with scipy L-BFGS-B (its loss and analytic gradient over the unique rows,
   weighted by their counts), then ROUNDS bootstrap rounds, each a multinomial redraw of the
   unique rows' counts (divided by n) refitted by L-BFGS-B from zero (one process; FastChat
   spreads the rounds over a multiprocessing pool, which on this two-core machine saves at
   most 2x). It runs on one BLAS thread: with OpenBLAS's default two, every small BLAS call
   inside L-BFGS-B waits for a second thread, and on a busy machine the reference then takes
   5-20x longer (78 s once), which says nothing about the method.
3. Ours: the same aggregation once (a bincount here, a GROUP BY in the command), then
   apps.evaluation.ratings.fit_bt (the FastChat-compatible point fit, then every round drawn
   at once and solved together by batched Newton; it limits itself to one BLAS thread).
   Both start after the battles are loaded. Each runs REPEAT times (3), interleaved; the
   table shows the median of each part and the speed-up of the median totals.
4. Unless --skip-db: COPYs the battles into a PostgreSQL database of its own
   (`bench_leaderboard`, created and migrated once, reused while it holds the same battles)
   as Event + 2 Interaction + Comparison + accepted Verdict rows, then times the whole
   `manage.py leaderboard --format json` subprocess, start to finish (5 runs, median).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.evaluation import ratings as R  # noqa: E402  (plain numpy, no Django)
from bench.database import database_url, migrated_database  # noqa: E402

BENCH_DB = "bench_leaderboard"


def generate(n: int, m: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(1000, 150, m)
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    p = 1.0 / (1.0 + 10 ** ((truth[b] - truth[a]) / 400))
    u = rng.random(n)
    outcome = np.where(u < 0.1, 1, np.where(rng.random(n) < p, 2, 0))  # 2 a wins, 1 tie, 0 b wins
    names = [f"model-{i:02d}" for i in range(m)]
    return names, a, b, outcome


# --- the reference: FastChat's method --------------------------------------------------------


def _fastchat_loss_and_grad(ratings, matchups, outcomes, weights, alpha):
    matchup_ratings = ratings[matchups]
    logits = alpha * (matchup_ratings[:, 0] - matchup_ratings[:, 1])
    probs = expit(logits)
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    matchups_grads = -alpha * (outcomes - probs) * weights
    model_grad = np.zeros_like(ratings)
    np.add.at(model_grad, matchups[:, [0, 1]], matchups_grads[:, None] * np.array([1.0, -1.0]))
    return loss, model_grad


def _fastchat_fit(matchups, outcomes, weights, n_models, alpha):
    from scipy.optimize import minimize

    result = minimize(
        fun=_fastchat_loss_and_grad,
        x0=np.zeros(n_models),
        args=(matchups, outcomes, weights, alpha),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    return result["x"]


def reference(names, a, b, outcome, rounds: int) -> dict[str, float]:
    t0 = time.perf_counter()
    schedule = np.stack([a, b, outcome], axis=1)
    unique, counts = np.unique(schedule, return_counts=True, axis=0)
    matchups, outcomes = unique[:, :2], unique[:, 2].astype(np.float64) / 2.0
    weights = counts.astype(np.float64)
    t1 = time.perf_counter()
    alpha = math.log(10.0)
    point = _fastchat_fit(matchups, outcomes, weights, len(names), alpha) * 400 + 1000
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    draws = rng.multinomial(len(a), weights / weights.sum(), size=rounds) / len(a)
    reps = np.array([_fastchat_fit(matchups, outcomes, w, len(names), alpha) for w in draws])
    lower, upper = np.quantile(reps * 400 + 1000, [0.025, 0.975], axis=0)
    t3 = time.perf_counter()
    return {
        "aggregate_s": t1 - t0,
        "fit_s": t2 - t1,
        "bootstrap_s": t3 - t2,
        "total_s": t3 - t0,
        "_point": point,
        "_lower": lower,
        "_upper": upper,
    }


def ours(names, a, b, outcome, rounds: int) -> dict[str, float]:
    t0 = time.perf_counter()
    m = len(names)
    key = (a * m + b) * 3 + outcome
    counts = np.bincount(key, minlength=m * m * 3)
    nz = np.flatnonzero(counts)
    letters = {2: "a", 1: "tie", 0: "b"}
    rows = [(names[k // 3 // m], names[k // 3 % m], letters[k % 3], counts[k]) for k in nz.tolist()]
    c = R.counts_from_rows(rows)
    t1 = time.perf_counter()
    point_only = R.fit_bt(c)
    t2 = time.perf_counter()
    fit = R.fit_bt(c, bootstrap=rounds, seed=0)
    t3 = time.perf_counter()
    return {
        "aggregate_s": t1 - t0,
        "fit_s": t2 - t1,
        "bootstrap_s": (t3 - t2) - (t2 - t1),
        "total_s": (t1 - t0) + (t3 - t2),
        "_point": point_only.ratings,
        "_lower": fit.lower,
        "_upper": fit.upper,
    }


def _median_run(runs: list[dict]) -> dict:
    """The median of each timed part over RUNS, the totals of every run, and the last run's
    ratings (they are the same in every run)."""
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k.endswith("_s")}
    out["runs_s"] = [r["total_s"] for r in runs]
    out.update({k: v for k, v in runs[-1].items() if k.startswith("_")})
    return out


# --- the whole command over PostgreSQL ----------------------------------------------------


def _bench_url(base_url: str) -> str:
    return database_url(base_url, BENCH_DB)


def load_database(base_url: str, names, a, b, outcome) -> dict[str, float]:
    import psycopg

    n = len(a)
    url = migrated_database(base_url, BENCH_DB)
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM feedback_comparison").fetchone()[0]
        marker = conn.execute(
            "SELECT count(*) FROM sources_source WHERE name = %s", (f"bench-{n}",)
        ).fetchone()[0]
        if have == n and marker:
            return {"load_s": 0.0, "reused": True}
        t0 = time.perf_counter()
        for table in (
            "quality_verdict",
            "feedback_comparison",
            "feedback_interaction",
            "feedback_event",
        ):
            conn.execute(f"TRUNCATE {table} CASCADE")
        conn.execute("DELETE FROM sources_source WHERE name LIKE 'bench-%%'")
        source_id = conn.execute(
            "INSERT INTO sources_source (name, description, allowed_origins, redact_pii, "
            "hold_for_review, rate_limit_per_minute, rater_rate_limit_per_minute, default_consent, "
            "default_licence, is_active, created_at) "
            "VALUES (%s, '', '[]', true, false, 0, 0, true, '', true, now()) RETURNING id",
            (f"bench-{n}",),
        ).fetchone()[0]
        letters = np.array(["b", "tie", "a"])[outcome]
        ids = np.arange(1, n + 1)

        def copy(sql: str, lines) -> None:
            with conn.cursor() as cur, cur.copy(sql) as cp:
                buf = io.StringIO()
                for i, line in enumerate(lines):
                    buf.write(line)
                    if i % 100_000 == 99_999:
                        cp.write(buf.getvalue())
                        buf = io.StringIO()
                cp.write(buf.getvalue())

        copy(
            "COPY feedback_event (id, source_id, client_id, type, status, payload, rater_hash, model, "
            "checkpoint, consent, licence, redactions, ip_hash, received_at) FROM STDIN",
            (
                f'{i}\t{source_id}\tb{i}\tpreference\taccepted\t{{"type": "preference"}}\tr{i % 5000}'
                "\t\t\tt\t\t{}\t\t2026-01-01 00:00:00+00\n"
                for i in ids.tolist()
            ),
        )
        copy(
            "COPY feedback_interaction (id, event_id, position, model, checkpoint, prompt_hash, edited) "
            "FROM STDIN",
            (
                f"{2 * i - 1}\t{i}\t0\t{names[x]}\t\tp\tf\n{2 * i}\t{i}\t1\t{names[y]}\t\tp\tf\n"
                for i, x, y in zip(ids.tolist(), a.tolist(), b.tolist(), strict=True)
            ),
        )
        copy(
            "COPY feedback_comparison (id, event_id, interaction_a_id, interaction_b_id, source_id, "
            "model_a, model_b, outcome, rater_hash, created_at) FROM STDIN",
            (
                f"{i}\t{i}\t{2 * i - 1}\t{2 * i}\t{source_id}\t{names[x]}\t{names[y]}\t{o}\tr{i % 5000}"
                "\t2026-01-01 00:00:00+00\n"
                for i, x, y, o in zip(
                    ids.tolist(), a.tolist(), b.tolist(), letters.tolist(), strict=True
                )
            ),
        )
        copy(
            "COPY quality_verdict (id, event_id, status, score, trust_weight, reasons, filters, "
            "pipeline_version, origin, is_current, created_at) FROM STDIN",
            (
                f"{i}\t{i}\taccepted\t0\t1\t[]\t{{}}\tbench\tpipeline\tt\t2026-01-01 00:00:00+00\n"
                for i in ids.tolist()
            ),
        )
        for table in (
            "feedback_event",
            "feedback_interaction",
            "feedback_comparison",
            "quality_verdict",
        ):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608  (fixed table names)
            )
            conn.execute(f"VACUUM ANALYZE {table}")
        return {"load_s": time.perf_counter() - t0, "reused": False}


def time_command(base_url: str, runs: int = 5) -> dict[str, object]:
    env = {**os.environ, "DATABASE_URL": _bench_url(base_url)}
    times, board = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "manage.py", "leaderboard", "--format", "json"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - t0)
        board = json.loads(done.stdout)
    return {
        "runs_s": times,
        "median_s": statistics.median(times),
        "battles": board["battles"],
        "models": len(board["models"]),
        "warnings": board["warnings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:55432/postgres"
        ),
    )
    parser.add_argument("--skip-db", action="store_true", help="only the method comparison")
    parser.add_argument(
        "--skip-compare", action="store_true", help="only the command over PostgreSQL"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each method (medians are reported)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    names, a, b, outcome = generate(args.battles, args.models)
    if args.skip_compare:
        result = {"battles": args.battles, "models": args.models}
        result["database"] = load_database(args.database_url, names, a, b, outcome)
        result["command"] = time_command(args.database_url)
        print(json.dumps(result, indent=2))
        return
    import scipy.optimize  # noqa: F401  (scipy has a BLAS of its own: load it before the limit)
    from threadpoolctl import threadpool_limits

    refs, mines = [], []
    with threadpool_limits(limits=1, user_api="blas"):  # see 2. above
        for _ in range(args.repeat):  # interleaved, so both see the same machine
            refs.append(reference(names, a, b, outcome, args.rounds))
            mines.append(ours(names, a, b, outcome, args.rounds))
    ref, mine = _median_run(refs), _median_run(mines)
    agreement = {
        "max_point_diff": float(np.abs(ref["_point"] - mine["_point"]).max()),
        "max_interval_diff": float(
            max(
                np.abs(ref["_lower"] - mine["_lower"]).max(),
                np.abs(ref["_upper"] - mine["_upper"]).max(),
            )
        ),
    }
    result: dict[str, object] = {
        "battles": args.battles,
        "models": args.models,
        "rounds": args.rounds,
        "reference": {k: v for k, v in ref.items() if not k.startswith("_")},
        "ours": {k: v for k, v in mine.items() if not k.startswith("_")},
        "speedup": ref["total_s"] / mine["total_s"],
        "agreement": agreement,
    }
    if not args.skip_db:
        result["database"] = load_database(args.database_url, names, a, b, outcome)
        result["command"] = time_command(args.database_url)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    r, o = result["reference"], result["ours"]
    print(f"{args.battles:,} battles, {args.models} models, {args.rounds} bootstrap rounds")
    print(f"{'':<28}{'FastChat method':>16}{'ours':>10}")
    for part in ("aggregate_s", "fit_s", "bootstrap_s", "total_s"):
        print(f"{part:<28}{r[part]:>16.3f}{o[part]:>10.3f}")
    print(
        f"totals of the {args.repeat} runs: FastChat method {[round(t, 2) for t in r['runs_s']]}, "
        f"ours {[round(t, 3) for t in o['runs_s']]}"
    )
    print(f"speed-up (median totals): {result['speedup']:.1f}x   target >= 10x")
    print(
        f"agreement: point {agreement['max_point_diff']:.4f}, intervals {agreement['max_interval_diff']:.2f} rating points"
    )
    if "command" in result:
        c = result["command"]
        print(f"database load: {result['database']}")
        print(
            f"manage.py leaderboard --format json over {c['battles']:,} battles in PostgreSQL: "
            f"median {c['median_s']:.2f} s of {[round(t, 2) for t in c['runs_s']]}   target <= 3 s"
        )


if __name__ == "__main__":
    main()
