"""Prometheus metrics. Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to a
folder (`make run` and the compose file do) so that /metrics adds up every worker."""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

EVENTS = Counter(
    "sinkhole_events_total",
    "Feedback events answered by the ingest API, by source and status.",
    ["source", "status"],
)
INGEST_SECONDS = Histogram(
    "sinkhole_ingest_seconds",
    "Time to validate and store one ingest request (excluding HTTP).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
RATELIMIT_FALLBACK = Counter(
    "sinkhole_ratelimit_fallback_total",
    "Rate-limit checks counted in a web process's own memory because Redis did not answer.",
)
BATCHES_DEFERRED = Counter(
    "sinkhole_ingest_batches_deferred_total",
    "Batches answered 429 because the pipeline was too far behind (admission control).",
)
QUEUE_DEPTH = Gauge(
    "sinkhole_queue_depth",
    "Messages waiting in each Celery queue.",
    ["queue"],
    # Each gunicorn worker sets it when it serves /metrics: report the latest reading, not
    # the largest (an old scrape by another worker would otherwise stick).
    multiprocess_mode="livemostrecent",
)


def record_ingest(source: str, results: Iterable[Any], seconds: float) -> None:
    for status, count in Tally(result.status for result in results).items():
        EVENTS.labels(source=source, status=status).inc(count)
    INGEST_SECONDS.observe(seconds)


def render() -> bytes:
    from apps.core.health import queue_depths

    for queue, depth in queue_depths().items():
        QUEUE_DEPTH.labels(queue=queue).set(depth)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
