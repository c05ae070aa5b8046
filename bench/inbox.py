"""Inbox benchmark: one page of the curator inbox over 1 million events in PostgreSQL.

    .venv/bin/python bench/inbox.py [--events 1000000] [--repeat 15]
        [--database-url postgres://postgres@127.0.0.1:55432/postgres] [--json]

1. Loads EVENTS synthetic events shaped like real feedback (bench/events.py: HH-RLHF dialogues,
   the API's type mix, payload tags on 30 %) into a database of its own (`bench_inbox`, created
   and migrated once, reused while it holds the same events) with COPY: events from 3 sources
   over 90 days, their interactions and ratings, a current verdict for 98 % (85 % accepted, 10 %
   quarantined, 5 % rejected, spam scores to match), curator tags on 1 % and curator decisions on
   0.5 %. The inbox's PostgreSQL indexes (curation migration 0004) are dropped for the load and
   built after it, then the stored full-text documents (curation_eventsearch, GIN) are built in
   one INSERT … SELECT (times reported).
2. Reference: the bare `SELECT … FROM feedback_event ORDER BY id DESC LIMIT 50` over psycopg —
   the floor any page of the newest events costs.
3. Ours: GET /inbox/?<filters> through Django's test client, logged in as a curator: the whole
   page (filters, keyset page, verdicts, tags, decisions, template). Also the capped count that
   the page fetches afterwards (/api/v1/inbox/count, up to 1,000).
Each is run REPEAT times after one warm-up; p50 and p95 in milliseconds. Target (issue 4): a page
answers in under 300 ms."""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.database import database_url, migrated_database  # noqa: E402

BENCH_DB = "bench_inbox"
SOURCES = ("open-webui-prod", "librechat", "support-bot")
DAYS = 90
END = 1_767_225_600  # 2026-01-01 00:00 UTC: events run up to here
TARGET_MS = 300

QUERIES: list[tuple[str, dict[str, str]]] = [
    ("newest, no filter", {}),
    ("source + type", {"source": "librechat", "type": "rating"}),
    ("thumbs down + model", {"rating": "down", "model": "gemma2:9b"}),
    ("verdict quarantined", {"status": "quarantined"}),
    ("spam score ≥ 0.9", {"spam_min": "0.9"}),
    ("unjudged", {"status": "unjudged"}),
    ("payload tag", {"tags": "translation"}),
    ("curator tag", {"tags": "needs-review"}),
    ("date range (one week)", {"since": "2025-11-01", "until": "2025-11-07"}),
    ("full text, common word", {"q": "help"}),
    ("full text, phrase", {"q": '"credit card"'}),
    ("full text, rare word", {"q": "dolphins"}),
    ("curator accepted", {"decision": "accepted"}),
    (
        "text + verdict + dates",
        {"q": "money", "status": "accepted", "since": "2025-10-15", "until": "2025-11-30"},
    ),
    ("older page (cursor)", {"before": "500000"}),
]


def _bench_url(base_url: str) -> str:
    return database_url(base_url, BENCH_DB)


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def load(base_url: str, n: int) -> dict[str, object]:
    import psycopg

    from bench.events import EventFactory

    url = migrated_database(base_url, BENCH_DB)
    marker = f"bench-inbox-{n}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import importlib

    indexes = importlib.import_module("apps.curation.migrations.0004_inbox_indexes_postgres")

    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM feedback_event").fetchone()[0]
        if (
            have == n
            and conn.execute("SELECT 1 FROM sources_source WHERE name = %s", (marker,)).fetchone()
        ):
            return {
                "load_s": 0.0,
                "index_s": 0.0,
                "reused": True,
                "events": n,
                **_search_docs(conn, n),
            }
        t0 = time.perf_counter()
        for table in ("curation_eventtag", "curation_decision", "quality_verdict", "feedback_rating",
                      "feedback_comparison", "feedback_interaction", "feedback_event"):  # fmt: skip
            conn.execute(f"TRUNCATE {table} CASCADE")
        conn.execute(
            "DELETE FROM sources_source WHERE name LIKE 'bench-inbox-%%' OR name = ANY(%s)",
            (list(SOURCES),),
        )
        for name, _ in indexes.INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        source_ids = []
        for name in (*SOURCES, marker):
            source_ids.append(conn.execute(
                "INSERT INTO sources_source (name, description, allowed_origins, redact_pii, hold_for_review, "
                "rate_limit_per_minute, rater_rate_limit_per_minute, default_consent, default_licence, is_active, "
                "created_at) VALUES (%s, '', '[]', false, false, 0, 0, true, '', true, now()) RETURNING id",
                (name,),
            ).fetchone()[0])  # fmt: skip
        user_id = _curator(conn)
        from apps.feedback.services.normalize import prompt_hash

        factory = EventFactory(seed=13, run="binbox")
        rng = random.Random(5)
        bufs = {
            k: io.StringIO()
            for k in ("event", "interaction", "rating", "verdict", "tag", "decision")
        }
        copies = {
            "event": "COPY feedback_event (id, source_id, client_id, type, status, payload, rater_hash, model, "
                     "checkpoint, consent, licence, redactions, ip_hash, received_at) FROM STDIN",
            "interaction": "COPY feedback_interaction (id, event_id, position, model, checkpoint, prompt_hash, "
                           "edited) FROM STDIN",
            "rating": "COPY feedback_rating (id, event_id, interaction_id, source_id, model, checkpoint, value, "
                      "score, reason, rater_hash, created_at) FROM STDIN",
            "verdict": "COPY quality_verdict (id, event_id, status, score, trust_weight, reasons, filters, "
                       "pipeline_version, origin, is_current, created_at) FROM STDIN",
            "tag": "COPY curation_eventtag (id, event_id, name) FROM STDIN",
            "decision": "COPY curation_decision (id, event_id, action, reason, tag, gold_response, position, "
                        "note, user_id, created_at) FROM STDIN",
        }  # fmt: skip
        interaction_id = rating_id = verdict_id = tag_id = decision_id = 0
        step = DAYS * 86400 / n
        with conn.cursor() as cur:

            def flush() -> None:
                for key, sql in copies.items():
                    with cur.copy(sql) as cp:
                        cp.write(bufs[key].getvalue())
                    bufs[key].seek(0)
                    bufs[key].truncate()

            for i in range(1, n + 1):
                event = factory.event()
                source = source_ids[i % len(SOURCES)]
                model = event.get("model", "")
                when = time.strftime(
                    "%Y-%m-%d %H:%M:%S+00", time.gmtime(END - DAYS * 86400 + i * step)
                )
                rater = f"r{hash(event['rater']) % 100000:05d}"
                bufs["event"].write(
                    f"{i}\t{source}\t{event['id']}\t{event['type']}\taccepted\t"
                    f"{_esc(orjson.dumps(event).decode())}\t{rater}\t{model}\t\tt\t\t{{}}\t\t{when}\n"
                )
                ph = prompt_hash(event["messages"])
                responses = event.get("responses") or [None]
                first_interaction = interaction_id + 1
                for position, r in enumerate(responses):
                    interaction_id += 1
                    m = r["model"] if r else model
                    edited = "t" if event["type"] == "edit" else "f"
                    bufs["interaction"].write(
                        f"{interaction_id}\t{i}\t{position}\t{m}\t\t{ph}\t{edited}\n"
                    )
                if event["type"] == "rating":
                    rating_id += 1
                    value = event.get("rating", "\\N")
                    score = event.get("score", "\\N")
                    bufs["rating"].write(
                        f"{rating_id}\t{i}\t{first_interaction}\t{source}\t{model}\t\t{value}\t{score}\t"
                        f"{event.get('reason', '')}\t{rater}\t{when}\n"
                    )
                roll = rng.random()
                if roll >= 0.02:
                    if roll < 0.87:
                        status, score = "accepted", round(rng.random() * 0.5, 3)
                    elif roll < 0.97:
                        status, score = "quarantined", round(0.5 + rng.random() * 0.4, 3)
                    else:
                        status, score = "rejected", round(0.9 + rng.random() * 0.1, 3)
                    verdict_id += 1
                    reasons = "[]" if status == "accepted" else _esc(orjson.dumps(
                        [{"code": "bench.flag", "message": "flagged by the benchmark", "filter": "bench"}]).decode())  # fmt: skip
                    trust = 1 if status == "accepted" else 0
                    bufs["verdict"].write(
                        f"{verdict_id}\t{i}\t{status}\t{score}\t{trust}\t{reasons}\t{{}}\tbench\tpipeline\tt\t{when}\n"
                    )
                if rng.random() < 0.01:
                    tag_id += 1
                    bufs["tag"].write(
                        f"{tag_id}\t{i}\t{rng.choice(('needs-review', 'gold-candidate', 'toxic'))}\n"
                    )
                if rng.random() < 0.005:
                    decision_id += 1
                    action = rng.choice(("accept", "accept", "reject"))
                    reason = "low_quality" if action == "reject" else ""
                    bufs["decision"].write(
                        f"{decision_id}\t{i}\t{action}\t{reason}\t\t\t0\t\t{user_id}\t{when}\n"
                    )
                if i % 50_000 == 0:
                    flush()
            flush()
        for table in ("feedback_event", "feedback_interaction", "feedback_rating", "quality_verdict",
                      "curation_eventtag", "curation_decision"):  # fmt: skip
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT max(id) FROM {table}), 1))"  # noqa: S608 (constant names)
            )
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, sql in indexes.INDEXES:
            conn.execute(sql)
        for table in ("feedback_event", "feedback_interaction", "feedback_rating", "quality_verdict",
                      "curation_eventtag", "curation_decision"):  # fmt: skip
            conn.execute(f"VACUUM ANALYZE {table}")
        return {
            "load_s": round(load_s, 1),
            "index_s": round(time.perf_counter() - t1, 1),
            "reused": False,
            "events": n,
            **_search_docs(conn, n),
        }


def _search_docs(conn, n: int) -> dict[str, float]:
    """The stored full-text documents (apps/curation/search.py) for every event, built in one
    statement with the GIN index made after it; reused while complete."""
    conn.execute("DROP INDEX IF EXISTS inbox_event_fts")  # an earlier design's expression index
    have = conn.execute("SELECT count(*) FROM curation_eventsearch").fetchone()[0]
    if have == n:
        return {"search_docs_s": 0.0}
    t0 = time.perf_counter()
    conn.execute("DROP INDEX IF EXISTS inbox_search_document")
    conn.execute("TRUNCATE curation_eventsearch")
    conn.execute(
        "INSERT INTO curation_eventsearch (event_id, document) "
        "SELECT id, to_tsvector('english'::regconfig, payload) FROM feedback_event"
    )
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("CREATE INDEX inbox_search_document ON curation_eventsearch USING gin (document)")
    conn.execute("VACUUM ANALYZE curation_eventsearch")
    return {"search_docs_s": round(time.perf_counter() - t0, 1)}


def _curator(conn) -> int:
    from django.contrib.auth.hashers import make_password

    row = conn.execute("SELECT id FROM auth_user WHERE username = 'bench-curator'").fetchone()
    if row:
        return row[0]
    return conn.execute(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
        "is_active, date_joined) VALUES (%s, true, 'bench-curator', '', '', '', false, true, now()) RETURNING id",
        (make_password("bench"),),
    ).fetchone()[0]


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


def reference(url: str, repeat: int) -> dict[str, float]:
    import psycopg

    sql = (
        "SELECT id, source_id, client_id, type, status, payload, rater_hash, model, checkpoint, consent, "
        "licence, redactions, ip_hash, occurred_at, received_at FROM feedback_event ORDER BY id DESC LIMIT 50"
    )
    samples = []
    with psycopg.connect(url) as conn:
        conn.execute(sql).fetchall()
        for _ in range(repeat):
            t0 = time.perf_counter()
            conn.execute(sql).fetchall()
            samples.append((time.perf_counter() - t0) * 1000)
    return _stats(samples)


def ours(repeat: int) -> list[dict[str, object]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-curator"))
    out = []
    for name, params in QUERIES:
        path = "/inbox/" + (f"?{urlencode(params)}" if params else "")
        count_path = "/api/v1/inbox/count" + (f"?{urlencode(params)}" if params else "")
        page, count = [], []
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        rows = answer.content.count(b'class="row"')
        counted = client.get(count_path).json() if "before" not in params else {"label": "-"}
        for _ in range(repeat):
            t0 = time.perf_counter()
            client.get(path)
            page.append((time.perf_counter() - t0) * 1000)
        if "before" not in params:
            for _ in range(max(3, repeat // 3)):
                t0 = time.perf_counter()
                client.get(count_path)
                count.append((time.perf_counter() - t0) * 1000)
        out.append({"name": name, "params": params, "rows": rows, "matches": counted.get("label"),
                    "page": _stats(page), "count": _stats(count) if count else None})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:55432/postgres"))  # fmt: skip
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    loaded = load(args.database_url, args.events)
    ref = reference(_bench_url(args.database_url), args.repeat)
    results = ours(args.repeat)
    worst = max(r["page"]["p95"] for r in results)
    report = {"events": args.events, "load": loaded, "reference_ms": ref, "queries": results,
              "target_ms": TARGET_MS, "meets_target": worst < TARGET_MS}  # fmt: skip
    if args.json:
        print(json.dumps(report))
        return
    how = (
        "reused"
        if loaded["reused"]
        else f"loaded in {loaded['load_s']} s, indexes {loaded['index_s']} s"
    )
    print(f"{args.events:,} events ({how}); {args.repeat} runs each, milliseconds")
    print(
        f"{'query':28}{'rows':>6}{'matches':>16}{'page p50':>10}{'page p95':>10}{'count p50':>11}"
    )
    print(f"{'reference: bare SELECT … LIMIT 50':34}{'':26}{ref['p50']:>10}{ref['p95']:>10}")
    for r in results:
        c = r["count"]["p50"] if r["count"] else "-"
        print(
            f"{r['name'][:27]:28}{r['rows']:>6}{str(r['matches']):>16}{r['page']['p50']:>10}{r['page']['p95']:>10}{c:>11}"
        )
    print(
        f"target: every page under {TARGET_MS} ms: {'met' if report['meets_target'] else 'NOT met'} (worst p95 {worst} ms)"
    )


if __name__ == "__main__":
    main()
