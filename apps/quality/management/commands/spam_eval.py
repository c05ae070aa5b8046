"""manage.py spam_eval --format {tsv,csv,jsonl} PATH [--text-column C] [--label-column C]
[--train-fraction F] [--seed S] [--assume-label {ham,spam}] [--json]

Runs the quality pipeline's content filters on a labelled corpus and prints precision, recall,
F1, false-positive rate and events/s. Nothing is written to the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.quality.evaluation import CorpusError, evaluate, read_corpus


class Command(BaseCommand):
    help = "Score the spam and noise filters on a labelled corpus (nothing is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=["tsv", "csv", "jsonl"], required=True)
        parser.add_argument(
            "--text-column",
            help="Name (or 0-based index) of the text column; found by name when omitted.",
        )
        parser.add_argument(
            "--label-column",
            help="Name (or 0-based index) of the label column (spam/ham, 1/0, true/false).",
        )
        parser.add_argument(
            "--train-fraction",
            type=float,
            default=0.0,
            help="Share of the corpus to train the classifier on first, as curator labels (0: only what ships).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the train/test split.")
        parser.add_argument(
            "--assume-label",
            choices=["ham", "spam"],
            help="The label of every text when the corpus has no label column (default ham: genuine feedback).",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            corpus = read_corpus(
                options["path"],
                options["format"],
                text_column=options["text_column"],
                label_column=options["label_column"],
                assume=options["assume_label"],
            )
            result = evaluate(
                corpus, train_fraction=options["train_fraction"], seed=options["seed"]
            )
        except CorpusError as exc:
            raise CommandError(str(exc)) from exc
        result["path"] = str(options["path"])
        if corpus.assumed and not options["assume_label"]:
            self.stderr.write(
                "no label column: every text is taken as genuine (ham); see --assume-label"
            )
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"corpus      {result['path']}: {result['texts']:,} texts ({result['spam']:,} spam)\n"
            f"split       trained on {result['trained_on']:,}, scored {result['scored']:,} (seed {result['seed']})\n"
            f"classifier  {result['classifier']['version']} (quarantines from {result['classifier']['threshold']:.3f})\n"
            f"filters     {', '.join(result['filters'])}\n"
            f"counts      tp {result['tp']}  fp {result['fp']}  fn {result['fn']}  tn {result['tn']}\n"
            f"precision   {result['precision']:.4f}\n"
            f"recall      {result['recall']:.4f}\n"
            f"F1          {result['f1']:.4f}\n"
            f"FPR         {result['fpr']:.4f}\n"
            f"events/s    {result['events_per_second']:,.0f}"
        )
