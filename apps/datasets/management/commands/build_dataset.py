"""`manage.py build_dataset (--recipe NAME | --kind sft|dpo|kto [--source S] [--min-trust X]
[--curated-only]) [--json] [--enqueue [--wait]]`: build a dataset version.

`--kind` makes a recipe from the flags, named after the command and its options
(`build-dataset-dpo-<hash of the options>`) and reused by the next build with the same flags, so
the version keeps its lineage like any other and the recipe list does not fill with copies. The build runs in this process (a progress bar on
a terminal) unless `--enqueue` sends it to the `datasets` queue; `--wait` then polls until the
worker finishes. Prints the version id, content hash, rows per split and file paths; `--json`
prints one object with keys version, hash, rows, files (absolute paths), status, waiting.

Events that no worker has judged yet cannot go into a dataset: the command says how many wait
(`waiting`), and a version with no rows is an error (exit status 1) unless `--allow-empty`."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.datasets import selectors
from apps.datasets.models import KINDS, DatasetVersion
from apps.datasets.services import (
    dataset_version_build,
    dataset_version_create,
    recipe_create,
)
from apps.quality.backlog import events_without_verdict
from apps.sources.models import Source


class Command(BaseCommand):
    help = "Build a dataset version from a recipe (or an ad-hoc one from flags)."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--recipe", help="name of a saved recipe")
        which.add_argument("--kind", choices=KINDS, help="ad-hoc recipe of this kind")
        parser.add_argument("--source", help="ad-hoc: only events of this source")
        parser.add_argument(
            "--min-trust", type=float, default=0.0, help="ad-hoc: minimum trust weight (0-1)"
        )
        parser.add_argument(
            "--curated-only", action="store_true", help="ad-hoc: only curator-accepted events"
        )
        parser.add_argument(
            "--test-fraction", type=float, default=0.1, help="ad-hoc: share of prompts in test"
        )
        parser.add_argument("--max-rows", type=int, default=None, help="ad-hoc: row cap")
        parser.add_argument("--seed", type=int, default=0, help="ad-hoc: split seed")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--enqueue", action="store_true", help="build on a worker (datasets queue)"
        )
        parser.add_argument(
            "--wait", action="store_true", help="with --enqueue: wait for the worker"
        )
        parser.add_argument(
            "--allow-empty",
            action="store_true",
            help="a version with no rows is not an error",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        recipe = self._recipe(options)
        version = dataset_version_create(recipe=recipe, enqueue=options["enqueue"])
        if options["enqueue"]:
            if options["wait"]:
                version = self._wait(version)
        else:
            version = self._build(version, show_bar=not options["json"] and self.stderr.isatty())
        waiting = events_without_verdict().count()
        self._print(version, as_json=options["json"], waiting=waiting)
        if version.status == DatasetVersion.Status.FAILED:
            raise CommandError(f"version {version.pk} failed: {version.error}")
        if waiting and not options["json"]:
            self.stderr.write(
                f"{waiting} events wait for a worker to judge them and are not in this version "
                "(start a worker: make worker)"
            )
        empty = version.status == DatasetVersion.Status.SUCCEEDED and not any(
            (version.rows or {}).values()
        )
        if empty and not options["allow_empty"]:
            raise CommandError(
                f"version {version.pk} has no rows"
                + (f"; {waiting} events still wait for a worker's verdict" if waiting else "")
                + " (--allow-empty accepts an empty version)"
            )

    def _recipe(self, options: dict[str, Any]) -> Any:
        if options["recipe"]:
            recipe = selectors.recipe_get(name=options["recipe"])
            if recipe is None:
                raise CommandError(f"no recipe named {options['recipe']!r}")
            return recipe
        filters = {}
        if options["source"]:
            if not Source.objects.filter(name=options["source"]).exists():
                raise CommandError(f"no source named {options['source']!r}")
            filters["source"] = options["source"]
        chosen = {
            "filters": filters,
            "min_trust": options["min_trust"],
            "curated_only": options["curated_only"],
            "test_fraction": options["test_fraction"],
            "max_rows": options["max_rows"],
            "seed": options["seed"],
        }
        digest = hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:10]
        name = f"build-dataset-{options['kind']}-{digest}"
        existing = selectors.recipe_get(name=name)
        if existing is not None:
            return existing
        try:
            return recipe_create(
                name=name,
                kind=options["kind"],
                filters=filters,
                min_trust=options["min_trust"],
                curated_only=options["curated_only"],
                test_fraction=options["test_fraction"],
                max_rows=options["max_rows"],
                seed=options["seed"],
                adhoc=True,
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc

    def _build(self, version: DatasetVersion, *, show_bar: bool) -> DatasetVersion:
        if not show_bar:
            return dataset_version_build(version_id=version.pk)
        from tqdm import tqdm

        with tqdm(
            total=100, file=self.stderr._out, unit="%", bar_format="{l_bar}{bar}| {postfix}"
        ) as bar:

            def progress(fraction: float, message: str) -> None:
                bar.n = round(fraction * 100, 1)
                bar.set_postfix_str(message, refresh=True)

            version = dataset_version_build(version_id=version.pk, progress=progress)
            bar.n = 100
            bar.refresh()
        return version

    def _wait(self, version: DatasetVersion) -> DatasetVersion:
        while True:
            version.refresh_from_db()
            if version.status in (DatasetVersion.Status.SUCCEEDED, DatasetVersion.Status.FAILED):
                return version
            time.sleep(1.0)

    def _print(self, version: DatasetVersion, *, as_json: bool, waiting: int) -> None:
        root = settings.ARTIFACT_ROOT
        files: dict[str, Any] = {}
        for key, value in version.files.items():
            files[key] = (
                {f: str(root / p) for f, p in value.items()}
                if isinstance(value, dict)
                else str(root / value)
            )
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "version": version.pk,
                        "hash": version.content_hash,
                        "rows": version.rows,
                        "files": files,
                        "status": version.status,
                        "recipe": version.recipe.name,
                        "waiting": waiting,
                    }
                )
            )
            return
        self.stdout.write(
            f"version {version.pk} of {version.recipe.name} ({version.kind}): {version.status}"
        )
        if version.status != DatasetVersion.Status.SUCCEEDED:
            return
        self.stdout.write(f"hash {version.content_hash}")
        self.stdout.write(
            "rows " + ", ".join(f"{split} {n:,}" for split, n in version.rows.items())
        )
        for split in ("train", "test"):
            for fmt, path in (files.get(split) or {}).items():
                self.stdout.write(f"{split}.{fmt}  {path}")
        for key in ("manifest", "stats"):
            if key in files:
                self.stdout.write(f"{key}  {files[key]}")
