"""Celery entry points of the judges app. `judges.gate` runs on the `training` queue (it loads
the checkpoints to answer and the reward model to judge, as training does)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="judges.gate", acks_late=True, soft_time_limit=3600, time_limit=3900)
def gate(gate_run_id: int) -> str:
    """Run one queued gate (a second delivery of a finished gate changes nothing)."""
    from apps.judges.models import GateRun
    from apps.judges.services import gate_run_execute

    run = GateRun.objects.get(pk=gate_run_id)
    try:
        return gate_run_execute(gate_run=run).status
    except Exception:  # noqa: BLE001 - recorded on the run (status error) by the service
        return GateRun.Status.ERROR
