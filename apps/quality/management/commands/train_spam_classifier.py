"""manage.py train_spam_classifier [--if-new-labels N] [--seed S]

Trains a new version of the spam classifier on the shipped seed corpus plus every curator label,
and makes it the active one (the periodic task `quality.retrain_classifier` does the same when
enough new labels arrived)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.quality.services import classifier_train


class Command(BaseCommand):
    help = (
        "Train and activate a new spam classifier version from the seed corpus and curator labels."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-new-labels",
            type=int,
            metavar="N",
            help="Only train when at least N curator labels arrived since the active version.",
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        wanted = options["if_new_labels"]
        row = classifier_train(force=wanted is None, min_new_labels=wanted, seed=options["seed"])
        if row is None:
            self.stdout.write(f"fewer than {wanted} new curator labels: nothing trained")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"spam classifier v{row.version} is active: trained on {row.trained_on}, quarantines from {row.threshold:.2f}"
            )
        )
