"""`manage.py import_feedback --format FORMAT [--source NAME] PATH`: import a feedback file.

The events go into the source NAME, by default `import-<format>` (e.g. `import-openwebui`). A
source that does not exist yet is created, an explicit `--source` as well as the default one: an
import is an integration of its own, and creating it on first use keeps a re-run a single
command. (Its API keys are issued as for any source and not shown; rotate them in the admin if
the source should also take events over the API.) An existing source keeps its settings: PII
redaction, hold-for-review, consent and licence defaults apply to the imported events.

Shows a progress bar over the bytes read when stderr is a terminal, and ends with one line:
`imported N, duplicate N, rejected N (first reasons)`. Importing the same file again adds
nothing: every event comes back as duplicate.

The new events are normalized and judged by workers. In embedded mode (no broker server) with no
worker listening, the command does that itself before it returns, so that a `build_dataset` or
`leaderboard` right after it sees them (`--no-process` leaves them to a worker); with a broker
server and no worker it says how many events wait for one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.workers import embedded_broker, run_here, workers_alive
from apps.feedback.importers import FORMATS
from apps.feedback.services.importing import feedback_import
from apps.sources.models import Source
from apps.sources.services import source_create


class Command(BaseCommand):
    help = "Import a feedback file into the raw event log. Formats: " + "; ".join(
        f"{name}: {importer.description}" for name, importer in FORMATS.items()
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--format", required=True, choices=list(FORMATS), help="the file's format"
        )
        parser.add_argument(
            "--source",
            default=None,
            help="source to import into, created if missing (default: import-<format>)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="events per database batch"
        )
        parser.add_argument(
            "--no-process",
            action="store_true",
            help="leave normalizing and judging to a worker even when none is listening",
        )
        parser.add_argument("path", help="the file (.json, .jsonl, or either gzipped)")

    def handle(self, *args: Any, **options: Any) -> None:
        format_name: str = options["format"]
        path = Path(options["path"])
        if not path.exists():
            raise CommandError(f"{path}: no such file")
        if not path.is_file():
            raise CommandError(f"{path}: not a file")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        source = self._source(options["source"] or f"import-{format_name}", format_name)

        bar = None
        if self.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{path.name} → {source.name}",
                file=getattr(self.stderr, "_out", sys.stderr),
                dynamic_ncols=True,
            )
        try:
            summary = feedback_import(
                source=source,
                format=format_name,
                path=path,
                progress=bar.update if bar is not None else None,
                batch_size=options["batch_size"],
            )
        except OSError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(summary.line())
        if summary.imported and not options["no_process"]:
            self._process_without_worker()

    def _process_without_worker(self) -> None:
        """Normalize and judge the new events here when no worker would (embedded mode)."""
        alive = workers_alive(timeout=1.0)
        if any({"ingest", "quality"} & set(worker.queues) for worker in alive):
            return
        if not embedded_broker():
            self.stderr.write(
                "no worker is listening: the new events wait for one to normalize and judge "
                "them (start a worker, or run normalize_feedback and requalify)"
            )
            return
        # The sweeps a worker runs on start-up, here: every event without its rows or verdict.
        normalized = run_here("feedback.reconcile")
        judged = run_here("quality.reconcile")
        self.stderr.write(
            f"no worker is listening: normalized and judged the new events here "
            f"({_count(normalized, 'normalized')} normalized, {_count(judged, 'judged')} judged)"
        )

    def _source(self, name: str, format_name: str) -> Source:
        source = Source.objects.filter(name=name).first()
        if source is not None:
            if not source.is_active:
                raise CommandError(
                    f"source {name!r} is inactive; activate it or name another with --source"
                )
            return source
        try:
            source, _, _ = source_create(
                name=name, description=f"Feedback imported from {format_name} files"
            )
        except ValidationError as exc:
            messages = "; ".join(exc.messages)
            raise CommandError(f"cannot create source {name!r}: {messages}") from exc
        self.stderr.write(f"created source {name!r}")
        return source


def _count(result: Any, key: str) -> Any:
    return result.get(key, "?") if isinstance(result, dict) else result
