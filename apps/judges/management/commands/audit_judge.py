"""manage.py audit_judge --judge NAME (--dataset V | --format hh-rlhf|oasst|jsonl PATH | --events)
                         [--limit N] [--seed S] [--json]

Audits a judge against people on human-labelled pairs (a dataset version's test split, a file,
or the preference events stored here) and records the audit on the judge's page. `--json`
prints {"judge", "pairs", "agreement", "kappa", "position_flip_rate", "length_bias", "curve",
...}; docs/judges.md explains each number."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.judges import pairs as pair_sources
from apps.judges import selectors, services


def summary_lines(results: dict[str, Any]) -> list[str]:
    low, high = results["agreement_interval"]
    lines = [
        f"judge {results['judge']} on {results['pairs']} pairs ({results['source']})",
        f"  agreement with people  {results['agreement']:.3f}  [{low:.3f}, {high:.3f}]",
        f"  Cohen's kappa          {results['kappa']:.3f}",
        f"  position flips         {results['position_flip_rate']:.3f}",
    ]
    bias = results["length_bias"]
    for key in ("humans_chose_longer", "humans_chose_shorter"):
        group = bias[key]
        if group["agreement"] is not None:
            lines.append(
                f"  {key.replace('_', ' '):<22} {group['agreement']:.3f} on {group['pairs']} pairs"
            )
    at30 = results.get("precision_at_30")
    if at30:
        lines.append(
            f"  precision at {at30['coverage']:.0%} coverage  {at30['precision']:.3f} "
            f"(lower bound {at30['precision_low']:.3f}, confidence >= {at30['threshold']})"
        )
    human = results.get("human_agreement")
    if human:
        lines.append(
            f"  people with each other  {human['agreement']:.3f} on {human['pairs']} pairs"
        )
    return lines


class Command(BaseCommand):
    help = "Audit a judge against people's choices."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--judge", required=True, help="NAME, NAME@VERSION or id.")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--dataset", help="A DPO dataset version (its test split).")
        where.add_argument("--format", choices=list(pair_sources.FORMATS))
        where.add_argument("--events", action="store_true", help="Stored preference events.")
        parser.add_argument("path", nargs="?", help="The file, with --format.")
        parser.add_argument("--limit", type=int, default=None, help="At most N pairs.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["format"] and not options["path"]:
            raise CommandError("--format needs the PATH of the file")
        try:
            judge = selectors.judge_get(options["judge"])
            if options["dataset"]:
                version = selectors.dataset_version_get(options["dataset"])
                labelled = pair_sources.dataset_pairs(version, seed=options["seed"])
                source = f"dataset v{version.pk} (test split)"
            elif options["format"]:
                labelled = pair_sources.file_pairs(
                    options["path"], options["format"], seed=options["seed"]
                )
                source = f"{options['format']} file {options['path']}"
            else:
                labelled = pair_sources.event_pairs(seed=options["seed"])
                source = "preference events"
            if options["limit"]:
                labelled = labelled[: options["limit"]]
            row = services.judge_audit(judge=judge, pairs=labelled, source=source)
        except pair_sources.PairsError as exc:
            raise CommandError(str(exc)) from exc
        except ApplicationError as exc:
            details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
            raise CommandError(f"{exc.message} {details}".strip()) from exc
        if options["json"]:
            self.stdout.write(json.dumps(row.results, indent=2))
        else:
            self.stdout.write("\n".join(summary_lines(row.results)))
