"""Writes of the training app: create a run (validated before anything is queued), execute it
(the Celery task's body), cancel it, and reap runs whose worker died.

The trainer (plain Python, `trainer/`) does the training; this module adapts its progress
callback into throttled database writes and its `should_stop` into the run's cancel flag."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.ids import parse_id
from apps.datasets.models import DatasetVersion
from apps.registry.models import BaseModel
from apps.registry.selectors import base_model_find
from apps.registry.services import checkpoint_register
from apps.training.models import TrainingRun

logger = logging.getLogger(__name__)

# Spec fields Sinkhole sets itself; a launch cannot override them.
MANAGED_FIELDS = {
    "method": "method",
    "base_model": "base_model",
    "dataset": "dataset_version",
    "output_dir": "output_dir",
}
WRITE_EVERY_S = 1.0  # progress writes per run: at most one a second
CANCEL_CHECK_EVERY_S = 1.0
LOG_TAIL_LINES = 60
LOSS_CURVE_MAX_POINTS = 2000
TERMINAL = {"succeeded", "failed", "cancelled"}


def heartbeat_timeout_s() -> int:
    return settings.TRAINING_HEARTBEAT_TIMEOUT


def max_attempts() -> int:
    return settings.TRAINING_MAX_ATTEMPTS


def run_output_dir(run_id: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "runs" / str(run_id)


def _invalid(fields: dict[str, str]) -> ApplicationError:
    return ApplicationError(
        "The training run is invalid; see fields.", fields={k: [v] for k, v in fields.items()}
    )


# -- create ----------------------------------------------------------------------------------


def _dataset_version(ref: DatasetVersion | int | str) -> DatasetVersion:
    if isinstance(ref, DatasetVersion):
        return ref
    pk = parse_id(str(ref).strip().lstrip("v"))
    version = (
        DatasetVersion.objects.select_related("recipe").filter(pk=pk).first()
        if pk is not None
        else None
    )
    if version is None:
        raise _invalid({"dataset_version": f"there is no dataset version {ref!r}"})
    return version


def _base_model(ref: BaseModel | str | None) -> BaseModel:
    if isinstance(ref, BaseModel):
        return ref
    row = base_model_find(ref)
    if row is None:
        known = ", ".join(BaseModel.objects.values_list("name", flat=True)) or "none"
        if ref:
            raise _invalid({"base_model": f"unknown base model {ref!r}; known: {known}"})
        raise _invalid({"base_model": "no base model given and none is the default"})
    return row


def _field_for(spec_path: str) -> str:
    """The launch field a trainer spec error belongs to (dataset file problems are the version's)."""
    head = spec_path.split(".")[0]
    if head in MANAGED_FIELDS:
        return MANAGED_FIELDS[head]
    return f"spec.{spec_path}"


# A reward model (rm) learns from the same pairs as DPO.
_DATASET_KIND = {"rm": "dpo"}


def build_spec(
    *,
    version: DatasetVersion,
    base_model: BaseModel,
    method: str,
    overrides: dict[str, Any],
    output_dir: Path,
) -> dict[str, Any]:
    """The trainer job spec for a run, as plain data (validated by the caller)."""
    train = version.file_path("train", "jsonl")
    test = version.file_path("test", "jsonl")
    has_test = bool(test and test.is_file() and test.stat().st_size > 0)
    spec: dict[str, Any] = {
        **overrides,
        "method": method,
        "base_model": base_model.model_id,
        "dataset": {
            "train": [str(train)] if train else [],
            "eval": [str(test)] if has_test else [],
        },
        "output_dir": str(output_dir),
    }
    if method == "kto":
        # The recipe's KTO weights (blank: class balance, which the trainer's defaults stand for).
        snapshot = version.recipe_snapshot or {}
        for key, field in (
            ("kto_desirable_weight", "desirable_weight"),
            ("kto_undesirable_weight", "undesirable_weight"),
        ):
            if snapshot.get(key) is not None and field not in overrides:
                spec[field] = snapshot[key]
    return spec


def training_run_validate(
    *,
    dataset_version: DatasetVersion | int | str,
    method: str,
    base_model: BaseModel | str | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[DatasetVersion, BaseModel, dict[str, Any]]:
    """Check everything a run needs before it is queued; raise one ApplicationError naming every
    bad field (dataset_version, method, base_model, spec.<path>) with one sentence each."""
    from trainer import JobSpec, SpecError  # plain Python; no torch at import

    overrides = dict(overrides or {})
    errors: dict[str, str] = {}
    for key in [k for k in overrides if k in MANAGED_FIELDS]:
        errors[f"spec.{key}"] = (
            f"is set by Sinkhole from the run's {MANAGED_FIELDS[key].replace('_', ' ')}"
        )
        del overrides[key]
    if method not in TrainingRun.Method.values:
        errors["method"] = f"must be one of sft, dpo, kto, rm, not {method!r}"
    version = base = None
    try:
        version = _dataset_version(dataset_version)
    except ApplicationError as exc:
        errors.update({k: v[0] for k, v in exc.fields.items()})
    try:
        base = _base_model(base_model)
    except ApplicationError as exc:
        errors.update({k: v[0] for k, v in exc.fields.items()})
    if version is not None:
        if version.status != DatasetVersion.Status.SUCCEEDED:
            errors["dataset_version"] = (
                f"v{version.pk} is {version.status}; only a built version can train"
            )
        elif "method" not in errors and version.kind != _DATASET_KIND.get(method, method):
            needed = _DATASET_KIND.get(method, method)
            errors["method"] = (
                f"a {method} run needs a {needed} dataset; v{version.pk} is a {version.kind} dataset"
            )
    spec: dict[str, Any] = {}
    if version is not None and base is not None and method in TrainingRun.Method.values:
        spec = build_spec(
            version=version,
            base_model=base,
            method=method,
            overrides=overrides,
            output_dir=run_output_dir(0),
        )
        data_ok = "dataset_version" not in errors and "method" not in errors
        try:
            # Stored with every default filled in (the learning rate, max_length...), so the
            # run's page shows what it used; the worker adds what depends on its machine.
            spec = JobSpec.from_dict(spec).validate(check_files=data_ok).to_dict()
        except SpecError as exc:
            for path, message in exc.errors.items():
                errors.setdefault(_field_for(path), message)
    if errors:
        raise _invalid(errors)
    return version, base, spec


def training_run_create(
    *,
    dataset_version: DatasetVersion | int | str,
    method: str,
    base_model: BaseModel | str | None = None,
    overrides: dict[str, Any] | None = None,
    user: Any = None,
    enqueue: bool = True,
) -> TrainingRun:
    """Validate, record the run as `queued`, and (after the commit) send it to the `training`
    queue. ENQUEUE=False leaves it for the caller to execute in-process (manage.py train)."""
    version, base, spec = training_run_validate(
        dataset_version=dataset_version, method=method, base_model=base_model, overrides=overrides
    )
    with transaction.atomic():
        run = TrainingRun(
            dataset_version=version,
            base_model=base,
            method=method,
            spec=spec,
            created_by=user if getattr(user, "pk", None) else None,
        )
        run.full_clean(exclude=["output_dir"])
        run.save()
        output_dir = run_output_dir(run.pk)
        run.spec = {**spec, "output_dir": str(output_dir)}
        run.output_dir = str(output_dir)
        run.save(update_fields=["spec", "output_dir"])
        if enqueue:
            transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    from apps.training.tasks import run as run_task

    result = run_task.delay(run_id)
    TrainingRun.objects.filter(pk=run_id, task_id="").update(task_id=result.id or "")


# -- cancel ----------------------------------------------------------------------------------


def training_run_cancel(*, run: TrainingRun, user: Any = None) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop (its worker sees the
    flag within about a second and stops at the next step). Cancelling twice is harmless."""
    with transaction.atomic():
        row = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if row.status in ("succeeded", "failed"):
            raise ApplicationError(
                f"Run {row.pk} already {row.status}.", code="finished", status_code=409
            )
        if row.status == TrainingRun.Status.QUEUED:
            row.status = TrainingRun.Status.CANCELLED
            row.finished_at = timezone.now()
            row.cancel_requested = True
            row.save(update_fields=["status", "finished_at", "cancel_requested"])
        elif row.status == TrainingRun.Status.RUNNING and not row.cancel_requested:
            row.cancel_requested = True
            row.save(update_fields=["cancel_requested"])
    return row


# -- execute ---------------------------------------------------------------------------------


def worker_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(run_id: int, task_id: str) -> TrainingRun | None:
    """queued → running, under a row lock, so that a run is executed once however many messages
    (redelivery after a lost worker, the reaper's requeue, an in-process --wait) name it."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None
        if run.status == TrainingRun.Status.RUNNING and _owner_dead(run, timezone.now()):
            # The message came back because the process running it died (an OOM kill of a
            # worker child, acks_late): take the run over instead of leaving it `running`.
            run.status = TrainingRun.Status.QUEUED
        if run.status != TrainingRun.Status.QUEUED:
            return None
        now = timezone.now()
        if run.cancel_requested:
            run.status, run.finished_at = TrainingRun.Status.CANCELLED, now
            run.save(update_fields=["status", "finished_at"])
            return None
        run.status = TrainingRun.Status.RUNNING
        run.worker_host = worker_host()[:200]
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.attempts += 1
        run.error = ""
        if task_id:
            run.task_id = task_id[:100]
        run.save(
            update_fields=[
                "status",
                "worker_host",
                "started_at",
                "heartbeat_at",
                "attempts",
                "error",
                "task_id",
            ]
        )
        return run


class _Reporter:
    """The trainer's callbacks, turned into at most one database write a second."""

    def __init__(self, run: TrainingRun, stop_event: threading.Event | None = None) -> None:
        self.run_id = run.pk
        self.curve: list[dict[str, Any]] = list(run.loss_curve or [])
        self.log: deque[str] = deque(
            (run.log_tail or "").splitlines()[-LOG_TAIL_LINES:], maxlen=LOG_TAIL_LINES
        )
        self.step, self.total_steps, self.progress = run.step, run.total_steps, run.progress
        self.last_write = 0.0
        self.last_cancel_check = 0.0
        self.cancel = False
        self.stop_event = stop_event
        self.live: dict[str, Any] = {}
        self.lock = threading.Lock()
        if run.attempts > 1:
            self.log.append(f"attempt {run.attempts} on {worker_host()}: resuming")

    def on_progress(self, progress: Any) -> None:
        step = int(getattr(progress, "step", 0) or 0)
        total = int(getattr(progress, "total_steps", 0) or 0)
        loss = getattr(progress, "loss", None)
        with self.lock:
            if step or getattr(progress, "phase", "") == "training":  # "loading" says step 0
                self.step = step
            self.total_steps = total or self.total_steps
            step = self.step
            if self.total_steps:
                self.progress = min(1.0, step / self.total_steps)
            point = _curve_point(progress, step, loss)
            if point is not None:
                # A resumed run starts again from its last checkpoint: points past it are redone.
                self.curve = [p for p in self.curve if p["step"] <= step]
                if self.curve and self.curve[-1]["step"] == step:
                    self.curve[-1] = {**self.curve[-1], **point}  # eval metrics of a logged step
                else:
                    self.curve.append(point)
                if len(self.curve) > LOSS_CURVE_MAX_POINTS:
                    self.curve = self.curve[:1] + self.curve[1:-1][::2] + self.curve[-1:]
            for line in _log_lines(progress):
                self.log.append(line)
            phase = str(getattr(progress, "phase", "") or "")
            if phase:
                live = {
                    "phase": phase,
                    "elapsed_seconds": getattr(progress, "elapsed_seconds", None),
                    "eta_seconds": getattr(progress, "eta_seconds", None),
                }
                if phase in ("reference", "evaluating"):
                    live["eval_done"] = int(getattr(progress, "eval_done", 0) or 0)
                    live["eval_total"] = int(getattr(progress, "eval_total", 0) or 0)
                self.live = live
        self.flush(force=False)

    def flush(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < WRITE_EVERY_S:
            return
        self.last_write = now
        with self.lock:
            fields = {
                "step": self.step,
                "total_steps": self.total_steps,
                "progress": self.progress,
                "loss_curve": list(self.curve),
                "log_tail": "\n".join(self.log)[-8000:],
                "heartbeat_at": timezone.now(),
            }
            if self.live:
                # What the run is doing now (phase, its progress and ETA); the final metrics
                # replace it when the run ends.
                fields["metrics"] = {"live": dict(self.live)}
        TrainingRun.objects.filter(pk=self.run_id).update(**fields)

    def should_stop(self) -> bool:
        if self.stop_event is not None and self.stop_event.is_set():
            return True  # SIGTERM/SIGINT to `train --here`: checkpoint and stop now
        now = time.monotonic()
        if now - self.last_cancel_check >= CANCEL_CHECK_EVERY_S:
            self.last_cancel_check = now
            self.cancel = bool(
                TrainingRun.objects.filter(pk=self.run_id)
                .values_list("cancel_requested", flat=True)
                .first()
            )
        return self.cancel


def _curve_point(progress: Any, step: int, loss: Any) -> dict[str, Any] | None:
    metrics = getattr(progress, "eval", None) or {}
    if loss is None and not metrics:
        return None
    point: dict[str, Any] = {"step": step}
    if loss is not None:
        point["loss"] = float(loss)
    for key, value in dict(metrics).items():
        if isinstance(value, int | float):
            point[str(key)] = float(value)
    epoch = getattr(progress, "epoch", None)
    if epoch is not None:
        point["epoch"] = float(epoch)
    lr = getattr(progress, "learning_rate", None)
    if lr is not None:
        point["learning_rate"] = float(lr)
    tps = getattr(progress, "tokens_per_second", None)
    if tps:
        point["tokens_per_second"] = float(tps)
    return point


def _log_lines(progress: Any) -> list[str]:
    lines = []
    for attr in ("log", "log_line", "message"):
        value = getattr(progress, attr, None)
        if value:
            lines.extend(str(value).splitlines())
            break
    return lines


class _Heartbeat(threading.Thread):
    """Beats while the trainer loads a model or works through a long step, so that only a dead
    worker (whose threads die with it) goes quiet."""

    def __init__(self, run_id: int, every: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-run-{run_id}")
        self.run_id, self.every = run_id, every
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                TrainingRun.objects.filter(pk=self.run_id, status="running").update(
                    heartbeat_at=timezone.now()
                )
        except Exception:  # noqa: BLE001 - a missed beat is the reaper's business, not a crash
            logger.warning("training heartbeat failed", exc_info=True, extra={"run": self.run_id})
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def lineage_for(run: TrainingRun) -> dict[str, Any]:
    version = run.dataset_version
    return {
        "sinkhole_run": run.pk,
        "dataset_version": version.pk,
        "dataset_content_hash": version.content_hash,
        "recipe": version.recipe.name,
        "dataset_kind": version.kind,
        "base_model_name": run.base_model.name,
    }


def training_run_execute(
    *,
    run_id: int,
    task_id: str = "",
    run_job: Callable[..., Any] | None = None,
    stop_event: threading.Event | None = None,
) -> TrainingRun:
    """Run a queued run to the end in this process: claim it, train (resuming from the output
    folder's last checkpoint when an earlier attempt left one), register the checkpoint. A run
    that is not queued (already taken, cancelled, finished) is left alone."""
    run = _claim(run_id, task_id)
    if run is None:
        return TrainingRun.objects.get(pk=run_id)
    run = TrainingRun.objects.select_related("dataset_version__recipe", "base_model").get(pk=run_id)
    reporter = _Reporter(run, stop_event)
    beat = _Heartbeat(run.pk, every=max(1.0, min(15.0, heartbeat_timeout_s() / 4)))
    beat.start()
    try:
        from trainer import JobSpec

        if run_job is None:
            from trainer import run_job
        spec = JobSpec.from_dict(run.spec)
        result = run_job(
            spec,
            on_progress=reporter.on_progress,
            should_stop=reporter.should_stop,
            lineage=lineage_for(run),
        )
    except BaseException as exc:  # noqa: BLE001 - every failure (time limits too) is the run's
        beat.stop()
        reporter.flush(force=True)
        _finish_failed(run.pk, exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: let the process go
        return TrainingRun.objects.get(pk=run_id)
    beat.stop()
    reporter.flush(force=True)
    stopped_by = "a stop signal" if stop_event is not None and stop_event.is_set() else ""
    return _finish(run.pk, result, stopped_by=stopped_by)


def _fresh_connection() -> None:
    """After hours of training the database may have dropped this process's connection; drop it
    too (Django opens a new one) unless a transaction is open (tests, a caller's atomic block)."""
    if not connection.in_atomic_block:
        close_old_connections()


def _finish_failed(run_id: int, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}"
    detail = "".join(traceback.format_exception(exc)[-6:])
    logger.warning("training run failed", extra={"run": run_id, "error": message})
    _fresh_connection()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        run.status = TrainingRun.Status.FAILED
        run.error = f"{message}\n\n{detail}"[:20000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])


def _finish(run_id: int, result: Any, *, stopped_by: str = "") -> TrainingRun:
    metrics = dict(getattr(result, "metrics", None) or {})
    _fresh_connection()
    with transaction.atomic():
        run = (
            TrainingRun.objects.select_for_update()
            .select_related("base_model", "dataset_version")
            .get(pk=run_id)
        )
        run.finished_at = timezone.now()
        run.metrics = metrics
        if getattr(result, "spec", None):
            run.spec = dict(result.spec)  # as run: micro-batch and checkpointing included
        curve = getattr(result, "loss_curve", None)
        if curve and not run.loss_curve:
            run.loss_curve = list(curve)
        resumed = getattr(result, "resumed_from_step", None)
        if resumed:
            run.log_tail = f"{run.log_tail}\nresumed from step {resumed}".strip()[-8000:]
        if getattr(result, "cancelled", False):
            run.status = TrainingRun.Status.CANCELLED
            if stopped_by:
                checkpoint = getattr(result, "checkpoint_dir", None)
                run.error = f"stopped by {stopped_by} at step {getattr(result, 'steps', 0)}" + (
                    f"; checkpoint {Path(checkpoint).name} saved" if checkpoint else ""
                )
        else:
            try:
                checkpoint_register(run=run, adapter_dir=Path(result.adapter_dir), metrics=metrics)
            except ApplicationError as exc:
                run.status, run.error = TrainingRun.Status.FAILED, exc.message
            else:
                run.status = TrainingRun.Status.SUCCEEDED
                run.progress = 1.0
        run.save(
            update_fields=[
                "finished_at",
                "metrics",
                "loss_curve",
                "status",
                "error",
                "progress",
                "log_tail",
                "spec",
            ]
        )
    return run


# -- evaluate on another eval set ------------------------------------------------------------


def training_run_evaluate(
    *,
    run: TrainingRun,
    eval_file: str | Path,
    name: str = "",
    on_progress: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Score a finished run's adapter on another held-out file (an uploaded eval set, in the
    method's row format), exactly as its own evaluation scored the version's test split (base →
    trained, with intervals). Kept under `metrics.eval_sets[name]` (name: the file's stem unless
    given; the same name again replaces it) with the file's path and sha256, and shown on the
    run page beside the test split's. Runs in this process (minutes on a CPU)."""
    import tempfile

    from trainer import JobSpec, SpecError, evaluate_adapter
    from trainer.models import sha256_file

    if run.status != TrainingRun.Status.SUCCEEDED:
        raise _invalid({"run": f"is {run.status}: only a finished run's adapter can be evaluated"})
    path = Path(eval_file).expanduser()
    if not path.is_file():
        raise _invalid({"eval_file": f"{path} is not a file"})
    label = (name or path.stem).strip()[:80]
    if not label:
        raise _invalid({"name": "must not be empty"})
    with tempfile.TemporaryDirectory(prefix="sinkhole-eval-") as scratch:
        data = {
            **run.spec,
            "dataset": {"train": run.spec["dataset"]["train"], "eval": [str(path.resolve())]},
            "output_dir": scratch,
            "num_samples": 0,
        }
        try:
            metrics = evaluate_adapter(
                JobSpec.from_dict(data), Path(run.output_dir) / "adapter", on_progress=on_progress
            )
        except SpecError as exc:
            raise _invalid(
                {
                    ("eval_file" if key.startswith("dataset") else key): message
                    for key, message in exc.errors.items()
                }
            ) from exc
    entry = {
        "file": str(path.resolve()),
        "sha256": sha256_file(path),
        "evaluated_at": timezone.now().isoformat(),
        "metrics": metrics,
    }
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        current = dict(locked.metrics or {})
        current["eval_sets"] = {**(current.get("eval_sets") or {}), label: entry}
        locked.metrics = current
        locked.save(update_fields=["metrics"])
    run.metrics = current
    return {"name": label, **entry}


# -- reap ------------------------------------------------------------------------------------


def worker_alive(worker: str) -> bool | None:
    """Whether the process named by a run's worker_host ("host:pid") still lives: True or False
    for a process on this host, None for another host's (only its heartbeat can tell)."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _owner_dead(run: TrainingRun, now: Any) -> bool:
    """A running run's process is gone: dead on this host, or silent past the heartbeat timeout."""
    if worker_alive(run.worker_host) is False:
        return True
    cutoff = now - timedelta(seconds=heartbeat_timeout_s())
    return run.heartbeat_at is not None and run.heartbeat_at < cutoff


def training_runs_reap(*, now: Any = None) -> dict[str, int]:
    """Runs marked `running` whose heartbeat went quiet (the worker died or was killed) are
    requeued, to resume from their last checkpoint, while attempts remain; otherwise failed.
    A run whose cancel was requested is cancelled instead."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=heartbeat_timeout_s())
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    running = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING)
    stale = set(running.filter(heartbeat_at__lt=cutoff).values_list("pk", flat=True))
    # A process on this host that is gone needs no timeout to be known dead.
    stale |= {
        pk
        for pk, worker in running.values_list("pk", "worker_host")
        if worker_alive(worker) is False
    }
    for run_id in sorted(stale):
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run_id)
            if run.status != TrainingRun.Status.RUNNING or not _owner_dead(run, now):
                continue  # it beat or finished meanwhile
            quiet = (
                f"its process {run.worker_host} is gone"
                if worker_alive(run.worker_host) is False
                else f"no heartbeat from {run.worker_host or 'its worker'} since "
                f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S}"
            )
            if run.cancel_requested:
                run.status, run.finished_at = TrainingRun.Status.CANCELLED, now
                counts["cancelled"] += 1
            elif run.attempts < max_attempts():
                run.status = TrainingRun.Status.QUEUED
                run.error = f"worker lost ({quiet}); requeued for attempt {run.attempts + 1} of {max_attempts()}"
                run.task_id = ""
                counts["requeued"] += 1
                transaction.on_commit(lambda run_id=run.pk: _enqueue(run_id))
            else:
                run.status, run.finished_at = TrainingRun.Status.FAILED, now
                run.error = f"worker lost ({quiet}) on attempt {run.attempts} of {max_attempts()}; giving up"
                counts["failed"] += 1
            run.save(update_fields=["status", "finished_at", "error", "task_id"])
            logger.warning("reaped a training run", extra={"run": run.pk, "status": run.status})
    return counts
