"""manage.py requalify [--since DATE] [--filter NAME ...] [--wait] [--chunk N]
manage.py requalify --resume JOB | --cancel JOB | --status
manage.py requalify --missing

Re-judges history with today's filters as a resumable background job on the `quality` queue
(`--wait` runs it here, with a progress bar). `--filter` re-runs only the named filters and keeps
the other filters' results; the job saves its cursor after every chunk, so `--resume` continues
where a stopped or failed job left off. Curators' verdicts are never replaced. `--missing` judges
only the events that have no verdict at all, here and now (the workers' reconciler does the same
on its own every few minutes: this is for a look without a worker)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.quality.models import RequalifyJob
from apps.quality.selectors import requalify_jobs
from apps.quality.services import requalify_job_cancel, requalify_job_create, requalify_job_run


def _when(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(
                f"--since {value!r}: give a date (2026-01-31) or an ISO 8601 date-time"
            )
        parsed = datetime.combine(day, time.min)
    return (
        parsed
        if timezone.is_aware(parsed)
        else timezone.make_aware(parsed, timezone.get_current_timezone())
    )


class Command(BaseCommand):
    help = "Re-judge history with today's quality filters (a resumable background job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", help="Only events received from this date (or date-time) on."
        )
        parser.add_argument(
            "--filter",
            action="append",
            dest="filters",
            metavar="NAME",
            help="Re-run only this filter (repeatable); the others' results are kept.",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Run here, in the foreground, with progress."
        )
        parser.add_argument(
            "--chunk",
            type=int,
            default=2000,
            help="Events per chunk (progress is saved after each).",
        )
        parser.add_argument(
            "--resume", type=int, metavar="JOB", help="Continue a job from its cursor."
        )
        parser.add_argument(
            "--cancel", type=int, metavar="JOB", help="Stop a job after its current chunk."
        )
        parser.add_argument("--status", action="store_true", help="List the recent jobs.")
        parser.add_argument(
            "--missing",
            action="store_true",
            help="Judge only the events without a verdict, here (no job, no worker needed).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["missing"]:
            if options["since"] or options["filters"] or options["resume"] or options["cancel"]:
                raise CommandError("--missing judges every event without a verdict: use it alone")
            self._missing(options["chunk"])
            return
        if options["status"]:
            for job in requalify_jobs()[:20]:
                self.stdout.write(self._line(job))
            return
        if options["cancel"] is not None:
            job = self._get(options["cancel"])
            self.stdout.write(self._line(requalify_job_cancel(job_id=job.pk)))
            return
        if options["resume"] is not None:
            job = self._get(options["resume"])
            if job.status == RequalifyJob.Status.DONE:
                raise CommandError(f"job {job.pk} is done")
            if job.status == RequalifyJob.Status.CANCELLED:
                job.status = RequalifyJob.Status.QUEUED
                job.save(update_fields=["status"])
        else:
            try:
                job = requalify_job_create(
                    since=_when(options["since"]) if options["since"] else None,
                    filter_names=options["filters"],
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        if options["wait"]:
            self._run_here(job, options["chunk"])
            return
        from apps.quality.tasks import requalify

        transaction.on_commit(lambda: requalify.delay(job.pk))
        self.stdout.write(
            f"requalify job {job.pk} queued on the quality queue; "
            f"follow it with `manage.py requalify --status`"
        )

    def _run_here(self, job: RequalifyJob, chunk: int) -> None:
        from tqdm import tqdm

        bar = tqdm(
            total=None, unit="events", desc=f"requalify #{job.pk}", file=self.stderr, disable=None
        )
        seen = {"done": job.done}

        def progress(current: RequalifyJob) -> None:
            bar.total = current.total
            bar.update(current.done - seen["done"])
            seen["done"] = current.done

        try:
            job = requalify_job_run(job_id=job.pk, chunk_size=chunk, progress=progress)
        finally:
            bar.close()
        self.stdout.write(self._line(job))

    def _missing(self, chunk: int) -> None:
        from tqdm import tqdm

        from apps.quality.backlog import events_without_verdict, quality_missing_judge

        with tqdm(
            total=events_without_verdict().count(),
            unit="events",
            desc="judging events without a verdict",
            file=self.stderr,
            disable=None,
        ) as bar:
            summary = quality_missing_judge(batch_size=chunk, progress=bar.update)
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(summary.by_status.items()))
        self.stdout.write(
            f"judged {summary.judged} event(s) without a verdict"
            + (f": {statuses}" if statuses else "")
        )

    @staticmethod
    def _get(job_id: int) -> RequalifyJob:
        try:
            return RequalifyJob.objects.get(pk=job_id)
        except RequalifyJob.DoesNotExist as exc:
            raise CommandError(f"no requalify job {job_id}") from exc

    @staticmethod
    def _line(job: RequalifyJob) -> str:
        filters = ",".join(job.filter_names) or "all filters"
        since = f" since {job.since:%Y-%m-%d %H:%M}" if job.since else ""
        error = f" — {job.error}" if job.error else ""
        return (
            f"job {job.pk}: {job.status}, {job.done}/{job.total} events, {job.changed} changed status "
            f"({filters}{since}){error}"
        )
