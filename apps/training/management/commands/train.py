"""manage.py train --dataset VERSION --method sft|dpo|kto|rm [--base MODEL] [--max-steps N]
                   [--lr RATE] [--set KEY=VALUE ...] [--wait] [--here] [--json]

Launches a training run (validated first: a wrong dataset kind, an unknown base model or an
impossible setting is one clear error each). Without --wait it queues the run on the `training`
queue and prints its id. With --wait it waits for the end: when a worker consumes the `training`
queue the run goes there and this command follows it; when none answers (or with --here) the run
executes in this process instead, so that `train --wait` works on a laptop with no worker
running. With --wait --json it prints one JSON object: run, status, checkpoint, adapter_path,
metrics. --cancel RUN stops a run (a queued one at once, a running one within seconds, at
its last checkpoint). --evaluate RUN --eval-file FILE [--eval-name NAME] scores a finished
run's adapter on another held-out file (an uploaded eval set) as its own evaluation scored the
test split, and keeps the result on the run (its page shows it). SIGTERM or Ctrl-C to a run
training here saves a checkpoint and marks the run cancelled; a run followed with --wait whose worker died is reaped and said so."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.training.models import TrainingRun
from apps.training.selectors import run_checkpoint, training_run_get
from apps.training.services import (
    TERMINAL,
    training_run_cancel,
    training_run_create,
    training_run_evaluate,
    training_run_execute,
    training_runs_reap,
    worker_alive,
)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(options: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for item in options["set"] or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--set {item!r}: use KEY=VALUE, e.g. --set lora.r=8")
        *parents, leaf = key.strip().split(".")
        target = spec
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = _value(value)
    if options["max_steps"] is not None:
        spec["max_steps"] = options["max_steps"]
    if options["lr"] is not None:
        spec["learning_rate"] = options["lr"]
    return spec


def _command_error(exc: ApplicationError) -> CommandError:
    """One line: the message, then each bad field with its sentences."""
    details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
    return CommandError(f"{exc.message} {details}".strip())


def training_worker_listening(timeout: float = 1.5) -> bool:
    """Whether some worker consumes the `training` queue (asked over the broker)."""
    from config.celery import app

    if app.conf.task_always_eager:
        return False
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001 - a broker that cannot broadcast answers "nobody"
        return False
    return any(q.get("name") == "training" for queues in replies.values() for q in queues or [])


class Command(BaseCommand):
    help = "Launch a training run on a dataset version (optionally waiting for it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", help="Dataset version id (e.g. 12 or v12).")
        parser.add_argument("--method", choices=["sft", "dpo", "kto", "rm"])
        parser.add_argument(
            "--cancel",
            metavar="RUN",
            help="Cancel this run (queued: at once; running: in seconds).",
        )
        parser.add_argument(
            "--base", default="", help="Base model name or id (default: the default one)."
        )
        parser.add_argument("--max-steps", type=int, default=None, dest="max_steps")
        parser.add_argument("--lr", type=float, default=None, help="Learning rate.")
        parser.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="Any trainer spec field, e.g. --set lora.r=8 --set beta=0.2.",
        )
        parser.add_argument("--wait", action="store_true", help="Wait until the run ends.")
        parser.add_argument(
            "--here", action="store_true", help="Run in this process (implies --wait)."
        )
        parser.add_argument(
            "--evaluate",
            metavar="RUN",
            help="Score this finished run's adapter on --eval-file (kept on the run).",
        )
        parser.add_argument(
            "--eval-file", dest="eval_file", help="Held-out rows in the run's method's format."
        )
        parser.add_argument(
            "--eval-name", dest="eval_name", help="The eval set's name (default: the file's stem)."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the result as one JSON object."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["cancel"]:
            self._cancel(options["cancel"], as_json=options["json"])
            return
        if options["evaluate"]:
            self._evaluate(options)
            return
        missing = [f"--{name}" for name in ("dataset", "method") if not options[name]]
        if missing:
            raise CommandError(f"{' and '.join(missing)} required (or --cancel RUN)")
        wait = options["wait"] or options["here"]
        here = options["here"] or (wait and not training_worker_listening())
        try:
            run = training_run_create(
                dataset_version=options["dataset"],
                method=options["method"],
                base_model=options["base"] or None,
                overrides=_overrides(options),
                enqueue=not here,
            )
        except ApplicationError as exc:
            raise _command_error(exc) from exc
        if not wait:
            self._print(run, options, queued=True)
            return
        if here:
            if not options["json"]:
                self.stderr.write(f"run {run.pk}: no training worker is listening; training here")
            run = self._execute_here(run.pk)
        else:
            run = self._follow(run, quiet=options["json"])
        self._print(training_run_get(run.pk), options, queued=False)
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}")

    def _evaluate(self, options: dict[str, Any]) -> None:
        from trainer.preference import summary_rows

        if not options["eval_file"]:
            raise CommandError("--evaluate RUN needs --eval-file FILE")
        try:
            result = training_run_evaluate(
                run=training_run_get(options["evaluate"]),
                eval_file=options["eval_file"],
                name=options["eval_name"] or "",
            )
        except ApplicationError as exc:
            raise _command_error(exc) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result, default=str))
            return
        metrics = result["metrics"]
        self.stdout.write(f"{result['name']}: {metrics.get('eval_rows', 0):.0f} held-out rows")
        for row in summary_rows(metrics):
            interval = (
                f" [{row['low']:.3f}, {row['high']:.3f}]" if row.get("low") is not None else ""
            )
            self.stdout.write(
                f"  {row['label']}: {row['base']:.3f} -> {row['trained']:.3f}{interval}"
            )
        for key in ("eval_loss", "eval_perplexity"):
            if key in metrics:
                self.stdout.write(f"  {key}: {metrics[key]:g}")

    def _cancel(self, ref: str, *, as_json: bool) -> None:
        try:
            run = training_run_cancel(run=training_run_get(ref))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if as_json:
            self.stdout.write(json.dumps({"run": run.pk, "status": run.status}))
        elif run.status == TrainingRun.Status.CANCELLED:
            self.stdout.write(f"run {run.pk} cancelled")
        else:
            self.stdout.write(f"run {run.pk}: cancel requested; it stops within seconds")

    def _execute_here(self, run_id: int) -> TrainingRun:
        """Train in this process; SIGTERM or SIGINT stops it at a checkpoint (the run is marked
        cancelled and a rerun of its spec resumes there) instead of leaving it `running`."""
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            self.stderr.write(f"run {run_id}: {signal.Signals(signum).name}; saving a checkpoint")
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return training_run_execute(run_id=run_id, stop_event=stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _follow(self, run: TrainingRun, *, quiet: bool) -> TrainingRun:
        """Poll the run once a second until it ends, with a progress bar on stderr (steps, the
        latest loss, the status) unless --json asked for quiet."""
        from tqdm import tqdm

        with tqdm(desc=f"run {run.pk}", unit="step", file=self.stderr._out, disable=quiet) as bar:
            while True:
                run.refresh_from_db()
                if run.total_steps and bar.total != run.total_steps:
                    bar.total = run.total_steps
                bar.n = run.step
                loss = run.loss_curve[-1].get("loss") if run.loss_curve else None
                bar.set_postfix_str(
                    run.status + (f", loss {loss:.4f}" if isinstance(loss, float) else ""),
                    refresh=True,
                )
                if run.status in TERMINAL:
                    return run
                if run.status == TrainingRun.Status.RUNNING and self._worker_dead(run):
                    worker = run.worker_host
                    training_runs_reap()
                    run.refresh_from_db()
                    self.stderr.write(
                        f"run {run.pk}: its worker {worker} died; the run is now {run.status}"
                        + (f" ({run.error})" if run.error else "")
                    )
                    if run.status in TERMINAL:
                        return run
                time.sleep(1.0)

    @staticmethod
    def _worker_dead(run: TrainingRun) -> bool:
        from datetime import timedelta

        from django.utils import timezone

        from apps.training.services import heartbeat_timeout_s

        if worker_alive(run.worker_host) is False:
            return True
        quiet_since = timezone.now() - timedelta(seconds=heartbeat_timeout_s())
        return run.heartbeat_at is not None and run.heartbeat_at < quiet_since

    def _print(self, run: TrainingRun, options: dict[str, Any], *, queued: bool) -> None:
        checkpoint = run_checkpoint(run)
        adapter_path = checkpoint.local_path if checkpoint else None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "run": run.pk,
                        "status": run.status,
                        "checkpoint": checkpoint.name if checkpoint else None,
                        "adapter_path": adapter_path,
                        "metrics": run.metrics,
                        **({"error": run.error} if run.error else {}),
                    }
                )
            )
        elif queued:
            self.stdout.write(
                f"run {run.pk} queued on the training queue ({settings.ARTIFACT_ROOT}/runs/{run.pk})"
            )
        else:
            self.stdout.write(
                f"run {run.pk} {run.status}"
                + (f": checkpoint {checkpoint.name} at {adapter_path}" if checkpoint else "")
            )
            if run.error:
                self.stdout.write(run.error.splitlines()[0])
