"""Which Celery workers are alive and what they do, asked over the broker (`inspect`, with a
short timeout: a deployment without workers answers nothing, quickly). Used by the commands that
must not wait for a worker that is not there, and by the /status/ page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Worker:
    """One worker that answered: its name, the queues it consumes, the tasks it runs now, and
    how many of each task it has run since it started."""

    name: str
    queues: list[str] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)
    ran: dict[str, int] = field(default_factory=dict)


def workers_alive(*, timeout: float = 1.0) -> list[Worker]:
    """The workers that answer within TIMEOUT seconds (Redis and the embedded file-system broker
    both carry the broadcast); none when the broker is down or when tasks run eagerly. A worker
    on `--pool solo` answers only between tasks."""
    from config.celery import app

    if app.conf.task_always_eager:
        return []
    try:
        inspector = app.control.inspect(timeout=timeout)
        queues = inspector.active_queues() or {}
        active = inspector.active() or {} if queues else {}
        stats = inspector.stats() or {} if queues else {}
    except Exception:  # noqa: BLE001 - a broker that cannot broadcast answers "nobody"
        return []
    return [
        Worker(
            name=name,
            queues=sorted(q.get("name", "") for q in consumed or []),
            active=[
                {"name": task.get("name"), "id": task.get("id"), "started": task.get("time_start")}
                for task in active.get(name) or []
            ],
            ran=dict(sorted(((stats.get(name) or {}).get("total") or {}).items())),
        )
        for name, consumed in sorted(queues.items())
    ]


def queue_listened(queue: str, *, timeout: float = 1.0) -> bool:
    """Whether some live worker consumes QUEUE."""
    return any(queue in worker.queues for worker in workers_alive(timeout=timeout))


def embedded_broker() -> bool:
    """Whether Celery runs on the embedded file-system broker (no broker server configured)."""
    from django.conf import settings

    return str(settings.CELERY_BROKER_URL).startswith("filesystem://")


def run_here(task_name: str) -> Any:
    """Run the Celery task TASK_NAME in this process (no broker, no worker) and return its
    result: what a command does when no worker would. Tasks are named, not imported, so a low
    app's command can run an upper app's sweep without importing it."""
    from config.celery import app

    if task_name not in app.tasks:
        app.loader.import_default_modules()  # the apps' tasks modules
    return app.tasks[task_name].apply(throw=True).get()
