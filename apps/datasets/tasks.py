"""Celery entry points of the datasets app, on the `datasets` queue."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="datasets.build_version",
    acks_late=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
)
def build_version(version_id: int) -> str:
    """Build a queued dataset version (idempotent: a built version is left as it is)."""
    from apps.datasets.services import dataset_version_build

    return dataset_version_build(version_id=version_id).status
