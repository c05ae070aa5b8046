"""Serving gateway benchmark: what the gateway adds on top of the model, side by side.

    .venv/bin/python bench/serving.py [--model smollm2|tiny] [--requests 10] [--max-tokens 16]
        [--events 2000] [--database-url postgres://…/postgres] [--json]

1. Answer latency: the same prompts, greedy, MAX_TOKENS new tokens, (a) straight through
   `trainer.inference.ChatModel.chat` and (b) through `POST /v1/chat/completions` (Django's test
   client in-process: auth, model resolution, the ServedAnswer rows, JSON), interleaved prompt
   by prompt. Medians, and the gateway's overhead = median of (b) - (a) per prompt. Streaming: time to the first content chunk.
2. Feedback ingest of EVENTS ratings in batches of 500, without and with an `interaction_id`
   on every event (one lookup query per batch, attach model and checkpoint).
3. Experiment arm assignment (hash per rater), per second.
4. `experiment_results` over EVENTS ratings and EVENTS/4 preferences (one aggregate query each).

Runs in a scratch SQLite database (or, with --database-url, a PostgreSQL database of its own,
`bench_serving`); nothing touches the project's data."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(database_url: str) -> None:
    os.environ.setdefault("SINKHOLE_DATA_DIR", tempfile.mkdtemp(prefix="bench-serving-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if database_url:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_serving")
            conn.execute("CREATE DATABASE bench_serving")
        os.environ["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/bench_serving"
    else:  # the scratch SQLite database, whatever servers the environment names
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
            os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from config.celery import app

    # Tasks after ingest (normalize, judge) would run inline and cost the same in both variants;
    # the embedded broker just queues them.
    app.conf.task_always_eager = False


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def bench_answers(model_ref: str, requests: int, max_tokens: int) -> dict[str, object]:
    from django.test import Client
    from django.test.utils import override_settings

    from apps.registry.models import BaseModel, Checkpoint
    from apps.serving.backends import BuiltinBackend
    from apps.sources.services import source_create

    if model_ref == "tiny":
        from trainer.testing import make_tiny_model

        model_id = make_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    else:
        model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    base = BaseModel.objects.create(name="bench-base", model_id=model_id)
    checkpoint = Checkpoint.objects.create(
        name="bench-base", kind="base", base_model=base, status="published"
    )
    _, secret, _ = source_create(name="bench-serving", allowed_origins=[])
    prompts = [f"Question {i}: what is {i} plus {i}?" for i in range(requests)]

    backend = BuiltinBackend()
    model = backend._model(checkpoint)  # loaded once, shared by both sides
    direct, gateway, first_chunk = [], [], []
    model.chat([{"role": "user", "content": "warm up"}], max_new_tokens=max_tokens, temperature=0.0)
    client = Client()
    with override_settings(ALLOWED_HOSTS=["*"], SERVING_UPSTREAM_URL="", VLLM_URL=""):
        # Interleaved, one prompt at a time: both sides see the same machine load.
        for prompt in prompts:
            messages = [{"role": "user", "content": prompt}]
            t = time.perf_counter()
            model.chat(messages, max_new_tokens=max_tokens, temperature=0.0)
            direct.append(time.perf_counter() - t)
            body = json.dumps(
                {"model": "bench-base", "messages": messages, "max_tokens": max_tokens}
            )
            t = time.perf_counter()
            response = client.post(
                "/v1/chat/completions",
                body,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {secret.raw}",
            )
            gateway.append(time.perf_counter() - t)
            assert response.status_code == 200, response.content
        for prompt in prompts:
            body = json.dumps(
                {
                    "model": "bench-base",
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": max_tokens,
                    "stream": True,
                }
            )
            t = time.perf_counter()
            response = client.post(
                "/v1/chat/completions",
                body,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {secret.raw}",
            )
            for chunk in response.streaming_content:
                if b'"content": "' in chunk and b'"content": ""' not in chunk:
                    first_chunk.append(time.perf_counter() - t)
                    break
            for _ in response.streaming_content:
                pass
    return {
        "model": model_id,
        "requests": requests,
        "max_tokens": max_tokens,
        "direct_median_ms": _median_ms(direct),
        "gateway_median_ms": _median_ms(gateway),
        "overhead_ms": _median_ms([g - d for g, d in zip(gateway, direct, strict=True)]),
        "stream_first_chunk_median_ms": _median_ms(first_chunk) if first_chunk else None,
    }


def bench_ingest(events: int) -> dict[str, object]:
    from apps.feedback.services.ingest import feedback_ingest
    from apps.registry.models import Checkpoint
    from apps.serving.models import ServedAnswer
    from apps.sources.models import Source

    source = Source.objects.get(name="bench-serving")
    checkpoint = Checkpoint.objects.get(name="bench-base")
    ids = [f"chatcmpl-bench{i:08d}" for i in range(events)]
    ServedAnswer.objects.bulk_create(
        [
            ServedAnswer(
                interaction_id=i,
                source=source,
                checkpoint=checkpoint,
                requested_model="bench-base",
                backend="builtin",
            )
            for i in ids
        ],
        batch_size=1000,
    )

    def items(prefix: str, with_ids: bool) -> list[dict[str, object]]:
        out = []
        for i in range(events):
            event = {
                "type": "rating",
                "id": f"{prefix}-{i}",
                "rater": f"r{i % 97}",
                "model": "m",
                "messages": [{"role": "user", "content": f"Prompt number {i}"}],
                "response": f"Answer number {i}",
                "rating": 1 if i % 3 else -1,
            }
            if with_ids:
                event["interaction_id"] = ids[i]
            out.append(event)
        return out

    timings = {}
    for label, with_ids in (("without_ids", False), ("with_ids", True)):
        batch = items(label, with_ids)
        t = time.perf_counter()
        for start in range(0, events, 500):
            feedback_ingest(source=source, items=batch[start : start + 500])
        timings[label] = time.perf_counter() - t
    return {
        "events": events,
        "without_ids_per_s": round(events / timings["without_ids"]),
        "with_ids_per_s": round(events / timings["with_ids"]),
        "slowdown_pct": round((timings["with_ids"] / timings["without_ids"] - 1) * 100, 1),
    }


def bench_assign_and_results(events: int) -> dict[str, object]:
    from apps.feedback.models import Event
    from apps.feedback.services.normalize import feedback_events_normalize
    from apps.registry.models import Checkpoint
    from apps.serving import selectors, services
    from apps.sources.models import Source

    base = Checkpoint.objects.get(name="bench-base")
    Checkpoint.objects.create(
        name="bench-b", kind="base", base_model=base.base_model, status="published"
    )
    experiment = services.experiment_start(
        experiment=services.experiment_create(
            name="bench",
            arms=[
                services.ArmSpec(checkpoint="bench-base", weight=9),
                services.ArmSpec(checkpoint="bench-b"),
            ],
        )
    )
    arms = selectors.experiment_arms(experiment)
    n = 100_000
    t = time.perf_counter()
    for i in range(n):
        selectors.assign_arm(experiment, f"user-{i}", arms)
    assign_per_s = n / (time.perf_counter() - t)

    from apps.feedback.services.ingest import feedback_ingest

    source = Source.objects.get(name="bench-serving")
    batch = []
    for i in range(events):
        batch.append(
            {
                "type": "rating",
                "id": f"res-{i}",
                "rater": f"u{i}",
                "checkpoint": "bench-b" if i % 2 else "bench-base",
                "messages": [{"role": "user", "content": f"q{i}"}],
                "response": f"a{i}",
                "rating": 1 if i % 5 else -1,
            }
        )
    for i in range(events // 4):
        batch.append(
            {
                "type": "preference",
                "id": f"pref-{i}",
                "rater": f"j{i}",
                "messages": [{"role": "user", "content": f"p{i}"}],
                "responses": [
                    {"content": "x", "checkpoint": "bench-base"},
                    {"content": "y", "checkpoint": "bench-b"},
                ],
                "choice": i % 2,
            }
        )
    for start in range(0, len(batch), 500):
        feedback_ingest(source=source, items=batch[start : start + 500])
    feedback_events_normalize(
        event_ids=list(Event.objects.filter(source=source).values_list("id", flat=True))
    )
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        results = selectors.experiment_results(experiment)
        samples.append(time.perf_counter() - t)
    return {
        "assign_per_s": round(assign_per_s),
        "results_events": events + events // 4,
        "results_median_ms": _median_ms(samples),
        "results_arms_n": [arm["thumbs"]["n"] for arm in results["arms"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _setup(args.database_url)
    out = {
        "answers": bench_answers(args.model, args.requests, args.max_tokens),
        "ingest": bench_ingest(args.events),
        "experiments": bench_assign_and_results(args.events),
        "database": "postgresql" if args.database_url else "sqlite",
    }
    if args.json:
        print(json.dumps(out))
        return
    a, i, e = out["answers"], out["ingest"], out["experiments"]
    print(f"serving bench on {out['database']}, model {a['model']}")
    print(f"{'measure':<52} {'reference':>14} {'sinkhole':>14}")
    print(
        f"{'answer, median ms (direct model vs gateway)':<52} {a['direct_median_ms']:>14} {a['gateway_median_ms']:>14}"
    )
    print(f"{'  gateway overhead, ms':<52} {'':>14} {a['overhead_ms']:>14}")
    print(
        f"{'  stream: first content chunk, median ms':<52} {'':>14} {a['stream_first_chunk_median_ms']!s:>14}"
    )
    print(
        f"{'ingest, events/s (without vs with interaction_id)':<52} {i['without_ids_per_s']:>14} {i['with_ids_per_s']:>14}"
    )
    print(f"{'arm assignments per second':<52} {'':>14} {e['assign_per_s']:>14}")
    print(
        f"{'experiment results over ' + str(e['results_events']) + ' events, median ms':<52} {'':>14} {e['results_median_ms']:>14}"
    )


if __name__ == "__main__":
    main()
